# SPDX-License-Identifier: GPL-2.0-or-later
"""nmimgr in a lab guest: load it, set and read its parameters and
statistics, send NMIs and wait until the guest has counted them, and check
that a dump on the host is whole."""

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

KO = "/nmimgr/nmimgr.ko"
PARAMS = "/sys/module/nmimgr/parameters"
STATS = "/sys/kernel/nmimgr/stats"
PANIC_LINE = re.compile(
    r"Kernel panic - not syncing: nmimgr: panic on NMI event 0x([0-9a-f]{2}) "
    r"\((\d+)\) type=(\w+) cpu=(\d+) mask=0x([0-9a-f]{2}) code=0x([0-9a-f]{2}) "
    r"record=([0-9a-f]{16})( confirmed)?")
#: what must never appear in a guest's kernel log during nmimgr's tests
TROUBLE = re.compile(r"Oops|BUG:|WARNING:|Call Trace|lockup|RCU stall|"
                     r"general protection|Kernel panic")
DEFAULT_POLICY = "ignore= drop= panic= mask=0xc0 dry_run=0 confirm=0"


def load(vm, args="", check=True):
    """insmod nmimgr.ko ARGS; return (rc, output)."""
    return vm.run(f"insmod {KO} {args}", check=check)


def unload(vm):
    """rmmod nmimgr, if loaded."""
    vm.run("grep -q '^nmimgr ' /proc/modules && rmmod nmimgr; true", check=True)


def setp(vm, name, value):
    """Write VALUE (verbatim, no newline) to parameter NAME; return (rc, out)."""
    return vm.run(f"echo -n {shlex.quote(value)} > {PARAMS}/{name}")


def reset(vm):
    """Back to the default policy (a write of "" would write nothing at all)."""
    vm.run(f"echo > {PARAMS}/policy", check=True)
    assert getp(vm, "policy") == DEFAULT_POLICY


def getp(vm, name):
    """Read parameter NAME back (trailing newline stripped)."""
    _, out = vm.run(f"cat {PARAMS}/{name}", check=True)
    return out.rstrip("\n")


def stats(vm):
    """/sys/kernel/nmimgr/stats as a dict: counters as ints, 'codes' per raw
    code, 'last_event' as a dict of its fields (or None)."""
    _, out = vm.run(f"cat {STATS}", check=True)
    return parse_stats(out)


def parse_stats(text):
    """Parse the stats format documented in docs/module.md: counters as
    ints, 'codes' per matched code, 'raw' per raw byte, 'last_event' as a
    dict of its fields (or None), other values as strings."""
    result = {"codes": {}, "raw": {}}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("code", "raw"):
            result["codes" if words[0] == "code" else "raw"][int(words[1], 16)] = int(words[2])
        elif words[0] == "last_event":
            result["last_event"] = (None if words[1] == "none" else
                                    dict(w.split("=", 1) for w in words[1:]))
        else:
            try:
                result[words[0]] = int(words[1], 0)
            except ValueError:
                result[words[0]] = words[1]
    return result


def dmesg_clear(vm):
    """Empty the guest's kernel log buffer."""
    vm.run("dmesg -c > /dev/null", check=True)


def dmesg(vm):
    """The guest's kernel log."""
    return vm.run("dmesg", check=True)[1]


def nmi_total(vm):
    """All NMIs the guest counted, summed over CPUs."""
    return sum(vm.nmi_counts())


def send_nmis(vm, count, interval=0.05, timeout=30):
    """Inject COUNT paced NMIs and wait until the guest has counted them.

    Returns how many the guest counted (coalesced injections count once).
    """
    before = nmi_total(vm)
    vm.inject_nmis(count, interval=interval)
    return settle(vm, before, timeout)


def exercise(vm, count, interval=0.05):
    """Empty the kernel log and send COUNT paced NMIs.

    Returns (NMIs the guest counted, stats before, stats after, kernel log).
    """
    dmesg_clear(vm)
    before = stats(vm)
    got = send_nmis(vm, count, interval)
    return got, before, stats(vm), dmesg(vm)


def settle(vm, before, timeout=30, quiet=0.5):
    """Wait until the guest's NMI count stops moving; return the increase."""
    deadline = time.monotonic() + timeout
    last = nmi_total(vm)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = nmi_total(vm)
        if now == last:
            break
        last = now
    return last - before


