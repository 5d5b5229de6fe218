# SPDX-License-Identifier: GPL-2.0-or-later
"""Resolve, download and unpack the Debian kernels the lab boots.

Each kernel line is followed through its suite's meta-packages
(``linux-image-amd64`` and ``linux-headers-amd64``), so the lab always tests the
ABI Debian ships today.  apt runs with a private configuration (its own sources
list, lists, cache and an empty dpkg status) and never touches the machine's
apt state.  The archive URIs are taken at run time from the machine's own apt
sources; none is written down here.

Cache layout under :func:`lab.paths.cache_dir`::

    apt/<label>/      sources.list, lists/, cache/, status, last-update stamp
    debs/             downloaded .deb files
    kernels/<kver>/   root/ (dpkg -x of every package), modroot/ (depmod'ed)
    kernels/<label>.json  the last successful resolution (offline fallback)
"""

import dataclasses
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from .paths import LabError, cache_dir, locked, run

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
META_PACKAGES = ("linux-image-amd64", "linux-headers-amd64")
REFRESH_HOURS = float(os.environ.get("NMIMGR_VMLAB_REFRESH_HOURS", "12"))

#: Debian release names a source's suite must start with to count as Debian's.
_DEBIAN_CODENAMES = {"buster", "bullseye", "bookworm", "trixie", "forky",
                     "duke", "sid", "stable", "oldstable", "oldoldstable",
                     "testing", "unstable"}


@dataclasses.dataclass(frozen=True)
class Line:
    """A kernel line: where its meta-packages are resolved."""

    label: str            # short id used on the command line and in markers
    suites: tuple         # archive suites (main archive)
    security: tuple       # suites on the security archive
    target: str = ""      # APT::Default-Release when not the default candidate


LINES = {
    "5.10": Line("5.10", ("bullseye", "bullseye-updates"), ("bullseye-security",)),
    "6.1": Line("6.1", ("bookworm", "bookworm-updates"), ("bookworm-security",)),
    "6.12": Line("6.12", ("bookworm", "bookworm-updates", "bookworm-backports"),
                 ("bookworm-security",), target="bookworm-backports"),
}


@dataclasses.dataclass(frozen=True)
class Kernel:
    """An unpacked kernel: image, modules and headers on the host."""

    label: str
    kver: str
    root: Path          # dpkg -x of image, headers, -common and kbuild
    packages: tuple     # "name=version" strings

    @property
    def vmlinuz(self) -> Path:
        """The bootable image."""
        return self.root / "boot" / f"vmlinuz-{self.kver}"

    @property
    def config(self) -> Path:
        """The kernel's .config."""
        return self.root / "boot" / f"config-{self.kver}"

    @property
    def modroot(self) -> Path:
        """A root with lib/modules/KVER and modules.dep, for modprobe -d."""
        return self.root.parent / "modroot"

    @property
    def moddir(self) -> Path:
        """modroot/lib/modules/KVER."""
        return self.modroot / "lib" / "modules" / self.kver

    @property
    def headers(self) -> Path:
        """The directory to pass to ``make -C`` for out-of-tree modules."""
        return self.root / "usr" / "src" / f"linux-headers-{self.kver}"

    def cc(self) -> str:
        """The C compiler for module builds.

        The headers name the compiler the kernel was built with (5.10: gcc-10);
        when the host lacks it, use the newest gcc-NN the host has.
        """
        text = ""
        for name in ("include/config/auto.conf", ".config"):
            path = self.headers / name
            if path.exists():
                match = re.search(r'^CONFIG_CC_VERSION_TEXT="(\S+)',
                                  path.read_text(errors="replace"), re.M)
                if match:
                    text = match.group(1)
                    break
        if text and shutil.which(text):
            return text
        for ver in range(20, 9, -1):
            if shutil.which(f"gcc-{ver}"):
                return f"gcc-{ver}"
        return "gcc"

    def to_json(self) -> dict:
        """Serialisable form, for the offline fallback record."""
        return {"label": self.label, "kver": self.kver, "root": str(self.root),
                "packages": list(self.packages)}

    @classmethod
    def from_json(cls, data: dict) -> "Kernel":
        """Inverse of :meth:`to_json`."""
        return cls(data["label"], data["kver"], Path(data["root"]),
                   tuple(data["packages"]))


# --------------------------------------------------------------------------
# The machine's apt sources (read only)

def _deb822_paragraphs(text: str):
    """Yield dicts of the deb822 paragraphs in TEXT (comments dropped)."""
    para, key = {}, None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if para:
                yield para
            para, key = {}, None
        elif raw[0] in " \t" and key:
            para[key] += " " + raw.strip()
        elif ":" in raw:
            key, value = raw.split(":", 1)
            key = key.strip().lower()
            para[key] = value.strip()


