# SPDX-License-Identifier: GPL-2.0-or-later
"""nmimgr's full set on Debian's 6.1 kernel, with real injected NMIs.

One shared boot runs the runtime scenarios in file order (actions, event 0,
masks, dry run, parameters, malformed values, storm, load/unload cycles);
the panic and capture-kernel scenario needs a boot of its own (the storm,
confirmation, oops and held-panic scenarios are in test_nmimgr_panic_path.py).
QEMU's inject-nmi reads 0x21 or 0x31 at port 0x61: code 0x00 under the
default mask 0xc0.
"""

import json
import re
import subprocess
import threading
import time

import pytest

from lab import build, initramfs, kdump
from lab.paths import REPO_DIR
from lab.vm import VM
import nmimgr_guest as ng
from test_vmcore_check import tool

pytestmark = pytest.mark.k61

UHUH = "NMI received for unknown reason"


@pytest.fixture(scope="module")
def image61(k61):
    """An image with nmimgr.ko and Debian's own hpwdt (and its watchdog core)."""
    ko = build.build_module(k61, REPO_DIR / "module")
    wd = k61.modroot / "lib" / "modules" / k61.kver / "kernel" / "drivers" / "watchdog"
    return initramfs.build_initramfs(k61, {"/nmimgr/nmimgr.ko": ko,
                                           "/lab/watchdog.ko": wd / "watchdog.ko",
                                           "/lab/hpwdt.ko": wd / "hpwdt.ko"})


@pytest.fixture(scope="module")
def rt(k61, image61, tmp_path_factory):
    """The shared runtime boot, nmimgr loaded with no arguments."""
    vm = VM(k61, image61, workdir=tmp_path_factory.mktemp("rt61"))
    try:
        vm.start()
        vm.wait_ready()
        yield vm
    finally:
        vm.kill()


@pytest.fixture
def clean(rt):
    """nmimgr loaded with the default policy and an empty kernel log."""
    if rt.run("test -d /sys/module/nmimgr")[0] != 0:
        ng.load(rt)
    ng.reset(rt)
    ng.dmesg_clear(rt)
    return rt


def test_loads_with_the_default_policy(rt):
    ng.unload(rt)
    ng.dmesg_clear(rt)
    ng.load(rt)
    assert ng.getp(rt, "policy") == ng.DEFAULT_POLICY
    assert ng.getp(rt, "types") == "unknown"
    assert ng.getp(rt, "capture_drop") == "all"
    assert ng.getp(rt, "event_mask") == "0xc0"
    assert ng.getp(rt, "confirm") == "0"
    st = ng.stats(rt)
    assert st["capture_kernel"] == 0 and st["latched"] == 0 and st["nmis"] == 0
    assert st["last_event"] is None
    assert f"nmimgr: policy: {ng.DEFAULT_POLICY}" in ng.dmesg(rt)


def test_unmanaged_nmi_gets_a_discovery_line_and_the_kernels_handling(clean):
    before = ng.stats(clean)
    assert ng.send_nmis(clean, 1) == 1
    after = ng.stats(clean)
    assert after["unmanaged"] - before["unmanaged"] == 1
    log = ng.dmesg(clean)
    # the discovery line names the code as it will be matched
    assert re.search(r"nmimgr: unmanaged NMI event 0x[23]1 \((33|49)\) "
                     r"type=unknown cpu=0 code=0x00: list code 0 in", log), log
    assert UHUH in log
    assert after["last_event"]["action"] == "unmanaged"
    assert after["last_event"]["raw"] in ("0x21", "0x31")
    assert after["last_event"]["code"] == "0x00"
    assert after["codes"][0] - before["codes"].get(0, 0) == 1


def test_ignore_leaves_the_nmi_to_the_kernel_silently(clean):
    assert ng.setp(clean, "events_ignore", "0x21")[0] == 0
    got, before, after, log = ng.exercise(clean, 2)
    assert got == 2
    assert after["ignored"] - before["ignored"] == 2
    assert UHUH in log
    assert "nmimgr:" not in log


