# SPDX-License-Identifier: GPL-2.0-or-later
"""Run a lab kernel under QEMU (TCG) and talk to it.

Channels:

* serial console -> ``<workdir>/serial.log`` (:attr:`VM.serial_log`,
  :meth:`VM.wait_serial`)
* QMP unix socket -> :meth:`VM.qmp`, :meth:`VM.inject_nmi`
* 9p share ``<workdir>/share`` mounted at /out in the guest; the agent in
  lab/init.sh runs /out/cmd/ID.sh files (:meth:`VM.run`), and the capture
  kernel writes /out/dump/vmcore (:attr:`VM.dump`).
* virtio-serial port :data:`AGENT_PORT` (a unix socket on the host): the
  host sends each command's ID there, and the agent blocks reading it.  An
  agent that polled the share cost an idle guest a quarter of a host core
  under TCG, and close to a whole one once hundreds of commands had piled
  up in /out/cmd.

Every wait is bounded; every failure raises :class:`VMError` whose message
ends with the last lines of the serial console.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .kernels import Kernel
from .paths import LabError

QEMU = os.environ.get("NMIMGR_VMLAB_QEMU", "qemu-system-x86_64")
DEFAULT_APPEND = ("console=ttyS0 panic=-1 nmi_watchdog=0 crashkernel=256M "
                  "quiet loglevel=5")
READY = "nmimgr-lab: agent ready"
#: the virtio-serial port the agents read command ids from (init.sh, root/nmimgr-lab)
AGENT_PORT = "nmimgr.lab.agent"
TAIL_LINES = 60


class VMError(LabError):
    """A VM did not do what was expected; the message carries the console tail."""


def _connect(path: Path, timeout: float, alive) -> socket.socket:
    """A stream socket connected to QEMU's unix socket PATH, once QEMU made it."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline or not alive():
                raise
            time.sleep(0.05)


class QMP:
    """A minimal QMP client over a unix socket."""

    def __init__(self, path: Path, timeout: float = 10, alive=lambda: True):
        self.sock = _connect(path, timeout, alive)
        self.file = self.sock.makefile("rwb", buffering=0)
        greeting = self._read()
        if "QMP" not in greeting:
            raise VMError(f"unexpected QMP greeting {greeting}")
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        line = self.file.readline()
        if not line:
            raise VMError("QMP connection closed")
        return json.loads(line)

    def execute(self, command: str, **arguments):
        """Send COMMAND, return its "return" value; raise VMError on "error"."""
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise VMError(f"QMP {command}: {reply['error']}")
            return reply.get("return")

    def close(self):
        """Close the connection (QEMU keeps running)."""
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