def system_sources():
    """Return [(uri, [suites])] for the machine's enabled binary Debian sources."""
    etc = Path("/etc/apt")
    found = []
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for para in _deb822_paragraphs(path.read_text(errors="replace")):
            if para.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in para.get("types", "").split():
                continue
            for uri in para.get("uris", "").split():
                found.append((uri, para.get("suites", "").split()))
    lists = [etc / "sources.list"] + sorted((etc / "sources.list.d").glob("*.list"))
    for path in lists:
        if not path.exists():
            continue
        for raw in path.read_text(errors="replace").splitlines():
            line = re.sub(r"\[[^]]*\]", " ", raw.split("#", 1)[0]).split()
            if len(line) >= 3 and line[0] == "deb":
                found.append((line[1], [line[2]]))
    return found


def archive_uris():
    """Find the Debian archive and security archive URIs in the machine's apt sources.

    A source counts when one of its suites is a Debian release name
    (``bookworm``, ``bookworm-updates``...); it is the security archive when that
    suite ends in ``-security`` (or the old ``/updates``).
    """
    main, security = None, None
    for uri, suites in system_sources():
        for suite in suites:
            base = re.split(r"[-/]", suite)[0]
            if base not in _DEBIAN_CODENAMES:
                continue
            if suite.endswith("-security") or suite.endswith("/updates"):
                security = security or uri
            else:
                main = main or uri
    if not main:
        raise LabError("no Debian archive found in /etc/apt/sources.list{,.d}; "
                       "the lab derives its kernel sources from there")
    return main.rstrip("/"), (security or "").rstrip("/")


# --------------------------------------------------------------------------
# Private apt

