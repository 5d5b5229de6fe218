// SPDX-License-Identifier: GPL-2.0
/*
 * nmimgr: per-event policy for NMIs on x86.
 *
 * Admins list port 0x61 event codes to ignore (leave to the kernel), drop
 * (claim and count) or panic on (a kdump with a record of the trigger).
 * Once a panic is under way every managed NMI is dropped, and loaded in a
 * kdump capture kernel the module starts latched and drops the NMIs that
 * would otherwise kill the capture.  The decision logic lives in policy.c,
 * shared with the user-space tests; this file is the kernel glue.
 *
 * What "drop" can do: returning NMI_HANDLED keeps the kernel from its
 * fallback for the NMI ("NMI received for unknown reason", and the panics
 * of unknown_nmi_panic, panic_on_unrecovered_nmi and panic_on_io_nmi).
 * What it cannot do: stop the other handlers registered on the same type,
 * which all run whatever one of them returns (5.10 and 6.x alike), so a
 * driver that panics on every NMI (hpwdt) must be unloaded or configured.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/crash_dump.h>
#include <linux/delay.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/kobject.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/nmi.h>
#include <linux/printk.h>
#include <linux/rcupdate.h>
#include <linux/smp.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/timekeeping.h>
#include <asm/io.h>
#include <asm/mach_traps.h>
#include <asm/nmi.h>
#include <asm/x86_init.h>

#include "nmimgr_record.h"
#include "policy.h"

/* NMI types nmimgr can register on (types=). */
#define TYPE_BIT(t) (1u << (t))
#define TYPES_DEFAULT TYPE_BIT(NMIMGR_TYPE_UNKNOWN)

/*
 * io_check_error() holds IOCHK# cleared for 2 s before re-enabling it,
 * "to let the hardware settle"; a drop of an IOCHK NMI does the same, so a
 * stuck IOCHK# line cannot turn into an NMI storm.
 */
#define IOCHK_SETTLE_STEPS 20000
#define IOCHK_SETTLE_STEP_US 100

/*
 * The last event, packed into one word so a reader never sees half of it:
 * raw code (8 bits), type (2), action (3), CPU (13), uptime in ms (38 bits,
 * wraps after 8.7 years).  Zero means no event yet (type is never 0).
 */
#define LAST_CODE_SHIFT 0
#define LAST_TYPE_SHIFT 8
#define LAST_ACTION_SHIFT 10
#define LAST_CPU_SHIFT 13
#define LAST_TIME_SHIFT 26
#define LAST_CPU_MASK 0x1fffULL
#define LAST_TIME_MASK ((1ULL << 38) - 1)

/*
 * The policy in force.  Two static slots and an RCU-published pointer: a
 * writer fills the idle slot, publishes it, and waits for every NMI handler
 * that might still read the old slot before that slot is written again
 * (synchronize_rcu() waits for NMI handlers, see Documentation/RCU/NMI-RCU).
 * Static slots need no allocation, so parameters work from the kernel
 * command line of a built-in nmimgr too.  Writers hold policy_lock.
 */
static struct nmimgr_policy policy_slots[2] = {
	[0] = { .mask = NMIMGR_DEFAULT_MASK },
};
static struct nmimgr_policy __rcu *active_policy = &policy_slots[0];
static DEFINE_MUTEX(policy_lock);

static unsigned int nmi_types = TYPES_DEFAULT;
static int capture_drop = NMIMGR_CAPTURE_DROP_ALL;
static bool capture_kernel;
static bool live;		/* init done: log policy changes */
static unsigned int registered;	/* TYPE_BITs registered */

/* Set by the first panic decision; only its winner fills the record. */
static atomic_t panic_latch = ATOMIC_INIT(0);
static atomic_long_t nmi_count = ATOMIC_LONG_INIT(0);
static atomic_long_t action_count[NMIMGR_NR_ACTIONS];
static atomic_long_t code_count[NMIMGR_NR_CODES];
static atomic64_t last_event = ATOMIC64_INIT(0);

