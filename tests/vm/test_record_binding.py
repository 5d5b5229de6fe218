# SPDX-License-Identifier: GPL-2.0-or-later
"""nmimgr-vmcore-check never names a stale or copied trigger record as the
trigger, on a real dump of Debian's 6.1 kernel.

One boot plants two fired version 2 records with valid checksums
(tests/vm/modules/recplant): one in place whose boot epoch is an hour
before this boot (what an earlier boot leaves in RAM), and one of this boot
whose phys names another page (what a copy looks like).  Then a sysrq
crash, kdump, makedumpfile -l -d 31 in the capture kernel, and the check on
the host: the default check never reads them (they are not in the module
area its page-table walk scans), and --deep, which decodes every page,
finds both, rejects both with the reason that fits and names no trigger
from a record."""

import re
import subprocess

import pytest

from conftest import selected_kernels
from lab import build, initramfs, kdump, kernels
from lab.vm import VM
from test_vmcore_check import check, tool

pytestmark = [pytest.mark.k61, pytest.mark.slow]

PLANTED = re.compile(r"recplant: planted (stale|copy) record at phys 0x([0-9a-f]+) "
                     r"claims 0x([0-9a-f]+) nonce ([0-9a-f]{16})")


@pytest.fixture(scope="module")
def planted_dump(request, tmp_path_factory):
    """A sysrq crash dump holding a stale and a copied record.

    Returns (dump path, {mode: (paddr, claimed phys, nonce)})."""
    if "6.1" not in selected_kernels(request.config):
        pytest.skip("6.1 not selected (--vm-kernels)")
    kernel = kernels.fetch("6.1")
    ko = build.build_test_module(kernel, "recplant")
    image = initramfs.build_initramfs(kernel, {"/lab/recplant.ko": ko})
    vm = VM(kernel, image, workdir=tmp_path_factory.mktemp("recplant61"))
    try:
        vm.start()
        vm.wait_ready()
        vm.run("insmod /lab/recplant.ko plant=stale,copy", check=True)
        _, log = vm.run("dmesg", check=True)
        planted = {m.group(1): (int(m.group(2), 16), int(m.group(3), 16), m.group(4))
                   for m in PLANTED.finditer(log)}
        assert set(planted) == {"stale", "copy"}, log[-2000:]
        kdump.arm_kdump(vm)
        dump = kdump.crash_and_capture(vm)
    finally:
        vm.kill()
    return dump, planted


def test_planted_records_are_rejected_and_not_the_trigger(planted_dump):
    dump, planted = planted_dump
    # The default check looks for records only where nmimgr's lives, in the
    # module area through the page tables: the planted ones lie elsewhere.
    _, report = check(dump, expect=0)
    (d,) = report["dumps"]
    search = d["trigger"]["record_search"]
    assert search["method"] == "page-tables" and search["ranges"] == ["modules"], search
    assert search["page_tables_missing"] == 0 and search["pages_read"] > 0, search
    assert d["trigger"]["records_found"] == 0 and d["trigger"]["nmimgr"] is False
    # --deep reads every page, and the binding rejects both.
    _, report = check("--deep", dump, expect=0)
    (d,) = report["dumps"]
    assert d["trigger"]["record_search"]["method"] == "page-scan"
    assert d["verdict"] == "complete", d["reasons"]
    trig = d["trigger"]
    assert trig["nmimgr"] is False, trig
    assert trig["triggered_by_nmimgr"] is False
    assert trig["source"] is None and trig["record"] is None
    assert "sysrq triggered crash" in (trig["panic_message"] or "")
    # the dump's printk ring gave the uptime: the binding was checked by time
    binding = trig["binding"]
    assert binding["time_checked"] is True, binding
    assert binding["uptime_source"] == "dump-printk"
    assert binding["crash_time_epoch"] == d["crash_time_epoch"]

    rejected = {r["paddr"]: r for r in trig["records_rejected"]}
    stale_at, stale_claims, stale_nonce = planted["stale"]
    copy_at, copy_claims, copy_nonce = planted["copy"]
    assert stale_at == stale_claims and copy_at != copy_claims

    stale = rejected[stale_at]
    assert stale["reason"] == "boot-epoch-mismatch", stale
    assert stale["nonce"] == stale_nonce and stale["version"] == 2
    assert stale["binding"]["phys"] == "match"
    assert stale["binding"]["crash_time"] == "match"
    assert abs(stale["binding"]["boot_epoch_difference_seconds"] + 3600) < 10, stale

    copy = rejected[copy_at]
    assert copy["reason"] == "phys-mismatch", copy
    assert copy["phys"] == copy_claims and copy["nonce"] == copy_nonce
    # apart from where it claims to live, the copy is of this boot
    assert copy["binding"]["crash_time"] == "match"
    assert copy["binding"]["boot_epoch"] == "match", copy
    assert trig["records_found"] == len(trig["records_rejected"]) == 2


def test_text_report_lists_the_rejected_records(planted_dump):
    dump, planted = planted_dump
    proc = subprocess.run([str(tool("nmimgr-vmcore-check", "NMIMGR_VMCORE_CHECK")),
                           "--deep", str(dump)], capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "panic: sysrq triggered crash" in proc.stdout
    for mode, reason in (("stale", "boot-epoch-mismatch"), ("copy", "phys-mismatch")):
        paddr = planted[mode][0]
        assert re.search(rf"rejected record v2 at pfn {paddr // 4096} offset "
                         rf"{paddr % 4096} \(paddr {paddr:#x}\): {reason}: ",
                         proc.stdout), proc.stdout
