# SPDX-License-Identifier: GPL-2.0-or-later
"""nmimgr installed from its own Debian packages into a real Debian root with
kdump-tools, the way an admin installs it, and a BMC NMI dumped end to end.

The packages come from packaging/build-deb.sh (ctest's packaging_deb fixture
puts them in NMIMGR_DEB_DIR; run by hand, the test builds them).  At first
boot apt installs nmimgr and nmimgr-dkms (DKMS builds nmimgr.ko for the
root's kernel, the postinst wires the shield into kdump-tools), the admin's
edit of /etc/nmimgr.conf is applied with ``nmimgr-load --apply``, and only
then does kdump-tools.service start, build its initrd (the root's first;
the purge shows it rebuilt when nmimgr's stamp in /etc/kdump/sysctl.conf
goes) and load the capture kernel.  That install
boot is cached by its inputs (the .debs' bytes, the files, the commands:
conftest's installed_root); each test then boots the installed server, as
it boots after the install, and crashes it.  One boot serves several
checks where it can (a root boot under TCG takes a minute or two): the
kdump-tools server's chain is install, BMC dump, annotation and nmimgrctl
test on the next boot, the test's report and the purge on the boot after.

The scenario turns the shield's apic_extnmi and sysctl layers off
(capture_extnmi = no, capture_nmi_sysctls = no) and keeps
kernel.unknown_nmi_panic = 1 in the root's /etc/sysctl.d, which kdump-tools'
capture boot applies again: a second NMI sent while makedumpfile runs then
reaches the capture kernel, and nmimgr, loaded latched from the kdump
initrd, is what keeps it from killing the dump.  (With the default layers
apic_extnmi=none masks it before it arrives: test_nmimgr_61.py's shield
cases show each layer alone.)  makedumpfile is made to compress with zlib
(-c) so that it runs for seconds, not one, and the NMI can land inside it.
"""

import hashlib
import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from lab import debs, roots
from test_vmcore_check import tool

pytestmark = [pytest.mark.k61, pytest.mark.slow, pytest.mark.roots]

#: the admin's edit, appended to the packaged /etc/nmimgr.conf
CONF = """
# test_root_nmimgr.py: panic on code 0 (the BMC button) at the first press
panic = 0
confirm = 0
capture_extnmi = no
capture_nmi_sysctls = no
boot_initramfs = yes
"""
PANIC_LINE = re.compile(r"Kernel panic - not syncing: nmimgr: panic on NMI event "
                        r"0x([0-9a-f]{2}) .*code=0x00")


@pytest.fixture(scope="module")
def nmimgr_debs(tmp_path_factory):
    """nmimgr_*.deb and nmimgr-dkms_*.deb from this tree (NMIMGR_DEB_DIR, filled
    by ctest's packaging_deb fixture; run by hand, built here), with their
    dependencies from the archive."""
    where = os.environ.get("NMIMGR_DEB_DIR")
    return debs.with_dependencies(Path(where) if where else tmp_path_factory.mktemp("debs"))


def install_timings(vm):
    """The install boot's timings, and whether this run did it."""
    info = vm.installed.info
    return {"install_fresh": vm.fresh,
            **{f"install_{k}": v for k, v in info["timings"].items()},
            # each first-boot command's seconds (apt and DKMS, update-initramfs)
            "install_firstboot_s": [c.get("seconds") for c in info["firstboot"]]}


#: the state of the root before the install: /etc by name and content, the
#: rest of what persists by name (logs, caches, apt's and dpkg's own state
#: and systemd's runtime state left out; deb-systemd-helper's records kept;
#: /var/lib/kdump/initramfs-tools left out too: kdump-tools' copy of
#: /etc/initramfs-tools, made afresh for every kdump initrd build; and the
#: kdump initrd, its kernel link and its sysctl stamp, which kdump-tools
#: makes when it loads: the root image has none yet (its first boot is the
#: install), and the purge checks the initrd's contents itself)
MANIFEST = (
    "mkdir -p /var/lib/nmimgr-lab && manifest() { "
    "find /etc -xdev -type f -exec sha256sum {} + | sed 's/^/F /'; "
    "find /etc -xdev -type l -printf 'L %p -> %l\\n'; "
    "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp "
    "-o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/dpkg "
    "-o -path /var/lib/apt -o -path /var/lib/systemd -o -path /var/lib/nmimgr-lab "
    "-o -path /var/crash -o -path /var/lib/kdump/initramfs-tools -o -path /out "
    "-o -path '/var/lib/kdump/initrd.img*' -o -path /var/lib/kdump/vmlinuz "
    "-o -path '/var/lib/kdump/latest_sysctls-*' \\) -prune "
    "-o -printf 'N %p\\n'; "
    "find /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked "
    "-printf 'N %p\\n' 2>/dev/null || true; }; "
    "manifest | LC_ALL=C sort > /var/lib/nmimgr-lab/$1.manifest && "
    "dpkg-query -W -f '${Package}\\n' | LC_ALL=C sort > /var/lib/nmimgr-lab/$1.packages")