/* Filled once, in NMI context, by the CPU that wins panic_latch. */
static struct nmimgr_record trigger_record __aligned(128) = {
	.magic = { 'N', 'M', 'I', 'M', 'G', 'R', 't', 'r' },
	.version = NMIMGR_RECORD_VERSION,
	.size = NMIMGR_RECORD_SIZE,
};
static char panic_msg[128];

static struct kobject *nmimgr_kobj;

static void rearm_latch(unsigned int type, u8 reason)
{
	u8 first, second;
	unsigned int i;

	if (!nmimgr_rearm_bytes(type, reason, &first, &second))
		return;
	outb(first, NMI_REASON_PORT);
	if (type == NMIMGR_TYPE_IOCHK) {
		for (i = 0; i < IOCHK_SETTLE_STEPS; i++) {
			touch_nmi_watchdog();
			udelay(IOCHK_SETTLE_STEP_US);
		}
	}
	outb(second, NMI_REASON_PORT);
}
NOKPROBE_SYMBOL(rearm_latch);

static void fire_record(const struct nmimgr_policy *p, u8 raw,
			unsigned int type, unsigned int cpu)
{
	struct nmimgr_record *r = &trigger_record;

	r->flags = NMIMGR_RECORD_FIRED;
	r->raw_code = raw;
	r->masked_code = raw & p->mask;
	r->event_mask = p->mask;
	r->nmi_type = type;
	r->cpu = cpu;
	r->mono_ns = ktime_get_mono_fast_ns();
	r->real_ns = ktime_get_real_fast_ns();
	r->boot_ns = ktime_get_boot_fast_ns();
	r->nmis = atomic_long_read(&nmi_count);
	r->dropped = atomic_long_read(&action_count[NMIMGR_DROP]) +
		     atomic_long_read(&action_count[NMIMGR_LATCHED_DROP]);
	r->ignored = atomic_long_read(&action_count[NMIMGR_IGNORE]);
	r->unmanaged = atomic_long_read(&action_count[NMIMGR_UNMANAGED]);
	r->would_panic = atomic_long_read(&action_count[NMIMGR_WOULD_PANIC]);
	r->reserved = 0;
	barrier();
	r->checksum = nmimgr_record_checksum(r);
}
NOKPROBE_SYMBOL(fire_record);

static void account(enum nmimgr_action a, u8 raw, unsigned int type,
		    unsigned int cpu)
{
	u64 ms = ktime_get_mono_fast_ns() / NSEC_PER_MSEC;

	atomic_long_inc(&nmi_count);
	atomic_long_inc(&action_count[a]);
	atomic_long_inc(&code_count[raw]);
	atomic64_set(&last_event,
		     (u64)raw << LAST_CODE_SHIFT |
		     (u64)type << LAST_TYPE_SHIFT |
		     (u64)a << LAST_ACTION_SHIFT |
		     ((u64)cpu & LAST_CPU_MASK) << LAST_CPU_SHIFT |
		     (ms & LAST_TIME_MASK) << LAST_TIME_SHIFT);
}
NOKPROBE_SYMBOL(account);

/*
 * The NMI path: no sleeping, no allocation, no lock.  Reads the reason
 * byte itself (the kernel passes only the type), decides, and acts.
 */