def test_drop_claims_the_nmi_counts_and_logs_it(clean):
    assert ng.setp(clean, "events_drop", "0")[0] == 0
    got, before, after, log = ng.exercise(clean, 3)
    assert got == 3
    assert after["dropped"] - before["dropped"] == 3
    assert UHUH not in log
    assert re.search(r"nmimgr: dropped NMI event 0x[23]1 \((33|49)\) type=unknown cpu=0 "
                     r"code=0x00", log)


def test_dry_run_logs_would_panic_and_changes_nothing(clean):
    assert ng.setp(clean, "policy", "panic=0 dry_run=1")[0] == 0
    got, before, after, log = ng.exercise(clean, 1)
    assert got == 1
    assert after["would_panic"] - before["would_panic"] == 1
    assert after["panics"] == 0 and after["fired"] == 0 and after["latched"] == 0
    assert "nmimgr: dry run: would panic on NMI event 0x" in log
    assert UHUH in log, "dry run must leave the kernel's own handling in place"


def test_event_code_0_is_managed(clean):
    # Mask 0xc0 keeps only the SERR/IOCHK bits: QEMU's NMI is code 0.
    assert ng.setp(clean, "policy", "drop=0 mask=0xc0")[0] == 0
    got, before, after, log = ng.exercise(clean, 2)
    assert got == 2
    assert after["dropped"] - before["dropped"] == 2
    assert UHUH not in log


def test_default_mask_matches_both_readings_and_exact_match_splits_them(clean):
    assert ng.setp(clean, "policy", "drop=0x21")[0] == 0
    before = ng.stats(clean)
    got = ng.send_nmis(clean, 8)
    after = ng.stats(clean)
    assert after["dropped"] - before["dropped"] == got
    assert after["unmanaged"] == before["unmanaged"]

    assert ng.setp(clean, "policy", "drop=0x21 mask=0xff")[0] == 0
    before = ng.stats(clean)
    got = ng.send_nmis(clean, 12)
    after = ng.stats(clean)

    def delta(code):
        return after["raw"].get(code, 0) - before["raw"].get(code, 0)
    dropped = after["dropped"] - before["dropped"]
    unmanaged = after["unmanaged"] - before["unmanaged"]
    assert dropped + unmanaged == got
    assert dropped == delta(0x21)
    assert unmanaged == delta(0x31)


def test_list_parameters_change_at_runtime_and_read_back_canonically(clean):
    assert ng.setp(clean, "events_drop", "10,0-2\n")[0] == 0
    assert ng.getp(clean, "events_drop") == "0-2,10"
    assert ng.setp(clean, "events_panic", "0x21,0x30-0x3f")[0] == 0
    assert ng.getp(clean, "events_panic") == "33,48-63"
    assert ng.setp(clean, "event_mask", "0xff")[0] == 0
    assert ng.setp(clean, "dry_run", "1")[0] == 0
    assert ng.getp(clean, "policy") == \
        "ignore= drop=0-2,10 panic=33,48-63 mask=0xff dry_run=1 confirm=0"
    # an empty write clears a list
    assert clean.run(f"echo > {ng.PARAMS}/events_drop")[0] == 0
    assert ng.getp(clean, "events_drop") == ""
    # an overlap is logged; the first list in ignore, drop, panic order wins
    ng.dmesg_clear(clean)
    assert ng.setp(clean, "events_ignore", "33")[0] == 0
    assert "more than one list" in ng.dmesg(clean)


def test_policy_parameter_replaces_the_whole_policy_in_one_write(clean):
    assert ng.setp(clean, "policy", "ignore=5 drop=6 panic=7 mask=0xff dry_run=1")[0] == 0
    assert ng.setp(clean, "policy", "drop=0x21")[0] == 0
    assert ng.getp(clean, "policy") == "ignore= drop=33 panic= mask=0xc0 dry_run=0 confirm=0"
    assert ng.getp(clean, "events_ignore") == ""
    assert ng.getp(clean, "dry_run") == "0"
    # and the handler acts on it at once
    before = ng.stats(clean)
    got = ng.send_nmis(clean, 2)
    assert ng.stats(clean)["dropped"] - before["dropped"] == got