def manifest(name):
    """The shell command that records the root's state as NAME."""
    return f"sh -c {shlex.quote(MANIFEST)} manifest {name}"


def kdump_tools_server(installed_root, nmimgr_debs):
    """The kdump-tools root with nmimgr installed from its .debs, booted
    (the same install for every test here, done once)."""
    return installed_root(
        # apt, DKMS building nmimgr.ko and update-initramfs under TCG: minutes
        "kdump-tools", install=nmimgr_debs,
        files={"/etc/sysctl.d/90-lab-nmi.conf": b"kernel.unknown_nmi_panic = 1\n",
               # a host-only first-kernel initrd (an admin's choice, and
               # kdump-tools' own for its initrd): update-initramfs takes about
               # a minute under TCG instead of ten with Debian's MODULES=most
               "/etc/initramfs-tools/conf.d/zz-lab-dep": b"MODULES=dep\n"},
        # the admin's own edit of kdump-tools, before nmimgr came
        prepare=["sed -i 's/^MAKEDUMP_ARGS=.*/MAKEDUMP_ARGS=\"-c -d 31\"/' /etc/default/kdump-tools",
                 manifest("before")],
        # nmimgr in the first kernel's initramfs too (boot_initramfs = yes):
        # --apply says to rebuild it, and the admin does
        firstboot=[f"printf '%s' '{CONF}' >> /etc/nmimgr.conf", "nmimgr-load --apply",
                   "update-initramfs -u"])


def install_outputs(vm):
    """{first-boot command: its output} of the install boot."""
    return {c["command"]: c["output"] for c in vm.installed.info["firstboot"]}


def test_bmc_nmi_on_a_kdump_tools_root_with_nmimgr_installed(
        installed_root, nmimgr_debs, tmp_path, record_property):
    vm = kdump_tools_server(installed_root, nmimgr_debs)
    timings = install_timings(vm)
    timings["agent_ready_s"] = round(vm.boot_seconds, 1)
    # DKMS built the module for the root's kernel, the boot loaded it with the file
    _, out = vm.run("dkms status nmimgr", check=True)
    assert re.search(rf"nmimgr/[^,]+, {re.escape(vm.root.kernel.kver)}, x86_64: installed", out), out
    _, path = vm.run("modinfo -n nmimgr", check=True)
    assert "/updates/dkms/" in path, path
    _, policy = vm.run("cat /sys/module/nmimgr/parameters/policy", check=True)
    assert re.search(r"\bpanic=0\b", policy) and "confirm=0" in policy, policy
    rc, _ = vm.run("systemctl is-active nmimgr.service")
    assert rc == 0
    # apt did not rebuild the boot initramfs (boot_initramfs was still no,
    # debian/rules), the admin's update-initramfs did, and this boot loaded
    # nmimgr from it before the root was mounted
    outputs = install_outputs(vm)
    (apt,) = [out for cmd, out in outputs.items() if cmd.startswith("DEBIAN_FRONTEND")]
    assert "update-initramfs" not in apt, apt
    assert f"Generating /boot/initrd.img-{vm.root.kernel.kver}" in outputs["update-initramfs -u"]
    serial = vm.serial_log
    loaded = serial.find("nmimgr-load: nmimgr loaded")
    assert 0 <= loaded < serial.index("Begin: Mounting root file system"), serial[:8000]

    timings["capture_loaded_s"] = round(vm.wait_capture_loaded(900), 1)
    # kdump-tools built its initrd with nmimgr in it
    # initrd.img is a symlink, and zstd 1.5.4 skips symlinks ("is a symbolic
    # link, ignoring"): lsinitramfs of the link lists nothing
    _, listing = vm.run("lsinitramfs \"$(readlink -f /var/lib/kdump/initrd.img)\"",
                        timeout=300, check=True)
    assert re.search(r"nmimgr\.ko", listing), "nmimgr.ko is not in the kdump initrd"
    assert "etc/nmimgr.conf" in listing
    _, cmd = vm.run("cat /var/crash/kexec_cmd", check=True)
    assert "systemd.unit=kdump-tools-dump.service" in cmd, cmd
    assert "apic_extnmi=none" not in cmd, cmd      # turned off in this scenario
    nmimgrctl_on_the_kdump_tools_server(vm, timings)

    mark = len(vm.serial_log)
    crash = time.monotonic()
    vm.inject_nmi()
    vm.wait_serial(r"running makedumpfile -c -d 31 -F", timeout=600, start=mark)
    vm.inject_nmi()
    sent = len(vm.serial_log)
    vm.wait_exit(900)
    timings["nmi_to_reboot_s"] = round(time.monotonic() - crash, 1)
    capture = vm.serial_log[mark:]
    assert "Kernel panic" not in capture, vm.tail()
    # the second NMI reached the capture kernel while makedumpfile ran, and nmimgr
    # (latched, from the kdump initrd) dropped it
    begin = capture.index("running makedumpfile -c -d 31 -F")
    done = capture.index("The dumpfile is saved to STDOUT")
    dropped = capture.find("nmimgr: dropped NMI event", begin)
    assert begin < dropped < done, capture[begin:begin + 3000]
    assert sent - mark <= done

    crash_dir = vm.read_out("/var/crash", tmp_path / "out")
    (dump_dir,) = [d for d in crash_dir.iterdir() if re.fullmatch(r"\d{12}", d.name)]
    dmesg = next(dump_dir.glob("dmesg.*")).read_text(errors="replace")
    assert PANIC_LINE.search(dmesg), dmesg[-2000:]
    report = host_check(dump_dir)
    assert (report["layout"], report["container"], report["compression"]) == \
        ("kdump-tools", "flattened", "zlib")
    trigger = report["trigger"]
    assert trigger["nmimgr"], trigger

    annotated_on_next_boot(vm, dump_dir.name, tmp_path, timings,
                           then=lambda again: nmimgrctl_test_end_to_end(
                               again, tmp_path, timings,
                               then=lambda after: purge_leaves_the_root_as_it_was(after, timings)))
    record_property("timings", json.dumps(timings))
    print(f"kdump-tools with nmimgr: {json.dumps(timings)}")