static int nmimgr_handle(unsigned int type, struct pt_regs *regs)
{
	const struct nmimgr_policy *p;
	struct nmimgr_state st;
	enum nmimgr_action a;
	unsigned int cpu = smp_processor_id();
	u8 raw = x86_platform.get_nmi_reason();

	st.latched = atomic_read(&panic_latch) || READ_ONCE(oops_in_progress);
	st.capture_kernel = capture_kernel;
	st.capture_drop = READ_ONCE(capture_drop);
	p = rcu_dereference_sched(active_policy);
	a = nmimgr_decide(p, &st, raw);
	if (a == NMIMGR_PANIC && atomic_cmpxchg(&panic_latch, 0, 1) != 0)
		a = NMIMGR_LATCHED_DROP;
	account(a, raw, type, cpu);

	switch (a) {
	case NMIMGR_IGNORE:
		return NMI_DONE;
	case NMIMGR_UNMANAGED:
		pr_info_ratelimited("unmanaged NMI event 0x%02x (%u) type=%s cpu=%u: list it in events_ignore, events_drop or events_panic\n",
				    raw, raw, nmimgr_type_name(type), cpu);
		return NMI_DONE;
	case NMIMGR_WOULD_PANIC:
		pr_warn_ratelimited("dry run: would panic on NMI event 0x%02x (%u) type=%s cpu=%u\n",
				    raw, raw, nmimgr_type_name(type), cpu);
		return NMI_DONE;
	case NMIMGR_DROP:
		pr_info_ratelimited("dropped NMI event 0x%02x (%u) type=%s cpu=%u\n",
				    raw, raw, nmimgr_type_name(type), cpu);
		rearm_latch(type, raw);
		return NMI_HANDLED;
	case NMIMGR_LATCHED_DROP:
		pr_info_ratelimited("dropped NMI event 0x%02x (%u) type=%s cpu=%u: %s\n",
				    raw, raw, nmimgr_type_name(type), cpu,
				    capture_kernel ? "capture kernel" :
						     "panic or oops in progress");
		rearm_latch(type, raw);
		return NMI_HANDLED;
	case NMIMGR_PANIC:
		fire_record(p, raw, type, cpu);
		snprintf(panic_msg, sizeof(panic_msg),
			 "nmimgr: panic on NMI event 0x%02x (%u) type=%s cpu=%u mask=0x%02x",
			 raw, raw, nmimgr_type_name(type), cpu, p->mask);
		nmi_panic(regs, panic_msg);
		return NMI_HANDLED;
	default:
		return NMI_DONE;
	}
}
NOKPROBE_SYMBOL(nmimgr_handle);

static int nmimgr_unknown(unsigned int kernel_type, struct pt_regs *regs)
{
	return nmimgr_handle(NMIMGR_TYPE_UNKNOWN, regs);
}
NOKPROBE_SYMBOL(nmimgr_unknown);

static int nmimgr_serr(unsigned int kernel_type, struct pt_regs *regs)
{
	return nmimgr_handle(NMIMGR_TYPE_SERR, regs);
}
NOKPROBE_SYMBOL(nmimgr_serr);

static int nmimgr_iochk(unsigned int kernel_type, struct pt_regs *regs)
{
	return nmimgr_handle(NMIMGR_TYPE_IOCHK, regs);
}
NOKPROBE_SYMBOL(nmimgr_iochk);

/* One nmiaction per type: an action sits on one type's list only. */
static struct nmiaction nmimgr_actions[] = {
	{ .list = LIST_HEAD_INIT(nmimgr_actions[0].list),
	  .handler = nmimgr_unknown, .name = KBUILD_MODNAME },
	{ .list = LIST_HEAD_INIT(nmimgr_actions[1].list),
	  .handler = nmimgr_serr, .name = KBUILD_MODNAME },
	{ .list = LIST_HEAD_INIT(nmimgr_actions[2].list),
	  .handler = nmimgr_iochk, .name = KBUILD_MODNAME },
};

static const struct {
	unsigned int type;		/* NMIMGR_TYPE_* */
	unsigned int kernel_type;	/* NMI_* */
	struct nmiaction *action;
} nmimgr_types[] = {
	{ NMIMGR_TYPE_UNKNOWN, NMI_UNKNOWN, &nmimgr_actions[0] },
	{ NMIMGR_TYPE_SERR, NMI_SERR, &nmimgr_actions[1] },
	{ NMIMGR_TYPE_IOCHK, NMI_IO_CHECK, &nmimgr_actions[2] },
};

