#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The BMC-NMI crash-capture demo, in the VM lab.

A "server" (Debian's 6.1 kernel under QEMU) runs nmimgr.  The operator's BMC
NMI button is QMP's inject-nmi.  The demo shows the code the button produces
(discovery), a safe dry-run rollout, then the real thing: the NMI panics
the server with a trigger record, the kdump capture kernel loads nmimgr
first, a second button press during the dump is dropped, and the dump is
whole and names the NMI that caused it.

Usage: demo.py [--kernel 6.1] [--out DIR]
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import build, initramfs, kdump, kernels  # noqa: E402
from lab.paths import REPO_DIR  # noqa: E402
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="6.1", choices=kernels.labels())
    parser.add_argument("--out", type=Path, default=REPO_DIR / "out" / "demo")
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