class VM:
    """One QEMU guest booting KERNEL with INITRD.

    Use as a context manager (QEMU is always killed on exit)::

        with VM(kernel, initrd, workdir=tmp_path) as vm:
            vm.wait_ready()
            rc, out = vm.run("uname -r")
    """

    def __init__(self, kernel: Kernel, initrd: Path, *, workdir=None, append="",
                 base_append=DEFAULT_APPEND, memory=1024, smp=2, parallel_vcpus=False,
                 boot_timeout=120, extra_qemu=(), interactive=False):
        self.kernel = kernel
        self.initrd = Path(initrd)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="nmimgr-vm-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.share = self.workdir / "share"
        self.log_path = self.workdir / "serial.log"
        self.append = " ".join(w for w in (base_append, append) if w)
        self.memory, self.smp = memory, smp
        # TCG's threading.  By default the vCPUs take turns on one host thread
        # (thread=single): the lab runs two guests side by side on two cores,
        # and with a thread per vCPU (MTTCG) a vCPU spun on a guest lock whose
        # holder's thread the host had descheduled (no paravirtual spinlocks
        # under TCG).  Side by side, the busybox-image sets took 223 s and
        # 378 s instead of 332 s and 431 s.  PARALLEL_VCPUS: a thread per
        # vCPU, for tests whose point is that one CPU runs while another is
        # held (a panic or an oops held open, tests/vm/modules): in turns,
        # the held CPU's busy loop starved the other one of its NMIs.
        self.parallel_vcpus = parallel_vcpus
        self.boot_timeout = boot_timeout
        self.extra_qemu = list(extra_qemu)
        self.interactive = interactive
        self.proc = None
        self._qmp = None
        self._agent = None
        self._sockdir = None
        self._seq = 0

    # -- lifecycle ---------------------------------------------------------

    def _stage_share(self):
        """Share layout: boot/{vmlinuz,initrd} (for kexec), cmd/, dump/.

        cmd/ starts empty: command ids restart at 0001 with every start."""
        shutil.rmtree(self.share / "cmd", ignore_errors=True)
        for sub in ("boot", "cmd", "dump"):
            (self.share / sub).mkdir(parents=True, exist_ok=True)
        for src, name in ((self.kernel.vmlinuz, "vmlinuz"), (self.initrd, "initrd")):
            dest = self.share / "boot" / name
            if dest.exists():
                dest.unlink()
            try:
                os.link(src, dest)
            except OSError:
                shutil.copy(src, dest)

    def _serial_args(self):
        if self.interactive:
            # the console on the terminal (Ctrl-a x quits QEMU), still logged
            return ["-chardev", f"stdio,id=s0,mux=on,signal=off,logfile={self.log_path}",
                    "-serial", "chardev:s0", "-mon", "chardev=s0,mode=readline"]
        return ["-chardev", f"file,id=s0,path={self.log_path}", "-serial", "chardev:s0"]

    def command(self):
        """The QEMU command line."""
        self._sockdir = self._sockdir or tempfile.mkdtemp(prefix="nmimgr-qmp-")
        return [
            QEMU, "-accel", "tcg,thread=" + ("multi" if self.parallel_vcpus else "single"),
            "-m", str(self.memory), "-smp", str(self.smp),
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", str(self.kernel.vmlinuz), "-initrd", str(self.initrd),
            "-append", self.append,
            *self._serial_args(),
            "-qmp", f"unix:{self._sockdir}/qmp.sock,server=on,wait=off",
            "-virtfs", f"local,path={self.share},mount_tag=out,security_model=none",
            # the agent's doorbell: the guest blocks reading command ids here
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"socket,id=agent,path={self._sockdir}/agent.sock,server=on,wait=off",
            "-device", f"virtserialport,bus=vser0.0,chardev=agent,name={AGENT_PORT}",
            *self.extra_qemu,
        ]

    def start(self):
        """Start QEMU and connect QMP."""
        self._stage_share()
        self.log_path.write_bytes(b"")
        cmd = self.command()
        (self.workdir / "qemu.cmd").write_text(shlex.join(cmd) + "\n")
        self.started = time.monotonic()
        if self.interactive:
            self.proc = subprocess.Popen(cmd)
        else:
            with open(self.workdir / "qemu.log", "wb") as log:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT)
        try:
            self._qmp = QMP(Path(self._sockdir) / "qmp.sock", alive=lambda: self.running)
            self._agent = _connect(Path(self._sockdir) / "agent.sock", 10,
                                   lambda: self.running)
        except (OSError, VMError) as exc:
            self.kill()
            raise self.error(f"QMP or agent connection failed: {exc}") from exc
        return self

    def kill(self):
        """Stop QEMU (if running) and release the QMP socket."""
        if self._qmp:
            self._qmp.close()
            self._qmp = None
        if self._agent:
            self._agent.close()
            self._agent = None
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if self._sockdir:
            shutil.rmtree(self._sockdir, ignore_errors=True)
            self._sockdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()

    @property
    def running(self) -> bool:
        """True while QEMU runs."""
        return self.proc is not None and self.proc.poll() is None

    # -- serial console ----------------------------------------------------

    @property
    def serial_log(self) -> str:
        """The console output so far (\\r stripped)."""
        try:
            return self.log_path.read_text(errors="replace").replace("\r", "")
        except FileNotFoundError:
            return ""

    def tail(self, lines=TAIL_LINES) -> str:
        """The last LINES lines of the console."""
        return "\n".join(self.serial_log.splitlines()[-lines:])

    def error(self, message: str) -> VMError:
        """A VMError for MESSAGE, with the console tail appended."""
        state = "running" if self.running else f"exited {self.proc and self.proc.returncode}"
        qemu_log = self.workdir / "qemu.log"
        qemu = qemu_log.read_text(errors="replace").strip() if qemu_log.exists() else ""
        qemu = f"--- QEMU output ---\n{qemu[-2000:]}\n" if qemu else ""
        return VMError(f"{message} [{self.kernel.kver}, QEMU {state}, "
                       f"workdir {self.workdir}]\n{qemu}--- serial console (tail) ---\n"
                       f"{self.tail()}\n--- end ---")

    def wait_serial(self, pattern, timeout=60, *, start=0, fail=None):
        """Wait until regex PATTERN appears in the console (from offset START).

        Returns the match.  Raises VMError on timeout, when QEMU exits first, or
        when regex FAIL matches first.
        """
        regex = re.compile(pattern, re.M)
        bad = re.compile(fail, re.M) if fail else None
        deadline = time.monotonic() + timeout
        while True:
            text = self.serial_log[start:]
            match = regex.search(text)
            if match:
                return match
            if bad and bad.search(text):
                raise self.error(f"console showed {bad.search(text).group(0)!r} "
                                 f"while waiting for {pattern!r}")
            if not self.running:
                raise self.error(f"QEMU exited while waiting for {pattern!r}")
            if time.monotonic() > deadline:
                raise self.error(f"timed out after {timeout}s waiting for {pattern!r}")
            time.sleep(0.1)

    def wait_ready(self, timeout=None) -> float:
        """Wait for the agent's ready marker; return seconds since start."""
        self.wait_serial(re.escape(READY), timeout or self.boot_timeout,
                         fail=r"Kernel panic - not syncing.*|nmimgr-lab: FATAL.*")
        return time.monotonic() - self.started

    def wait_exit(self, timeout=120) -> int:
        """Wait for QEMU to exit (guest power-off or reset); return its status."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise self.error(f"QEMU still running after {timeout}s") from None

    # -- agent ---------------------------------------------------------------

    def submit(self, cmd: str) -> str:
        """Queue shell command CMD for the agent without waiting; return its id."""
        self._seq += 1
        cid = f"{self._seq:04d}"
        cmddir = self.share / "cmd"
        tmp = cmddir / f".{cid}.tmp"
        tmp.write_text(cmd + "\n")
        os.replace(tmp, cmddir / f"{cid}.sh")
        if self._agent is None:
            raise self.error(f"command {cid}: the VM is not running")
        try:
            self._agent.sendall(f"{cid}\n".encode())
        except OSError as exc:
            raise self.error(f"command {cid}: the agent port is closed ({exc})") from None
        return cid

    def result(self, cid: str, timeout=60):
        """Wait for command CID's answer; return (rc, output)."""
        rc_path = self.share / "cmd" / f"{cid}.rc"
        deadline = time.monotonic() + timeout
        while not rc_path.exists():
            if not self.running:
                raise self.error(f"QEMU exited before command {cid} finished")
            if time.monotonic() > deadline:
                cmd = (self.share / "cmd" / f"{cid}.sh").read_text().strip()
                raise self.error(f"command {cid} ({cmd!r}) gave no answer in {timeout}s")
            time.sleep(0.05)
        out = (self.share / "cmd" / f"{cid}.out").read_text(errors="replace")
        return int(rc_path.read_text().strip() or -1), out

    def run(self, cmd: str, timeout=60, check=False):
        """Run CMD in the guest with sh; return (rc, stdout+stderr).

        With CHECK, a non-zero status raises VMError.
        """
        rc, out = self.result(self.submit(cmd), timeout)
        if check and rc != 0:
            raise self.error(f"guest command {cmd!r} exited {rc}:\n{out}")
        return rc, out

    # -- QMP -----------------------------------------------------------------

    def qmp(self, command: str, **arguments):
        """Execute a QMP command and return its result."""
        if not self._qmp:
            raise self.error("QMP is not connected")
        try:
            return self._qmp.execute(command, **arguments)
        except (OSError, ValueError) as exc:
            raise self.error(f"QMP {command}: {exc}") from exc

    def inject_nmi(self):
        """Inject one NMI (QEMU delivers it to CPU 0)."""
        reply = self.qmp("inject-nmi")
        if reply != {}:
            raise self.error(f"inject-nmi answered {reply!r}")

    def inject_nmis(self, count: int, interval=0.05):
        """Inject COUNT NMIs INTERVAL seconds apart.

        Back-to-back injections coalesce while one is pending in the guest;
        50 ms apart, every one arrives (under TCG on this class of machine).
        """
        for i in range(count):
            if i:
                time.sleep(interval)
            self.inject_nmi()

    # -- guest helpers ---------------------------------------------------------

    def nmi_counts(self):
        """Per-CPU NMI counts from the guest's /proc/interrupts."""
        _, out = self.run("grep '^ *NMI:' /proc/interrupts", check=True)
        fields = out.split()[1:]
        return [int(f) for f in fields if f.isdigit()]

    @property
    def dump(self) -> Path:
        """Where the capture kernel's default script writes the dump."""
        return self.share / "dump" / "vmcore"

    def capture_rc(self):
        """The capture script's exit status, or None when it did not finish."""
        path = self.share / "capture.rc"
        return int(path.read_text().strip()) if path.exists() else None