/* --- the policy parameters ------------------------------------------ */

static void log_policy(const char *why, const struct nmimgr_policy *p)
{
	static char buf[NMIMGR_POLICY_BUF];	/* under policy_lock */

	nmimgr_policy_format(p, buf, sizeof(buf));
	pr_info("%s: %s\n", why, buf);
}

/*
 * Compile @np and make it the policy in force.  Called with policy_lock
 * held, so the two slots alternate between one writer at a time.
 */
static void policy_commit(struct nmimgr_policy *np)
{
	static char buf[NMIMGR_LIST_BUF];	/* under policy_lock */
	struct nmimgr_policy *cur, *next;
	struct nmimgr_codeset overlap;

	lockdep_assert_held(&policy_lock);
	nmimgr_policy_compile(np, &overlap);
	if (!nmimgr_codeset_empty(&overlap)) {
		nmimgr_format_list(&overlap, buf, sizeof(buf));
		pr_warn("masked codes %s are in more than one list; the first of ignore, drop, panic decides\n",
			buf);
	}
	cur = rcu_dereference_protected(active_policy,
					lockdep_is_held(&policy_lock));
	next = cur == &policy_slots[0] ? &policy_slots[1] : &policy_slots[0];
	*next = *np;
	rcu_assign_pointer(active_policy, next);
	/* No handler still reads @cur once this returns: it is idle again. */
	synchronize_rcu();
	if (live)
		log_policy("policy changed", next);
}

static struct nmimgr_policy *policy_current(void)
{
	return rcu_dereference_protected(active_policy,
					 lockdep_is_held(&policy_lock));
}

static int reject(const struct kernel_param *kp, const char *val,
		  const char *err)
{
	pr_err("%s: rejected \"%.64s\": %s; policy in force unchanged\n",
	       kp->name, val, err);
	return -EINVAL;
}

static int list_set(const char *val, const struct kernel_param *kp)
{
	unsigned int l = *(const unsigned int *)kp->arg;
	struct nmimgr_codeset set;
	struct nmimgr_policy np;
	char err[NMIMGR_ERR_BUF];

	if (nmimgr_parse_list(val, &set, err, sizeof(err)))
		return reject(kp, val, err);
	mutex_lock(&policy_lock);
	np = *policy_current();
	np.lists[l] = set;
	policy_commit(&np);
	mutex_unlock(&policy_lock);
	return 0;
}

static int list_get(char *buffer, const struct kernel_param *kp)
{
	unsigned int l = *(const unsigned int *)kp->arg;
	size_t n;

	mutex_lock(&policy_lock);
	n = nmimgr_format_list(&policy_current()->lists[l], buffer,
			       PAGE_SIZE - 1);
	mutex_unlock(&policy_lock);
	n = min_t(size_t, n, PAGE_SIZE - 2);
	buffer[n++] = '\n';
	buffer[n] = '\0';
	return n;
}

static const struct kernel_param_ops list_ops = {
	.set = list_set,
	.get = list_get,
};

static unsigned int list_ids[NMIMGR_NR_LISTS] = {
	NMIMGR_LIST_IGNORE, NMIMGR_LIST_DROP, NMIMGR_LIST_PANIC,
};

module_param_cb(events_ignore, &list_ops, &list_ids[NMIMGR_LIST_IGNORE], 0644);
MODULE_PARM_DESC(events_ignore,
		 "Event codes left to the kernel's own handling, e.g. 0,13,16-20 (default: none)");
module_param_cb(events_drop, &list_ops, &list_ids[NMIMGR_LIST_DROP], 0644);
MODULE_PARM_DESC(events_drop,
		 "Event codes claimed and counted, never panicking (default: none)");
module_param_cb(events_panic, &list_ops, &list_ids[NMIMGR_LIST_PANIC], 0644);
MODULE_PARM_DESC(events_panic,
		 "Event codes that panic (kdump) with a trigger record (default: none)");

