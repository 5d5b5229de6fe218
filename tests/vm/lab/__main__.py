# SPDX-License-Identifier: GPL-2.0-or-later
"""Command line for humans: ``cd tests/vm && python3 -m lab COMMAND``.

  fetch [KERNEL...] [--refresh]     resolve and download the kernels
  build [KERNEL...] [-W] [--test-module NAME]...
                                    build module/ (and helper modules)
  boot KERNEL [--run CMD]... [--nmi N] [--kdump] [--file DEST=SRC]...
                                    boot, run commands, optionally crash+capture
  shell KERNEL [--file DEST=SRC]... an interactive console (Ctrl-a x quits)
  dumps DIR [--kernel KERNEL]       one real nmimgr NMI panic dumped by makedumpfile
                                    in every format into DIR (for bench/run.sh)
  root-base                         build and cache the mmdebstrap base both roots copy
  root build|boot|shell NAME [--install DEB|DIR]... [--file DEST=SRC]...
                    [--firstboot CMD]... [--run CMD]...
                    [--kdump]       a real Debian bookworm root (NAME: kdump-tools,
                                    kdumpctl): build and cache it, boot an overlay of
                                    it (optionally NMI-crash it and list /var/crash),
                                    or log in on its serial console

KERNEL is one of 5.10, 6.1, 6.12 (default for fetch/build: all).
"""

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import build, dumps, initramfs, kdump, kernels, roots
from .paths import LabError
from .vm import VM, VMError


def _kernels(names):
    return [kernels.fetch(name) for name in (names or kernels.labels())]


def _files(pairs):
    files = {}
    for pair in pairs or ():
        dest, sep, src = pair.partition("=")
        if not sep:
            raise LabError(f"--file {pair!r}: expected DEST=SRC")
        files[dest] = src
    return files


def cmd_fetch(args):
    """Resolve, download and unpack."""
    for name in args.kernels or kernels.labels():
        start = time.monotonic()
        kernel = kernels.fetch(name, refresh=args.refresh)
        print(f"{name}\t{kernel.kver}\t{time.monotonic() - start:.1f}s\t{kernel.root.parent}")


def cmd_build(args):
    """Build module/ and helper modules for each kernel."""
    for kernel in _kernels(args.kernels):
        start = time.monotonic()
        built = build.build_modules(kernel, extra_modules=args.test_module, w1=args.W)
        took = time.monotonic() - start
        for name, ko in built.items():
            print(f"{kernel.label}\t{name}\t{ko}")
        print(f"{kernel.label}\t({took:.1f}s)")


def cmd_boot(args):
    """Boot, run commands, inject NMIs, optionally go through kdump."""
    kernel = kernels.fetch(args.kernel)
    image = initramfs.build_initramfs(kernel, _files(args.file))
    workdir = args.workdir or tempfile.mkdtemp(prefix="nmimgr-vm-")
    with VM(kernel, image, workdir=workdir, append=args.append) as vm:
        print(f"booting {kernel.kver}, workdir {workdir}", flush=True)
        print(f"agent ready after {vm.wait_ready():.1f}s", flush=True)
        for cmd in args.run or ():
            rc, out = vm.run(cmd, timeout=args.timeout)
            print(f"$ {cmd}\n{out}[rc={rc}]", flush=True)
        if args.nmi:
            before = vm.nmi_counts()
            vm.inject_nmis(args.nmi)
            time.sleep(0.5)
            print(f"NMI counts {before} -> {vm.nmi_counts()}")
        if args.kdump:
            kdump.arm_kdump(vm, args.capture_append)
            start = time.monotonic()
            dump = kdump.crash_and_capture(vm)
            print(f"dump {dump} ({dump.stat().st_size} bytes) "
                  f"{time.monotonic() - start:.1f}s after the crash")
            print("\n".join(kdump.dump_dmesg(dump).splitlines()[-15:]))


def cmd_shell(args):
    """Interactive console on the terminal."""
    kernel = kernels.fetch(args.kernel)
    image = initramfs.build_initramfs(kernel, _files(args.file))
    workdir = args.workdir or tempfile.mkdtemp(prefix="nmimgr-vm-")
    print(f"{kernel.kver}: share {workdir}/share is /out; Ctrl-a x quits", flush=True)
    with VM(kernel, image, workdir=workdir, append=f"labshell=1 {args.append}",
            interactive=True) as vm:
        vm.proc.wait()


def cmd_dumps(args):
    """One real nmimgr NMI panic, dumped in every format, into DIR."""
    start = time.monotonic()
    dest = Path(args.dir)
    with tempfile.TemporaryDirectory(prefix="nmimgr-dumps-") as workdir:
        out, _ = dumps.every_format(workdir, args.kernel)
        # Each dump in a directory of its own, as in /var/crash (the check
        # of one file looks at its directory's other files: split parts);
        # the kernel log beside them.
        for path in sorted(out.iterdir()):
            if path.name == "dmesg.txt":
                sub = dest
            else:
                sub = dest / ("split" if path.name.startswith("s") else path.name)
            sub.mkdir(parents=True, exist_ok=True)
            shutil.move(path, sub / path.name)
            print(f"{(sub / path.name).stat().st_size:>12} {sub / path.name}")
    print(f"({time.monotonic() - start:.1f}s)")


def cmd_root_base(args):
    """Build and cache the mmdebstrap base both roots copy."""
    start = time.monotonic()
    tree = roots.build_base(kernels.fetch(roots.KERNEL_LINE))
    print(f"base\t{tree.parent}\t{time.monotonic() - start:.1f}s")
    print((tree.parent / "base.json").read_text().strip())


