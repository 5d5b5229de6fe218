# SPDX-License-Identifier: GPL-2.0-or-later
"""One real nmimgr NMI panic, dumped by makedumpfile in every format.

Shared by the real-dump tests (test_vmcore_check.py) and the benchmarks
(``python3 -m lab dumps DIR``, bench/run.sh).  The capture kernel writes, each
to its own file on the share: -c (zlib), -l (lzo), -E (ELF), -F -l
(flattened, what kdump-tools writes), --split -l, and the kernel log; the
flattened stream is then compressed with xz on the host as kdump-tools does.
Debian's makedumpfile is built without snappy and zstd, so there are no
such dumps here.
"""

import lzma
import shutil
from pathlib import Path

from . import build, initramfs, kdump, kernels
from .paths import REPO_DIR
from .vm import VM

#: the guest path of nmimgr.ko in the lab image
KO = "/nmimgr/nmimgr.ko"

#: makedumpfile runs in the capture kernel, each to its own file on the share
CAPTURE_FORMATS_SH = r"""
insmod /nmimgr/nmimgr.ko || exit 90
d=/out/dumps
mkdir -p $d
m="--message-level 22"
makedumpfile -c -d 31 $m /proc/vmcore $d/c.vmcore || exit 1
makedumpfile -l -d 31 $m /proc/vmcore $d/l.vmcore || exit 2
makedumpfile -E -d 31 $m /proc/vmcore $d/e.vmcore || exit 3
makedumpfile -F -l -d 31 $m /proc/vmcore > $d/f.flat || exit 4
makedumpfile --split -l -d 31 $m /proc/vmcore $d/s1.vmcore $d/s2.vmcore || exit 5
makedumpfile --dump-dmesg $m /proc/vmcore $d/dmesg.txt || exit 6
sync
"""


def every_format(workdir, label="6.1"):
    """Boot the lab kernel LABEL with nmimgr (events_panic=1), send one NMI
    with kdump armed (apic_extnmi=none) and let the capture kernel write the
    dump in every format.  Returns (directory of the dumps, the VM); raises
    VMError (console tail included) when the capture failed."""
    kernel = kernels.fetch(label)
    ko = build.build_module(kernel, REPO_DIR / "module")
    image = initramfs.build_initramfs(kernel, {KO: ko})
    vm = VM(kernel, image, workdir=workdir)
    try:
        vm.start()
        vm.wait_ready()
        vm.run(f"insmod {KO} events_panic=1", check=True)
        kdump.arm_kdump(vm, "apic_extnmi=none")
        (vm.share / "capture.sh").write_text(CAPTURE_FORMATS_SH)
        vm.inject_nmi()
        vm.wait_exit(400)
    finally:
        vm.kill()
    rc = (vm.share / "capture.rc").read_text().strip()
    if rc != "0":
        raise vm.error(f"capture script exited {rc}")
    out = vm.share / "dumps"
    with open(out / "f.flat", "rb") as src, lzma.open(out / "f.flat.xz", "wb",
                                                     preset=1) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return Path(out), vm