def nmimgrctl_test_end_to_end(vm, tmp_path, timings, then=None):
    """On the server booted after the BMC dump: `nmimgrctl test` shows its
    plan and refuses without --yes-crash-this-machine; with it, nmimgr's own
    trigger sends an NMI through the APIC, the policy (panic = 0) panics on
    it, kdump-tools' capture kernel writes the dump and reboots; on the boot
    after, nmimgr-test-report.service finds that dump by the record's nonce
    and logs it complete, with the test's NMI as its trigger.  THEN, when
    given, goes on with that boot."""
    vm.wait_capture_loaded(900)
    rc, out = vm.run("nmimgrctl test --no-mem-usage", timeout=300)
    assert rc == 1 and "doctor: ready" in out, out
    assert "not crashing without --yes-crash-this-machine" in out, out
    nonce = re.search(r"record nonce ([0-9a-f]{16})", out).group(1)
    _, record = vm.run("cat /sys/kernel/nmimgr/record", check=True)
    assert f"nonce {nonce}" in record, record
    assert vm.run("test -e /var/lib/nmimgr/test.json")[0] != 0
    rc, out = vm.run("nmimgrctl test --report")
    assert rc == 2 and "no nmimgrctl test is pending" in out, out

    mark = len(vm.serial_log)
    crash = time.monotonic()
    # does not come back: the machine panics in the write
    vm.submit("nmimgrctl test --no-mem-usage --yes-crash-this-machine > /root/test.out 2>&1")
    vm.wait_exit(900)
    timings["test_to_reboot_s"] = round(time.monotonic() - crash, 1)
    capture = vm.serial_log[mark:]
    # the panic line itself is not on the console: printk from NMI context is
    # deferred and panic() kexecs before it flushes; the dump's dmesg has it
    assert "nmimgr: test: sending 1 NMI" in capture, capture[-4000:]
    assert "running makedumpfile -c -d 31 -F" in capture, capture[-4000:]

    after = roots.RootVM(vm.root, vm.disk, workdir=tmp_path / "after-test", boot_timeout=900)
    try:
        after.start()
        after.wait_ready()
        props = after.wait_unit_done("nmimgr-test-report.service", 600)
        timings["test_reported_s"] = round(time.monotonic() - after.started, 1)
        assert (props["Result"], props["ExecMainStatus"]) == ("success", "0"), props
        lines = journal_entries(after, "nmimgr-test-report.service")
        reports = [e for e in lines if "nmimgrctl test started" in e.get("MESSAGE", "")]
        assert len(reports) == 1, [e.get("MESSAGE") for e in lines]
        entry = reports[0]
        assert entry["PRIORITY"] == "6", entry
        assert re.search(r": dump /var/crash/\d{12} complete, trigger nmimgr event 0x00 "
                         r"\(raw 0x[0-9a-f]{2}, unknown, cpu \d\), the test's NMI$",
                         entry["MESSAGE"]), entry["MESSAGE"]
        _, last = after.run("cat /var/lib/nmimgr/test-last.json", check=True)
        last = json.loads(last)
        assert (last["result"], last["exit_status"], last["nonce"]) == ("complete", 0, nonce), last
        assert last["trigger"]["test"] is True and last["trigger"]["record"]["nonce"] == nonce
        _, dmesg = after.run(f"cat {last['dump']}/dmesg.*", check=True)
        assert re.search(PANIC_LINE.pattern + rf" record={nonce} test", dmesg), dmesg[-2000:]
        assert after.run("test -e /var/lib/nmimgr/test.json")[0] != 0
        rc, out = after.run("nmimgrctl test --report")
        assert rc == 2 and "the last one" in out and "): complete" in out, out
        # nmimgr-annotate.service saw the same dump as the test's
        props = after.wait_unit_done("nmimgr-annotate.service", 600)
        _, journal = after.run("journalctl -b -u nmimgr-annotate.service --no-pager -o cat")
        assert re.search(r"complete; reasons: none; trigger: nmimgr event 0x00 action panic test ",
                         journal), journal
        if then:
            then(after)
    finally:
        after.kill()