MALFORMED = [
    ("events_panic", "300"), ("events_panic", "256"), ("events_panic", "5-3"),
    ("events_panic", "1-"), ("events_panic", "a"), ("events_panic", "1,,2"),
    ("events_panic", "-1"), ("events_panic", "1,"), ("events_panic", ",1"),
    ("events_panic", "1 2"), ("events_panic", "0x"), ("events_panic", "0x100"),
    ("events_panic", "1-2-3"), ("events_panic", "1" * 1100),
    ("events_drop", "2;3"), ("events_ignore", "+1"), ("events_ignore", "1.5"),
    ("event_mask", "0x1ff"), ("event_mask", "cf"), ("event_mask", "-1"),
    ("event_mask", "0"), ("event_mask", "0x0f"), ("event_mask", "0x80"),
    ("dry_run", "2"), ("dry_run", "yes"),
    ("confirm", "2"), ("confirm", "50-1000"), ("confirm", "900-800"),
    ("policy", "boom=1"), ("policy", "panic"), ("policy", "drop=1 drop=2"),
    ("policy", "panic=300"), ("policy", "mask=0x1ff"), ("policy", "dry_run=5"),
    ("policy", "mask=0"), ("policy", "confirm=1-2"),
    ("capture_drop", "some"),
]


def test_malformed_values_are_rejected_and_the_policy_stays(clean):
    good = "ignore=4 drop=0-2,10 panic=33 mask=0xcf dry_run=0 confirm=500-10000"
    assert ng.setp(clean, "policy", good)[0] == 0
    ng.dmesg_clear(clean)
    failures = []
    for name, value in MALFORMED:
        rc, out = ng.setp(clean, name, value)
        if rc == 0 or "Invalid argument" not in out:
            failures.append((name, value[:20], rc, out))
        if ng.getp(clean, "policy") != good:
            failures.append((name, value[:20], "policy changed", ng.getp(clean, "policy")))
    assert not failures
    assert len(MALFORMED) >= 20
    log = ng.dmesg(clean)
    assert log.count("policy in force unchanged") == len(MALFORMED)
    assert 'events_panic: rejected "5-3": range 5-3 is reversed' in log
    assert 'event_mask: rejected "0": mask 0x00 drops bit 7 (SERR) and 6 (IOCHK)' in log
    assert ng.getp(clean, "capture_drop") == "all"
    # types is fixed at load time
    assert ng.setp(clean, "types", "unknown,serr")[0] != 0


def test_malformed_values_at_load_time_fail_the_load_with_a_reason(clean):
    ng.unload(clean)
    ng.dmesg_clear(clean)
    for args, reason in [("events_panic=300", "code 300 out of range"),
                         ("events_drop=5-3", "reversed"),
                         ("policy=boom=1", "unknown key"),
                         ("types=bogus", "expected a list of unknown, serr, iochk"),
                         ("event_mask=0x100", "out of range"),
                         ("event_mask=0x0f", "drops bit 7 (SERR) and 6 (IOCHK)"),
                         ("confirm=5", "expected 0, 1 or MIN-MAX")]:
        rc, out = ng.load(clean, args, check=False)
        assert rc != 0, args
        assert clean.run("test -d /sys/module/nmimgr")[0] != 0, args
        assert reason in ng.dmesg(clean), args
    ng.load(clean, "events_drop=1 events_panic=0x30-0x3f")
    assert ng.getp(clean, "policy") == \
        "ignore= drop=1 panic=48-63 mask=0xc0 dry_run=0 confirm=0"
    # codes that only the masked-off bits tell apart are named once, at set time
    log = ng.dmesg(clean)
    assert "listed codes 1,48-63 differ only in bits mask 0xc0 drops" in log, log


