# SPDX-License-Identifier: GPL-2.0-or-later
"""Real Debian bookworm roots for the lab: built with mmdebstrap, booted from a disk.

A root is Debian's own packages (systemd, udev, the 6.1 kernel that
:mod:`lab.kernels` resolves with its headers, DKMS, build-essential,
kexec-tools, makedumpfile) plus one kdump service, the *flavour*:

``kdump-tools``
    Debian's kdump-tools with initramfs-tools (``/etc/default/kdump-tools``:
    ``USE_KDUMP=1``, ``MAKEDUMP_ARGS="-l -d 31"``).
``kdumpctl``
    dracut + keyutils + gawk and the real kdumpctl, mkdumprd and 99kdumpbase,
    installed from ../shared/peers/kdump-utils with ``make install
    DESTDIR=ROOT``; no kdump-tools.  See :data:`KDUMPCTL_ADAPTATIONS`.

The archive is the one the machine's apt sources name (read only, as in
:mod:`lab.kernels`); mmdebstrap gets its own sources lines and never touches the
machine's apt state.

Both flavours start from one *base* (:func:`build_base`): mmdebstrap of the
packages they share, Debian's default initramfs generator (initramfs-tools)
and the kernel, cached as a directory tree under ``cache/roots/base-<key>/``.
A flavour copies that tree and installs its own packages into it with apt
in a chroot (:func:`_install_flavour`), as an admin adds kdump to a server:
for kdumpctl, dracut replaces initramfs-tools (it Conflicts with it) and
builds the first-kernel image itself.  mmdebstrap's package set up (about
four minutes of a root's five) is done once for both.

Cache layout under ``cache/roots/<flavour>-<key>/`` (KEY hashes the recipe:
the base's key, flavour, packages, the files under lab/root/, the
kdump-utils tree, :data:`RECIPE_VERSION`)::

    image.raw     ext4 (``mkfs.ext4 -d``), never booted: no kdump initrd yet
    vmlinuz       the root's /boot/vmlinuz-KVER
    initrd.img    the root's own first-kernel initrd (initramfs-tools or dracut)
    root.json     recipe, kernel, timings of the build

The cached image is never booted writable again: :class:`RootVM` boots a qcow2
overlay per VM.  Files go in through the 9p share (copied into / by the
firstboot unit before the kdump service starts) and come out of the overlay
after power-off with ``qemu-img convert`` + ``debugfs rdump``.
"""

import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import kernels
from .kernels import Kernel
from .paths import REPO_DIR, LabError, cache_dir, locked, run, tree_digest
from .vm import VM

RECIPE_VERSION = "2"
SUITE = "bookworm"
KERNEL_LINE = "6.1"
IMAGE_SIZE = "4G"
ROOT_FILES = Path(__file__).with_name("root")
KDUMP_UTILS = REPO_DIR.parent / "shared" / "peers" / "kdump-utils"
FLAVOURS = ("kdump-tools", "kdumpctl")

#: in every root, the base (the kernel's image and headers are added, pinned);
#: initramfs-tools is Debian's default generator, which the kernel's
#: postinst runs
BASE_PACKAGES = (
    "systemd-sysv", "udev", "kmod", "dkms", "build-essential",
    "kexec-tools", "makedumpfile", "e2fsprogs", "procps", "less", "zstd",
    "initramfs-tools",
)
#: installed over the base, with apt in a chroot.  kdump-tools comes after
#: the kernel (as on a server that adds kdump): its /etc/kernel/postinst.d
#: hook builds its initrd with MODULES=dep, which fails in a chroot ("failed
#: to determine device for /") and would fail the kernel's postinst; the
#: first boot builds that initrd instead
FLAVOUR_PACKAGES = {
    "kdump-tools": ("kdump-tools",),
    # dracut Conflicts: initramfs-tools, so apt swaps the generator;
    # gawk: kdump-utils.spec Requires it; keyutils: see KDUMPCTL_ADAPTATIONS
    "kdumpctl": ("dracut", "keyutils", "gawk", "cpio"),
}
#: the first-kernel initramfs is not rebuilt when kdump-tools arrives (its
#: initramfs-tools trigger would run `update-initramfs -u`, a minute and a
#: half with MODULES=most): what kdump-tools adds to initramfs-tools acts
#: only for its own initrd (the hook checks CONFDIR, the local-bottom
#: script needs /proc/vmcore), so the rebuilt image would differ by one
#: inert script, and every use of the root rebuilds it at its install boot
NO_INITRAMFS_UPDATE = {"kdump-tools": True, "kdumpctl": False}
#: the service that builds and loads the capture kernel
SERVICES = {"kdump-tools": "kdump-tools.service", "kdumpctl": "kdump.service"}
#: units that only cost boot time in a serial-console VM with no network
MASKED = (
    "getty-static.service", "getty@tty1.service", "e2scrub_reap.service",
    "e2scrub_all.timer", "kexec-load.service", "kexec.service",
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer",
    "fstrim.timer", "systemd-firstboot.service", "man-db.timer",
)

