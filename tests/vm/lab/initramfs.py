# SPDX-License-Identifier: GPL-2.0-or-later
"""Build the lab's busybox initramfs for a kernel.

One image serves the first kernel (agent) and the kdump capture kernel; its
/init is lab/init.sh.  It holds busybox-static and its applet links, the 9p
stack's modules (decompressed, in modprobe's load order), kexec and
makedumpfile with the libraries ``ldd`` lists, and any extra files the caller
passes (e.g. ``{"/nmimgr/nmimgr.ko": ko_path}``; hooks go to
/etc/lab/first.d/*.sh and /etc/lab/capture.d/*.sh).

Images are cached under cache/initramfs/ keyed by a hash of everything that
goes into them.
"""

import gzip
import hashlib
import lzma
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from .kernels import Kernel
from .paths import cache_dir, run

#: the 9p share's stack; names that a kernel lacks or has built in are skipped
NINEP_MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev",
                 "virtio_pci_legacy_dev", "virtio_pci", "9pnet", "9pnet_virtio",
                 "netfs", "fscache", "9p")
BINARIES = ("/usr/sbin/kexec", "/usr/bin/makedumpfile")
BUSYBOX = "/bin/busybox"
INIT = Path(__file__).with_name("init.sh")
FORMAT_VERSION = "1"
#: images not used for this long are removed when another one is built
PRUNE_DAYS = 14


#: the agent's virtio-serial port (lab/vm.py)
AGENT_MODULES = ("virtio_console",)


def module_load_order(kernel: Kernel, names=NINEP_MODULES + AGENT_MODULES):
    """Return the .ko files (host paths) that load NAMES, dependencies first.

    Modules built into the kernel or absent from it are skipped.
    """
    order = []
    for name in names:
        proc = subprocess.run(["modprobe", "-d", kernel.modroot, "-S", kernel.kver,
                               "--show-depends", name],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, check=False)
        for line in proc.stdout.splitlines():
            match = re.match(r"insmod (\S+)", line)
            if match and match.group(1) not in order:
                order.append(match.group(1))
    return order


def _ldd(binary: str):
    """The shared libraries BINARY needs, as absolute host paths."""
    libs = []
    for line in run(["ldd", binary]).splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            libs.append(match.group(1))
    return libs


def _ko_name(path: str) -> str:
    """x.ko.xz -> x.ko"""
    name = Path(path).name
    return name[: name.index(".ko") + 3]


def _read_module(path: str) -> bytes:
    """A module's bytes, decompressed (busybox insmod wants plain .ko)."""
    if path.endswith(".xz"):
        return lzma.decompress(Path(path).read_bytes())
    if path.endswith(".gz"):
        return gzip.decompress(Path(path).read_bytes())
    if path.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", path], stdout=subprocess.PIPE,
                              check=True).stdout
    return Path(path).read_bytes()


def _contents(kernel: Kernel, extra_files: dict):
    """{path in image: (kind, data)}, kind 'file' (host path) or 'bytes'."""
    items = {"/init": ("file", str(INIT)), BUSYBOX: ("file", BUSYBOX)}
    modules = module_load_order(kernel)
    order = []
    for ko in modules:
        dest = f"/lib/modules/{_ko_name(ko)}"
        items[dest] = ("bytes", _read_module(ko))
        order.append(dest)
    items["/etc/lab/modules"] = ("bytes", ("\n".join(order) + "\n").encode())
    items["/etc/lab/kver"] = ("bytes", f"{kernel.kver}\n".encode())
    for binary in BINARIES:
        items[binary] = ("file", binary)
        for lib in _ldd(binary):
            items[lib] = ("file", lib)
    for dest, src in (extra_files or {}).items():
        dest = "/" + str(dest).lstrip("/")
        if isinstance(src, bytes):
            items[dest] = ("bytes", src)
        else:
            items[dest] = ("file", str(src))
    return items


def _digest(items: dict) -> str:
    sha = hashlib.sha256(FORMAT_VERSION.encode())
    for dest in sorted(items):
        kind, data = items[dest]
        sha.update(dest.encode() + b"\0")
        sha.update(data if kind == "bytes" else Path(data).read_bytes())
        if kind == "file":
            sha.update(str(os.stat(data).st_mode & 0o111).encode())
    return sha.hexdigest()[:20]


def build_initramfs(kernel: Kernel, extra_files=None) -> Path:
    """Return a gzip'ed newc initramfs for KERNEL (cached by content hash).

    EXTRA_FILES maps paths in the image to host paths (or to bytes).
    """
    items = _contents(kernel, extra_files)
    outdir = cache_dir() / "initramfs"
    outdir.mkdir(exist_ok=True)
    image = outdir / f"{kernel.kver}-{_digest(items)}.cpio.gz"
    if image.exists():
        os.utime(image)     # mark as used, for pruning
        return image
    for old in outdir.glob("*.cpio.gz"):
        if time.time() - old.stat().st_mtime > PRUNE_DAYS * 86400:
            old.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="initramfs-", dir=outdir) as tmp:
        stage = Path(tmp) / "root"
        for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys",
                    "run", "tmp", "out", "boot", "etc/lab/first.d",
                    "etc/lab/capture.d", "lib/modules"):
            (stage / sub).mkdir(parents=True, exist_ok=True)
        for dest, (kind, data) in items.items():
            target = stage / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if kind == "bytes":
                target.write_bytes(data)
            else:
                shutil.copy(data, target)   # follows symlinks, keeps mode
        os.chmod(stage / "init", 0o755)
        for applet in run([BUSYBOX, "--list-full"]).split():
            link = stage / applet
            if not link.exists() and not link.is_symlink():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(BUSYBOX)
        if os.geteuid() == 0:
            os.mknod(stage / "dev/console", 0o600 | stat.S_IFCHR, os.makedev(5, 1))
        names = sorted(str(p.relative_to(stage)) for p in stage.rglob("*"))
        cpio = subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"],
                              input=("\n".join(["."] + names) + "\n").encode(),
                              cwd=stage, stdout=subprocess.PIPE, check=True).stdout
        partial = Path(tmp) / "image"
        with gzip.open(partial, "wb", compresslevel=6) as out:
            out.write(cpio)
        os.replace(partial, image)
    return image