def test_hpwdt_loaded_refuses_serr_and_iochk_without_a_warning(clean):
    """Debian's hpwdt (no iLO here, so it registers nothing) stands for the
    driver that owns NMI_SERR and NMI_IO_CHECK: nmimgr refuses to register
    there beside it, loudly and without the kernel's WARN."""
    ng.unload(clean)
    ng.dmesg_clear(clean)
    clean.run("insmod /lab/watchdog.ko; insmod /lab/hpwdt.ko", check=True)
    try:
        rc, _ = ng.load(clean, "types=unknown,serr", check=False)
        log = ng.dmesg(clean)
        assert rc != 0
        assert "hpwdt is loaded and registers on NMI_SERR and NMI_IO_CHECK" in log, log
        ng.load(clean, "types=unknown")     # NMI_UNKNOWN is fine beside it
        ng.unload(clean)
    finally:
        clean.run("rmmod hpwdt", check=True)
    ng.load(clean, "types=unknown,serr,iochk")
    assert ng.getp(clean, "types") == "unknown,serr,iochk"
    ng.unload(clean)
    log = ng.dmesg(clean)
    assert not ng.TROUBLE.search(log), log[-3000:]


def test_load_unload_cycles_while_nmis_arrive(clean):
    ng.unload(clean)
    ng.dmesg_clear(clean)
    stop = threading.Event()
    sent = [0]

    def pelt():
        while not stop.is_set():
            clean.inject_nmi()
            sent[0] += 1
            time.sleep(0.02)
    thread = threading.Thread(target=pelt)
    thread.start()
    try:
        rc, out = clean.run(
            f"for i in $(seq 20); do insmod {ng.KO} events_drop=1 || exit 1; "
            "sleep 0.1; rmmod nmimgr || exit 2; done", timeout=300)
    finally:
        stop.set()
        thread.join()
    assert rc == 0, out
    assert sent[0] > 20
    log = ng.dmesg(clean)
    assert not ng.TROUBLE.search(log), log[-3000:]
    assert "nmimgr: dropped NMI event" in log
    # nothing left behind: no sysfs, no handler
    assert clean.run("test -e /sys/kernel/nmimgr || test -e /sys/module/nmimgr")[0] != 0
    ng.dmesg_clear(clean)
    assert ng.send_nmis(clean, 1) == 1
    log = ng.dmesg(clean)
    assert UHUH in log and "nmimgr" not in log


TEST = "/sys/kernel/nmimgr/test"
TEST_TAKEN = re.compile(r"nmimgr: test: NMI on CPU (\d) taken with action (\w+): no panic")


def send_test_nmi(vm):
    """Write "crash" to the trigger; return (rc, output, stats before, after,
    the CPU the log says took it, its action, the kernel log)."""
    ng.dmesg_clear(vm)
    before = ng.stats(vm)
    rc, out = vm.run(f"echo crash > {TEST}")
    after = ng.stats(vm)
    log = ng.dmesg(vm)
    m = TEST_TAKEN.search(log)
    return rc, out, before, after, (m.group(1) if m else None), (m.group(2) if m else None), log


def test_the_test_trigger_sends_a_real_nmi_that_the_policy_decides(clean):
    """nmimgrctl test's trigger: "crash" sends one NMI through the local APIC
    to the other CPU; the handler decides on it with the policy in force like
    any NMI (no forced panic), and the write returns when nothing panicked."""
    _, rec = clean.run("cat /sys/kernel/nmimgr/record", check=True)
    assert re.fullmatch(r"nonce [0-9a-f]{16}\nphys 0x[0-9a-f]+\nfired 0\n", rec), rec
    # the default policy: unmanaged, and the kernel's own handling follows
    rc, out, before, after, cpu, action, log = send_test_nmi(clean)
    assert rc == 0, out
    assert "nmimgr: test: sending 1 NMI (pid " in log, log
    assert action == "unmanaged" and cpu in ("0", "1"), log
    assert after["unmanaged"] - before["unmanaged"] == 1
    assert after["last_event"]["cpu"] == cpu and after["last_event"]["type"] == "unknown"
    assert UHUH in log
    # a drop: claimed, counted, no "Uhhuh"
    assert ng.setp(clean, "policy", "drop=0")[0] == 0
    rc, out, before, after, cpu, action, log = send_test_nmi(clean)
    assert rc == 0 and action == "drop", (out, log)
    assert after["dropped"] - before["dropped"] == 1 and UHUH not in log
    # dry run: would panic, and says so before sending
    assert ng.setp(clean, "policy", "panic=0 dry_run=1")[0] == 0
    rc, out, before, after, cpu, action, log = send_test_nmi(clean)
    assert rc == 0 and action == "would_panic", (out, log)
    assert ", dry run: no panic" in log
    assert after["would_panic"] - before["would_panic"] == 1 and after["fired"] == 0
    # anything but "crash" is rejected and sends nothing
    before = ng.stats(clean)
    rc, out = clean.run(f"echo boom > {TEST}")
    assert rc != 0 and "Invalid argument" in out, out
    assert ng.stats(clean)["nmis"] == before["nmis"]
    assert 'nmimgr: test: rejected "boom' in ng.dmesg(clean)


