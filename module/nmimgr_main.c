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
 * nmimgr registers first on each type (NMI_FLAG_FIRST), so it has counted
 * and recorded an NMI before such a driver panics on it.
 *
 * Nothing the handler reaches sleeps, allocates, takes a lock or calls a
 * printk variant that does (5.10's printk_deferred(), which the kernel's
 * rate limiter uses to report "callbacks suppressed", takes logbuf_lock):
 * log lines go through plain printk(), which is NMI-safe on 5.10 to 6.12,
 * behind a rate limiter of nmimgr's own made of atomics.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/crash_dump.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/kobject.h>
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/nmi.h>
#include <linux/printk.h>
#include <linux/random.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/timekeeping.h>
#include <asm/apic.h>
#include <asm/io.h>
#include <asm/mach_traps.h>
#include <asm/nmi.h>
#include <asm/pgtable.h>
#include <asm/x86_init.h>

#include "nmimgr_record.h"
#include "policy.h"

/* NMI types nmimgr can register on (types=). */
#define TYPE_BIT(t) (1u << (t))
#define TYPES_DEFAULT TYPE_BIT(NMIMGR_TYPE_UNKNOWN)

/*
 * io_check_error() holds IOCHK# cleared for 2 s before re-enabling it,
 * "to let the hardware settle"; a drop of an IOCHK NMI does the same (but
 * not while a panic may be under way, see nmimgr_plan_port61()), so a
 * stuck IOCHK# line cannot turn into an NMI storm.
 */
#define IOCHK_SETTLE_STEP_US 100
#define IOCHK_SETTLE_STEPS (NMIMGR_IOCHK_SETTLE_US / IOCHK_SETTLE_STEP_US)

/*
 * Log lines from the NMI path: at most LOG_BURST per LOG_INTERVAL_NS, the
 * rest counted and reported in one line when the next interval opens.
 */
#define LOG_INTERVAL_NS (5 * NSEC_PER_SEC)
#define LOG_BURST 10

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
	[1] = { .mask = NMIMGR_DEFAULT_MASK },
};
static struct nmimgr_policy __rcu *active_policy =
	RCU_INITIALIZER(&policy_slots[0]);
static DEFINE_MUTEX(policy_lock);

static unsigned int nmi_types = TYPES_DEFAULT;
static int capture_drop = NMIMGR_CAPTURE_DROP_ALL;
static bool capture_kernel;
static bool live;		/* init done: log policy changes */
static unsigned int registered;	/* TYPE_BITs registered */

/*
 * Set by nmimgr's first panic decision; only its winner fills the record.
 * Not set by an oops or by someone else's panic: oops_in_progress, raised
 * by both, cannot tell them apart, and the kernel exports nothing that can
 * (panic_cpu is not exported).  A panic code during someone else's panic
 * goes to nmi_panic(), whose own panic_cpu test stops this CPU (another
 * CPU panics) or returns (this CPU already panics); the record says so.
 */
static atomic_t panic_latch = ATOMIC_INIT(0);
/* Monotonic ns of an unconfirmed first press (confirm=), 0 when none. */
static atomic64_t confirm_pending = ATOMIC64_INIT(0);
static atomic_long_t nmi_count = ATOMIC_LONG_INIT(0);
static atomic_long_t action_count[NMIMGR_NR_ACTIONS];
static atomic_long_t code_count[NMIMGR_NR_CODES];
static atomic64_t last_event = ATOMIC64_INIT(0);

/*
 * The end-to-end test (/sys/kernel/nmimgr/test): the CPU a test NMI was
 * sent to, plus one (0: none armed), and the action the handler took on
 * it, plus one (0: not seen yet).  Writers hold test_lock.
 */
static atomic_t test_armed = ATOMIC_INIT(0);
static atomic_t test_seen = ATOMIC_INIT(0);
static DEFINE_MUTEX(test_lock);