static int mask_set(const char *val, const struct kernel_param *kp)
{
	struct nmimgr_policy np;
	char err[NMIMGR_ERR_BUF];
	u8 mask;

	if (nmimgr_parse_byte(val, &mask, err, sizeof(err)))
		return reject(kp, val, err);
	mutex_lock(&policy_lock);
	np = *policy_current();
	np.mask = mask;
	policy_commit(&np);
	mutex_unlock(&policy_lock);
	return 0;
}

static int mask_get(char *buffer, const struct kernel_param *kp)
{
	int n;

	mutex_lock(&policy_lock);
	n = sprintf(buffer, "0x%02x\n", policy_current()->mask);
	mutex_unlock(&policy_lock);
	return n;
}

static const struct kernel_param_ops mask_ops = {
	.set = mask_set,
	.get = mask_get,
};
module_param_cb(event_mask, &mask_ops, NULL, 0644);
MODULE_PARM_DESC(event_mask,
		 "Bits of the port 0x61 byte that make the event code, applied to the byte and to every listed code (default: 0xcf; 0xff = exact match)");

static int dry_run_set(const char *val, const struct kernel_param *kp)
{
	struct nmimgr_policy np;
	char err[NMIMGR_ERR_BUF];
	bool dry_run;

	if (nmimgr_parse_bool(val, &dry_run, err, sizeof(err)))
		return reject(kp, val, err);
	mutex_lock(&policy_lock);
	np = *policy_current();
	np.dry_run = dry_run;
	policy_commit(&np);
	mutex_unlock(&policy_lock);
	return 0;
}

static int dry_run_get(char *buffer, const struct kernel_param *kp)
{
	int n;

	mutex_lock(&policy_lock);
	n = sprintf(buffer, "%d\n", policy_current()->dry_run ? 1 : 0);
	mutex_unlock(&policy_lock);
	return n;
}

static const struct kernel_param_ops dry_run_ops = {
	.set = dry_run_set,
	.get = dry_run_get,
};
module_param_cb(dry_run, &dry_run_ops, NULL, 0644);
MODULE_PARM_DESC(dry_run,
		 "Log and count panic decisions as \"would panic\" and leave the NMI to the kernel (default: 0)");

static int policy_set(const char *val, const struct kernel_param *kp)
{
	struct nmimgr_policy np;
	char err[NMIMGR_ERR_BUF];

	if (nmimgr_policy_parse(val, &np, err, sizeof(err)))
		return reject(kp, val, err);
	mutex_lock(&policy_lock);
	policy_commit(&np);
	mutex_unlock(&policy_lock);
	return 0;
}

static int policy_get(char *buffer, const struct kernel_param *kp)
{
	size_t n;

	mutex_lock(&policy_lock);
	n = nmimgr_policy_format(policy_current(), buffer, PAGE_SIZE - 1);
	mutex_unlock(&policy_lock);
	n = min_t(size_t, n, PAGE_SIZE - 2);
	buffer[n++] = '\n';
	buffer[n] = '\0';
	return n;
}

static const struct kernel_param_ops policy_ops = {
	.set = policy_set,
	.get = policy_get,
};
module_param_cb(policy, &policy_ops, NULL, 0644);
MODULE_PARM_DESC(policy,
		 "The whole policy in one write: \"ignore=LIST drop=LIST panic=LIST mask=BYTE dry_run=0|1\", keys left out take their defaults (default: \"ignore= drop= panic= mask=0xcf dry_run=0\")");

/* types= is read at load time only: registering is done once, in init. */
static int types_set(const char *val, const struct kernel_param *kp)
{
	unsigned int types = 0, i;
	const char *p = val;

	while (*p && *p != '\n') {
		size_t n = strcspn(p, ",\n");

		for (i = 0; i < ARRAY_SIZE(nmimgr_types); i++) {
			const char *name = nmimgr_type_name(nmimgr_types[i].type);

			if (strlen(name) == n && !strncmp(p, name, n))
				break;
		}
		if (i == ARRAY_SIZE(nmimgr_types))
			return reject(kp, val, "expected a list of unknown, serr, iochk");
		types |= TYPE_BIT(nmimgr_types[i].type);
		p += n;
		if (*p == ',')
			p++;
	}
	if (!types)
		return reject(kp, val, "at least one of unknown, serr, iochk");
	nmi_types = types;
	return 0;
}