def test_the_test_trigger_refuses_without_the_unknown_type(clean):
    ng.unload(clean)
    ng.load(clean, "types=serr")
    try:
        rc, out = clean.run(f"echo crash > {TEST}")
        assert rc != 0 and "Operation not supported" in out, out
        assert "the test NMI is of type unknown, which types= leaves out" in ng.dmesg(clean)
    finally:
        ng.unload(clean)
        ng.load(clean)


@pytest.mark.slow
def test_the_test_trigger_panics_through_the_confirm_window_and_flags_the_record(
        k61, image61, tmp_path, record_property):
    """With code 0 set to panic on a confirmed press (confirm=1: 500-10000
    ms), the trigger sends two NMIs half way into the window and goes the
    whole way: nmimgr's panic, the capture kernel's dump, a record flagged
    confirmed and as the test's, whose nonce is the one
    /sys/kernel/nmimgr/record showed, and " confirmed test" ending the panic
    line; nmimgr-vmcore-check names the test as the trigger."""
    vm = VM(k61, image61, workdir=tmp_path / "test61")
    try:
        vm.start()
        vm.wait_ready()
        ng.load(vm, "'policy=panic=0;confirm=1'")
        _, rec = vm.run("cat /sys/kernel/nmimgr/record", check=True)
        nonce = re.search(r"nonce ([0-9a-f]{16})", rec).group(1)
        kdump.arm_kdump(vm)
        start = time.monotonic()
        vm.submit(f"echo crash > {TEST}")   # does not return: the machine panics
        vm.wait_exit(240)
        record_property("write_to_poweroff_s", round(time.monotonic() - start, 1))
    finally:
        vm.kill()
    assert vm.capture_rc() == 0 and vm.dump.exists(), vm.tail()
    log = kdump.dump_dmesg(vm.dump)
    assert "nmimgr: test: sending 2 NMIs inside the confirm window (pid " in log, log[-3000:]
    assert "press again 500-10000 ms from now to panic" in log
    m = ng.PANIC_LINE.search(log)
    assert m, log[-3000:]
    assert m.group(7) == nonce and m.group(8) == " confirmed", m.group(0)
    assert log[m.end():].startswith(" test"), log[m.start():m.end() + 40]
    (rec,) = ng.fired_records(vm.dump)
    assert rec["nonce"] == int(nonce, 16) and rec["masked_code"] == 0x00
    assert rec["flags"] == 1 | 32 | 64, rec      # FIRED | CONFIRMED | TEST
    assert rec["cpu"] == int(m.group(4))
    proc = subprocess.run([str(tool("nmimgr-vmcore-check", "NMIMGR_VMCORE_CHECK")), "--json",
                           str(vm.dump)], capture_output=True, text=True, timeout=600, check=False)
    (dump,) = json.loads(proc.stdout)["dumps"]
    assert proc.returncode == 0 and dump["verdict"] == "complete", dump["reasons"]
    trigger = dump["trigger"]
    assert trigger["test"] is True and trigger["source"] == "record", trigger
    assert trigger["record"]["nonce"] == nonce and trigger["record"]["confirmed"] is True
    assert trigger["panic_line"]["test"] is True, trigger["panic_line"]