static struct {
	atomic64_t begin_ns;	/* start of the current interval */
	atomic_t printed;	/* lines printed in it */
	atomic_long_t missed;	/* lines held back, not yet reported */
	atomic_long_t total;	/* lines held back since load */
} nmi_log;

/* Filled once, in NMI context, by the CPU that wins panic_latch. */
static struct nmimgr_record trigger_record __aligned(128) = {
	.magic = { 'N', 'M', 'I', 'M', 'G', 'R', 't', 'r' },
	.version = NMIMGR_RECORD_VERSION,
	.size = NMIMGR_RECORD_SIZE,
};
static char panic_msg[128];

static struct kobject *nmimgr_kobj;

/*
 * Whether a line may be printed from the NMI path.  Lock-free: racing CPUs
 * may print a line or two over the burst, never block.  The report of held
 * back lines is a plain printk() too.
 */
static bool nmi_log_ok(void)
{
	u64 now = ktime_get_mono_fast_ns();
	s64 begin = atomic64_read(&nmi_log.begin_ns);
	long missed;

	if (now - (u64)begin >= LOG_INTERVAL_NS &&
	    atomic64_cmpxchg(&nmi_log.begin_ns, begin, now) == begin) {
		atomic_set(&nmi_log.printed, 0);
		missed = atomic_long_xchg(&nmi_log.missed, 0);
		if (missed)
			pr_info("%ld NMI log lines suppressed\n", missed);
	}
	if (atomic_inc_return(&nmi_log.printed) <= LOG_BURST)
		return true;
	atomic_long_inc(&nmi_log.missed);
	atomic_long_inc(&nmi_log.total);
	return false;
}
NOKPROBE_SYMBOL(nmi_log_ok);