#: vCPUs of a root's guest.  One, not the lab's two: ctest runs two root
#: guests side by side on the 2-core machine, and two 2-vCPU TCG guests put
#: four busy threads on two cores, where a vCPU spins on a guest lock whose
#: holder's thread is not running.  Measured with two guests side by side,
#: each running `update-initramfs -u` three times on the installed
#: kdump-tools root: 218/140/197 s with 2 vCPUs, 129/125/94 s with 1.  The
#: capture kernel runs on one CPU anyway (nr_cpus=1); what two CPUs do at
#: an NMI and a panic is the busybox sets' business (test_nmimgr_panic_path.py)
ROOT_SMP = 1

#: first kernel's command line (the capture kernel's is the service's business)
ROOT_APPEND = "root=/dev/vda rw console=ttyS0 crashkernel=256M panic=-1 nmi_watchdog=0"

#: what the real kdumpctl needs on a Debian bookworm root, and why
KDUMPCTL_ADAPTATIONS = (
    "kdump.conf gets `extra_bins /usr/bin/grep`: dracut 059 leaves grep out of "
    "the capture image, and kdump.sh then silently ignores kdump.conf",
    "keyutils installed: without keyctl kdumpctl falls back to `sudo -i kexec`, "
    "and Debian has no sudo",
    "gawk installed (kdump-utils.spec Requires it; Debian's minbase has mawk)",
    "kdump-tools not installed (its kdump-tools.service would load a second "
    "capture kernel); kexec-load.service masked",
    "`make install DESTDIR=ROOT ARCH=x86_64` runs from a copy of the tree "
    "(the install target writes kdump.conf and kdump.sysconfig into its "
    "source directory); kdump.service enabled with systemctl --root",
    "nothing else: mkdumprd falls back from --add-confdir (dracut >= 104) to "
    "--add kdumpbase --omit ... by itself; no mksquashfs, so no squash image",
)

#: the kdumpctl root's compressor for dracut: the one Debian's mkinitramfs
#: uses (zstd -9).  Without it dracut 059 picks gzip -9, which took 64 s of
#: a 255 s mkdumprd under TCG (traced: sched_process_exec/exit)
DRACUT_COMPRESS = ("etc/dracut.conf.d/90-nmimgr-lab-compress.conf",
                   "# nmimgr VM lab: compress as Debian's mkinitramfs does; dracut's own\n"
                   "# default, gzip -9, costs a minute a build under TCG\n"
                   "compress=\"zstd -q -9 -T0\"\n")

KDUMP_TOOLS_DEFAULTS = {
    "USE_KDUMP": "1",
    # -F is forced by kdump-tools; lzo instead of zlib: 1.4 s instead of 12.6 s
    "MAKEDUMP_ARGS": '"-l -d 31"',
}


def _log(msg: str):
    print(f"vmlab: {msg}", file=sys.stderr, flush=True)


def _tree_digest(path: Path, digest):
    tree_digest(path, digest, skip=lambda rel: rel.parts[0] == ".git")


@dataclasses.dataclass(frozen=True)
class Root:
    """A cached, pristine root image of one flavour."""

    flavour: str
    kernel: Kernel
    key: str
    dir: Path

    @property
    def image(self) -> Path:
        """The raw ext4 image (never written after the build)."""
        return self.dir / "image.raw"

    image_format = "raw"

    @property
    def vmlinuz(self) -> Path:
        """The root's kernel image."""
        return self.dir / "vmlinuz"

    @property
    def initrd(self) -> Path:
        """The root's own first-kernel initrd."""
        return self.dir / "initrd.img"

    @property
    def service(self) -> str:
        """The unit that loads the capture kernel."""
        return SERVICES[self.flavour]

    @property
    def info(self) -> dict:
        """root.json: recipe, packages, build timings."""
        return json.loads((self.dir / "root.json").read_text())


def _pinned(kernel: Kernel) -> list:
    return sorted(p for p in kernel.packages
                  if re.match(r"linux-(image|headers)-", p.split("=")[0]))


def base_recipe(kernel: Kernel) -> dict:
    """Everything that decides what goes into the base both flavours copy."""
    return {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "kernel": kernel.kver,
        "packages": sorted(BASE_PACKAGES) + _pinned(kernel),
    }