def doctor(vm, *args):
    """`nmimgrctl doctor --json` in the guest: its exit status, the report
    printed, and {check id: check}."""
    rc, out = vm.run(" ".join(("nmimgrctl doctor --json 2>/dev/null", *args)), timeout=600)
    report = json.loads(out)
    return rc, json.dumps(report, indent=1), {c["id"]: c for c in report["checks"]}


def wait_guest_file(vm, path, text, timeout=120):
    """Wait until the guest's PATH exists and holds TEXT."""
    deadline = time.monotonic() + timeout
    while True:
        rc, out = vm.run(f"cat {path}")
        if rc == 0 and text in out:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never held {text!r}: {out}")
        time.sleep(1)


def nmimgrctl_on_the_kdump_tools_server(vm, timings):
    """nmimgrctl doctor says ready on the installed server, then names the
    check each broken state this server can be put in fails, and says ready
    again once it is put back; status reports the drift of an edit not
    applied."""
    start = time.monotonic()
    rc, report, checks = doctor(vm)
    timings["doctor_s"] = round(time.monotonic() - start, 1)
    assert rc == 0, report
    for check in ("crashkernel-reserved", "capture-loaded", "capture-shield", "capture-initramfs",
                  "capture-nmi-protection", "nmimgr-loaded", "bmc-nmi-panics", "dump-space",
                  "truncated-dump-hazard"):
        assert checks[check]["verdict"] == "ok", report
    # what it read: kdump-tools' saved kexec command, its real zstd initrd,
    # makedumpfile's count of the pages a dump keeps
    assert checks["capture-cmdline"]["evidence"]["source"] == "/var/crash/kexec_cmd", report
    assert "zstd" in checks["capture-initramfs"]["evidence"]["segments"], report
    assert "makedumpfile --mem-usage" in checks["dump-space"]["evidence"]["estimate source"], report
    # this scenario turns apic_extnmi off: nmimgr in the image is the layer
    assert checks["capture-nmi-protection"]["evidence"]["layers"] == \
        "nmimgr latched in the capture initramfs", report
    rc, out = vm.run("nmimgrctl status")
    assert rc == 0 and "drift: none" in out, out

    # set, live: the module takes it, status says the file differs; an
    # invalid list changes nothing; set back
    rc, out = vm.run("nmimgrctl set --drop 0x80")
    assert rc == 0 and "policy in force: ignore= drop=128 panic=0" in out, out
    rc, out = vm.run("nmimgrctl status")
    assert rc == 1 and "drift: the loaded module does not follow" in out, out
    rc, out = vm.run("nmimgrctl set --panic 5-3")
    assert rc == 1 and "--panic: " in out and "nothing changed" in out, out
    rc, out = vm.run("nmimgrctl set --drop '' && nmimgrctl status")
    assert rc == 0 and "drift: none" in out, out

    # discover: a BMC NMI over QMP while it runs is dropped and reported,
    # and SIGTERM ends it with the policy put back
    _, policy = vm.run("cat /sys/module/nmimgr/parameters/policy", check=True)
    vm.run("sh -c 'nmimgrctl discover > /root/discover.out 2>&1; echo $? > /root/discover.rc' "
           "</dev/null >/dev/null 2>&1 &", check=True)
    wait_guest_file(vm, "/root/discover.out", "press the BMC's NMI button now")
    vm.inject_nmi()
    wait_guest_file(vm, "/root/discover.out", "NMI 1: type=unknown raw=0x")
    vm.run("for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = nmimgrctl ] && "
           "kill -TERM ${p#/proc/}; done; true", check=True)
    wait_guest_file(vm, "/root/discover.rc", "")
    _, out = vm.run("cat /root/discover.rc /root/discover.out", check=True)
    assert out.startswith("0\n") and "stopped by Terminated" in out, out
    assert "proposed: nmimgrctl set --panic 0x00 --persist" in out, out
    assert "platform note qemu-kvm" in out, out
    _, now = vm.run("cat /sys/module/nmimgr/parameters/policy", check=True)
    assert now == policy and f"policy restored: {policy.strip()}" in out, out

    # an edit of nmimgr.conf not applied: drift, and an image older than it
    vm.run("cp -p /etc/nmimgr.conf /root/nmimgr.conf && sleep 1 && "
           "echo 'drop = 0x80' >> /etc/nmimgr.conf", check=True)
    rc, out = vm.run("nmimgrctl status")
    assert rc == 1 and "policy: file ignore= drop=128 panic=0" in out, out
    rc, report, checks = doctor(vm, "--no-mem-usage")
    assert rc == 1 and checks["capture-initramfs"]["verdict"] == "fail", report
    assert "/etc/nmimgr.conf changed after" in checks["capture-initramfs"]["summary"], report
    vm.run("cp -p /root/nmimgr.conf /etc/nmimgr.conf", check=True)
    # dry run written live: the BMC's NMI would only be logged
    vm.run("cp /sys/module/nmimgr/parameters/policy /root/policy && "
           "echo 'panic=0 dry_run=1' > /sys/module/nmimgr/parameters/policy", check=True)
    rc, report, checks = doctor(vm, "--no-mem-usage")
    assert rc == 1 and checks["bmc-nmi-panics"]["verdict"] == "fail", report
    assert "dry run" in checks["bmc-nmi-panics"]["summary"], report
    vm.run("cat /root/policy > /sys/module/nmimgr/parameters/policy", check=True)
    # no capture kernel
    vm.run("kdump-config unload", timeout=300, check=True)
    rc, report, checks = doctor(vm, "--no-mem-usage")
    assert rc == 1 and checks["capture-loaded"]["verdict"] == "fail", report
    vm.run("kdump-config load", timeout=600, check=True)
    rc, report, _ = doctor(vm, "--no-mem-usage")
    assert rc == 0, report


