# SPDX-License-Identifier: GPL-2.0-or-later
"""Build out-of-tree kernel modules against a lab kernel's headers.

The source directory is copied (every file, build products excluded) into
a fresh directory and built there with ``make -C <headers> M=<copy> modules``,
so the source tree stays clean and the kernels never share objects.  A build
that succeeds is published, by one rename, as
cache/build/<kver>/<name>-<digest>/, DIGEST hashing what the build reads (the
sources, module/'s too for the helper modules, the headers' path, the
compiler's version and make's arguments): a second build of the same inputs
takes the published one, and two test processes building at once never see
each other's half-built tree.
"""

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from .kernels import Kernel
from .initramfs import PRUNE_DAYS
from .paths import REPO_DIR, TEST_MODULES_DIR, LabError, cache_dir, run, tree_digest

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
    # NMIMGR_MODULE_DIR: where lab modules find module/nmimgr_record.h
    args = [f"CC={kernel.cc()}", f"NMIMGR_MODULE_DIR={REPO_DIR / 'module'}",
            *(["W=1"] if w1 else []), *extra_args]
    parent = cache_dir() / "build" / kernel.kver
    dest = parent / f"{name}-{_digest(kernel, src, args)}"
    ko = _built(dest, name)
    if ko:
        os.utime(dest)      # marks it used, for pruning
        return ko
    for old in parent.glob(f"{name}-*"):
        if time.time() - old.stat().st_mtime > PRUNE_DAYS * 86400:
            shutil.rmtree(old, ignore_errors=True)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    try:
        work = tmp / "src"
        shutil.copytree(src, work, ignore=_IGNORE, symlinks=True)
        log = run(["make", "-C", str(kernel.headers), f"M={work}", f"-j{os.cpu_count() or 1}",
                   *args, "modules"], timeout=900)
        (work / "build.log").write_text(log)
        if not _built(work, name):
            kos = sorted(work.glob("*.ko"))
            raise LabError(f"{src}: built {', '.join(k.name for k in kos) or 'nothing'}, "
                           f"expected {name}.ko:\n{log[-3000:]}")
        try:
            os.rename(work, dest)
        except OSError:
            if not _built(dest, name):      # not another process's identical build
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _built(dest, name)


def _built(directory: Path, name: str):
    """The .ko a finished build in DIRECTORY made (NAME.ko, or its only .ko), or None."""
    if not (directory / "build.log").exists():
        return None
    wanted = directory / f"{name}.ko"
    if wanted.exists():
        return wanted
    kos = sorted(directory.glob("*.ko"))
    return kos[0] if len(kos) == 1 else None


def _digest(kernel: Kernel, src: Path, args) -> str:
    """A hash of what building SRC for KERNEL with make ARGS reads."""
    sha = hashlib.sha256()
    compiler = run([kernel.cc(), "--version"]).splitlines()[0]
    for part in (kernel.kver, str(kernel.headers.resolve()), compiler, *args):
        sha.update(part.encode() + b"\0")
    trees = [src] + ([REPO_DIR / "module"] if src.resolve() != (REPO_DIR / "module").resolve()
                     else [])
    for tree in trees:
        tree_digest(tree, sha, skip=lambda rel: bool(_IGNORE("", [rel.name])))
    return sha.hexdigest()[:16]


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
