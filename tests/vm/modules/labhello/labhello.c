// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * labhello: the VM lab's own smoke-test module.  Loading it proves that a
 * module built by the lab against a Debian kernel's headers loads in that
 * kernel; it prints one greppable line and does nothing else.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/init.h>
#include <linux/module.h>
#include <linux/utsname.h>

static int __init labhello_init(void)
{
	pr_info("loaded on %s\n", init_utsname()->release);
	return 0;
}

static void __exit labhello_exit(void)
{
	pr_info("unloaded\n");
}

module_init(labhello_init);
module_exit(labhello_exit);

MODULE_DESCRIPTION("nmimgr VM lab smoke-test module");
MODULE_LICENSE("GPL");
