# SPDX-License-Identifier: GPL-2.0-or-later
"""nmimgr's own Debian packages for the lab's roots, and what they depend on.

:func:`nmimgr_debs` returns nmimgr_*.deb and nmimgr-dkms_*.deb from a
directory (ctest's packaging_deb fixture fills one), building them with
packaging/build-deb.sh when they are missing.  The build is reproducible
(the same tree gives the same bytes), so the install boots that
lab.roots.install caches by the packages' bytes are reused across runs.

:func:`archive_dependencies` fetches their dependencies from Debian's
archive on the host: the roots boot without a network, where an admin's apt
would fetch them.
"""

import hashlib
import re
import subprocess
from pathlib import Path

from .paths import REPO_DIR, cache_dir, run

NAMES = ["nmimgr", "nmimgr-dkms"]


def _ours(out: Path):
    return sorted(p for p in out.glob("nmimgr*_*.deb") if "dbgsym" not in p.name)


def source_stamp() -> str:
    """A hash of the checkout as packaging/copy-tree.sh copies it: the
    committed tree, the work tree's changes to it and the untracked files."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True,
                              check=True).stdout
    digest = hashlib.sha256(git("rev-parse", "HEAD^{tree}") + git("diff", "HEAD", "--binary"))
    for name in git("ls-files", "-z", "--others", "--exclude-standard").split(b"\0"):
        path = REPO_DIR / name.decode()
        if name and path.is_file():
            digest.update(name + b"\0" + path.read_bytes())
    return digest.hexdigest()


def nmimgr_debs(out: Path, *, current=False) -> list:
    """nmimgr's two .debs in OUT, built there first when missing; with
    CURRENT also when OUT/source.stamp is not this checkout's
    :func:`source_stamp`."""
    out = Path(out)
    debs = _ours(out)
    stamp = source_stamp() if current else None
    if not debs or (current and _read(out / "source.stamp") != stamp):
        run([str(REPO_DIR / "packaging" / "build-deb.sh"), str(out)], timeout=3600)
        debs = _ours(out)
        if current:
            (out / "source.stamp").write_text(stamp + "\n")
    names = sorted(p.name.split("_")[0] for p in debs)
    if names != NAMES:
        raise RuntimeError(f"{out}: expected one .deb each of {NAMES}, found {names}")
    return debs


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def real_package(name: str) -> str:
    """NAME, or the package that provides it when it is virtual (libspdlog1.10
    provides libspdlog1.10-fmt9)."""
    out = subprocess.run(["apt-cache", "showpkg", name], capture_output=True, text=True,
                         check=False).stdout
    if re.search(r"^Versions: \n\S", out, re.M):
        return name
    provides = out.partition("Reverse Provides:")[2].split()
    return provides[0] if provides else name


def archive_dependencies(debs) -> list:
    """DEBS' dependencies as .debs from Debian's archive.

    Downloaded once (``apt-get download``: the host's own sources, nothing
    changed) into the lab cache and handed to the same ``apt-get install``
    in the root, which resolves against them and what the root has; those
    the root already has are left as they are."""
    names = set()
    for deb in debs:
        depends = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True,
                                 text=True, check=True).stdout
        for alternative in depends.split(","):
            names.add(alternative.split("|")[0].split("(")[0].strip())
    names.discard("")
    names = {real_package(n) for n in names}
    cache = cache_dir() / "debs"
    cache.mkdir(parents=True, exist_ok=True)
    missing = [n for n in sorted(names) if not list(cache.glob(f"{n}_*.deb"))]
    if missing:
        run(["apt-get", "download", *missing], cwd=cache, timeout=600)
    return sorted(p for n in sorted(names) for p in cache.glob(f"{n}_*.deb"))


def with_dependencies(out: Path, **kwargs) -> list:
    """:func:`nmimgr_debs` and their :func:`archive_dependencies`: what one
    ``apt-get install`` in a root needs."""
    debs = nmimgr_debs(out, **kwargs)
    return debs + archive_dependencies(debs)
