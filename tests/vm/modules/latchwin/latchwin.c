// SPDX-License-Identifier: GPL-2.0
/*
 * latchwin: a test-only module of the nmimgr VM lab.  It holds a panic open
 * for window_ms inside the panic notifier chain, so the lab can send NMIs
 * while a panic is under way and check that nmimgr drops them.  The kernel
 * runs the notifiers before kexec only with crash_kexec_post_notifiers on
 * its command line; without it this module never runs.  Never load it on a
 * machine you care about.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/nmi.h>
#include <linux/notifier.h>
#if __has_include(<linux/panic_notifier.h>)
#include <linux/panic_notifier.h>
#endif

static unsigned int window_ms = 4000;
module_param(window_ms, uint, 0444);
MODULE_PARM_DESC(window_ms, "How long to hold the panic open (default: 4000)");

static int latchwin_panic(struct notifier_block *nb, unsigned long event,
			  void *msg)
{
	unsigned int i;

	pr_emerg("panic window open for %u ms\n", window_ms);
	for (i = 0; i < window_ms; i++) {
		touch_nmi_watchdog();
		mdelay(1);
	}
	pr_emerg("panic window closed\n");
	return NOTIFY_DONE;
}

static struct notifier_block latchwin_nb = {
	.notifier_call = latchwin_panic,
};

static int __init latchwin_init(void)
{
	return atomic_notifier_chain_register(&panic_notifier_list,
					      &latchwin_nb);
}

static void __exit latchwin_exit(void)
{
	atomic_notifier_chain_unregister(&panic_notifier_list, &latchwin_nb);
}

module_init(latchwin_init);
module_exit(latchwin_exit);
MODULE_DESCRIPTION("nmimgr VM lab: hold a panic open to test the latch");
MODULE_LICENSE("GPL");