#define nmi_log_info(fmt, ...)					\
	do {							\
		if (nmi_log_ok())				\
			pr_info(fmt, ##__VA_ARGS__);		\
	} while (0)
#define nmi_log_warn(fmt, ...)					\
	do {							\
		if (nmi_log_ok())				\
			pr_warn(fmt, ##__VA_ARGS__);		\
	} while (0)

/* Leave port 0x61 as the kernel would have after an unclaimed NMI. */
static void port61_after_drop(unsigned int type, u8 reason)
{
	struct nmimgr_port61_plan plan;
	unsigned int i;

	nmimgr_plan_port61(type, reason,
			   atomic_read(&panic_latch) ||
				   READ_ONCE(oops_in_progress),
			   &plan);
	if (!plan.writes)
		return;
	outb(plan.first, NMI_REASON_PORT);
	if (plan.writes < 2)
		return;
	if (plan.settle) {
		for (i = 0; i < IOCHK_SETTLE_STEPS; i++) {
			touch_nmi_watchdog();
			udelay(IOCHK_SETTLE_STEP_US);
		}
	}
	outb(plan.second, NMI_REASON_PORT);
}
NOKPROBE_SYMBOL(port61_after_drop);

static void fire_record(const struct nmimgr_policy *p, u8 raw,
			unsigned int type, unsigned int cpu, u64 first_ns,
			bool test)
{
	struct nmimgr_record *r = &trigger_record;
	int oops = READ_ONCE(oops_in_progress);

	r->flags = NMIMGR_RECORD_FIRED;
	if (oops)
		r->flags |= NMIMGR_RECORD_OOPS_UNDER_WAY;
	if (first_ns)
		r->flags |= NMIMGR_RECORD_CONFIRMED;
	if (test)
		r->flags |= NMIMGR_RECORD_TEST;
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
	/* nonce and phys were written at load */
	r->confirm_ns = first_ns;
	r->confirm_min_ms = p->confirm_min_ms;
	r->confirm_max_ms = p->confirm_max_ms;
	r->oops_depth = oops > 0 ? oops : 0;
	barrier();
	r->checksum = nmimgr_record_checksum(r);
}
NOKPROBE_SYMBOL(fire_record);

/* nmi_panic() came back: this CPU was already in someone else's panic. */
static void record_panic_under_way(void)
{
	struct nmimgr_record *r = &trigger_record;

	r->flags |= NMIMGR_RECORD_PANIC_UNDER_WAY;
	barrier();
	r->checksum = nmimgr_record_checksum(r);
}
NOKPROBE_SYMBOL(record_panic_under_way);

/*
 * Confirmation: publish the new pending time atomically; returns the
 * action and, in *first, the first press that this NMI confirmed (0: none).
 */
static enum nmimgr_action confirm(const struct nmimgr_policy *p,
				  enum nmimgr_action a, u64 *first)
{
	u64 now = ktime_get_mono_fast_ns(), next;
	s64 old = atomic64_read(&confirm_pending);
	enum nmimgr_action r;

	*first = 0;
	if (!p->confirm_min_ms)
		return a;
	do {
		r = nmimgr_confirm_step(p, a, (u64)old, now, &next);
	} while (!atomic64_try_cmpxchg(&confirm_pending, &old, (s64)next));
	if (r != NMIMGR_PENDING)
		*first = (u64)old;
	return r;
}
NOKPROBE_SYMBOL(confirm);

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
	u8 code;
	u64 first = 0;
	/* the test's NMI: armed for this CPU, taken once */
	bool test = atomic_read(&test_armed) == (int)cpu + 1 &&
		    atomic_cmpxchg(&test_armed, cpu + 1, 0) == (int)cpu + 1;

	st.latched = atomic_read(&panic_latch);
	st.capture_kernel = capture_kernel;
	st.capture_drop = READ_ONCE(capture_drop);
	p = rcu_dereference_sched(active_policy);
	code = raw & p->mask;
	a = nmimgr_decide(p, &st, raw);
	if (a == NMIMGR_PANIC || a == NMIMGR_WOULD_PANIC)
		a = confirm(p, a, &first);
	if (a == NMIMGR_PANIC && atomic_cmpxchg(&panic_latch, 0, 1) != 0)
		a = NMIMGR_LATCHED_DROP;
	account(a, raw, type, cpu);
	if (test)
		atomic_set(&test_seen, a + 1);

	switch (a) {
	case NMIMGR_IGNORE:
		break;
	case NMIMGR_UNMANAGED:
		nmi_log_info("unmanaged NMI event 0x%02x (%u) type=%s cpu=%u code=0x%02x: list code %u in events_ignore, events_drop or events_panic\n",
			     raw, raw, nmimgr_type_name(type), cpu, code,
			     code);
		break;
	case NMIMGR_PENDING:
		nmi_log_warn("%sNMI event 0x%02x (%u) type=%s cpu=%u code=0x%02x matches events_panic: press again %u-%u ms from now to %spanic (confirm=%u-%u)\n",
			     p->dry_run ? "dry run: " : "", raw, raw,
			     nmimgr_type_name(type), cpu, code,
			     p->confirm_min_ms, p->confirm_max_ms,
			     p->dry_run ? "log a would-" : "",
			     p->confirm_min_ms, p->confirm_max_ms);
		break;
	case NMIMGR_WOULD_PANIC:
		nmi_log_warn("dry run: would panic on NMI event 0x%02x (%u) type=%s cpu=%u code=0x%02x%s\n",
			     raw, raw, nmimgr_type_name(type), cpu, code,
			     first ? " confirmed" : "");
		break;
	case NMIMGR_DROP:
		nmi_log_info("dropped NMI event 0x%02x (%u) type=%s cpu=%u code=0x%02x\n",
			     raw, raw, nmimgr_type_name(type), cpu, code);
		port61_after_drop(type, raw);
		break;
	case NMIMGR_LATCHED_DROP:
		nmi_log_info("dropped NMI event 0x%02x (%u) type=%s cpu=%u code=0x%02x: %s\n",
			     raw, raw, nmimgr_type_name(type), cpu, code,
			     capture_kernel ? "capture kernel" :
					      "nmimgr panic in progress");
		port61_after_drop(type, raw);
		break;
	case NMIMGR_PANIC:
		fire_record(p, raw, type, cpu, first, test);
		snprintf(panic_msg, sizeof(panic_msg),
			 "nmimgr: panic on NMI event 0x%02x (%u) type=%s cpu=%u mask=0x%02x code=0x%02x record=%016llx%s%s",
			 raw, raw, nmimgr_type_name(type), cpu, p->mask, code,
			 (unsigned long long)trigger_record.nonce,
			 first ? " confirmed" : "", test ? " test" : "");
		nmi_panic(regs, panic_msg);
		/* Only a CPU that was already in panic() gets here. */
		record_panic_under_way();
		break;
	default:
		break;
	}
	return nmimgr_action_handled(p, a) ? NMI_HANDLED : NMI_DONE;
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

/*
 * One nmiaction per type: an action sits on one type's list only.  First
 * on each list, so nmimgr counts and records an NMI before a handler that
 * panics on it (hpwdt, ipmi_watchdog's pre-timeout) runs.
 */
static struct nmiaction nmimgr_actions[] = {
	{ .list = LIST_HEAD_INIT(nmimgr_actions[0].list),
	  .handler = nmimgr_unknown, .flags = NMI_FLAG_FIRST,
	  .name = KBUILD_MODNAME },
	{ .list = LIST_HEAD_INIT(nmimgr_actions[1].list),
	  .handler = nmimgr_serr, .flags = NMI_FLAG_FIRST,
	  .name = KBUILD_MODNAME },
	{ .list = LIST_HEAD_INIT(nmimgr_actions[2].list),
	  .handler = nmimgr_iochk, .flags = NMI_FLAG_FIRST,
	  .name = KBUILD_MODNAME },
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
	static struct nmimgr_compile_report report;	/* under policy_lock */
	struct nmimgr_policy *cur, *next;

	lockdep_assert_held(&policy_lock);
	nmimgr_policy_compile(np, &report);
	if (!nmimgr_codeset_empty(&report.overlap)) {
		nmimgr_format_list(&report.overlap, buf, sizeof(buf));
		pr_warn("masked codes %s are in more than one list; the first of ignore, drop, panic decides\n",
			buf);
	}
	if (!nmimgr_codeset_empty(&report.folded)) {
		nmimgr_format_list(&report.folded, buf, sizeof(buf));
		pr_warn("listed codes %s differ only in bits mask 0x%02x drops and match alike (each code is matched as code & 0x%02x)\n",
			buf, np->mask, np->mask);
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

	if (nmimgr_parse_mask(val, &mask, err, sizeof(err)))
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
		 "Bits of the port 0x61 byte that make the event code, applied to the byte and to every listed code; must keep 0xc0 (default: 0xc0, SERR and IOCHK only; 0xff = exact match)");

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

static int confirm_set(const char *val, const struct kernel_param *kp)
{
	struct nmimgr_policy np;
	char err[NMIMGR_ERR_BUF];
	u32 lo, hi;

	if (nmimgr_parse_confirm(val, &lo, &hi, err, sizeof(err)))
		return reject(kp, val, err);
	mutex_lock(&policy_lock);
	np = *policy_current();
	np.confirm_min_ms = lo;
	np.confirm_max_ms = hi;
	policy_commit(&np);
	mutex_unlock(&policy_lock);
	return 0;
}

static int confirm_get(char *buffer, const struct kernel_param *kp)
{
	const struct nmimgr_policy *p;
	size_t n;

	mutex_lock(&policy_lock);
	p = policy_current();
	n = nmimgr_format_confirm(p->confirm_min_ms, p->confirm_max_ms, buffer,
				  PAGE_SIZE - 1);
	mutex_unlock(&policy_lock);
	buffer[n++] = '\n';
	buffer[n] = '\0';
	return n;
}

static const struct kernel_param_ops confirm_ops = {
	.set = confirm_set,
	.get = confirm_get,
};
module_param_cb(confirm, &confirm_ops, NULL, 0644);
MODULE_PARM_DESC(confirm,
		 "Panic only on a second NMI of a panic code MIN-MAX ms after the first: 0 (off), 1 (500-10000) or MIN-MAX (default: 0)");

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
		 "The whole policy in one write: \"ignore=LIST drop=LIST panic=LIST mask=BYTE dry_run=0|1 confirm=WINDOW\", keys left out take their defaults (default: \"ignore= drop= panic= mask=0xc0 dry_run=0 confirm=0\")");

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
		[NMIMGR_PENDING] = "pending",
	};
	u64 last = atomic64_read(&last_event);
	u64 pending = (u64)atomic64_read(&confirm_pending);
	const struct nmimgr_policy *p;
	char window[24];
	bool dry_run;
	u32 max_ms;
	u8 mask;
	int n, a, c, m;

	rcu_read_lock_sched();
	p = rcu_dereference_sched(active_policy);
	dry_run = p->dry_run;
	mask = p->mask;
	max_ms = p->confirm_max_ms;
	nmimgr_format_confirm(p->confirm_min_ms, p->confirm_max_ms, window,
			      sizeof(window));
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
	n += sysfs_emit_at(buf, n, "confirm %s\n", window);
	/* a first press whose window is still open */
	if (pending && max_ms &&
	    ktime_get_mono_fast_ns() - pending <= (u64)max_ms * NSEC_PER_MSEC)
		n += sysfs_emit_at(buf, n, "confirm_pending_ms %llu\n",
				   pending / NSEC_PER_MSEC);
	else
		n += sysfs_emit_at(buf, n, "confirm_pending_ms none\n");
	n += sysfs_emit_at(buf, n, "log_suppressed %ld\n",
			   atomic_long_read(&nmi_log.total));
	n += sysfs_emit_at(buf, n, "mask 0x%02x\n", mask);
	if (!last) {
		n += sysfs_emit_at(buf, n, "last_event none\n");
	} else {
		c = (last >> LAST_CODE_SHIFT) & 0xff;
		n += sysfs_emit_at(buf, n,
				   "last_event raw=0x%02x code=0x%02x type=%s cpu=%llu action=%s uptime_ms=%llu\n",
				   c, c & mask,
				   nmimgr_type_name((last >> LAST_TYPE_SHIFT) & 3),
				   (last >> LAST_CPU_SHIFT) & LAST_CPU_MASK,
				   nmimgr_action_name((last >> LAST_ACTION_SHIFT) & 7),
				   (last >> LAST_TIME_SHIFT) & LAST_TIME_MASK);
	}
	/*
	 * Per code as it is matched now (raw & mask), then per raw byte;
	 * stop short of the page rather than WARN.
	 */
	for (m = 0; m < NMIMGR_NR_CODES; m++) {
		long cnt = 0;

		if ((m & mask) != m)
			continue;
		for (c = 0; c < NMIMGR_NR_CODES; c++)
			if ((c & mask) == m)
				cnt += atomic_long_read(&code_count[c]);
		if (!cnt)
			continue;
		if (n > PAGE_SIZE - 48)
			goto truncated;
		n += sysfs_emit_at(buf, n, "code 0x%02x %ld\n", m, cnt);
	}
	for (c = 0; c < NMIMGR_NR_CODES; c++) {
		long cnt = atomic_long_read(&code_count[c]);

		if (!cnt)
			continue;
		if (n > PAGE_SIZE - 48)
			goto truncated;
		n += sysfs_emit_at(buf, n, "raw 0x%02x %ld\n", c, cnt);
	}
	return n;
truncated:
	return n + sysfs_emit_at(buf, n, "truncated\n");
}

