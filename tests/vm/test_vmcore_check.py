# SPDX-License-Identifier: GPL-2.0-or-later
"""nmimgr-vmcore-check on real dumps: one real nmimgr panic on Debian's 6.1
kernel, written by makedumpfile in the capture kernel as -c (zlib), -l (lzo),
-E (ELF), -F (flattened, what kdump-tools writes) and --split, plus the -F
stream through xz as kdump-tools compresses it.  Each is called complete and
names the NMI; cut or flagged copies are called incomplete."""

import json
import os
import re
import shutil
import struct
import subprocess
import time

import pytest

from conftest import selected_kernels
from lab import dumps as dumps_lab
from lab.paths import LabError, built_tool
import nmimgr_guest as ng

pytestmark = [pytest.mark.k61, pytest.mark.slow]

FORMATS = {  # file -> (format, container, compression)
    "c.vmcore": ("kdump-compressed", None, "zlib"),
    "l.vmcore": ("kdump-compressed", None, "lzo"),
    "e.vmcore": ("elf64", None, None),
    "f.flat": ("kdump-compressed", "flattened", "lzo"),
    "f.flat.xz": ("kdump-compressed", "flattened", "lzo"),
}


def tool(name, env_name):
    """Path of a built tool (lab.paths.built_tool); fails the test when absent."""
    try:
        return built_tool(name, env_name)
    except LabError as exc:
        pytest.fail(str(exc))


