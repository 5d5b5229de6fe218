# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the lab keeps things, and a small helper to run host commands."""

import fcntl
import os
import shlex
import subprocess
import contextlib
from pathlib import Path

#: tests/vm/ (the directory holding this package)
VM_TESTS_DIR = Path(__file__).resolve().parent.parent
#: the repository root
REPO_DIR = VM_TESTS_DIR.parent.parent
#: test-only helper modules, one directory each
TEST_MODULES_DIR = VM_TESTS_DIR / "modules"

DEFAULT_CACHE = "/var/cache/nmimgr-vmlab"


class LabError(RuntimeError):
    """A lab step failed; the message says which and why."""


def built_tool(name: str, env_name: str) -> Path:
    """A tool built from this tree: $ENV_NAME (ctest sets it), else the first
    of build/{tools/cli,tools/tests,loader}/NAME; LabError when neither is."""
    path = os.environ.get(env_name)
    candidates = [Path(path)] if path else [
        REPO_DIR / "build" / sub / name for sub in ("tools/cli", "tools/tests", "loader")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise LabError(f"{name} not built (set {env_name} or build into {REPO_DIR}/build)")


def cache_dir() -> Path:
    """The persistent cache root ($NMIMGR_VMLAB_CACHE, default /var/cache/nmimgr-vmlab)."""
    path = Path(os.environ.get("NMIMGR_VMLAB_CACHE", DEFAULT_CACHE))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def locked(name: str):
    """Hold an exclusive lock on cache/locks/NAME (serialises concurrent runs)."""
    lockdir = cache_dir() / "locks"
    lockdir.mkdir(exist_ok=True)
    with open(lockdir / name, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(cmd, *, cwd=None, env=None, timeout=None, check=True) -> str:
    """Run CMD (a list), return its stdout; raise LabError with its output on failure."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace", check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{shlex.join(map(str, cmd))}: {exc}") from exc
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise LabError(f"{shlex.join(map(str, cmd))} exited {proc.returncode}:\n{tail}")
    return proc.stdout


def tree_digest(path: Path, digest, skip=lambda rel: False):
    """Feed every file under PATH (relative name and bytes, sorted) into DIGEST,
    but those whose relative path SKIP(rel) rejects."""
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if not skip(rel):
            digest.update(str(rel).encode() + b"\0" + file.read_bytes() + b"\0")