static int types_get(char *buffer, const struct kernel_param *kp)
{
	unsigned int i;
	int n = 0;

	for (i = 0; i < ARRAY_SIZE(nmimgr_types); i++)
		if (nmi_types & TYPE_BIT(nmimgr_types[i].type))
			n += sprintf(buffer + n, "%s%s", n ? "," : "",
				     nmimgr_type_name(nmimgr_types[i].type));
	n += sprintf(buffer + n, "\n");
	return n;
}

static const struct kernel_param_ops types_ops = {
	.set = types_set,
	.get = types_get,
};
module_param_cb(types, &types_ops, NULL, 0444);
MODULE_PARM_DESC(types,
		 "NMI types to manage, at load time: unknown,serr,iochk (default: unknown; serr and iochk only where no other driver, such as hpwdt, registers on them)");

static int capture_drop_set(const char *val, const struct kernel_param *kp)
{
	if (sysfs_streq(val, "all"))
		WRITE_ONCE(capture_drop, NMIMGR_CAPTURE_DROP_ALL);
	else if (sysfs_streq(val, "managed"))
		WRITE_ONCE(capture_drop, NMIMGR_CAPTURE_DROP_MANAGED);
	else
		return reject(kp, val, "expected all or managed");
	return 0;
}

static int capture_drop_get(char *buffer, const struct kernel_param *kp)
{
	return sprintf(buffer, "%s\n",
		       READ_ONCE(capture_drop) == NMIMGR_CAPTURE_DROP_ALL ?
			       "all" : "managed");
}

static const struct kernel_param_ops capture_drop_ops = {
	.set = capture_drop_set,
	.get = capture_drop_get,
};
module_param_cb(capture_drop, &capture_drop_ops, NULL, 0644);
MODULE_PARM_DESC(capture_drop,
		 "In a kdump capture kernel, drop every NMI (all) or only listed codes (managed) (default: all)");

/* --- statistics: /sys/kernel/nmimgr/stats ------------------------------ */

static ssize_t stats_show(struct kobject *kobj, struct kobj_attribute *attr,
			  char *buf)
{
	static const char *const keys[NMIMGR_NR_ACTIONS] = {
		[NMIMGR_UNMANAGED] = "unmanaged",
		[NMIMGR_IGNORE] = "ignored",
		[NMIMGR_DROP] = "dropped",
		[NMIMGR_PANIC] = "panics",
		[NMIMGR_WOULD_PANIC] = "would_panic",
		[NMIMGR_LATCHED_DROP] = "latched_drops",
	};
	u64 last = atomic64_read(&last_event);
	bool dry_run;
	int n, a, c;

	rcu_read_lock_sched();
	dry_run = rcu_dereference_sched(active_policy)->dry_run;
	rcu_read_unlock_sched();

	n = sysfs_emit(buf, "nmis %ld\n", atomic_long_read(&nmi_count));
	for (a = 0; a < NMIMGR_NR_ACTIONS; a++)
		n += sysfs_emit_at(buf, n, "%s %ld\n", keys[a],
				   atomic_long_read(&action_count[a]));
	n += sysfs_emit_at(buf, n, "latched %d\n",
			   atomic_read(&panic_latch) || capture_kernel);
	n += sysfs_emit_at(buf, n, "capture_kernel %d\n", capture_kernel);
	n += sysfs_emit_at(buf, n, "dry_run %d\n", dry_run);
	n += sysfs_emit_at(buf, n, "fired %d\n",
			   !!(READ_ONCE(trigger_record.flags) &
			      NMIMGR_RECORD_FIRED));
	if (!last) {
		n += sysfs_emit_at(buf, n, "last_event none\n");
	} else {
		n += sysfs_emit_at(buf, n,
				   "last_event code=0x%02x type=%s cpu=%llu action=%s uptime_ms=%llu\n",
				   (unsigned int)(last >> LAST_CODE_SHIFT) & 0xff,
				   nmimgr_type_name((last >> LAST_TYPE_SHIFT) & 3),
				   (last >> LAST_CPU_SHIFT) & LAST_CPU_MASK,
				   nmimgr_action_name((last >> LAST_ACTION_SHIFT) & 7),
				   (last >> LAST_TIME_SHIFT) & LAST_TIME_MASK);
	}
	/* One line per code seen; stop short of the page rather than WARN. */
	for (c = 0; c < NMIMGR_NR_CODES; c++) {
		long cnt = atomic_long_read(&code_count[c]);

		if (!cnt)
			continue;
		if (n > PAGE_SIZE - 48) {
			n += sysfs_emit_at(buf, n, "truncated\n");
			break;
		}
		n += sysfs_emit_at(buf, n, "code 0x%02x %ld\n", c, cnt);
	}
	return n;
}