def base_key(kernel: Kernel) -> str:
    """The cache key of the base."""
    return hashlib.sha256(json.dumps(base_recipe(kernel), sort_keys=True).encode()
                          ).hexdigest()[:16]


def recipe(flavour: str, kernel: Kernel) -> dict:
    """Everything that decides what goes into a root of FLAVOUR."""
    if flavour not in FLAVOURS:
        raise LabError(f"unknown root {flavour!r}; known: {', '.join(FLAVOURS)}")
    return {
        "version": RECIPE_VERSION,
        "base": base_key(kernel),
        "flavour": flavour,
        "kernel": kernel.kver,
        "packages": list(FLAVOUR_PACKAGES[flavour]),
        "no_initramfs_update": NO_INITRAMFS_UPDATE[flavour],
        "masked": sorted(MASKED),
        "append": ROOT_APPEND,
        "kdump_tools_defaults": KDUMP_TOOLS_DEFAULTS if flavour == "kdump-tools" else {},
        # written before dracut's install, so its first-kernel image too
        "dracut_compress": ({"before_dracut": DRACUT_COMPRESS[1]}
                            if flavour == "kdumpctl" else None),
    }


def recipe_key(flavour: str, kernel: Kernel) -> str:
    """The cache key of a root: a hash of its recipe and the files it installs."""
    digest = hashlib.sha256(json.dumps(recipe(flavour, kernel), sort_keys=True).encode())
    _tree_digest(ROOT_FILES, digest)
    if flavour == "kdumpctl":
        if not (KDUMP_UTILS / "kdumpctl").is_file():
            raise LabError(f"the kdump-utils tree is missing ({KDUMP_UTILS}): "
                           "the kdumpctl root cannot be built")
        _tree_digest(KDUMP_UTILS, digest)
    return digest.hexdigest()[:16]


def _sources():
    """mmdebstrap's sources lines, from the machine's own archive URIs."""
    main, security = kernels.archive_uris()
    line = kernels.LINES[KERNEL_LINE]
    lines = [f"deb {main} {suite} main" for suite in line.suites]
    if security:
        lines += [f"deb {security} {suite} main" for suite in line.security]
    return lines


def _chroot(root: Path, *cmd, timeout=600):
    return run(["chroot", str(root), *cmd], timeout=timeout,
               env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
                    "DEBIAN_FRONTEND": "noninteractive"})


def _set_shell_vars(path: Path, values: dict):
    """Set VAR=VALUE lines in a sourced shell file (replacing or appending)."""
    text = path.read_text()
    for var, value in values.items():
        new, count = re.subn(rf"^#?\s*{var}=.*$", f"{var}={value}", text, count=1, flags=re.M)
        text = new if count else text + f"{var}={value}\n"
    path.write_text(text)


def _install_lab_files(root: Path):
    """The lab's helper and its two units, the console autologin, the masks."""
    sbin = root / "usr/local/sbin"
    sbin.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT_FILES / "nmimgr-lab", sbin / "nmimgr-lab")
    (sbin / "nmimgr-lab").chmod(0o755)
    units = root / "etc/systemd/system"
    for unit in ("nmimgr-lab-firstboot.service", "nmimgr-lab-agent.service"):
        shutil.copy(ROOT_FILES / unit, units / unit)
    getty = units / "serial-getty@ttyS0.service.d"
    getty.mkdir(parents=True, exist_ok=True)
    (getty / "autologin.conf").write_text(
        "# nmimgr VM lab: root shell on the serial console (python3 -m lab root shell)\n"
        "[Service]\nExecStart=\n"
        "ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud "
        "115200,57600,38400,9600 - $TERM\n")
    systemctl = ["systemctl", f"--root={root}"]
    run([*systemctl, "enable", "nmimgr-lab-firstboot.service", "nmimgr-lab-agent.service"])
    run([*systemctl, "mask", *MASKED])
    run([*systemctl, "set-default", "multi-user.target"])


