// SPDX-License-Identifier: GPL-2.0
/*
 * latchwin: a test-only module of the nmimgr VM lab.  Writing 1 to its
 * "oops" parameter oopses the writing task (BUG()), and its die notifier
 * holds that oops open for window_ms with oops_in_progress raised, so the
 * lab can send NMIs while an oops is under way and check that nmimgr drops
 * them.  The machine survives: the oops kills only the writer.
 *
 * Why an oops and not a panic: panic() stops the other CPUs and then
 * disables the panicking CPU's own local APIC (native_stop_other_cpus(),
 * or machine_crash_shutdown() on the kdump path), so external NMIs stop
 * arriving before the panic notifiers run.  During an oops the local APIC
 * stays up.  Never load this module on a machine you care about.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/kdebug.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/nmi.h>
#include <linux/notifier.h>

static unsigned int window_ms = 4000;
module_param(window_ms, uint, 0444);
MODULE_PARM_DESC(window_ms, "How long to hold the oops open (default: 4000)");

static bool armed;

static int latchwin_die(struct notifier_block *nb, unsigned long event,
			void *data)
{
	unsigned int i;

	if (event != DIE_OOPS || !READ_ONCE(armed))
		return NOTIFY_DONE;
	WRITE_ONCE(armed, false);
	pr_emerg("oops window open for %u ms (oops_in_progress=%d)\n",
		 window_ms, oops_in_progress);
	for (i = 0; i < window_ms; i++) {
		touch_nmi_watchdog();
		mdelay(1);
	}
	pr_emerg("oops window closed\n");
	return NOTIFY_DONE;
}

static struct notifier_block latchwin_nb = {
	.notifier_call = latchwin_die,
};

static int oops_set(const char *val, const struct kernel_param *kp)
{
	WRITE_ONCE(armed, true);
	BUG();
	return 0;
}

static const struct kernel_param_ops oops_ops = {
	.set = oops_set,
};
module_param_cb(oops, &oops_ops, NULL, 0200);
MODULE_PARM_DESC(oops, "Write anything to oops the writing task");

static int __init latchwin_init(void)
{
	return register_die_notifier(&latchwin_nb);
}

static void __exit latchwin_exit(void)
{
	unregister_die_notifier(&latchwin_nb);
}

module_init(latchwin_init);
module_exit(latchwin_exit);
MODULE_DESCRIPTION("nmimgr VM lab: hold an oops open to test the latch");
MODULE_LICENSE("GPL");