#: what the tests above leave in /root of the kdump-tools server, removed
#: before the purge is judged (the test's files, not nmimgr's)
TEST_LITTER = ("/root/discover.out", "/root/discover.rc", "/root/nmimgr.conf",
               "/root/policy", "/root/test.out")


def purge_leaves_the_root_as_it_was(vm, timings):
    """On the kdump-tools server that has taken the BMC dump and nmimgrctl
    test's dump (sharing that boot): `apt purge --autoremove nmimgr
    nmimgr-dkms` and the `kdump-config reload` it asks for: every file
    nmimgr added is gone, every file it changed (/etc/default/kdump-tools
    with the admin's own edit in it, the kdump-tools sysctl file) is byte
    for byte what it was, the boot initramfs nmimgr was in (boot_initramfs =
    yes) was rebuilt without it, and the kdump initrd and the loaded capture
    kernel are nmimgr's no more."""
    vm.run("rm -f " + " ".join(TEST_LITTER), check=True)
    boot = f"/boot/initrd.img-{vm.root.kernel.kver}"
    _, listing = vm.run(f"lsinitramfs {boot}", timeout=300, check=True)
    assert re.search(r"/updates/dkms/nmimgr\.ko", listing) and "usr/sbin/nmimgr-load" in listing, \
        "nmimgr is not in the boot initramfs"
    # offline, the archive's packages came in on apt's command line and are
    # marked manual; an admin's apt would have pulled them in as automatic
    _, added = vm.run("dpkg-query -W -f '${Package}\\n' | LC_ALL=C sort | "
                      "comm -13 /var/lib/nmimgr-lab/before.packages -", check=True)
    added = set(added.split())
    assert {"nmimgr", "nmimgr-dkms"} <= added, added
    deps = sorted(added - {"nmimgr", "nmimgr-dkms"})
    if deps:
        vm.run(f"apt-mark auto {' '.join(deps)}", check=True)
    start = time.monotonic()
    rc, out = vm.run("DEBIAN_FRONTEND=noninteractive apt-get purge -y --autoremove "
                     "nmimgr nmimgr-dkms 2>&1", timeout=1500)
    timings["purge_s"] = round(time.monotonic() - start, 1)
    assert rc == 0, out
    assert "nmimgr-kdump: kdump-tools: run 'kdump-config reload'" in out, out
    assert "still carries nmimgr's block" not in out, out
    # boot_initramfs = yes: the removal rebuilt the boot initramfs, without nmimgr
    assert f"update-initramfs: Generating {boot}" in out, out
    _, listing = vm.run(f"lsinitramfs {boot}", timeout=300, check=True)
    assert "nmimgr" not in listing, [line for line in listing.splitlines() if "nmimgr" in line]
    start = time.monotonic()
    rc, out = vm.run("kdump-config reload 2>&1", timeout=900)
    timings["kdump_reload_s"] = round(time.monotonic() - start, 1)
    assert rc == 0, out

    vm.run(manifest("after"), check=True)
    # the lab's policy-rc.d is there only while the first-boot commands run
    _, diff = vm.run("cd /var/lib/nmimgr-lab && grep -v '^N /usr/sbin/policy-rc.d$' "
                     "before.manifest | diff - after.manifest")
    assert diff.strip() == "", f"the purge left the root changed:\n{diff}"
    _, diff = vm.run("cd /var/lib/nmimgr-lab && diff before.packages after.packages")
    assert diff.strip() == "", f"packages left or removed:\n{diff}"
    _, status = vm.run("dpkg-query -W -f '${db:Status-Abbrev}' nmimgr nmimgr-dkms 2>&1")
    assert "rc" not in status and "ii" not in status, status
    # the capture side: the rebuilt kdump initrd and the loaded command line
    _, listing = vm.run("lsinitramfs \"$(readlink -f /var/lib/kdump/initrd.img)\"",
                        timeout=300, check=True)
    assert "nmimgr" not in listing, [line for line in listing.splitlines() if "nmimgr" in line]
    _, cmd = vm.run("cat /var/crash/kexec_cmd /sys/kernel/kexec_crash_loaded", check=True)
    assert "systemd.unit=kdump-tools-dump.service" in cmd and "nmimgr" not in cmd, cmd
    assert cmd.split()[-1] == "1", cmd