def _customise(root: Path, flavour: str, kernel: Kernel):
    """Turn mmdebstrap's output into a bootable lab root of FLAVOUR."""
    (root / "etc/hostname").write_text(f"lab-{flavour}\n")
    (root / "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\tlab-{flavour}\n")
    (root / "etc/fstab").write_text(
        "# nmimgr VM lab: the virtio disk, mounted rw by the kernel (root=/dev/vda rw)\n"
        "/dev/vda\t/\text4\tdefaults\t0\t0\n")
    machine_id = root / "etc/machine-id"
    if machine_id.exists():
        machine_id.unlink()
    run(["systemd-machine-id-setup", f"--root={root}"])
    _install_lab_files(root)
    if flavour == "kdump-tools":
        _set_shell_vars(root / "etc/default/kdump-tools", KDUMP_TOOLS_DEFAULTS)
        run(["systemctl", f"--root={root}", "enable", "kdump-tools.service"])
    else:
        with tempfile.TemporaryDirectory(prefix="kdump-utils-") as tmp:
            src = Path(tmp) / "kdump-utils"
            shutil.copytree(KDUMP_UTILS, src, symlinks=True)
            run(["make", "-C", str(src), "install", f"DESTDIR={root}", "ARCH=x86_64"])
        conf = root / "etc/kdump.conf"
        conf.write_text(conf.read_text() + "\n# nmimgr VM lab: dracut 059 leaves grep out "
                        "of the capture image, without it kdump.sh ignores this file\n"
                        "extra_bins /usr/bin/grep\n")
        run(["systemctl", f"--root={root}", "enable", "kdump.service"])
        listed = _chroot(root, "dpkg-query", "-W", "-f=${Package} ${Status}\\n")
        if re.search(r"^kdump-tools install ok installed", listed, re.M):
            _chroot(root, "apt-get", "purge", "-y", "kdump-tools")
    # the first boot in the VM builds the kdump initrd for the VM's hardware
    for stale in (root / "var/lib/kdump").glob("initr*"):
        stale.unlink()
    if not (root / "boot" / f"initrd.img-{kernel.kver}").exists():
        raise LabError(f"{flavour} root: no /boot/initrd.img-{kernel.kver} after the install")


class RootVM(VM):
    """A QEMU guest booting a root image from a virtio disk.

    DISK is a qcow2 overlay on the cached image (see :func:`overlay`), or the
    image itself while it is being built.  FILES ({path in root: host path
    or bytes}; a host directory is copied as a tree) land in the root before
    the kdump service starts; FIRSTBOOT (shell snippets, run with ``sh -e`` in
    order) run right after.  The agent (:meth:`VM.run`) is the one of
    lab/vm.py, started by nmimgr-lab-agent.service.
    """

    def __init__(self, root: Root, disk: Path, *, disk_format="qcow2", files=None,
                 firstboot=(), workdir=None, append="", boot_timeout=300, **kwargs):
        kwargs.setdefault("smp", ROOT_SMP)
        super().__init__(root.kernel, root.initrd, workdir=workdir, append=append,
                         base_append=ROOT_APPEND, boot_timeout=boot_timeout, **kwargs)
        self.root = root
        self.disk = Path(disk)
        self.disk_format = disk_format
        self.files = dict(files or {})
        self.firstboot = list(firstboot)
        self._raw = None

    def command(self):
        """The lab's QEMU command with the root's kernel and its disk."""
        cmd = super().command()
        cmd[cmd.index("-kernel") + 1] = str(self.root.vmlinuz)
        return cmd + ["-drive", f"file={self.disk},format={self.disk_format},if=virtio"]

    def _stage_share(self):
        super()._stage_share()
        for sub in ("root", "firstboot"):
            shutil.rmtree(self.share / sub, ignore_errors=True)
        for dest, src in self.files.items():
            target = self.share / "root" / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, (bytes, str)) and not (isinstance(src, str) and os.path.exists(src)):
                target.write_bytes(src if isinstance(src, bytes) else src.encode())
            elif Path(src).is_dir():
                shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(src, target)
        if self.firstboot:
            (self.share / "firstboot").mkdir()
            for i, snippet in enumerate(self.firstboot):
                (self.share / "firstboot" / f"{i:02d}.sh").write_text(snippet + "\n")

    def wait_ready(self, timeout=None) -> float:
        """Wait for the agent; raise VMError when a first-boot command failed."""
        took = super().wait_ready(timeout)
        for number, (cmd, rc, out) in enumerate(self.firstboot_results()):
            if rc != 0:
                raise self.error(f"first-boot command {number} ({cmd!r}) exited {rc}:\n{out}")
        return took

    def firstboot_seconds(self):
        """[seconds or None] each first-boot command took (guest clock)."""
        seconds = []
        for i in range(len(self.firstboot)):
            path = self.share / "firstboot" / f"{i:02d}.seconds"
            seconds.append(float(path.read_text()) if path.exists() else None)
        return seconds

    def firstboot_results(self):
        """[(command, rc or None, output)] of the first-boot commands."""
        results = []
        for i, cmd in enumerate(self.firstboot):
            base = self.share / "firstboot" / f"{i:02d}"
            rc_path, out_path = base.with_suffix(".rc"), base.with_suffix(".out")
            rc = int(rc_path.read_text().strip()) if rc_path.exists() else None
            out = out_path.read_text(errors="replace") if out_path.exists() else ""
            results.append((cmd, rc, out))
        return results

    # -- the capture kernel ----------------------------------------------------

    def wait_capture_loaded(self, timeout=900) -> float:
        """Wait until the flavour's service is active and a crash kernel is loaded.

        Returns seconds since QEMU started.  Raises VMError (with the unit's
        journal) when the service failed or time ran out.
        """
        service = self.root.service
        deadline = time.monotonic() + timeout
        while True:
            _, out = self.run(f"systemctl show -p ActiveState --value {service}; "
                              "cat /sys/kernel/kexec_crash_loaded")
            state, _, loaded = out.strip().partition("\n")
            if state == "active" and loaded.strip() == "1":
                return time.monotonic() - self.started
            if state == "failed" or (state in ("active", "inactive") and loaded.strip() == "0"
                                     and self._service_done(service)):
                _, journal = self.run(f"journalctl -b -u {service} --no-pager | tail -40")
                raise self.error(f"{service} is {state} and no crash kernel is loaded:\n{journal}")
            if time.monotonic() > deadline:
                raise self.error(f"{service} not loaded after {timeout}s (state {state})")
            time.sleep(2)

    def wait_unit_done(self, unit, timeout=600) -> dict:
        """Wait until UNIT has run and stopped (it may be a Type=exec unit
        that the boot does not wait for); return its ActiveState, Result
        and ExecMainStatus."""
        deadline = time.monotonic() + timeout
        while True:
            _, out = self.run(f"systemctl show -p ActiveState -p Result -p ExecMainStatus {unit}")
            # KEY=VALUE lines, in systemd's order, not the order asked for
            props = dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)
            if props.get("ActiveState") in ("inactive", "failed") and self._service_done(unit):
                return props
            if time.monotonic() > deadline:
                raise self.error(f"{unit} still {props.get('ActiveState')} after {timeout}s")
            time.sleep(2)

    def _service_done(self, service) -> bool:
        _, out = self.run(f"systemctl show -p ExecMainExitTimestampMonotonic --value {service}")
        return out.strip() not in ("", "0")

    # -- files out ---------------------------------------------------------------

    def read_out(self, path: str, dest) -> Path:
        """Copy PATH (a file or a directory tree) out of the powered-off disk.

        Returns DEST/<basename of PATH>.  The disk is converted to raw once per
        power-off (qemu-img convert) and read with debugfs, no mount needed.
        """
        if self.running:
            raise self.error("read_out needs the VM powered off")
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        if self.disk_format == "raw":
            raw = self.disk
        else:
            raw = self.workdir / "disk.raw"
            if self._raw != self.disk.stat().st_mtime_ns or not raw.exists():
                run(["qemu-img", "convert", "-f", self.disk_format, "-O", "raw",
                     str(self.disk), str(raw)], timeout=600)
                self._raw = self.disk.stat().st_mtime_ns
        out = run(["debugfs", "-R", f"rdump {path} {dest}", str(raw)], timeout=600)
        result = dest / Path(path).name
        if not result.exists():
            raise LabError(f"debugfs found no {path} on {self.disk}:\n{out}")
        return result