def read_every_page(dump: Path):
    """Read every page of DUMP through libkdumpfile, in a child process
    (libkdumpfile maps the file, so a truncated dump can kill its reader).

    Returns (pages read, pages not in the dump); raises AssertionError when
    the reader fails or dies.
    """
    script = (
        "import sys, kdumpfile\n"
        "from kdumpfile import exceptions as E\n"
        "k = kdumpfile.kdumpfile(sys.argv[1])\n"
        "ok = missing = 0\n"
        "for pfn in range(k.attr['max_pfn']):\n"
        "    try:\n"
        "        k.read(kdumpfile.KDUMP_MACHPHYSADDR, pfn << 12, 4096); ok += 1\n"
        "    except E.NoDataException:\n"
        "        missing += 1\n"
        "print(ok, missing)\n")
    # Debian's interpreter has python3-libkdumpfile, whatever comes first in PATH
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    proc = subprocess.run([python, "-c", script, str(dump)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, (
        f"libkdumpfile could not read every page of {dump}: "
        f"exit {proc.returncode}\n{proc.stderr[-2000:]}")
    ok, missing = (int(v) for v in proc.stdout.split())
    return ok, missing


def fired_records(dump: Path):
    """nmimgr trigger records (layout version 2) in DUMP's memory
    (module/nmimgr_record.h): every 8-aligned copy of the magic whose
    version, size, FIRED flag and FNV-1a checksum hold, with the physical
    address it was found at.  Pages are read through libkdumpfile in a child
    process; returns a list of dicts."""
    script = r"""
import struct, sys, kdumpfile
from kdumpfile import exceptions as E
k = kdumpfile.kdumpfile(sys.argv[1])
def fnv(b):
    h = 2166136261
    for x in b:
        h = ((h ^ x) * 16777619) & 0xffffffff
    return h
for pfn in range(k.attr['max_pfn']):
    try:
        page = k.read(kdumpfile.KDUMP_MACHPHYSADDR, pfn << 12, 4096)
    except E.NoDataException:
        continue
    at = page.find(b"NMIMGRtr")
    while at >= 0:
        rec = page[at:at + 128]
        if at % 8 == 0 and len(rec) == 128:
            version, size, flags = struct.unpack_from("<HHI", rec, 8)
            raw, masked, mask, typ, cpu = struct.unpack_from("<BBBBI", rec, 16)
            nonce, phys, confirm_ns = struct.unpack_from("<QQQ", rec, 88)
            cmin, cmax, oops, checksum = struct.unpack_from("<IIII", rec, 112)
            if version == 2 and size == 128 and flags & 1 and fnv(rec[:124]) == checksum:
                print(raw, masked, mask, typ, cpu, flags, nonce, phys,
                      (pfn << 12) + at, confirm_ns, cmin, cmax, oops)
        at = page.find(b"NMIMGRtr", at + 1)
"""
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    proc = subprocess.run([python, "-c", script, str(dump)], capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    keys = ("raw_code", "masked_code", "event_mask", "nmi_type", "cpu", "flags",
            "nonce", "phys", "found_at", "confirm_ns", "confirm_min_ms",
            "confirm_max_ms", "oops_depth")
    return [dict(zip(keys, map(int, line.split()))) for line in proc.stdout.splitlines()]


#: A capture step (vm.share / "capture.sh"): load nmimgr with no arguments,
#: start makedumpfile, say so on the console, and note whether an NMI arrived
#: while it ran; leave nmimgr's stats and the kernel log on the share.
CAPTURE_SH = r"""
nmis() { awk '/^ *NMI:/ { s = 0; for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i; print s }' /proc/interrupts; }
insmod /nmimgr/nmimgr.ko || exit 90
mkdir -p /out/dump
before=$(nmis)
makedumpfile -c -d 31 --message-level 22 /proc/vmcore /out/dump/vmcore.tmp &
pid=$!
echo "nmimgr-lab: makedumpfile running"
during=0
i=0
while [ $i -lt 900 ]; do
	if [ "$(nmis)" != "$before" ]; then
		state=$(awk '{ print $3 }' /proc/$pid/stat 2>/dev/null)
		[ -n "$state" ] && [ "$state" != Z ] && during=1
		break
	fi
	sleep 0.1
	i=$((i + 1))
done
wait $pid
rc=$?
echo "$during" > /out/nmi-during-dump
cat /sys/kernel/nmimgr/stats > /out/capture-stats
dmesg > /out/capture-dmesg
[ $rc -eq 0 ] && mv /out/dump/vmcore.tmp /out/dump/vmcore
exit $rc
"""
