# SPDX-License-Identifier: GPL-2.0-or-later
"""nmimgr's smoke set on Debian's 5.10 and 6.12 kernels (6.1 runs the full
set in test_nmimgr_61.py): load, each action with real NMIs, and a panic to
a dump, in one boot per kernel."""

import re

import pytest

from conftest import KERNEL_MARKS, selected_kernels
from lab import build, initramfs, kdump, kernels
from lab.paths import REPO_DIR
from lab.vm import VM
import nmimgr_guest as ng

SMOKE_KERNELS = ("5.10", "6.12")


def pytest_generate_tests(metafunc):
    """Run each smoke test once per selected smoke kernel."""
    if "smoke_kernel" in metafunc.fixturenames:
        chosen = [k for k in selected_kernels(metafunc.config) if k in SMOKE_KERNELS]
        metafunc.parametrize(
            "smoke_kernel",
            [pytest.param(k, id=k, marks=getattr(pytest.mark, KERNEL_MARKS[k]))
             for k in chosen] or [pytest.param(None, marks=pytest.mark.skip(
                 reason="no smoke kernel selected"))],
            scope="module")


@pytest.mark.slow
def test_load_each_action_and_panic_to_a_dump(smoke_kernel, tmp_path, record_property):
    kernel = kernels.fetch(smoke_kernel)
    ko = build.build_module(kernel, REPO_DIR / "module")
    image = initramfs.build_initramfs(kernel, {"/nmimgr/nmimgr.ko": ko})
    vm = VM(kernel, image, workdir=tmp_path / "smoke")
    try:
        vm.start()
        record_property("boot_to_agent_s", round(vm.wait_ready(), 1))
        ng.load(vm)
        assert ng.getp(vm, "policy") == ng.DEFAULT_POLICY

        def step(policy, count=2):
            if policy:
                assert ng.setp(vm, "policy", policy)[0] == 0
            else:
                ng.reset(vm)
            return ng.exercise(vm, count)

        got, before, after, log = step("")
        assert after["unmanaged"] - before["unmanaged"] == got > 0
        assert "nmimgr: unmanaged NMI event 0x" in log
        got, before, after, log = step("ignore=1")
        assert after["ignored"] - before["ignored"] == got > 0
        assert "NMI received for unknown reason" in log
        got, before, after, log = step("drop=1")
        assert after["dropped"] - before["dropped"] == got > 0
        assert "NMI received for unknown reason" not in log
        got, before, after, log = step("panic=1 dry_run=1")
        assert after["would_panic"] - before["would_panic"] == got > 0
        assert "would panic" in log

        assert ng.setp(vm, "events_panic", "300")[0] != 0
        assert ng.setp(vm, "policy", "panic=1")[0] == 0
        kdump.arm_kdump(vm)
        dump = kdump.crash_and_capture(vm, vm.inject_nmi, timeout=240)
    finally:
        vm.kill()
    log = kdump.dump_dmesg(dump)
    m = ng.PANIC_LINE.search(log)
    assert m, log[-3000:]
    assert m.group(1) in ("21", "31") and m.group(3) == "unknown"
    assert re.search(r"nmimgr: policy changed: ignore= drop= panic=1 ", log)