def install_plan(install):
    """Files and first-boot commands that install INSTALL into a root.

    INSTALL is a .deb (or a list of them): each lands in
    /var/cache/nmimgr-lab/install/ and one ``apt-get install`` installs them
    offline, the way an admin installs a local package; or a directory, copied
    over / as a tree (``cmake --install`` or ``dpkg -x`` output, DESTDIR
    style).  Returns (files, firstboot) for :class:`RootVM`.
    """
    if install is None:
        return {}, []
    items = [install] if isinstance(install, (str, os.PathLike)) else list(install)
    files, debs = {}, []
    for item in map(Path, items):
        if item.is_dir():
            files["/"] = item
        elif item.suffix == ".deb" and item.is_file():
            dest = f"/var/cache/nmimgr-lab/install/{item.name}"
            files[dest] = item
            debs.append(dest)
        else:
            raise LabError(f"install: {item} is neither a .deb nor a directory")
    firstboot = []
    if debs:
        firstboot.append("DEBIAN_FRONTEND=noninteractive apt-get install -y "
                         "--no-install-recommends " + " ".join(debs))
    return files, firstboot


def overlay(root, workdir) -> Path:
    """A fresh qcow2 overlay on ROOT's image (a :class:`Root` or an
    :class:`Installed`) in WORKDIR; the image under it stays pristine."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    disk = workdir / "disk.qcow2"
    if disk.exists():
        disk.unlink()
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", root.image_format,
         "-b", str(root.image), str(disk)])
    return disk


INSTALLED_VERSION = "1"
#: installed images kept per flavour (each is a qcow2 of a few hundred MB)
INSTALLED_KEEP = 3


@dataclasses.dataclass(frozen=True)
class Installed:
    """A root with something installed at its first boot, powered off and
    cached, so later VMs boot it as the admin's server boots after the
    install: a qcow2 over the root's image, with the first-kernel initrd the
    install left in /boot.

    Cache layout under ``cache/installed/<flavour>-<key>/`` (KEY hashes the
    root's key, every file's path and bytes and the first-boot commands)::

        disk.qcow2      the root after the install (backing file: the root's image.raw)
        initrd.img      the root's /boot/initrd.img-KVER after the install
        installed.json  first-boot commands with their exit status and output, timings
        serial.log      the install boot's console
    """

    root: Root
    key: str
    dir: Path

    image_format = "qcow2"

    @property
    def image(self) -> Path:
        return self.dir / "disk.qcow2"

    @property
    def initrd(self) -> Path:
        return self.dir / "initrd.img"

    @property
    def flavour(self) -> str:
        return self.root.flavour

    @property
    def kernel(self) -> Kernel:
        return self.root.kernel

    @property
    def vmlinuz(self) -> Path:
        return self.root.vmlinuz

    @property
    def service(self) -> str:
        return self.root.service

    @property
    def info(self) -> dict:
        """installed.json."""
        return json.loads((self.dir / "installed.json").read_text())


def _file_digest(src, digest):
    if isinstance(src, (bytes, str)) and not (isinstance(src, str) and os.path.exists(src)):
        digest.update(src if isinstance(src, bytes) else src.encode())
    elif Path(src).is_dir():
        _tree_digest(Path(src), digest)
    else:
        digest.update(Path(src).read_bytes())


def installed_key(root: Root, files: dict, firstboot, then=()) -> str:
    """The cache key of an installed image: root, files (path and bytes), commands."""
    digest = hashlib.sha256(f"{INSTALLED_VERSION}\0{root.key}\0".encode())
    for dest in sorted(files):
        digest.update(dest.encode() + b"\0")
        _file_digest(files[dest], digest)
        digest.update(b"\0")
    digest.update(json.dumps(list(firstboot)).encode())
    if then:
        digest.update(b"\0then\0" + json.dumps(list(then)).encode())
    return digest.hexdigest()[:16]


def cached_install(root: Root, files: dict, firstboot, then=()) -> Installed:
    """The Installed these inputs give (``.info`` exists once it is built)."""
    key = installed_key(root, files, firstboot, then)
    return Installed(root, key, cache_dir() / "installed" / f"{root.flavour}-{key}")


def install(root: Root, *, files=None, firstboot=(), then=(), boot_timeout=1500,
            settle_timeout=900) -> Installed:
    """Return ROOT with FILES and FIRSTBOOT applied at a first boot (see
    :class:`RootVM`), building and caching it when needed.

    The build boots an overlay, waits for the first-boot commands (a failure
    raises VMError with the command's output) and for the kdump service to
    load the capture kernel, runs THEN (shell commands an admin types once
    the server is up, through the agent, in order; each one's exit status,
    output and seconds land in ``installed.json`` under "then" for the test
    to assert on, whatever its status), powers off cleanly and keeps the
    disk.  Same inputs, same image: a changed package, file or command is a
    new key and a new install boot.
    """
    files = dict(files or {})
    result = cached_install(root, files, firstboot, then)
    final = result.dir
    with locked(f"installed-{root.flavour}"):
        if (final / "installed.json").exists():
            return result
        work = final.with_name(final.name + ".build")
        shutil.rmtree(work, ignore_errors=True)
        vm = RootVM(root, overlay(root, work), files=files, firstboot=firstboot,
                    workdir=work / "boot", boot_timeout=boot_timeout)
        _log(f"installed {final.name}: install boot ({len(firstboot)} first-boot commands)")
        start = time.monotonic()
        # the two flavours' install boots may run side by side (ctest runs
        # the two chains at once, a guest on each core)
        try:
            vm.start()
            ready = vm.wait_ready()
            loaded = vm.wait_capture_loaded(settle_timeout)
            after = []
            for cmd in then:
                step = time.monotonic()
                rc, out = vm.run(cmd, timeout=settle_timeout)
                after.append({"command": cmd, "rc": rc, "output": out,
                              "seconds": round(time.monotonic() - step, 1)})
            vm.submit("systemctl poweroff")
            vm.wait_exit(300)
        finally:
            vm.kill()
        took = round(time.monotonic() - start, 1)
        initrd = vm.read_out(f"/boot/initrd.img-{root.kernel.kver}", work)
        initrd.rename(work / "initrd.img")
        (work / "boot" / "disk.raw").unlink(missing_ok=True)
        shutil.copy(vm.log_path, work / "serial.log")
        info = {"key": result.key, "root": root.key, "flavour": root.flavour,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files": sorted(files),
                "firstboot": [{"command": c, "rc": rc, "output": out, "seconds": secs}
                              for (c, rc, out), secs in zip(vm.firstboot_results(),
                                                            vm.firstboot_seconds())],
                "then": after,
                "timings": {"agent_ready_s": round(ready, 1),
                            "capture_loaded_s": round(loaded, 1), "total_s": took}}
        (work / "installed.json").write_text(json.dumps(info, indent=1) + "\n")
        shutil.rmtree(work / "boot")
        os.replace(work, final)
        _log(f"installed {final.name}: built in {took}s")
        stale = sorted((d for d in final.parent.glob(f"{root.flavour}-*")
                        if d.is_dir() and not d.name.endswith(".build")),
                       key=lambda d: d.stat().st_mtime, reverse=True)[INSTALLED_KEEP:]
        for old in stale:
            shutil.rmtree(old, ignore_errors=True)
        return result


def boot(root: Root, workdir=None, **kwargs) -> RootVM:
    """Start a RootVM on a new overlay of ROOT in WORKDIR (not waited for)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="nmimgr-root-"))
    return RootVM(root, overlay(root, workdir), workdir=workdir, **kwargs).start()