@pytest.mark.slow
def test_panic_dumps_and_the_capture_kernel_drops_a_second_nmi(
        k61, image61, tmp_path, record_property):
    """NMI -> nmimgr panic -> kdump; in the capture kernel (unknown_nmi_panic=1,
    no apic_extnmi) nmimgr, loaded with no arguments, drops an NMI sent while
    makedumpfile runs, and the dump is complete."""
    vm = VM(k61, image61, workdir=tmp_path / "panic61")
    try:
        vm.start()
        vm.wait_ready()
        ng.load(vm, "events_panic=0")
        kdump.arm_kdump(vm, "unknown_nmi_panic=1")
        (vm.share / "capture.sh").write_text(ng.CAPTURE_SH)
        start = time.monotonic()
        vm.inject_nmi()
        vm.wait_serial(r"nmimgr-lab: makedumpfile running", timeout=180)
        vm.inject_nmi()
        vm.wait_exit(240)
        record_property("nmi_to_poweroff_s", round(time.monotonic() - start, 1))
    finally:
        vm.kill()
    share = vm.share
    assert (share / "capture.rc").read_text().strip() == "0", vm.tail()
    cap = ng.parse_stats((share / "capture-stats").read_text())
    assert cap["capture_kernel"] == 1 and cap["latched"] == 1
    assert cap["latched_drops"] >= 1, cap
    assert (share / "nmi-during-dump").read_text().strip() == "1", \
        "the second NMI did not arrive while makedumpfile ran"
    cap_log = (share / "capture-dmesg").read_text()
    assert "nmimgr: dropped NMI event" in cap_log and ": capture kernel" in cap_log
    assert "Kernel panic" not in vm.serial_log
    log = kdump.dump_dmesg(vm.dump)
    m = ng.PANIC_LINE.search(log)
    assert m, log[-3000:]
    assert m.group(1) in ("21", "31") and m.group(3) == "unknown" and m.group(4) == "0"
    pages, _ = ng.read_every_page(vm.dump)
    assert pages > 1000
    # the trigger record the handler filled is in the dump, exactly once
    records = ng.fired_records(vm.dump)
    assert len(records) == 1, records
    rec = records[0]
    assert rec["raw_code"] == int(m.group(1), 16) and rec["masked_code"] == 0x00
    assert rec["event_mask"] == 0xc0 and rec["nmi_type"] == 1 and rec["cpu"] == 0
    # bound to its place and to the panic line
    assert rec["phys"] == rec["found_at"]
    assert rec["nonce"] == int(m.group(7), 16)
    assert rec["flags"] == 1, "no oops, panic or confirmation was under way"


#: The capture shield's three layers (nmimgr.conf: capture_extnmi,
#: capture_nmi_sysctls, capture_module), four cases side by side: a second
#: NMI reaches the capture kernel while makedumpfile runs, with
#: unknown_nmi_panic=1 on its command line (inherited, as kdump-tools' capture
#: kernel re-applies the root's sysctl.d).  case -> (extnmi, sysctls, module,
#: the dump survives)
SHIELD = {
    "none": ("no", "no", False, False),
    "apic_extnmi-only": ("yes", "no", False, True),
    "nmimgr-only": ("no", "no", True, True),
    "all-layers": ("yes", "yes", True, True),
}

