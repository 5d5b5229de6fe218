# SPDX-License-Identifier: GPL-2.0-or-later
"""kdump in a lab guest: load the capture kernel, crash, read the dump.

The capture kernel boots the same vmlinuz and the same initramfs (the VM puts
both on the 9p share at /out/boot); its /init sees /proc/vmcore and writes
/out/dump/vmcore, then powers off, which ends QEMU (-no-reboot).
"""

from pathlib import Path

from .paths import run
from .vm import VM

CAPTURE_APPEND = "console=ttyS0 irqpoll nr_cpus=1 reset_devices panic=-1 quiet loglevel=5"


def arm_kdump(vm: VM, capture_append="", *, base_append=CAPTURE_APPEND,
              kexec_args="", timeout=120):
    """Load the capture kernel with ``kexec -p`` in the running guest.

    CAPTURE_APPEND adds words to the capture kernel's command line (e.g.
    ``apic_extnmi=none``).  Raises VMError when kexec fails or the kernel does
    not report a loaded crash kernel.
    """
    append = " ".join(w for w in (base_append, capture_append) if w)
    vm.run(f'kexec -p {kexec_args} /out/boot/vmlinuz --initrd=/out/boot/initrd '
           f'--append="{append}"', timeout=timeout, check=True)
    _, loaded = vm.run("cat /sys/kernel/kexec_crash_loaded", check=True)
    if loaded.strip() != "1":
        raise vm.error(f"kexec -p succeeded but kexec_crash_loaded is {loaded.strip()!r}")


def crash_and_capture(vm: VM, trigger="echo c > /proc/sysrq-trigger", timeout=180) -> Path:
    """Crash the guest with TRIGGER, wait for the capture kernel to power off.

    TRIGGER is a guest shell command (submitted without waiting: it does not
    come back) or a host callable, e.g. ``vm.inject_nmi`` for an NMI panic.
    Returns the dump's path on the host; raises VMError (console tail
    included) when QEMU does not exit in time or no dump was written.
    """
    if callable(trigger):
        trigger()
    else:
        vm.submit(trigger)
    vm.wait_exit(timeout)
    rc = vm.capture_rc()
    if rc != 0 or not vm.dump.exists():
        raise vm.error(f"capture did not write a dump (capture rc {rc}, "
                       f"{vm.dump} {'exists' if vm.dump.exists() else 'missing'})")
    return vm.dump


def dump_dmesg(dump: Path) -> str:
    """The kernel log inside DUMP, read on the host with makedumpfile --dump-dmesg."""
    out = Path(dump).with_name(Path(dump).name + ".dmesg")
    if out.exists():
        out.unlink()
    run(["makedumpfile", "--dump-dmesg", str(dump), str(out)], timeout=120)
    return out.read_text(errors="replace")