static struct kobj_attribute stats_attr = __ATTR_RO(stats);

/*
 * /sys/kernel/nmimgr/record (root only): what binds a dump's record to this
 * load, so that `nmimgrctl test` can tell its own dump on the next boot.
 */
static ssize_t record_show(struct kobject *kobj, struct kobj_attribute *attr,
			   char *buf)
{
	return sysfs_emit(buf, "nonce %016llx\nphys 0x%llx\nfired %d\n",
			  (unsigned long long)trigger_record.nonce,
			  (unsigned long long)trigger_record.phys,
			  !!(READ_ONCE(trigger_record.flags) &
			     NMIMGR_RECORD_FIRED));
}

static struct kobj_attribute record_attr = __ATTR(record, 0400, record_show,
						   NULL);

/* --- the end-to-end test: /sys/kernel/nmimgr/test ------------------------ */

#define TEST_WAIT_STEP_MS 10
#define TEST_WAIT_STEPS 100	/* 1 s for the NMI to reach the handler */

/*
 * Send one NMI to another online CPU (this one when it is alone) through
 * the local APIC in NMI delivery mode, as the kernel's own backtrace NMIs
 * go, and wait until nmimgr's handler has taken it.  Returns the action
 * plus one, 0 when the NMI never reached nmimgr (another NMI_LOCAL handler
 * claimed it, or it was swallowed as a back-to-back NMI), or does not
 * return at all: the policy panicked on it.
 */