class PrivateApt:
    """apt-get with a private sources list, lists, cache and empty dpkg status."""

    def __init__(self, line: Line):
        self.line = line
        self.dir = cache_dir() / "apt" / line.label
        for sub in ("lists/partial", "cache/archives/partial", "state"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.status = self.dir / "status"
        self.status.touch()
        self.sources = self.dir / "sources.list"
        self.stamp = self.dir / "last-update"

    def write_sources(self):
        """(Re)write the private sources.list from the machine's archive URIs."""
        main, security = archive_uris()
        opts = f"[signed-by={KEYRING}]"
        lines = [f"deb {opts} {main} {suite} main" for suite in self.line.suites]
        if security:
            lines += [f"deb {opts} {security} {suite} main"
                      for suite in self.line.security]
        self.sources.write_text(
            "# generated by tests/vm/lab/kernels.py from the machine's apt sources\n"
            + "\n".join(lines) + "\n")

    def options(self):
        """The -o options that make apt private."""
        opts = {
            "Dir::Etc::SourceList": self.sources,
            "Dir::Etc::SourceParts": "/dev/null",
            "Dir::Etc::Preferences": "/dev/null",
            "Dir::Etc::PreferencesParts": "/dev/null",
            "Dir::State": self.dir / "state",
            "Dir::State::Lists": self.dir / "lists",
            "Dir::State::status": self.status,
            "Dir::Cache": self.dir / "cache",
            "APT::Sandbox::User": "root",
            "Acquire::Languages": "none",
            "APT::Install-Recommends": "false",
            # fail fast when the archive is unreachable: the cache takes over
            "Acquire::Retries": "0",
            "Acquire::http::Timeout": "20",
            "Acquire::https::Timeout": "20",
        }
        if self.line.target:
            opts["APT::Default-Release"] = self.line.target
        args = []
        for key, value in opts.items():
            args += ["-o", f"{key}={value}"]
        return args

    def apt_get(self, *args, cwd=None, timeout=600):
        """Run apt-get with the private options."""
        return run(["apt-get", "-q", *self.options(), *args], cwd=cwd, timeout=timeout)

    def fresh(self) -> bool:
        """True when the lists were refreshed less than REFRESH_HOURS ago."""
        return (self.stamp.exists()
                and time.time() - self.stamp.stat().st_mtime < REFRESH_HOURS * 3600)

    def update(self, force=False):
        """Refresh the package lists unless they are fresh."""
        if self.fresh() and not force:
            return
        self.write_sources()
        self.apt_get("update", "--error-on=any")
        self.stamp.touch()

    def resolve(self):
        """Return [(name, version)] of the kernel packages the meta-packages pull in."""
        out = self.apt_get("-s", "install", *META_PACKAGES)
        wanted = []
        for match in re.finditer(r"^Inst (\S+) \((\S+)", out, re.M):
            name, version = match.groups()
            if name in META_PACKAGES:
                continue
            if re.match(r"linux-(image|headers|kbuild)-", name):
                wanted.append((name, version))
        if not any(n.startswith("linux-image-") for n, _ in wanted):
            raise LabError(f"{self.line.label}: linux-image-amd64 resolved to no image:\n{out}")
        return wanted


# --------------------------------------------------------------------------
# Fetch and unpack

def _deb_path(debs: Path, name: str, version: str) -> Path:
    """The downloaded .deb of NAME=VERSION (architecture amd64 or all)."""
    stem = f"{name}_{version.replace(':', '%3a')}"
    for arch in ("amd64", "all"):
        path = debs / f"{stem}_{arch}.deb"
        if path.exists():
            return path
    return debs / f"{stem}_amd64.deb"


def _relativize_links(root: Path):
    """Make absolute symlinks under ROOT point inside ROOT (relative links)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                target = os.readlink(path)
                if target.startswith("/"):
                    new = os.path.relpath(root / target.lstrip("/"), path.parent)
                    path.unlink()
                    path.symlink_to(new)


def _unpack(label: str, kver: str, pkgs, debs: Path) -> Kernel:
    """dpkg -x every package, build a depmod'ed module root; return the Kernel."""
    kdir = cache_dir() / "kernels" / kver
    done = kdir / "unpacked"
    kernel = Kernel(label, kver, kdir / "root",
                    tuple(f"{n}={v}" for n, v in pkgs))
    if done.exists():
        return kernel
    shutil.rmtree(kdir, ignore_errors=True)
    kernel.root.mkdir(parents=True)
    for name, version in pkgs:
        run(["dpkg-deb", "-x", _deb_path(debs, name, version), kernel.root])
    _relativize_links(kernel.root / "usr" / "src")
    # Debian's headers Makefile is one "include /usr/src/...-common/Makefile"
    makefile = kernel.headers / "Makefile"
    makefile.write_text(re.sub(r"(?<![\w/])/usr/src/", f"{kernel.root}/usr/src/",
                               makefile.read_text()))
    for cand in (kernel.root / "lib/modules" / kver, kernel.root / "usr/lib/modules" / kver):
        if (cand / "kernel").is_dir():
            modules = cand
            break
    else:
        raise LabError(f"{kver}: no module tree in the image package")
    kernel.moddir.parent.mkdir(parents=True)
    # hard links: a copy that costs no space; depmod writes its files beside them
    run(["cp", "-al", modules, kernel.moddir])
    for link in ("build", "source"):
        path = kernel.moddir / link
        if path.is_symlink():
            path.unlink()
    run(["depmod", "-b", kernel.modroot, kver])
    for path in (kernel.vmlinuz, kernel.headers / "Makefile"):
        if not path.exists():
            raise LabError(f"{kver}: {path} missing after unpacking")
    done.write_text(json.dumps(kernel.to_json(), indent=1) + "\n")
    return kernel


def _log(msg: str):
    print(f"vmlab: {msg}", file=sys.stderr, flush=True)


def fetch(label: str, *, refresh=False, offline=None) -> Kernel:
    """Resolve, download and unpack the current kernel of line LABEL.

    Package lists are refreshed at most every REFRESH_HOURS (or when REFRESH).
    When the archive cannot be reached (or NMIMGR_VMLAB_OFFLINE=1), the last
    kernel fetched for LABEL is used.
    """
    if label not in LINES:
        raise LabError(f"unknown kernel {label!r}; known: {', '.join(LINES)}")
    if offline is None:
        offline = os.environ.get("NMIMGR_VMLAB_OFFLINE") == "1"
    record = cache_dir() / "kernels" / f"{label}.json"
    with locked(f"fetch-{label}"):
        try:
            if offline:
                raise LabError("offline mode")
            apt = PrivateApt(LINES[label])
            apt.update(force=refresh)
            pkgs = apt.resolve()
            kver = next(n for n, _ in pkgs if n.startswith("linux-image-"))[len("linux-image-"):]
            debs = cache_dir() / "debs"
            debs.mkdir(exist_ok=True)
            if not (cache_dir() / "kernels" / kver / "unpacked").exists():
                missing = [f"{n}={v}" for n, v in pkgs
                           if not _deb_path(debs, n, v).exists()]
                if missing:
                    _log(f"{label}: downloading {' '.join(missing)}")
                    apt.apt_get("download", *missing, cwd=debs)
            kernel = _unpack(label, kver, pkgs, debs)
        except LabError as exc:
            if not record.exists():
                raise LabError(f"kernel {label}: cannot resolve and nothing cached: {exc}") from exc
            kernel = Kernel.from_json(json.loads(record.read_text()))
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            _log(f"{label}: archive unusable ({lines[-1] if lines else exc}); "
                 f"using cached {kernel.kver}")
            return kernel
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(kernel.to_json(), indent=1) + "\n")
        return kernel


def labels():
    """The kernel lines the lab knows, oldest first."""
    return list(LINES)
