// SPDX-License-Identifier: GPL-2.0
/*
 * panicwin: a test-only module of the nmimgr VM lab.  It holds a real
 * panic open with the other CPUs still running, so the lab can send NMIs
 * into a panic that is under way, and it sends an NMI IPI to a chosen CPU,
 * so the panic can start on a CPU that QEMU's inject-nmi never reaches.
 *
 *   hold_ms=N   at load: a kprobe on __crash_kexec() spins N ms at most
 *               (once), after panic() has taken panic_cpu and before the
 *               crash shutdown stops the other CPUs and disables their APICs
 *   held        read: 1 while the window is open (the other CPUs still run
 *               user space, so the lab's agent can read it)
 *   release=1   write: close the window now
 *   nmi_cpu=C   write: send an NMI IPI to CPU C (it arrives as an NMI of
 *               unknown reason: the port 0x61 byte decides nothing)
 *   panic=1     write: panic() from the writing task
 *
 * Why a kprobe: before kexec, panic() prints (deferred, in NMI context)
 * and goes straight to __crash_kexec(); nothing else holds it open with
 * external NMIs still arriving.  Never load this on a machine you care
 * about.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/math64.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/nmi.h>
#include <linux/timekeeping.h>
#include <asm/apic.h>

static unsigned int hold_ms;
module_param(hold_ms, uint, 0444);
MODULE_PARM_DESC(hold_ms, "Hold __crash_kexec() this long, once (default: 0, off)");

static bool held;
module_param(held, bool, 0444);
MODULE_PARM_DESC(held, "1 while the panic window is open");

static bool release;
module_param(release, bool, 0644);
MODULE_PARM_DESC(release, "Write 1 to close the panic window");

static bool done;

/*
 * The window is timed by the clocksource (ktime_get_mono_fast_ns() is safe
 * with interrupts off and in NMI context), not by mdelay(): mdelay() counts
 * this CPU's loops_per_jiffy, and a secondary CPU of a TCG guest that
 * calibrated its delay loop while the host was busy got a tenth of the
 * boot CPU's, so 15000 mdelay(1)s on it lasted 0.28 s.
 */
static int hold_pre(struct kprobe *kp, struct pt_regs *regs)
{
	u64 start, now;

	if (READ_ONCE(done))
		return 0;
	WRITE_ONCE(done, true);
	pr_emerg("panic window open for %u ms on cpu %d (oops_in_progress=%d)\n",
		 hold_ms, raw_smp_processor_id(), oops_in_progress);
	WRITE_ONCE(held, true);
	start = ktime_get_mono_fast_ns();
	do {
		touch_nmi_watchdog();
		cpu_relax();
		now = ktime_get_mono_fast_ns();
	} while (now - start < (u64)hold_ms * NSEC_PER_MSEC && !READ_ONCE(release));
	WRITE_ONCE(held, false);
	pr_emerg("panic window closed after %llu ms\n",
		 div_u64(now - start, NSEC_PER_MSEC));
	return 0;
}

static struct kprobe hold_probe = {
	.symbol_name = "__crash_kexec",
	.pre_handler = hold_pre,
};

static int nmi_cpu_set(const char *val, const struct kernel_param *kp)
{
	unsigned int cpu;
	int err = kstrtouint(val, 0, &cpu);

	if (err)
		return err;
	if (cpu >= nr_cpu_ids || !cpu_online(cpu))
		return -EINVAL;
	pr_info("sending an NMI IPI to cpu %u\n", cpu);
	apic->send_IPI(cpu, NMI_VECTOR);
	return 0;
}

static const struct kernel_param_ops nmi_cpu_ops = {
	.set = nmi_cpu_set,
};
module_param_cb(nmi_cpu, &nmi_cpu_ops, NULL, 0200);
MODULE_PARM_DESC(nmi_cpu, "Write a CPU number to send it an NMI IPI");

static int panic_set(const char *val, const struct kernel_param *kp)
{
	panic("panicwin: panic requested");
	return 0;
}

static const struct kernel_param_ops panic_ops = {
	.set = panic_set,
};
module_param_cb(panic, &panic_ops, NULL, 0200);
MODULE_PARM_DESC(panic, "Write anything to panic from the writing task");

static int __init panicwin_init(void)
{
	int err;

	if (!hold_ms)
		return 0;
	err = register_kprobe(&hold_probe);
	if (err)
		pr_err("cannot probe %s: %d\n", hold_probe.symbol_name, err);
	return err;
}

static void __exit panicwin_exit(void)
{
	if (hold_ms)
		unregister_kprobe(&hold_probe);
}

module_init(panicwin_init);
module_exit(panicwin_exit);
MODULE_DESCRIPTION("nmimgr VM lab: hold a panic open, send NMI IPIs");
MODULE_LICENSE("GPL");