SHIELD_CAPTURE_SH = r"""
nmis() { awk '/^ *NMI:/ { s = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; print s }' /proc/interrupts; }
if [ "@MODULE@" = yes ]; then insmod /nmimgr/nmimgr.ko || exit 90; fi
cat /proc/sys/kernel/unknown_nmi_panic > /out/unknown_nmi_panic
mkdir -p /out/dump
before=$(nmis)
makedumpfile -c -d 31 --message-level 22 /proc/vmcore /out/dump/vmcore.tmp &
pid=$!
echo "nmimgr-lab: makedumpfile running"
# until the host says it sent the NMI (a masked one never shows), or it shows
while [ ! -e /out/nmi-sent ] && [ "$(nmis)" = "$before" ] && kill -0 $pid 2> /dev/null; do
	sleep 0.1
done
state=$(awk '{ print $3 }' /proc/$pid/stat 2> /dev/null)
if [ -n "$state" ] && [ "$state" != Z ]; then echo 1; else echo 0; fi > /out/sent-while-running
wait $pid
rc=$?
echo "$before $(nmis)" > /out/nmi-counts
if [ "@MODULE@" = yes ]; then cat /sys/kernel/nmimgr/stats > /out/capture-stats; fi
[ $rc -eq 0 ] && mv /out/dump/vmcore.tmp /out/dump/vmcore
exit $rc
"""


@pytest.mark.slow
@pytest.mark.parametrize("case", SHIELD)
def test_the_capture_shield_layers_side_by_side(case, k61, image61, tmp_path,
                                                 record_property):
    extnmi, sysctls, module, survives = SHIELD[case]
    conf = tmp_path / "nmimgr.conf"
    conf.write_text(f"panic = 0\ncapture_extnmi = {extnmi}\n"
                    f"capture_nmi_sysctls = {sysctls}\n"
                    f"capture_module = {'yes' if module else 'no'}\n")
    # the words the product puts on the capture command line for this config
    words = subprocess.run([str(tool("nmimgr-load", "NMIMGR_LOAD")), "-c", str(conf), "--cmdline"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert ("apic_extnmi=none" in words) == (extnmi == "yes"), words
    assert ("sysctl.kernel.unknown_nmi_panic=0" in words) == (sysctls == "yes"), words
    vm = VM(k61, image61, workdir=tmp_path / case)
    try:
        vm.start()
        vm.wait_ready()
        ng.load(vm, "events_panic=0")
        kdump.arm_kdump(vm, " ".join(["unknown_nmi_panic=1", *words]))
        (vm.share / "capture.sh").write_text(
            SHIELD_CAPTURE_SH.replace("@MODULE@", "yes" if module else "no"))
        start = time.monotonic()
        vm.inject_nmi()
        vm.wait_serial(r"nmimgr-lab: makedumpfile running", timeout=180)
        vm.inject_nmi()
        (vm.share / "nmi-sent").write_text("1\n")
        vm.wait_exit(240)
        record_property("nmi_to_poweroff_s", round(time.monotonic() - start, 1))
    finally:
        vm.kill()
    share = vm.share
    inherited = (share / "unknown_nmi_panic").read_text().strip()
    assert inherited == ("0" if sysctls == "yes" else "1")
    if not survives:
        # the second NMI panicked the capture kernel: the dump never got written
        assert "Kernel panic - not syncing: NMI: Not continuing" in vm.serial_log, vm.tail()
        assert not (share / "capture.rc").exists()
        assert not vm.dump.exists()
        verdict = "lost"
    else:
        assert (share / "capture.rc").read_text().strip() == "0", vm.tail()
        assert (share / "sent-while-running").read_text().strip() == "1", \
            "makedumpfile had finished before the second NMI was sent"
        before, after = map(int, (share / "nmi-counts").read_text().split())
        if extnmi == "yes":
            assert after == before, "apic_extnmi=none let the NMI through"
        else:
            assert after > before, "the second NMI did not arrive"
            stats = ng.parse_stats((share / "capture-stats").read_text())
            assert stats["latched"] == 1 and stats["latched_drops"] >= 1, stats
        proc = subprocess.run([str(tool("nmimgr-vmcore-check", "NMIMGR_VMCORE_CHECK")), "--json", str(vm.dump)],
                              capture_output=True, text=True, timeout=300, check=False)
        (report,) = json.loads(proc.stdout)["dumps"]
        verdict = report["verdict"]
        assert proc.returncode == 0 and verdict == "complete", report["reasons"]
    record_property("dump", verdict)
    print(f"shield {case}: dump {verdict}")
