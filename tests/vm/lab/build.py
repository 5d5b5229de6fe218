# SPDX-License-Identifier: GPL-2.0-or-later
"""Build out-of-tree kernel modules against a lab kernel's headers.

The source directory is copied (every file, build products excluded) into
cache/build/<kver>/<name>/ and built there with
``make -C <headers> M=<copy> modules``, so the source tree stays clean and the
three kernels never share objects.
"""

import os
import shutil
from pathlib import Path

from .kernels import Kernel
from .paths import REPO_DIR, TEST_MODULES_DIR, LabError, cache_dir, run

#: build products never copied from a source directory
_IGNORE = shutil.ignore_patterns("*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd",
                                 "Module.symvers", "modules.order", ".tmp_versions",
                                 "*.ko.*")


def build_module(kernel: Kernel, src_dir=None, name=None, *, w1=False,
                 extra_args=()) -> Path:
    """Build the module in SRC_DIR (default: the repository's module/) for KERNEL.

    NAME is the build directory's and the expected .ko's name (default: the
    source directory's name, or ``nmimgr`` for module/).  W1 adds ``W=1``.
    Returns the path of the built .ko; raises LabError with make's output.
    """
    src = Path(src_dir) if src_dir else REPO_DIR / "module"
    if name is None:
        name = "nmimgr" if src.resolve() == (REPO_DIR / "module").resolve() else src.name
    if not ((src / "Kbuild").exists() or (src / "Makefile").exists()):
        raise LabError(f"{src}: no Kbuild or Makefile to build")
    dest = cache_dir() / "build" / kernel.kver / name
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, ignore=_IGNORE, symlinks=True)
    # NMIMGR_MODULE_DIR: where lab modules find module/nmimgr_record.h
    cmd = ["make", "-C", str(kernel.headers), f"M={dest}", f"CC={kernel.cc()}",
           f"NMIMGR_MODULE_DIR={REPO_DIR / 'module'}", f"-j{os.cpu_count() or 1}"]
    if w1:
        cmd.append("W=1")
    cmd += [*extra_args, "modules"]
    log = run(cmd, timeout=900)
    (dest / "build.log").write_text(log)
    kos = sorted(dest.glob("*.ko"))
    wanted = dest / f"{name}.ko"
    if wanted.exists():
        ko = wanted
    elif len(kos) == 1:
        ko = kos[0]
    else:
        raise LabError(f"{src}: built {', '.join(k.name for k in kos) or 'nothing'}, "
                       f"expected {name}.ko:\n{log[-3000:]}")
    return ko


def build_test_module(kernel: Kernel, name: str, **kwargs) -> Path:
    """Build the test-only helper module tests/vm/modules/NAME for KERNEL."""
    return build_module(kernel, TEST_MODULES_DIR / name, name, **kwargs)


def build_modules(kernel: Kernel, src_dir=None, extra_modules=(), **kwargs) -> dict:
    """Build module/ (when it has a Kbuild) and the helper modules EXTRA_MODULES.

    Returns {name: .ko path}.
    """
    built = {}
    src = Path(src_dir) if src_dir else REPO_DIR / "module"
    if (src / "Kbuild").exists() or (src / "Makefile").exists():
        ko = build_module(kernel, src, **kwargs)
        built[ko.stem] = ko
    for name in extra_modules:
        built[name] = build_test_module(kernel, name, **kwargs)
    return built