def check(*args, expect=None):
    """Run nmimgr-vmcore-check --json ARGS; return (exit status, report)."""
    proc = subprocess.run([str(tool("nmimgr-vmcore-check", "NMIMGR_VMCORE_CHECK")),
                           "--json", *map(str, args)],
                          capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(proc.stdout) if proc.stdout.strip() else None
    if expect is not None:
        assert proc.returncode == expect, (proc.returncode, proc.stderr, proc.stdout[:3000])
    return proc.returncode, report


@pytest.fixture(scope="module")
def dumps(request, tmp_path_factory):
    """One nmimgr NMI panic, dumped in every format.

    Returns (dir, (raw code, mask in force, record nonce or None)) as the
    panic line in the dump's log gives them."""
    if "6.1" not in selected_kernels(request.config):
        pytest.skip("6.1 not selected (--vm-kernels)")
    out, _ = dumps_lab.every_format(tmp_path_factory.mktemp("dumps61"))
    log = (out / "dmesg.txt").read_text(errors="replace")
    m = ng.PANIC_LINE.search(log)
    assert m, "no nmimgr panic line in the dump's log"
    # the module's version 2 line goes on: code=0x.. record=<nonce>
    nonce = re.search(r"mask=0x[0-9a-f]{2} code=0x[0-9a-f]{2} record=([0-9a-f]{16})",
                      log[m.start():])
    return out, (int(m.group(1), 16), int(m.group(5), 16),
                 nonce.group(1) if nonce else None)


def assert_names_the_nmi(dump, code):
    raw, mask, nonce = code
    trig = dump["trigger"]
    assert trig["nmimgr"] and trig["triggered_by_nmimgr"], trig
    assert not trig["during_other_panic"]
    assert trig["raw_code"]["value"] == raw
    assert trig["masked_code"]["value"] == raw & mask
    assert trig["event_mask"]["value"] == mask
    assert trig["nmi_type"] == "unknown" and trig["cpu"] == 0
    assert trig["records_rejected"] == [], trig["records_rejected"]
    if nonce is not None:
        # a version 2 module: the record is bound to this dump in every way
        rec = trig["record"]
        assert rec["version"] == 2 and rec["bound"], rec
        assert rec["nonce"] == nonce and rec["phys"] == rec["paddr"]
        assert rec["binding"] == dict(rec["binding"], phys="match", crash_time="match",
                                      boot_epoch="match", nonce="match"), rec["binding"]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_each_real_dump_format_is_complete_and_names_the_nmi(dumps, name):
    out, code = dumps
    _, report = check(out / name, expect=0)
    (dump,) = report["dumps"]
    fmt, container, compression = FORMATS[name]
    assert dump["verdict"] == "complete", dump["reasons"]
    assert dump["format"] == fmt and dump["container"] == container
    if compression:
        assert dump["compression"] == compression
    assert dump["kernel_release"] == "6.1.0-56-amd64" or dump["kernel_release"].startswith("6.1.")
    assert dump["pages"]["dumped"] > 1000
    assert_names_the_nmi(dump, code)
    assert dump["trigger"]["source"] == "record"
    assert dump["trigger"]["records_found"] == 1


def test_split_set_is_complete(dumps):
    out, code = dumps
    split = out.parent / "split"
    split.mkdir(exist_ok=True)
    for part in ("s1.vmcore", "s2.vmcore"):
        shutil.copy(out / part, split / part)
    _, report = check(split, expect=0)
    (dump,) = report["dumps"]
    assert dump["split"] and dump["verdict"] == "complete", dump["reasons"]
    assert_names_the_nmi(dump, code)


def test_split_set_with_a_part_missing_is_incomplete(dumps, tmp_path):
    # On a 1 GiB guest makedumpfile --split puts every dumped page in the
    # first part; losing that part is what leaves pages missing.
    out, _ = dumps
    shutil.copy(out / "s2.vmcore", tmp_path / "s2.vmcore")
    _, report = check(tmp_path, expect=1)
    codes = {r["code"] for r in report["dumps"][0]["reasons"]}
    assert "split-part-missing" in codes


def test_deep_check_decodes_every_page(dumps):
    out, code = dumps
    _, report = check("--deep", out / "c.vmcore", expect=0)
    (dump,) = report["dumps"]
    assert dump["scan"]["mode"] == "deep"
    assert dump["scan"]["pages_bad"] == 0
    # pages stored as the shared zero page have nothing to decode
    assert dump["scan"]["pages_decoded"] + (dump["pages"]["zero"] or 0) == \
        dump["pages"]["dumped"]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_cut_copies_are_incomplete(dumps, name, tmp_path):
    out, _ = dumps
    data = (out / name).read_bytes()
    for fraction in (0.3, 0.9):
        cut = tmp_path / f"{fraction}-{name}"
        cut.write_bytes(data[:int(len(data) * fraction)])
        rc, report = check(cut)
        assert rc == 1, (fraction, report)
        dump = report["dumps"][0]
        assert dump["verdict"] == "incomplete", (fraction, dump["reasons"])


def test_flagged_copies_are_incomplete(dumps, tmp_path):
    out, _ = dumps
    # kdump-compressed: disk_dump_header.status (offset 424) bit 0x8
    data = bytearray((out / "l.vmcore").read_bytes())
    (status,) = struct.unpack_from("<I", data, 424)
    assert status & 0x7 == 0x2, "not the lzo status word"   # DUMP_DH_COMPRESSED_LZO
    struct.pack_into("<I", data, 424, status | 0x8)
    (tmp_path / "flagged.vmcore").write_bytes(data)
    _, report = check(tmp_path / "flagged.vmcore", expect=1)
    assert "incomplete-flag" in {r["code"] for r in report["dumps"][0]["reasons"]}
    # ELF: e_flags (offset 48) bit 0x1
    data = bytearray((out / "e.vmcore").read_bytes())
    assert data[:4] == b"\x7fELF"
    struct.pack_into("<I", data, 48, struct.unpack_from("<I", data, 48)[0] | 0x1)
    (tmp_path / "flagged-elf.vmcore").write_bytes(data)
    _, report = check(tmp_path / "flagged-elf.vmcore", expect=1)
    assert "incomplete-flag" in {r["code"] for r in report["dumps"][0]["reasons"]}


def test_crash_root_with_both_layouts_is_checked_and_annotated(dumps, tmp_path):
    out, code = dumps
    real = tmp_path / "real-crash"
    stamp = time.strftime("%Y%m%d%H%M")
    debian = real / stamp
    debian.mkdir(parents=True)
    os.link(out / "f.flat", debian / f"dump.{stamp}")
    shutil.copy(out / "dmesg.txt", debian / f"dmesg.{stamp}")
    fedora = real / "192.168.122.7-2026-11-26-10:42:17"
    fedora.mkdir()
    os.link(out / "c.vmcore", fedora / "vmcore")
    shutil.copy(out / "dmesg.txt", fedora / "vmcore-dmesg.txt")
    root = tmp_path / "var-crash"
    root.symlink_to(real)            # /var/crash may be a symbolic link

    _, report = check("--annotate", root, expect=0)
    layouts = {d["layout"]: d for d in report["dumps"]}
    assert set(layouts) == {"kdump-tools", "kdumpctl"}
    for dump in layouts.values():
        assert dump["verdict"] == "complete"
        assert_names_the_nmi(dump, code)
    notes = [debian / "nmimgr.json", fedora / "nmimgr.json"]
    before = [(p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in notes]
    for p in notes:
        assert json.loads(p.read_text())["verdict"] == "complete"
    check("--annotate", root, expect=0)          # idempotent
    assert [(p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in notes] == before
    # the dumps themselves are untouched
    assert (debian / f"dump.{stamp}").read_bytes() == (out / "f.flat").read_bytes()


def test_readers_agree_with_libkdumpfile_on_the_real_dumps(dumps):
    out, _ = dumps
    runner = tool("nmimgr-vmcore-tests", "NMIMGR_VMCORE_TESTS")
    env = dict(os.environ, NMIMGR_REAL_DUMPS=":".join(
        str(out / n) for n in ("c.vmcore", "l.vmcore", "e.vmcore")))
    proc = subprocess.run([str(runner), "[real]"], env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "All tests passed" in proc.stdout or "passed" in proc.stdout
