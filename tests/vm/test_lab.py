# SPDX-License-Identifier: GPL-2.0-or-later
"""The VM lab's own tests: each kernel boots, runs commands, sees paced NMIs
from QMP, loads a module the lab built, and goes through kdump end to end."""

import time

from lab import kdump, kernels
from lab.initramfs import module_load_order


def test_archive_uris_are_taken_from_the_machines_apt_sources():
    main, _security = kernels.archive_uris()
    assert main.startswith(("http://", "https://", "file:", "mirror"))


def test_kernel_resolves_through_the_meta_packages_and_unpacks(kernel):
    assert kernel.vmlinuz.is_file()
    assert (kernel.headers / "Module.symvers").is_file()
    assert (kernel.moddir / "modules.dep").is_file()
    assert any(p.startswith("linux-image-" + kernel.kver + "=") for p in kernel.packages)
    # the 9p stack is either built in or found as modules
    assert any("9p" in ko for ko in module_load_order(kernel))


def test_repository_module_builds_against_the_kernel_headers(kernel, nmimgr_ko):
    assert nmimgr_ko.is_file() and nmimgr_ko.name == "nmimgr.ko"


def test_guest_runs_commands_loads_a_lab_module_and_counts_paced_nmis(
        kernel, boot, make_initrd, lab_module, record_property):
    ko = lab_module(kernel, "labhello")
    vm = boot(make_initrd(kernel, {"/lab/labhello.ko": ko}))
    record_property("boot_to_agent_s", round(vm.boot_seconds, 1))

    assert vm.run("uname -r") == (0, kernel.kver + "\n")
    assert vm.run("exit 3")[0] == 3

    rc, out = vm.run("insmod /lab/labhello.ko && dmesg")
    assert rc == 0, out
    assert f"labhello: loaded on {kernel.kver}" in out

    before = vm.nmi_counts()
    vm.inject_nmis(5, interval=0.05)
    deadline = time.monotonic() + 10
    while True:
        after = vm.nmi_counts()
        if after[0] - before[0] >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert after[0] - before[0] == 5, (before, after)
    assert "NMI received for unknown reason" in vm.serial_log


def test_kdump_captures_a_sysrq_crash_and_the_dump_holds_the_panic(
        kernel, boot, make_initrd, record_property):
    vm = boot(make_initrd(kernel, {
        "/etc/lab/first.d/10-mark.sh": b"uname -r > /out/first-hook\n",
        "/etc/lab/capture.d/10-mark.sh": b"uname -r > /out/capture-hook\n",
    }))
    kdump.arm_kdump(vm)
    start = time.monotonic()
    dump = kdump.crash_and_capture(vm, "echo c > /proc/sysrq-trigger", timeout=180)
    record_property("crash_to_poweroff_s", round(time.monotonic() - start, 1))
    assert "capture kernel" in vm.serial_log
    assert "sysrq triggered crash" in kdump.dump_dmesg(dump)
    for hook in ("first-hook", "capture-hook"):
        assert (vm.share / hook).read_text() == kernel.kver + "\n"