def _logged(cmd, log: Path, what: str, timeout=3600):
    """Run CMD with its output in LOG, each line with the seconds since the
    start (where a root's build time goes); raise LabError with the tail."""
    start = time.monotonic()
    with open(log, "a") as out, \
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        out.write(f"{0:7.1f} $ {shlex.join(map(str, cmd))}\n")
        for line in proc.stdout:
            out.write(f"{time.monotonic() - start:7.1f} {line.decode(errors='replace')}")
            out.flush()
            if time.monotonic() - start > timeout:
                proc.kill()
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        raise LabError(f"{what} exited {proc.returncode}:\n{tail}")


def _mmdebstrap(kernel: Kernel, target: Path):
    """The base tree: mmdebstrap of BASE_PACKAGES, apt's package lists kept
    for the flavours' installs."""
    rec = base_recipe(kernel)
    cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=directory",
           "--aptopt=APT::Install-Recommends \"false\"",
           "--aptopt=Acquire::Languages \"none\"",
           f"--keyring={kernels.KEYRING}",
           "--include=" + ",".join(rec["packages"]),
           "--skip=cleanup/apt/lists",
           SUITE, str(target), *_sources()]
    (target.parent / "mmdebstrap.cmd").write_text(shlex.join(cmd) + "\n")
    _logged(cmd, target.parent / "mmdebstrap.log", "mmdebstrap")