static int test_send_one(unsigned int *target)
{
	int seen = 0, i;

	cpus_read_lock();
	*target = cpumask_any_but(cpu_online_mask, raw_smp_processor_id());
	if (*target >= nr_cpu_ids)
		*target = raw_smp_processor_id();
	atomic_set(&test_seen, 0);
	atomic_set(&test_armed, *target + 1);
	apic->send_IPI_mask(cpumask_of(*target), NMI_VECTOR);
	cpus_read_unlock();
	for (i = 0; i < TEST_WAIT_STEPS; i++) {
		seen = atomic_read(&test_seen);
		if (seen)
			break;
		msleep(TEST_WAIT_STEP_MS);
	}
	atomic_set(&test_armed, 0);
	/* re-read: the NMI may have taken the mark just before it was cleared */
	return seen ? seen : atomic_read(&test_seen);
}

/*
 * Writing "crash" starts the real NMI path on purpose: the NMI is decided
 * with the policy in force like any other (with a confirmation window, a
 * second NMI follows half way into it), and a record it fires carries
 * NMIMGR_RECORD_TEST.  The write returns only when nothing panicked; when
 * it returns without an error, the NMI reached nmimgr, which took the
 * action that the log line and stats' last_event name.
 */
static ssize_t test_store(struct kobject *kobj, struct kobj_attribute *attr,
			  const char *buf, size_t count)
{
	const struct nmimgr_policy *p;
	unsigned int target = 0, gap_ms = 0;
	int presses, i, seen = 0;
	bool dry_run;

	if (!sysfs_streq(buf, "crash")) {
		pr_err("test: rejected \"%.16s\": write \"crash\" to send the test NMI\n",
		       buf);
		return -EINVAL;
	}
	if (capture_kernel || atomic_read(&panic_latch)) {
		pr_err("test: refused: %s\n",
		       capture_kernel ? "this is the capture kernel" :
					"nmimgr is latched by a panic");
		return -EBUSY;
	}
	if (!(registered & TYPE_BIT(NMIMGR_TYPE_UNKNOWN))) {
		pr_err("test: refused: the test NMI is of type unknown, which types= leaves out\n");
		return -EOPNOTSUPP;
	}
	if (!mutex_trylock(&test_lock))
		return -EBUSY;
	rcu_read_lock_sched();
	p = rcu_dereference_sched(active_policy);
	dry_run = p->dry_run;
	if (p->confirm_min_ms)
		gap_ms = p->confirm_min_ms +
			 (p->confirm_max_ms - p->confirm_min_ms) / 2;
	rcu_read_unlock_sched();
	presses = gap_ms ? 2 : 1;
	pr_warn("test: sending %d NMI%s%s (pid %d, %s)%s\n", presses,
		presses > 1 ? "s" : "", presses > 1 ? " inside the confirm window" : "",
		task_pid_nr(current), current->comm,
		dry_run ? ", dry run: no panic" : "");
	for (i = 0; i < presses; i++) {
		if (i)
			msleep(gap_ms);
		seen = test_send_one(&target);
		if (!seen)
			break;
	}
	mutex_unlock(&test_lock);
	if (!seen) {
		pr_err("test: the NMI sent to CPU %u did not reach nmimgr (another NMI handler claimed it); nothing changed\n",
		       target);
		return -ETIMEDOUT;
	}
	pr_warn("test: NMI on CPU %u taken with action %s: no panic\n", target,
		nmimgr_action_name(seen - 1));
	return count;
}