#: the admin's edit on the kdumpctl root: the default shield (every layer on)
CONF_KDUMPCTL = """
# test_root_nmimgr.py: panic on code 0 (the BMC button) at the first press
panic = 0
confirm = 0
"""
#: kdumpctl's kdump initramfs on a Debian root (/boot is not where it goes)
KDUMPCTL_INITRD = "$(ls /var/lib/kdump/initramfs-*kdump.img /boot/initramfs-*kdump.img 2>/dev/null | head -n 1)"


#: what the admin does once the install boot's kdump.service has built the
#: image: a policy change applied, `kdumpctl restart`, and `kdumpctl restart`
#: again with nothing changed; the image's mtime after each step.  Run in
#: the install boot (lab.roots.install's THEN, cached with it): mkdumprd
#: takes minutes under TCG, and these are facts about the packages
#: installed, which the cache key holds.  (A restart with nothing changed
#: before the policy change proved no more than the last one, and the test
#: boot's kdump.service, which finds nothing changed since the rebuild.)
KDUMPCTL_STAT = f"stat -c %Y.%y {KDUMPCTL_INITRD}"
KDUMPCTL_RESTARTS = (
    KDUMPCTL_STAT,
    "printf 'drop = 0x40\\n' >> /etc/nmimgr.conf && nmimgr-load --apply 2>&1",
    "kdumpctl restart 2>&1",
    KDUMPCTL_STAT,
    "kdumpctl restart 2>&1",
    KDUMPCTL_STAT,
)


def kdumpctl_restarts(vm, timings):
    """The restarts of :data:`KDUMPCTL_RESTARTS` in the install boot: none
    rebuilds the image but the one after the policy change, which does once."""
    steps = vm.installed.info["then"]
    assert [s["command"] for s in steps] == list(KDUMPCTL_RESTARTS)
    for step in steps:
        assert step["rc"] == 0, step
    built, (apply, rebuild, rebuilt, again, last) = steps[0]["output"].strip(), steps[1:]
    # the policy changed: apply says so, and the next restart rebuilds once
    assert "kdumpctl restart" in apply["output"], apply["output"]
    timings["kdumpctl_rebuild_s"] = rebuild["seconds"]
    assert re.search(r"Detected change\(s\) in the following file\(s\):\s+"
                     r"/etc/kdump/pre\.d/50-nmimgr\s*$", rebuild["output"], re.M), rebuild["output"]
    assert "Rebuilding" in rebuild["output"], rebuild["output"]
    assert rebuilt["output"].strip() != built
    # nothing changed since: `kdumpctl restart` keeps the image
    assert "Rebuilding" not in again["output"], again["output"]
    assert last["output"].strip() == rebuilt["output"].strip()
    return rebuilt["output"].strip()