def cmd_root(args):
    """Build, boot or log in to a real Debian root."""
    start = time.monotonic()
    if args.name == "kdumpctl" and not (roots.KDUMP_UTILS / "kdumpctl").is_file():
        # a skip for ctest (SKIP_RETURN_CODE 77): the chain then skips, saying why
        print(f"vmlab: skipped: the real kdump-utils tree is absent ({roots.KDUMP_UTILS})",
              file=sys.stderr)
        sys.exit(77)
    root = roots.build_root(args.name, force=args.rebuild)
    if args.action == "build":
        info = root.info
        print(f"{root.flavour}\t{root.key}\t{root.dir}\t{info['tree_size']}\t"
              f"{time.monotonic() - start:.1f}s")
        print(json.dumps(info["timings"]))
        return
    workdir = args.workdir or tempfile.mkdtemp(prefix="nmimgr-root-")
    files, firstboot = roots.install_plan(args.install or None)
    files.update(_files(args.file))
    kwargs = {"files": files, "firstboot": firstboot + (args.firstboot or []),
              "append": args.append}
    if args.action == "shell":
        print(f"{root.flavour}: share {workdir}/share is /out; Ctrl-a x quits", flush=True)
        vm = roots.boot(root, workdir, interactive=True, **kwargs)
        try:
            vm.proc.wait()
        finally:
            vm.kill()
        return
    vm = roots.boot(root, workdir, **kwargs)
    try:
        print(f"booting {root.flavour} ({root.kernel.kver}), workdir {workdir}", flush=True)
        print(f"agent ready after {vm.wait_ready():.1f}s", flush=True)
        print(f"{root.service} loaded after {vm.wait_capture_loaded():.1f}s", flush=True)
        for cmd in args.run or ():
            rc, out = vm.run(cmd, timeout=args.timeout)
            print(f"$ {cmd}\n{out}[rc={rc}]", flush=True)
        if args.kdump:
            vm.run("sysctl -w kernel.unknown_nmi_panic=1", check=True)
            crash = time.monotonic()
            vm.inject_nmi()
            vm.wait_exit(900)
            print(f"NMI sent; QEMU exited {time.monotonic() - crash:.1f}s later "
                  f"({time.monotonic() - vm.started:.1f}s after start)", flush=True)
            out = vm.read_out("/var/crash", Path(workdir) / "out")
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    print(f"{path.stat().st_size:>12} {path.relative_to(out.parent)}")
        else:
            vm.submit("systemctl poweroff")
            vm.wait_exit(300)
    finally:
        vm.kill()


def main(argv=None):
    """Parse ARGV and run the subcommand; exit 1 with a message on lab errors."""
    parser = argparse.ArgumentParser(prog="python3 -m lab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="resolve and download kernels")
    fetch.add_argument("kernels", nargs="*")
    fetch.add_argument("--refresh", action="store_true", help="refresh package lists now")
    fetch.set_defaults(func=cmd_fetch)

    bld = sub.add_parser("build", help="build module/ and helper modules")
    bld.add_argument("kernels", nargs="*")
    bld.add_argument("-W", action="store_true", help="W=1")
    bld.add_argument("--test-module", action="append", default=[],
                     help="also build tests/vm/modules/NAME")
    bld.set_defaults(func=cmd_build)

    for name, func in (("boot", cmd_boot), ("shell", cmd_shell)):
        cmd = sub.add_parser(name, help=func.__doc__)
        cmd.add_argument("kernel", choices=kernels.labels())
        cmd.add_argument("--append", default="", help="extra kernel command line words")
        cmd.add_argument("--file", action="append", help="DEST=SRC into the initramfs")
        cmd.add_argument("--workdir", help="keep serial.log and share/ here")
        cmd.set_defaults(func=func)
        if name == "boot":
            cmd.add_argument("--run", action="append", help="guest command (repeatable)")
            cmd.add_argument("--timeout", type=float, default=60)
            cmd.add_argument("--nmi", type=int, default=0, help="inject N paced NMIs")
            cmd.add_argument("--kdump", action="store_true",
                             help="arm kdump, crash with sysrq, read the dump")
            cmd.add_argument("--capture-append", default="",
                             help="extra capture kernel command line words")

    dmp = sub.add_parser("dumps", help=cmd_dumps.__doc__)
    dmp.add_argument("dir")
    dmp.add_argument("--kernel", default="6.1", choices=kernels.labels())
    dmp.set_defaults(func=cmd_dumps)

    base = sub.add_parser("root-base", help=cmd_root_base.__doc__)
    base.set_defaults(func=cmd_root_base)

    root = sub.add_parser("root", help=cmd_root.__doc__)
    root.add_argument("action", choices=("build", "boot", "shell"))
    root.add_argument("name", choices=roots.FLAVOURS)
    root.add_argument("--rebuild", action="store_true", help="rebuild the cached root")
    root.add_argument("--append", default="", help="extra kernel command line words")
    root.add_argument("--file", action="append", help="DEST=SRC into the root before boot")
    root.add_argument("--install", action="append",
                      help="a .deb (apt-get install at first boot) or a tree copied over /")
    root.add_argument("--firstboot", action="append", help="command run at first boot")
    root.add_argument("--run", action="append", help="guest command (repeatable)")
    root.add_argument("--timeout", type=float, default=120)
    root.add_argument("--kdump", action="store_true",
                      help="NMI-panic it, let the service dump, list /var/crash")
    root.add_argument("--workdir", help="keep serial.log, share/ and the overlay here")
    root.set_defaults(func=cmd_root)

    args = parser.parse_args(argv)
    try:
        args.func(args)
    except (LabError, VMError) as exc:
        print(f"vmlab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