static struct kobj_attribute test_attr = __ATTR_WO(test);

static struct attribute *nmimgr_attrs[] = {
	&stats_attr.attr,
	&record_attr.attr,
	&test_attr.attr,
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

/*
 * A loaded module can read the kernel command line modprobe took its
 * nmimgr.* parameters from, and tell when the kernel split a policy.  Built
 * in, nmimgr runs before /proc is mounted; docs/module.md has the rules.
 */
static int check_cmdline(void)
{
	char msg[NMIMGR_ERR_BUF + 128];
	struct file *f;
	loff_t pos = 0;
	ssize_t len;
	char *line;
	int ret = 0;

#ifndef MODULE
	return 0;
#endif
	f = filp_open("/proc/cmdline", O_RDONLY, 0);
	if (IS_ERR(f))
		return 0;
	line = kzalloc(PAGE_SIZE, GFP_KERNEL);
	if (line) {
		len = kernel_read(f, line, PAGE_SIZE - 1, &pos);
		if (len > 0) {
			ret = nmimgr_cmdline_check(line, msg, sizeof(msg));
			if (ret < 0)
				pr_err("%s; not loading\n", msg);
			else if (ret > 0)
				pr_warn("%s\n", msg);
		}
		kfree(line);
	}
	filp_close(f, NULL);
	return ret < 0 ? -EINVAL : 0;
}

/*
 * The kernel wants one handler on NMI_SERR and NMI_IO_CHECK and WARNs at a
 * second registration (__register_nmi_handler()), which panics a machine
 * with panic_on_warn=1.  hpwdt is the one in-tree driver that registers
 * there: refuse to load next to it rather than WARN.  Only a module can
 * look (its kobject's kset is /sys/module); built in, nmimgr initialises
 * before any driver module loads.
 */
static struct kset *module_kset_of_this(void)
{
#ifdef MODULE
	return THIS_MODULE->mkobj.kobj.kset;
#else
	return NULL;
#endif
}

static int check_claimants(void)
{
	static const char *const claimants[] = { "hpwdt" };
	struct kobject *other;
	unsigned int i;

	if (!module_kset_of_this() ||
	    !(nmi_types & (TYPE_BIT(NMIMGR_TYPE_SERR) |
			   TYPE_BIT(NMIMGR_TYPE_IOCHK))))
		return 0;
	for (i = 0; i < ARRAY_SIZE(claimants); i++) {
		other = kset_find_obj(module_kset_of_this(), claimants[i]);
		if (!other)
			continue;
		kobject_put(other);
		pr_err("%s is loaded and registers on NMI_SERR and NMI_IO_CHECK; a second handler there makes the kernel WARN (a panic with panic_on_warn=1): load nmimgr with types=unknown, or without %s\n",
		       claimants[i], claimants[i]);
		return -EBUSY;
	}
	return 0;
}

static int __init nmimgr_init(void)
{
	unsigned int i;
	int err;

	BUILD_BUG_ON(NMIMGR_NR_ACTIONS > 8);	/* last_event packs 3 bits */
	capture_kernel = is_kdump_kernel();
	err = check_cmdline();
	if (err)
		return err;
	err = check_claimants();
	if (err)
		return err;

	/* Bind the record to this load and this place (nmimgr_record.h). */
	trigger_record.nonce = get_random_u64();
	trigger_record.phys = slow_virt_to_phys(&trigger_record);

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