def initrd_mtime(vm):
    _, out = vm.run(KDUMPCTL_STAT, check=True)
    return out.strip()


def test_bmc_nmi_on_a_kdumpctl_root_with_nmimgr_installed(
        installed_root, nmimgr_debs, tmp_path, record_property):
    """The real kdumpctl: no kdump.conf edit, the initramfs rebuilt by
    `kdumpctl restart` exactly when nmimgr's policy changed, the default
    shield on the capture command line, and the dump annotated on the next
    boot in kdumpctl's layout."""
    vm = installed_root(
        "kdumpctl", install=nmimgr_debs,
        firstboot=[f"printf '%s' '{CONF_KDUMPCTL}' >> /etc/nmimgr.conf",
                   "nmimgr-load --apply"],
        then=KDUMPCTL_RESTARTS)
    timings = install_timings(vm)
    timings["agent_ready_s"] = round(vm.boot_seconds, 1)
    image_mtime = kdumpctl_restarts(vm, timings)
    _, out = vm.run("dkms status nmimgr", check=True)
    assert re.search(rf"nmimgr/[^,]+, {re.escape(vm.root.kernel.kver)}, x86_64: installed", out), out
    boot_initrd_untouched(vm)
    timings["capture_loaded_s"] = round(vm.wait_capture_loaded(900), 1)
    rc, status = vm.run("kdumpctl status")
    assert rc == 0 and "Kdump is operational" in status, status

    # kdump.conf untouched: the dracut drop-in brings nmimgr into mkdumprd's build
    _, conf = vm.run("sha256sum /etc/kdump.conf", check=True)
    assert conf.split()[0] == pristine_sha256(vm, "/etc/kdump.conf"), "kdump.conf was changed"
    _, listing = vm.run(f"lsinitrd {KDUMPCTL_INITRD}", timeout=300, check=True)
    for path in ("nmimgr.ko", "etc/nmimgr.conf", "usr/sbin/nmimgr-load", "50-nmimgr"):
        assert path in listing, f"{path} is not in kdumpctl's initramfs"
    _, shipped = vm.run(f"lsinitrd -f etc/nmimgr.conf {KDUMPCTL_INITRD}", check=True)
    assert "panic = 0" in shipped and "drop = 0x40" in shipped, shipped
    # this boot's kdump.service found nothing changed since the install's rebuild
    assert initrd_mtime(vm) == image_mtime
    # nmimgrctl reads the same image and the command line kdumpctl builds
    rc, report, checks = doctor(vm)
    assert rc == 0, report
    for check in ("capture-loaded", "capture-shield", "capture-initramfs", "capture-nmi-protection",
                  "bmc-nmi-panics", "truncated-dump-hazard"):
        assert checks[check]["verdict"] == "ok", report
    assert "rebuilt as kdumpctl does" in checks["capture-cmdline"]["evidence"]["source"], report
    assert "apic_extnmi=none" in checks["capture-cmdline"]["summary"], report

    # kdumpctl's kexec needs root's user keyring in the session keyring (a
    # login shell has it from pam_keyinit); the lab's agent unit says
    # KeyringMode=shared, as kdump.service does
    _, keys = vm.run("keyctl show @s", check=True)
    assert "_uid." in keys, keys
    # the shield on the command line kdumpctl loaded
    _, cmd = vm.run("bash -c '. /etc/sysconfig/kdump; echo $KDUMP_COMMANDLINE_APPEND'",
                    check=True)
    assert "apic_extnmi=none" in cmd and "sysctl.kernel.unknown_nmi_panic=0" in cmd, cmd

    mark = len(vm.serial_log)
    crash = time.monotonic()
    vm.inject_nmi()
    vm.wait_exit(900)
    timings["nmi_to_reboot_s"] = round(time.monotonic() - crash, 1)
    # the panic line itself is printed in NMI context, so the console gets
    # it only after kexec has left: it is read from the dump's saved log
    capture = vm.serial_log[mark:]
    assert re.search(r"nmimgr: capture kernel guarded: latched=1", capture), vm.tail()
    assert "apic_extnmi=none" in capture        # the capture kernel's command line

    crash_dir = vm.read_out("/var/crash", tmp_path / "out")
    (dump_dir,) = [d for d in crash_dir.iterdir()
                   if re.fullmatch(r"127\.0\.0\.1-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d", d.name)]
    dmesg = (dump_dir / "vmcore-dmesg.txt").read_text(errors="replace")
    assert PANIC_LINE.search(dmesg), dmesg[-2000:]
    report = host_check(dump_dir)
    assert report["layout"] == "kdumpctl" and report["trigger"]["nmimgr"], report

    annotated_on_next_boot(vm, dump_dir.name, tmp_path, timings)
    record_property("timings", json.dumps(timings))
    print(f"kdumpctl with nmimgr: {json.dumps(timings)}")