static struct kobj_attribute stats_attr = __ATTR_RO(stats);

static struct attribute *nmimgr_attrs[] = {
	&stats_attr.attr,
	NULL,
};

static const struct attribute_group nmimgr_group = {
	.attrs = nmimgr_attrs,
};

/* --- init and exit ------------------------------------------------------ */

static void unregister_handlers(void)
{
	int i;

	for (i = ARRAY_SIZE(nmimgr_types) - 1; i >= 0; i--) {
		if (!(registered & TYPE_BIT(nmimgr_types[i].type)))
			continue;
		unregister_nmi_handler(nmimgr_types[i].kernel_type,
				       KBUILD_MODNAME);
		registered &= ~TYPE_BIT(nmimgr_types[i].type);
	}
}

static int __init nmimgr_init(void)
{
	unsigned int i;
	int err;

	capture_kernel = is_kdump_kernel();

	nmimgr_kobj = kobject_create_and_add(KBUILD_MODNAME, kernel_kobj);
	if (!nmimgr_kobj)
		return -ENOMEM;
	err = sysfs_create_group(nmimgr_kobj, &nmimgr_group);
	if (err)
		goto err_put_kobj;

	for (i = 0; i < ARRAY_SIZE(nmimgr_types); i++) {
		if (!(nmi_types & TYPE_BIT(nmimgr_types[i].type)))
			continue;
		err = __register_nmi_handler(nmimgr_types[i].kernel_type,
					     nmimgr_types[i].action);
		if (err) {
			pr_err("cannot register on NMI type %s: %d\n",
			       nmimgr_type_name(nmimgr_types[i].type), err);
			goto err_unregister;
		}
		registered |= TYPE_BIT(nmimgr_types[i].type);
	}

	mutex_lock(&policy_lock);
	live = true;
	log_policy(capture_kernel ? "capture kernel, NMIs dropped; policy" :
				    "policy",
		   policy_current());
	mutex_unlock(&policy_lock);
	return 0;

err_unregister:
	unregister_handlers();
	sysfs_remove_group(nmimgr_kobj, &nmimgr_group);
err_put_kobj:
	kobject_put(nmimgr_kobj);
	return err;
}

static void __exit nmimgr_exit(void)
{
	unregister_handlers();
	sysfs_remove_group(nmimgr_kobj, &nmimgr_group);
	kobject_put(nmimgr_kobj);
}

module_init(nmimgr_init);
module_exit(nmimgr_exit);

MODULE_DESCRIPTION("Per-event NMI policy: ignore, drop or panic (kdump) on port 0x61 event codes");
MODULE_AUTHOR("nmimgr developers");
MODULE_LICENSE("GPL");
