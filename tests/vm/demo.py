#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The BMC-NMI crash-capture demo, in the VM lab.

The server is a real Debian 12 root (systemd, kdump-tools with
initramfs-tools, DKMS, Debian's 6.1 kernel) booting under QEMU; the
operator's BMC NMI button is QMP's inject-nmi.  The admin installs nmimgr
from its own .debs with apt and says which NMI means "dump this machine"
(``panic = 0`` in /etc/nmimgr.conf, applied with ``nmimgr-load --apply``).
Then the server hangs, the operator presses the button, nmimgr panics with
a trigger record, kdump-tools' capture kernel boots with nmimgr's shield
(apic_extnmi=none, the NMI sysctls off, nmimgr loaded latched from the
kdump initrd), a second press during the dump changes nothing, the dump is
written, and on the next boot nmimgr-annotate.service finds it complete
and names the NMI that caused it.

First run: the root (mmdebstrap and the kdump-tools packages, ~5 min), the
packages (~1.5 min) and the install boot (apt, DKMS, the kdump initrd: ~3.5 min)
are built and cached; later runs boot the installed server straight away
(about 3.5 min).

Usage: demo.py [--out DIR] [--debs DIR]
       demo.py --busybox [--kernel 6.1] [--out DIR]   (the 2-minute lab variant:
       discovery and a dry-run rollout on the lab's busybox initramfs)
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import build, debs, initramfs, kdump, kernels, roots  # noqa: E402
from lab.paths import REPO_DIR, LabError  # noqa: E402
from lab.vm import VM  # noqa: E402
import nmimgr_guest as ng  # noqa: E402


def say(text):
    """One step of the story."""
    print(f"\n=== {text}", flush=True)


def show(text):
    """Guest output, indented."""
    for line in text.rstrip("\n").splitlines():
        print(f"    {line}")


def guest(vm, cmd):
    """Run CMD in the guest, echo it and its output."""
    print(f"  # {cmd}")
    rc, out = vm.run(cmd)
    show(out)
    if rc:
        raise SystemExit(f"demo: guest command failed ({rc}): {cmd}")
    return out


def busybox_demo(args):
    """The two-minute variant: the lab's busybox initramfs, no distribution."""
    say(f"Preparing Debian's {args.kernel} kernel, nmimgr.ko and the initramfs")
    kernel = kernels.fetch(args.kernel)
    ko = build.build_module(kernel, REPO_DIR / "module")
    image = initramfs.build_initramfs(kernel, {"/nmimgr/nmimgr.ko": ko})
    print(f"    kernel {kernel.kver}, module {ko}")

    work = args.out.resolve()
    shutil.rmtree(work, ignore_errors=True)
    vm = VM(kernel, image, workdir=work / "vm")
    try:
        say("Booting the server (QEMU TCG, 2 CPUs, 1 GiB, crashkernel=256M)")
        vm.start()
        print(f"    up in {vm.wait_ready():.1f} s")

        say("Step 1: load nmimgr with no policy and press the BMC NMI button")
        guest(vm, f"insmod {ng.KO}")
        ng.dmesg_clear(vm)
        ng.send_nmis(vm, 1)
        guest(vm, "dmesg | grep -E 'nmimgr|Uhhuh|Dazed'")
        print("    -> the discovery line names the byte (0x21/0x31) and the code it is")
        print("       matched as: 0x00 under the default mask 0xc0 (neither SERR nor")
        print("       IOCHK). Any stray unknown NMI reads the same, so the policy asks")
        print("       for a double press (confirm=1: a second press 0.5-10 s later).")

        say("Step 2: roll the policy out in dry run first: press twice, a second apart")
        guest(vm, f"echo 'panic=0 confirm=1 dry_run=1' > {ng.PARAMS}/policy && "
                  f"cat {ng.PARAMS}/policy")
        ng.dmesg_clear(vm)
        ng.send_nmis(vm, 1)
        time.sleep(1.0)
        ng.send_nmis(vm, 1)
        guest(vm, "dmesg | grep nmimgr")
        guest(vm, f"grep -E '^(nmis|pending|would_panic|panics|last_event)' {ng.STATS}")

        say("Step 3: arm kdump; the capture kernel loads nmimgr before makedumpfile")
        guest(vm, f"echo 'panic=0 confirm=1' > {ng.PARAMS}/policy && cat {ng.PARAMS}/policy")
        time.sleep(10.5)    # let the dry run's last press age out of the window
        # unknown_nmi_panic=1 and no apic_extnmi: without nmimgr a second NMI
        # would panic the capture kernel and leave a truncated dump.
        kdump.arm_kdump(vm, "unknown_nmi_panic=1")
        (vm.share / "capture.sh").write_text(ng.CAPTURE_SH)
        print("    capture command line: ... unknown_nmi_panic=1 (the harshest case)")

        say("Step 4: the server hangs; the operator presses the BMC NMI button twice")
        start = time.monotonic()
        vm.inject_nmi()
        time.sleep(1.0)
        vm.inject_nmi()
        vm.wait_serial(r"nmimgr-lab: makedumpfile running", timeout=180)
        print(f"    capture kernel is writing the dump ({time.monotonic() - start:.1f} s)")
        say("Step 5: an impatient operator presses the button again, mid-dump")
        vm.inject_nmi()
        vm.wait_exit(240)
        print(f"    capture finished, machine powered off ({time.monotonic() - start:.1f} s)")
    finally:
        vm.kill()

    share = vm.share
    rc = (share / "capture.rc").read_text().strip() if (share / "capture.rc").exists() else "?"
    say("In the capture kernel")
    show((share / "capture-stats").read_text())
    print(f"    makedumpfile exit status {rc}; second NMI arrived during the dump: "
          f"{'yes' if (share / 'nmi-during-dump').read_text().strip() == '1' else 'no'}")
    show("\n".join(line for line in (share / "capture-dmesg").read_text().splitlines()
                   if "nmimgr" in line))

    say("The dump, read on the host")
    crash = work / "crash" / time.strftime("%Y%m%d%H%M")
    crash.mkdir(parents=True)
    dump = crash / f"dump.{crash.name}"
    shutil.move(str(vm.dump), dump)
    log = kdump.dump_dmesg(dump)     # as kdump-tools saves it: dmesg.<stamp>
    dump.with_name(dump.name + ".dmesg").rename(crash / f"dmesg.{crash.name}")
    m = ng.PANIC_LINE.search(log)
    print(f"    {dump} ({dump.stat().st_size // 1024} KiB)")
    print(f"    {m.group(0) if m else 'NO nmimgr panic line found'}")
    check = REPO_DIR / "build" / "tools" / "cli" / "nmimgr-vmcore-check"
    if check.exists():
        say("Is the dump whole, and which NMI triggered it?")
        print(f"  # nmimgr-vmcore-check --annotate {crash.parent}")
        subprocess.run([str(check), "--annotate", str(crash.parent)], check=False)
        note = json.loads((crash / "nmimgr.json").read_text())
        print(f"  # {crash / 'nmimgr.json'} (trigger)")
        show(json.dumps({k: note["trigger"][k] for k in
                         ("nmimgr", "source", "raw_code", "masked_code", "nmi_type", "cpu")
                         if k in note["trigger"]}, indent=2))
    if not m or rc != "0":
        raise SystemExit("demo: the capture did not go as expected")
    say(f"Done. Everything is under {work}")


#: the admin's edit of /etc/nmimgr.conf: the BMC button's code panics.  The
#: rest is the packaged default: no confirmation (confirm = 1 would ask for
#: a second press 0.5-10 s after the first), the whole capture shield on.
ADMIN_EDIT = "panic = 0"
MAKEDUMPFILE = re.compile(r"running makedumpfile (.*)")


def serial_lines(vm, start, *patterns):
    """Console lines from START on matching one of PATTERNS (ANSI stripped)."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", vm.serial_log[start:])
    return [line.strip() for line in text.splitlines()
            if any(re.search(p, line) for p in patterns)]


def root_demo(args):
    """The real chain on a Debian 12 root with kdump-tools."""
    timings = {}
    start = time.monotonic()
    say("Preparing: Debian 12 root with kdump-tools (cached), nmimgr's own .debs")
    root = roots.build_root("kdump-tools")
    print(f"    root {root.dir.name}: Debian bookworm, kernel {root.kernel.kver}")
    packages = debs.with_dependencies(args.debs, current=True)
    for deb in packages[:2]:
        print(f"    {deb}")
    install_files, install_cmds = roots.install_plan(packages)
    firstboot = install_cmds + [f"printf '%s\\n' '{ADMIN_EDIT}' >> /etc/nmimgr.conf",
                                "nmimgr-load --apply"]
    cached = roots.cached_install(root, install_files, firstboot)
    fresh = not (cached.dir / "installed.json").exists()

    say("The admin installs nmimgr: apt-get install ./nmimgr_*.deb ./nmimgr-dkms_*.deb")
    if fresh:
        print("    first run: booting the root once to install (apt, DKMS, the kdump initrd: ~3.5 min)")
    installed = roots.install(root, files=install_files, firstboot=firstboot)
    info = installed.info
    timings["install_s"] = info["timings"]["total_s"]
    print(f"    install boot {'done now' if fresh else 'cached from ' + info['built']}, "
          f"took {info['timings']['total_s']:.0f} s")
    apt, edit, apply = info["firstboot"]
    show("\n".join(line for line in apt["output"].splitlines()
                   if re.search(r"^Setting up nmimgr|DKMS|Installing to|nmimgr-kdump:", line)))
    print(f"  # echo '{ADMIN_EDIT}' >> /etc/nmimgr.conf && nmimgr-load --apply")
    show(apply["output"])

    work = args.out.resolve()
    shutil.rmtree(work, ignore_errors=True)
    vm = roots.RootVM(installed, roots.overlay(installed, work / "server"),
                      workdir=work / "server", boot_timeout=900)
    try:
        say("The server boots as it does every day after the install")
        vm.start()
        timings["boot_s"] = round(vm.wait_ready(), 1)
        timings["capture_loaded_s"] = round(vm.wait_capture_loaded(600), 1)
        print(f"    agent up in {timings['boot_s']:.0f} s, capture kernel loaded at "
              f"{timings['capture_loaded_s']:.0f} s")
        guest(vm, "grep -v '^#' /etc/nmimgr.conf | grep .")
        guest(vm, "systemctl is-active nmimgr.service; cat /sys/module/nmimgr/parameters/policy")
        guest(vm, "kdump-config status")
        guest(vm, "tr ' ' '\\n' < /var/crash/kexec_cmd | "
                  "grep -E '^(apic_extnmi|sysctl\\.|systemd\\.unit|.*pretimeout)'")
        guest(vm, "lsinitramfs \"$(readlink -f /var/lib/kdump/initrd.img)\" | grep nmimgr")

        say("The server hangs; the operator presses the BMC NMI button")
        mark = len(vm.serial_log)
        crash = time.monotonic()
        vm.inject_nmi()
        vm.wait_serial(MAKEDUMPFILE.pattern, timeout=600, start=mark)
        print(f"    capture kernel running makedumpfile after {time.monotonic() - crash:.0f} s")
        say("An impatient operator presses it again, mid-dump")
        vm.inject_nmi()
        vm.wait_exit(900)
        timings["nmi_to_reboot_s"] = round(time.monotonic() - crash, 1)
    finally:
        vm.kill()
    print(f"    dump written, capture kernel rebooted ({timings['nmi_to_reboot_s']:.0f} s after "
          "the first press); the capture kernel's console:")
    show("\n".join(serial_lines(vm, mark, r"nmimgr", r"Kernel panic", r"Command line:.*elfcorehdr",
                                r"running makedumpfile", r"dumpfile is saved", r"kdump-tools:")))

    say("The next boot: nmimgr-annotate.service checks the new dump")
    again = roots.RootVM(installed, vm.disk, workdir=work / "next-boot", boot_timeout=900)
    try:
        again.start()
        again.wait_ready()
        props = again.wait_unit_done("nmimgr-annotate.service", 600)
        timings["annotated_s"] = round(time.monotonic() - again.started, 1)
        print(f"    nmimgr-annotate.service {props['Result']} at {timings['annotated_s']:.0f} s "
              "after power-on")
        guest(again, "journalctl -b -u nmimgr-annotate.service -o cat --no-pager")
        guest(again, "nmimgr-vmcore-check /var/crash")
        print("  # cat /var/crash/*/nmimgr.json (verdict and trigger)")
        _, note = again.run("cat /var/crash/*/nmimgr.json", check=True)
        annotation = json.loads(note)
        trigger = annotation.get("trigger", {})
        show(json.dumps({"verdict": annotation.get("verdict"),
                         **{k: trigger[k] for k in ("nmimgr", "source", "raw_code", "masked_code",
                                                    "nmi_type", "cpu") if k in trigger}},
                        indent=2))
        again.submit("systemctl poweroff")
        again.wait_exit(300)
    finally:
        again.kill()
    crash_dir = again.read_out("/var/crash", work)
    say(f"Done in {time.monotonic() - start:.0f} s. The server's /var/crash is in {crash_dir}")
    print(f"    timings: {json.dumps(timings)}")
    if annotation.get("verdict") != "complete" or not trigger.get("nmimgr"):
        raise SystemExit("demo: the dump is not complete or names no nmimgr trigger")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busybox", action="store_true",
                        help="the 2-minute variant on the lab's busybox initramfs")
    parser.add_argument("--kernel", default="6.1", choices=kernels.labels(),
                        help="with --busybox: the kernel line")
    parser.add_argument("--out", type=Path, default=REPO_DIR / "out" / "demo")
    parser.add_argument("--debs", type=Path, default=REPO_DIR / "build" / "packages",
                        help="where nmimgr's .debs are built (rebuilt when the tree changed)")
    args = parser.parse_args()
    try:
        busybox_demo(args) if args.busybox else root_demo(args)
    except LabError as exc:
        raise SystemExit(f"demo: {exc}") from None


if __name__ == "__main__":
    main()