def boot_initrd_untouched(vm):
    """The install left the first kernel's initramfs as the root had it:
    with boot_initramfs = no (the default) nmimgr's hooks add nothing there,
    so nothing may rebuild it (debian/rules)."""
    boot = f"/boot/initrd.img-{vm.root.kernel.kver}"
    _, now = vm.run(f"sha256sum {boot}", check=True)
    assert now.split()[0] == pristine_sha256(vm, boot), f"installing nmimgr rebuilt {boot}"


def pristine_sha256(vm, path):
    """The sha256 of PATH in the root's own image, before any install (debugfs)."""
    data = subprocess.run(["debugfs", "-R", f"cat {path}", str(vm.root.root.image)],
                          capture_output=True, check=True).stdout
    return hashlib.sha256(data).hexdigest()


def host_check(dump_dir):
    """nmimgr-vmcore-check --json on the host, on the dump read off the disk:
    its report, which must say complete."""
    proc = subprocess.run([str(tool("nmimgr-vmcore-check", "NMIMGR_VMCORE_CHECK")), "--json",
                           str(dump_dir)], capture_output=True, text=True, timeout=600,
                          check=False)
    (report,) = json.loads(proc.stdout)["dumps"]
    assert proc.returncode == 0 and report["verdict"] == "complete", report["reasons"]
    return report


def journal_entries(vm, unit):
    """The journal entries (dicts) UNIT logged in VM's current boot."""
    _, journal = vm.run(f"journalctl -b -u {unit} -o json --no-pager")
    return [json.loads(line) for line in journal.splitlines() if line.startswith("{")]


def annotated_on_next_boot(vm, dump_name, tmp_path, timings, then=None):
    """Boot VM's disk again: nmimgr-annotate.service checks the new dump
    /var/crash/DUMP_NAME, writes its nmimgr.json and logs one journal line
    for it at info priority, beside the rest of the boot; a later run finds
    nothing new.  THEN, when given, goes on with that boot (it is handed
    the running VM, and may crash it)."""
    again = roots.RootVM(vm.root, vm.disk, workdir=tmp_path / f"next-{vm.root.flavour}", boot_timeout=900)
    try:
        again.start()
        timings["next_boot_s"] = round(again.wait_ready(), 1)
        props = again.wait_unit_done("nmimgr-annotate.service", 600)
        timings["annotated_s"] = round(time.monotonic() - again.started, 1)
        assert (props["ActiveState"], props["Result"], props["ExecMainStatus"]) == \
            ("inactive", "success", "0"), props
        lines = journal_entries(again, "nmimgr-annotate.service")
        dump_lines = [e for e in lines if f"/var/crash/{dump_name}/" in e.get("MESSAGE", "")]
        assert len(dump_lines) == 1, [e.get("MESSAGE") for e in lines]
        entry = dump_lines[0]
        assert entry["PRIORITY"] == "6", entry
        assert re.search(r": complete; reasons: none; trigger: nmimgr event 0x00 action panic"
                         r".*; annotation written$", entry["MESSAGE"]), entry["MESSAGE"]
        _, note = again.run(f"cat /var/crash/{dump_name}/nmimgr.json", check=True)
        annotation = json.loads(note)
        assert annotation["verdict"] == "complete", annotation
        assert annotation["trigger"]["nmimgr"], annotation["trigger"]
        # the unit ran at low priority, and did not hold the boot
        _, nice = again.run("systemctl show -p Nice -p IOSchedulingClass nmimgr-annotate.service")
        assert set(nice.split()) == {"Nice=19", "IOSchedulingClass=3"}, nice   # 3: idle
        # a later run finds nothing new
        _, second = again.run("nmimgr-vmcore-check --new --annotate --journal /var/crash")
        assert second.strip().startswith("<6>no new dumps (1 already annotated)"), second
        if then:
            then(again)
    finally:
        again.kill()
