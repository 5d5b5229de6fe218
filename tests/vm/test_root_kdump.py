# SPDX-License-Identifier: GPL-2.0-or-later
"""The distributions' own kdump services on real Debian bookworm roots.

Each flavour of lab/roots.py (kdump-tools; the real kdumpctl from kdump-utils)
boots from its cached image on a fresh overlay, a small real package is
installed at first boot through the fixture's ``install=`` argument, the
service loads the capture kernel it built into the image, an NMI over QMP
panics the machine (``kernel.unknown_nmi_panic=1``), the capture kernel writes
the dump in the distribution's layout and reboots, and the dump read off the
disk on the host is complete according to nmimgr-vmcore-check.  nmimgr itself
is not installed here.

The lab's self-test (marker ``selftest``): the default run leaves it out,
since test_root_nmimgr.py drives the same services on the same roots with
nmimgr installed and asserts the same layouts and dumps; run it with
``pytest-3 -m selftest tests/vm`` when a root or a service update breaks
those tests, to tell the lab's fault from nmimgr's."""

import json
import re
import subprocess
import time

import pytest

from lab import roots
from lab.paths import run
from test_vmcore_check import tool

pytestmark = [pytest.mark.k61, pytest.mark.slow, pytest.mark.selftest]

#: /var/crash/<dir>/<files> per flavour (PIPELINE.md sections 1 and 2)
LAYOUTS = {
    "kdump-tools": (r"\d{12}", (r"dump\.\d{12}", r"dmesg\.\d{12}")),
    "kdumpctl": (r"127\.0\.0\.1-\d{4}-\d\d-\d\d-\d\d:\d\d:\d\d",
                 (r"vmcore", r"vmcore-dmesg\.txt")),
}
#: what each service's makedumpfile writes here
FORMATS = {  # flavour -> (format, container, compression)
    "kdump-tools": ("kdump-compressed", "flattened", "lzo"),   # -F forced, -l -d 31
    "kdumpctl": ("kdump-compressed", None, "lzo"),             # -l -d 31 (kdump.conf)
}
#: the first kernel's log line when an unknown NMI panics it
NMI_PANIC = "Kernel panic - not syncing: NMI: Not continuing"


@pytest.fixture(scope="module")
def probe_deb(tmp_path_factory):
    """A real, tiny .deb (dpkg-deb --build) that depends on a root's package."""
    tree = tmp_path_factory.mktemp("probe") / "nmimgr-lab-probe"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: nmimgr-lab-probe\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: nmimgr VM lab <nmimgr-lab@localhost>\nDepends: kexec-tools\n"
        "Description: proves the lab's install= path (tests/vm/test_root_kdump.py)\n")
    share = tree / "usr" / "share" / "nmimgr-lab-probe"
    share.mkdir(parents=True)
    (share / "installed").write_text("installed by apt at first boot\n")
    deb = tree.parent / "nmimgr-lab-probe_1.0_all.deb"
    run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)])
    return deb


def monotonic_us(vm, unit, prop):
    """A unit's monotonic timestamp property (microseconds) in the guest."""
    _, out = vm.run(f"systemctl show -p {prop} --value {unit}", check=True)
    return int(out.strip())


@pytest.mark.parametrize("flavour", roots.FLAVOURS)
def test_distribution_service_dumps_an_nmi_panic_in_its_own_layout(
        debian_root, flavour, probe_deb, tmp_path):
    vm = debian_root(flavour, install=probe_deb,
                     files={"/etc/nmimgr-lab/probe.txt": b"placed before boot\n"})
    service = vm.root.service
    timings = {"agent_ready_s": round(vm.boot_seconds, 1)}

    # the fixture's files and package were in place before the service started
    vm.run("test -f /usr/share/nmimgr-lab-probe/installed", check=True)
    _, status = vm.run("dpkg-query -W -f='${Status}' nmimgr-lab-probe", check=True)
    assert status == "install ok installed"
    _, text = vm.run("cat /etc/nmimgr-lab/probe.txt", check=True)
    assert text == "placed before boot\n"
    assert (monotonic_us(vm, "nmimgr-lab-firstboot.service", "ExecMainExitTimestampMonotonic")
            <= monotonic_us(vm, service, "ExecMainStartTimestampMonotonic"))

    timings["capture_loaded_s"] = round(vm.wait_capture_loaded(600), 1)
    if flavour == "kdump-tools":
        _, out = vm.run("kdump-config status", check=True)
        assert re.search(r"current state\s*:\s*ready to kdump", out), out
    else:
        rc, out = vm.run("kdumpctl status")
        assert rc == 0 and "Kdump is operational" in out, out
    _, loaded = vm.run("cat /sys/kernel/kexec_crash_loaded", check=True)
    assert loaded.strip() == "1"
    # the kdump initrd came with the cached image: this boot did not rebuild it
    _, out = vm.run("btime=$(awk '/^btime/ {print $2}' /proc/stat); "
                    "find /var/lib/kdump -maxdepth 1 -type f -name 'init*' -printf \"%T@ $btime %p\\n\"",
                    check=True)
    initrds = [line.split() for line in out.splitlines()]
    assert initrds, "no kdump initrd in /var/lib/kdump"
    for mtime, btime, name in initrds:
        assert float(mtime) < int(btime), f"{name} was rebuilt in this boot"

    vm.run("sysctl -w kernel.unknown_nmi_panic=1", check=True)
    mark = len(vm.serial_log)
    crash = time.monotonic()
    vm.inject_nmi()
    vm.wait_exit(600)
    timings["nmi_to_reboot_s"] = round(time.monotonic() - crash, 1)
    timings["boot_to_reboot_s"] = round(time.monotonic() - vm.started, 1)
    after = vm.serial_log[mark:]
    # the capture kernel booted, the service ran in it, and it rebooted the machine
    assert re.search(r"Linux version 6\.1\.", after), vm.tail()
    assert "reboot: Restarting system" in after, vm.tail()
    assert "Kernel panic" not in after, vm.tail()

    crash_dir = vm.read_out("/var/crash", tmp_path / "out")
    dir_pattern, file_patterns = LAYOUTS[flavour]
    dumps = [d for d in crash_dir.iterdir() if d.is_dir() and re.fullmatch(dir_pattern, d.name)]
    assert len(dumps) == 1, sorted(p.name for p in crash_dir.iterdir())
    (dump_dir,) = dumps
    names = sorted(p.name for p in dump_dir.iterdir())
    for pattern in file_patterns:
        assert any(re.fullmatch(pattern, n) for n in names), (pattern, names)
    assert not any("incomplete" in n for n in names), names
    dmesg = next(p for p in dump_dir.iterdir() if re.fullmatch(file_patterns[1], p.name))
    assert NMI_PANIC in dmesg.read_text(errors="replace")

    proc = subprocess.run([str(tool("nmimgr-vmcore-check", "NMIMGR_VMCORE_CHECK")), "--json", str(dump_dir)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, (proc.returncode, proc.stderr, proc.stdout[:3000])
    (report,) = json.loads(proc.stdout)["dumps"]
    fmt, container, compression = FORMATS[flavour]
    assert report["verdict"] == "complete", report["reasons"]
    assert report["layout"] == flavour
    assert (report["format"], report["container"], report["compression"]) == \
        (fmt, container, compression)
    assert report["kernel_release"] == vm.root.kernel.kver
    assert report["pages"]["dumped"] > 1000
    assert not report["trigger"]["nmimgr"]
    print(f"{flavour}: {json.dumps(timings)}")