#: keeps maintainer scripts from starting services in the chroot (as
#: mmdebstrap's own policy-rc.d does while it installs)
POLICY_RC_D = "#!/bin/sh\n# nmimgr VM lab: no service starts in a chroot\nexit 101\n"


def _install_flavour(tree: Path, flavour: str, log: Path):
    """apt-get install FLAVOUR's packages into TREE (a copy of the base) in a
    chroot: a private mount namespace with /proc, /sys and /dev (gone when
    the command ends, whatever happens), services kept from starting, and
    apt's package lists and downloads removed afterwards as mmdebstrap's
    cleanup does."""
    rec_packages = FLAVOUR_PACKAGES[flavour]
    if flavour == "kdumpctl":
        # before dracut arrives: its trigger builds the first-kernel image
        # (generic, every driver), which took about 90 s with gzip -9
        (tree / "etc/dracut.conf.d").mkdir(parents=True, exist_ok=True)
        (tree / DRACUT_COMPRESS[0]).write_text(DRACUT_COMPRESS[1])
    policy = tree / "usr/sbin/policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    conf = "/etc/initramfs-tools/update-initramfs.conf"
    install = ("DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
               "-o Dpkg::Options::=--force-confold " + " ".join(rec_packages))
    if NO_INITRAMFS_UPDATE[flavour]:
        install = (f"cp -p {conf} {conf}.lab && "
                   f"sed -i 's/^update_initramfs=.*/update_initramfs=no/' {conf} && "
                   f"{{ {install}; rc=$?; mv {conf}.lab {conf}; exit $rc; }}")
    script = (f"set -e; t={shlex.quote(str(tree))}; "
              "mount -t proc proc \"$t/proc\"; mount --bind /sys \"$t/sys\"; "
              "mount --bind /dev \"$t/dev\"; "
              f"exec chroot \"$t\" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "
              f"LC_ALL=C.UTF-8 HOME=/root sh -c {shlex.quote(install)}")
    try:
        _logged(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                log, f"apt-get install {' '.join(rec_packages)} ({flavour})")
    finally:
        policy.unlink(missing_ok=True)
    _chroot(tree, "apt-get", "clean")
    for lists in (tree / "var/lib/apt/lists").glob("*"):
        if lists.is_file():
            lists.unlink()


#: bases kept (each is a directory tree of about 1.2 GB)
BASE_KEEP = 1


def build_base(kernel: Kernel) -> Path:
    """The base tree both flavours copy (see the module's docstring),
    built with mmdebstrap when it is not cached; returns its directory."""
    key = base_key(kernel)
    final = cache_dir() / "roots" / f"base-{key}"
    with locked("root-base"):
        if (final / "base.json").exists():
            return final / "tree"
        work = final.with_name(final.name + ".build")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        start = time.monotonic()
        _log(f"base root: mmdebstrap {SUITE} ({kernel.kver})")
        try:
            _mmdebstrap(kernel, work / "tree")
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        took = round(time.monotonic() - start, 1)
        (work / "base.json").write_text(json.dumps(
            {"key": key, "recipe": base_recipe(kernel),
             "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "timings": {"mmdebstrap_s": took}}, indent=1) + "\n")
        os.replace(work, final)
        _log(f"base root: built in {took}s")
        stale = sorted((d for d in final.parent.glob("base-*")
                        if d.is_dir() and not d.name.endswith(".build") and d != final),
                       key=lambda d: d.stat().st_mtime, reverse=True)[BASE_KEEP - 1:]
        for old in stale:
            shutil.rmtree(old, ignore_errors=True)
        return final / "tree"


def build_root(flavour: str, kernel: Kernel = None, *, force=False) -> Root:
    """Return the cached root of FLAVOUR, building it first when needed.

    Cold: a copy of the base (:func:`build_base`), the flavour's packages
    (:func:`_install_flavour`), customise, mkfs.ext4 -d.  The image is not booted
    here: its first boot (the install boot of test_root_nmimgr.py, the demo's)
    is where the kdump service builds its initrd, for a root that has
    nmimgr; under TCG a build takes minutes (mkdumprd about four), so a
    build without nmimgr first would be thrown away.
    """
    kernel = kernel or kernels.fetch(KERNEL_LINE)
    key = recipe_key(flavour, kernel)
    final = cache_dir() / "roots" / f"{flavour}-{key}"
    result = Root(flavour, kernel, key, final)
    with locked(f"root-{flavour}"):
        if (final / "root.json").exists() and not force:
            return result
        shutil.rmtree(final, ignore_errors=True)
        work = final.with_name(final.name + ".build")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        tree = work / "tree"
        building = Root(flavour, kernel, key, work)
        timings = {}
        try:
            start = time.monotonic()
            base = build_base(kernel)
            timings["base_s"] = round(time.monotonic() - start, 1)
            step = time.monotonic()
            _log(f"root {flavour}: the base plus {', '.join(FLAVOUR_PACKAGES[flavour])}")
            run(["cp", "-a", str(base), str(tree)], timeout=1200)
            shutil.copy(base.parent / "mmdebstrap.log", work / "mmdebstrap.log")
            _install_flavour(tree, flavour, work / "apt.log")
            timings["flavour_s"] = round(time.monotonic() - step, 1)
            _customise(tree, flavour, kernel)
            shutil.copy(tree / "boot" / f"vmlinuz-{kernel.kver}", building.vmlinuz)
            shutil.copy(tree / "boot" / f"initrd.img-{kernel.kver}", building.initrd)
            used = run(["du", "-sh", str(tree)]).split()[0]
            step = time.monotonic()
            run(["mkfs.ext4", "-q", "-F", "-d", str(tree), "-L", "root",
                 str(building.image), IMAGE_SIZE], timeout=1200)
            timings["mkfs_s"] = round(time.monotonic() - step, 1)
            shutil.rmtree(tree)
            timings["total_s"] = round(time.monotonic() - start, 1)
        except BaseException:
            if tree.exists():
                shutil.rmtree(tree, ignore_errors=True)
            raise
        info = {"key": key, "recipe": recipe(flavour, kernel), "tree_size": used,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "timings": timings}
        if flavour == "kdumpctl":
            info["adaptations"] = list(KDUMPCTL_ADAPTATIONS)
        (work / "root.json").write_text(json.dumps(info, indent=1) + "\n")
        os.replace(work, final)
        _log(f"root {flavour}: built in {timings['total_s']}s ({timings})")
        return result
