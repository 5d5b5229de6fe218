// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * nmimgr policy core; see policy.h.  Compiled into nmimgr.ko and into the
 * user-space unit tests, so it uses only what both have: snprintf, strlen,
 * memset and memcpy.
 */
#ifdef __KERNEL__
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/string.h>
#else
#include <stdio.h>
#include <string.h>
/* The handler reaches these functions: no kprobe may land in them. */
#define NOKPROBE_SYMBOL(fn)
#endif

#include "policy.h"
#include "nmimgr_record.h"

/*
 * Port 0x61 bits the kernel writes to clear and re-arm the NMI latches
 * (NMI_REASON_CLEAR_MASK, _CLEAR_SERR, _CLEAR_IOCHK in asm/mach_traps.h).
 */
#define PORT61_CONTROL_MASK 0x0f
#define PORT61_CLEAR_SERR 0x04
#define PORT61_CLEAR_IOCHK 0x08

static const char *const list_keys[NMIMGR_NR_LISTS] = {
	[NMIMGR_LIST_IGNORE] = "ignore",
	[NMIMGR_LIST_DROP] = "drop",
	[NMIMGR_LIST_PANIC] = "panic",
};

static int fail(char *err, size_t errlen, const char *msg, const char *what,
		size_t pos)
{
	if (err && errlen)
		snprintf(err, errlen, "%s%s at position %zu", msg, what, pos);
	return -1;
}

bool nmimgr_codeset_empty(const struct nmimgr_codeset *s)
{
	unsigned int i;

	for (i = 0; i < NMIMGR_NR_CODES / 64; i++)
		if (s->bits[i])
			return false;
	return true;
}

void nmimgr_codeset_and(struct nmimgr_codeset *out,
			const struct nmimgr_codeset *a,
			const struct nmimgr_codeset *b)
{
	unsigned int i;

	for (i = 0; i < NMIMGR_NR_CODES / 64; i++)
		out->bits[i] = a->bits[i] & b->bits[i];
}

/*
 * Length of @s without one trailing newline, or SIZE_MAX if longer than
 * @max.
 */
static size_t input_len_max(const char *s, size_t max)
{
	size_t n = 0;

	while (s[n] && n <= max)
		n++;
	if (n && s[n - 1] == '\n' && !s[n])
		n--;
	if (n > max)
		return (size_t)-1;
	return n;
}

static size_t input_len(const char *s)
{
	return input_len_max(s, NMIMGR_MAX_INPUT);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Parse one code at s[*pos] (decimal, or hex after "0x"), at most @end.
 * The value is capped while accumulating, so no digit string overflows.
 */
static int parse_code(const char *s, size_t end, size_t *pos,
		      unsigned int *out, char *err, size_t errlen)
{
	size_t i = *pos, start = *pos;
	unsigned int v = 0;
	char what[16];

	if (i + 1 < end && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
		i += 2;
		if (i >= end || hex_value(s[i]) < 0)
			return fail(err, errlen, "expected hex digits after 0x",
				    "", i);
		while (i < end && hex_value(s[i]) >= 0) {
			v = v * 16 + (unsigned int)hex_value(s[i]);
			if (v > 0xffff)
				v = 0xffff;
			i++;
		}
	} else {
		if (i >= end || !is_digit(s[i])) {
			if (i >= end)
				return fail(err, errlen, "expected a code",
					    " (end of input)", i);
			snprintf(what, sizeof(what), " but found '%c'", s[i]);
			return fail(err, errlen, "expected a code", what, i);
		}
		while (i < end && is_digit(s[i])) {
			v = v * 10 + (unsigned int)(s[i] - '0');
			if (v > 0xffff)
				v = 0xffff;
			i++;
		}
	}
	if (v >= NMIMGR_NR_CODES) {
		if (err && errlen)
			snprintf(err, errlen,
				 "code %.*s out of range 0-255 at position %zu",
				 (int)(i - start > 12 ? 12 : i - start),
				 s + start, start);
		return -1;
	}
	*out = v;
	*pos = i;
	return 0;
}

static int parse_list_n(const char *s, size_t end, struct nmimgr_codeset *out,
			char *err, size_t errlen)
{
	struct nmimgr_codeset set;
	size_t pos = 0;
	char what[16];

	memset(&set, 0, sizeof(set));
	while (pos < end) {
		unsigned int lo, hi, c;

		if (parse_code(s, end, &pos, &lo, err, errlen))
			return -1;
		hi = lo;
		if (pos < end && s[pos] == '-') {
			pos++;
			if (parse_code(s, end, &pos, &hi, err, errlen))
				return -1;
			if (hi < lo) {
				if (err && errlen)
					snprintf(err, errlen,
						 "range %u-%u is reversed before position %zu",
						 lo, hi, pos);
				return -1;
			}
		}
		for (c = lo; c <= hi; c++)
			nmimgr_codeset_set(&set, c);
		if (pos == end)
			break;
		if (s[pos] != ',') {
			snprintf(what, sizeof(what), " '%c'", s[pos]);
			return fail(err, errlen, "unexpected character", what,
				    pos);
		}
		pos++;
		if (pos == end)
			return fail(err, errlen, "trailing ','", "", pos - 1);
	}
	*out = set;
	return 0;
}

static int too_long_max(char *err, size_t errlen, size_t max)
{
	if (err && errlen)
		snprintf(err, errlen, "value longer than %zu characters", max);
	return -1;
}

static int too_long(char *err, size_t errlen)
{
	return too_long_max(err, errlen, NMIMGR_MAX_INPUT);
}

int nmimgr_parse_list(const char *s, struct nmimgr_codeset *out,
		      char *err, size_t errlen)
{
	size_t end = input_len(s);

	if (end == (size_t)-1)
		return too_long(err, errlen);
	return parse_list_n(s, end, out, err, errlen);
}

size_t nmimgr_format_list(const struct nmimgr_codeset *s, char *buf,
			  size_t len)
{
	size_t n = 0;
	unsigned int c = 0;
	int w;

	if (len)
		buf[0] = '\0';
	while (c < NMIMGR_NR_CODES) {
		unsigned int lo = c, hi;

		if (!nmimgr_codeset_test(s, c)) {
			c++;
			continue;
		}
		while (c + 1 < NMIMGR_NR_CODES && nmimgr_codeset_test(s, c + 1))
			c++;
		hi = c++;
		if (lo == hi)
			w = snprintf(n < len ? buf + n : NULL,
				     n < len ? len - n : 0, "%s%u",
				     n ? "," : "", lo);
		else
			w = snprintf(n < len ? buf + n : NULL,
				     n < len ? len - n : 0, "%s%u-%u",
				     n ? "," : "", lo, hi);
		if (w > 0)
			n += (size_t)w;
	}
	return n;
}

static int parse_byte_n(const char *s, size_t end, uint8_t *out, char *err,
			size_t errlen)
{
	size_t pos = 0;
	unsigned int v;

	if (end == 0) {
		if (err && errlen)
			snprintf(err, errlen, "expected a value 0-255");
		return -1;
	}
	if (parse_code(s, end, &pos, &v, err, errlen))
		return -1;
	if (pos != end)
		return fail(err, errlen, "unexpected character after value",
			    "", pos);
	*out = (uint8_t)v;
	return 0;
}

int nmimgr_parse_byte(const char *s, uint8_t *out, char *err, size_t errlen)
{
	size_t end = input_len(s);

	if (end == (size_t)-1)
		return too_long(err, errlen);
	return parse_byte_n(s, end, out, err, errlen);
}

static int parse_bool_n(const char *s, size_t end, bool *out, char *err,
			size_t errlen)
{
	if (end == 1) {
		switch (s[0]) {
		case '1': case 'y': case 'Y':
			*out = true;
			return 0;
		case '0': case 'n': case 'N':
			*out = false;
			return 0;
		}
	}
	if (err && errlen)
		snprintf(err, errlen, "expected 0, 1, y or n");
	return -1;
}

int nmimgr_parse_bool(const char *s, bool *out, char *err, size_t errlen)
{
	size_t end = input_len(s);

	if (end == (size_t)-1)
		return too_long(err, errlen);
	return parse_bool_n(s, end, out, err, errlen);
}

int nmimgr_check_mask(uint8_t mask, char *err, size_t errlen)
{
	if ((mask & NMIMGR_EVENT_BITS) == NMIMGR_EVENT_BITS)
		return 0;
	if (err && errlen)
		snprintf(err, errlen,
			 "mask 0x%02x drops bit %s: SERR, IOCHK and unknown NMIs would match alike; keep 0x%02x",
			 mask, mask & 0x80 ? "6 (IOCHK)" :
			 mask & 0x40 ? "7 (SERR)" : "7 (SERR) and 6 (IOCHK)",
			 NMIMGR_EVENT_BITS);
	return -1;
}

static int parse_mask_n(const char *s, size_t end, uint8_t *out, char *err,
			size_t errlen)
{
	uint8_t mask;

	if (parse_byte_n(s, end, &mask, err, errlen) ||
	    nmimgr_check_mask(mask, err, errlen))
		return -1;
	*out = mask;
	return 0;
}

int nmimgr_parse_mask(const char *s, uint8_t *out, char *err, size_t errlen)
{
	size_t end = input_len(s);

	if (end == (size_t)-1)
		return too_long(err, errlen);
	return parse_mask_n(s, end, out, err, errlen);
}

static int parse_ms(const char *s, size_t end, size_t *pos, uint32_t *out,
		    char *err, size_t errlen)
{
	size_t i = *pos;
	uint32_t v = 0;

	if (i >= end || !is_digit(s[i]))
		return fail(err, errlen, "expected milliseconds", "", i);
	while (i < end && is_digit(s[i])) {
		v = v * 10 + (uint32_t)(s[i] - '0');
		if (v > NMIMGR_CONFIRM_CEIL_MS)
			v = NMIMGR_CONFIRM_CEIL_MS + 1;
		i++;
	}
	*out = v;
	*pos = i;
	return 0;
}

static int parse_confirm_n(const char *s, size_t end, uint32_t *min_ms,
			   uint32_t *max_ms, char *err, size_t errlen)
{
	uint32_t lo, hi;
	size_t pos = 0;

	if (end == 1 && (s[0] == '0' || s[0] == '1')) {
		*min_ms = s[0] == '1' ? NMIMGR_CONFIRM_MIN_MS : 0;
		*max_ms = s[0] == '1' ? NMIMGR_CONFIRM_MAX_MS : 0;
		return 0;
	}
	if (parse_ms(s, end, &pos, &lo, err, errlen))
		return -1;
	if (pos == end || s[pos] != '-')
		return fail(err, errlen,
			    "expected 0, 1 or MIN-MAX in milliseconds", "", pos);
	pos++;
	if (parse_ms(s, end, &pos, &hi, err, errlen))
		return -1;
	if (pos != end)
		return fail(err, errlen, "unexpected character after window",
			    "", pos);
	if (lo < NMIMGR_CONFIRM_FLOOR_MS || hi > NMIMGR_CONFIRM_CEIL_MS ||
	    lo >= hi) {
		if (err && errlen)
			snprintf(err, errlen,
				 "window must be MIN-MAX ms with %d <= MIN < MAX <= %d",
				 NMIMGR_CONFIRM_FLOOR_MS, NMIMGR_CONFIRM_CEIL_MS);
		return -1;
	}
	*min_ms = lo;
	*max_ms = hi;
	return 0;
}

int nmimgr_parse_confirm(const char *s, uint32_t *min_ms, uint32_t *max_ms,
			 char *err, size_t errlen)
{
	size_t end = input_len(s);

	if (end == (size_t)-1)
		return too_long(err, errlen);
	return parse_confirm_n(s, end, min_ms, max_ms, err, errlen);
}

size_t nmimgr_format_confirm(uint32_t min_ms, uint32_t max_ms, char *buf,
			     size_t len)
{
	int w;

	if (!min_ms)
		w = snprintf(buf, len, "0");
	else
		w = snprintf(buf, len, "%u-%u", (unsigned int)min_ms,
			     (unsigned int)max_ms);
	return w > 0 ? (size_t)w : 0;
}

void nmimgr_policy_init(struct nmimgr_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->mask = NMIMGR_DEFAULT_MASK;
	p->dry_run = false;
}

static bool key_is(const char *tok, size_t klen, const char *key)
{
	return strlen(key) == klen && !memcmp(tok, key, klen);
}

static bool is_sep(char c)
{
	return c == ' ' || c == '\t' || c == ';' || c == '\n';
}

int nmimgr_policy_parse(const char *s, struct nmimgr_policy *out,
			char *err, size_t errlen)
{
	/* Aliases: the parameter names are accepted as keys too. */
	static const char *const long_keys[NMIMGR_NR_LISTS] = {
		"events_ignore", "events_drop", "events_panic",
	};
	struct nmimgr_policy p;
	size_t end = input_len_max(s, NMIMGR_MAX_POLICY_INPUT), pos = 0;
	unsigned int seen = 0;
	char sub[NMIMGR_ERR_BUF];

	if (end == (size_t)-1)
		return too_long_max(err, errlen, NMIMGR_MAX_POLICY_INPUT);
	nmimgr_policy_init(&p);
	while (pos < end) {
		size_t tok = pos, eq, vlen, klen;
		const char *val;
		unsigned int bit, l;

		if (is_sep(s[pos])) {
			pos++;
			continue;
		}
		while (pos < end && !is_sep(s[pos]))
			pos++;
		for (eq = tok; eq < pos && s[eq] != '='; eq++)
			;
		if (eq == pos)
			return fail(err, errlen, "expected key=value", "", tok);
		klen = eq - tok;
		vlen = pos - eq - 1;
		val = s + eq + 1;

		for (l = 0; l < NMIMGR_NR_LISTS; l++)
			if (key_is(s + tok, klen, list_keys[l]) ||
			    key_is(s + tok, klen, long_keys[l]))
				break;
		if (l < NMIMGR_NR_LISTS) {
			bit = l;
			if (parse_list_n(val, vlen, &p.lists[l], sub,
					 sizeof(sub)))
				goto bad_value;
		} else if (key_is(s + tok, klen, "mask") ||
			   key_is(s + tok, klen, "event_mask")) {
			bit = 3;
			if (parse_mask_n(val, vlen, &p.mask, sub, sizeof(sub)))
				goto bad_value;
		} else if (key_is(s + tok, klen, "dry_run")) {
			bit = 4;
			if (parse_bool_n(val, vlen, &p.dry_run, sub,
					 sizeof(sub)))
				goto bad_value;
		} else if (key_is(s + tok, klen, "confirm")) {
			bit = 5;
			if (parse_confirm_n(val, vlen, &p.confirm_min_ms,
					    &p.confirm_max_ms, sub,
					    sizeof(sub)))
				goto bad_value;
		} else {
			if (err && errlen)
				snprintf(err, errlen,
					 "unknown key '%.*s' at position %zu",
					 (int)(klen > 20 ? 20 : klen),
					 s + tok, tok);
			return -1;
		}
		if (seen & (1u << bit)) {
			if (err && errlen)
				snprintf(err, errlen,
					 "key '%.*s' given twice at position %zu",
					 (int)klen, s + tok, tok);
			return -1;
		}
		seen |= 1u << bit;
		continue;
bad_value:
		if (err && errlen)
			snprintf(err, errlen, "%.*s: %s", (int)klen, s + tok,
				 sub);
		return -1;
	}
	nmimgr_policy_compile(&p, NULL);
	*out = p;
	return 0;
}

size_t nmimgr_policy_format(const struct nmimgr_policy *p, char *buf,
			    size_t len)
{
	size_t n = 0;
	unsigned int l;
	int w;

	if (len)
		buf[0] = '\0';
	for (l = 0; l < NMIMGR_NR_LISTS; l++) {
		w = snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, "%s=",
			     list_keys[l]);
		if (w > 0)
			n += (size_t)w;
		n += nmimgr_format_list(&p->lists[l], n < len ? buf + n : NULL,
					n < len ? len - n : 0);
		w = snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, " ");
		if (w > 0)
			n += (size_t)w;
	}
	w = snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0,
		     "mask=0x%02x dry_run=%d confirm=", p->mask,
		     p->dry_run ? 1 : 0);
	if (w > 0)
		n += (size_t)w;
	n += nmimgr_format_confirm(p->confirm_min_ms, p->confirm_max_ms,
				   n < len ? buf + n : NULL,
				   n < len ? len - n : 0);
	return n;
}

void nmimgr_policy_compile(struct nmimgr_policy *p,
			   struct nmimgr_compile_report *report)
{
	/* the first listed code seen for each masked code, +1 (0: none) */
	uint16_t first[NMIMGR_NR_CODES];
	struct nmimgr_codeset claimed;
	unsigned int l, c;

	memset(first, 0, sizeof(first));
	memset(&claimed, 0, sizeof(claimed));
	memset(p->match, 0, sizeof(p->match));
	if (report)
		memset(report, 0, sizeof(*report));
	for (l = 0; l < NMIMGR_NR_LISTS; l++) {
		for (c = 0; c < NMIMGR_NR_CODES; c++) {
			unsigned int m = c & p->mask;

			if (!nmimgr_codeset_test(&p->lists[l], c))
				continue;
			if (!first[m]) {
				first[m] = (uint16_t)(c + 1);
			} else if (first[m] != c + 1 && report) {
				nmimgr_codeset_set(&report->folded, first[m] - 1);
				nmimgr_codeset_set(&report->folded, c);
			}
			if (nmimgr_codeset_test(&claimed, m) &&
			    !nmimgr_codeset_test(&p->match[l], m)) {
				if (report)
					nmimgr_codeset_set(&report->overlap, m);
				continue;
			}
			nmimgr_codeset_set(&p->match[l], m);
			nmimgr_codeset_set(&claimed, m);
		}
	}
}

enum nmimgr_action nmimgr_decide(const struct nmimgr_policy *p,
				 const struct nmimgr_state *st, uint8_t raw)
{
	unsigned int m = raw & p->mask;
	unsigned int l;

	for (l = 0; l < NMIMGR_NR_LISTS; l++)
		if (nmimgr_codeset_test(&p->match[l], m))
			break;

	if (st->capture_kernel) {
		if (st->capture_drop == NMIMGR_CAPTURE_DROP_ALL ||
		    l < NMIMGR_NR_LISTS)
			return NMIMGR_LATCHED_DROP;
		return NMIMGR_UNMANAGED;
	}
	if (l == NMIMGR_NR_LISTS)
		return NMIMGR_UNMANAGED;
	if (st->latched)
		return NMIMGR_LATCHED_DROP;
	switch (l) {
	case NMIMGR_LIST_IGNORE:
		return NMIMGR_IGNORE;
	case NMIMGR_LIST_DROP:
		return NMIMGR_DROP;
	default:
		return p->dry_run ? NMIMGR_WOULD_PANIC : NMIMGR_PANIC;
	}
}
NOKPROBE_SYMBOL(nmimgr_decide);

enum nmimgr_action nmimgr_confirm_step(const struct nmimgr_policy *p,
				       enum nmimgr_action a,
				       uint64_t pending_ns, uint64_t now_ns,
				       uint64_t *new_pending)
{
	uint64_t since;

	*new_pending = 0;
	if (!p->confirm_min_ms ||
	    (a != NMIMGR_PANIC && a != NMIMGR_WOULD_PANIC))
		return a;
	/* now_ns 0 would read as "nothing pending": never store it */
	if (!now_ns)
		now_ns = 1;
	if (pending_ns && now_ns >= pending_ns) {
		since = now_ns - pending_ns;
		if (since >= (uint64_t)p->confirm_min_ms * 1000000 &&
		    since <= (uint64_t)p->confirm_max_ms * 1000000)
			return a;
	}
	*new_pending = now_ns;
	return NMIMGR_PENDING;
}
NOKPROBE_SYMBOL(nmimgr_confirm_step);

bool nmimgr_action_handled(const struct nmimgr_policy *p,
			   enum nmimgr_action a)
{
	switch (a) {
	case NMIMGR_DROP:
	case NMIMGR_LATCHED_DROP:
	case NMIMGR_PANIC:
		return true;
	case NMIMGR_PENDING:
		/*
		 * A first press is claimed, or the kernel's own fallback
		 * (unknown_nmi_panic) would panic without a record; in dry
		 * run the kernel keeps its handling, as for would_panic.
		 */
		return !p->dry_run;
	default:
		return false;
	}
}
NOKPROBE_SYMBOL(nmimgr_action_handled);

const char *nmimgr_action_name(enum nmimgr_action a)
{
	switch (a) {
	case NMIMGR_UNMANAGED:
		return "unmanaged";
	case NMIMGR_IGNORE:
		return "ignore";
	case NMIMGR_DROP:
		return "drop";
	case NMIMGR_PANIC:
		return "panic";
	case NMIMGR_WOULD_PANIC:
		return "would_panic";
	case NMIMGR_LATCHED_DROP:
		return "latched_drop";
	case NMIMGR_PENDING:
		return "pending";
	default:
		return "invalid";
	}
}
NOKPROBE_SYMBOL(nmimgr_action_name);

void nmimgr_plan_port61(unsigned int nmi_type, uint8_t reason, bool panicking,
			struct nmimgr_port61_plan *plan)
{
	memset(plan, 0, sizeof(*plan));
	switch (nmi_type) {
	case NMIMGR_TYPE_SERR:
		/* pci_serr_error(): clear and leave disabled */
		plan->writes = 1;
		plan->first = (uint8_t)((reason & PORT61_CONTROL_MASK) |
					PORT61_CLEAR_SERR);
		break;
	case NMIMGR_TYPE_IOCHK:
		/* io_check_error(): nothing at all once a panic is under way */
		if (panicking)
			break;
		plan->writes = 2;
		plan->first = (uint8_t)((reason & PORT61_CONTROL_MASK) |
					PORT61_CLEAR_IOCHK);
		plan->second = (uint8_t)(plan->first & ~PORT61_CLEAR_IOCHK);
		plan->settle = true;
		break;
	default:
		break;
	}
}
NOKPROBE_SYMBOL(nmimgr_plan_port61);

/* One whitespace-separated word of a command line, quotes kept. */
static size_t cmdline_word(const char *s, size_t pos, size_t *start)
{
	bool quoted = false;

	while (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n')
		pos++;
	*start = pos;
	while (s[pos] && (quoted || (s[pos] != ' ' && s[pos] != '\t' &&
				     s[pos] != '\n'))) {
		if (s[pos] == '"')
			quoted = !quoted;
		pos++;
	}
	return pos;
}

static bool word_has_prefix(const char *w, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);

	return n >= k && !memcmp(w, prefix, k);
}

int nmimgr_cmdline_check(const char *cmdline, char *msg, size_t msglen)
{
	/* Keys only nmimgr's grammar knows, and the one the kernel shares. */
	static const char *const own[] = {
		"ignore=", "drop=", "mask=", "dry_run=", "confirm=",
		"events_ignore=", "events_drop=", "events_panic=",
		"event_mask=",
	};
	size_t pos = 0, start, end, k;
	bool after_policy = false;
	int ret = 0;

	if (msg && msglen)
		msg[0] = '\0';
	while (cmdline[pos]) {
		const char *w;
		size_t n;

		end = cmdline_word(cmdline, pos, &start);
		if (end == start)
			break;
		w = cmdline + start;
		n = end - start;
		pos = end;
		if (word_has_prefix(w, n, "nmimgr.policy=") ||
		    word_has_prefix(w, n, "nmimgr.events_")) {
			/* a quoted value holds its spaces: nothing split */
			after_policy = !memchr(w, '"', n);
			continue;
		}
		if (!after_policy)
			continue;
		for (k = 0; k < sizeof(own) / sizeof(own[0]); k++)
			if (word_has_prefix(w, n, own[k]))
				break;
		if (k < sizeof(own) / sizeof(own[0])) {
			if (msg && msglen)
				snprintf(msg, msglen,
					 "kernel command line: '%.*s' was split off an nmimgr policy and never reached nmimgr; quote the value (nmimgr.policy=\"...\") or separate keys with ';'",
					 (int)(n > 32 ? 32 : n), w);
			return -1;
		}
		if (word_has_prefix(w, n, "panic=") && ret == 0) {
			if (msg && msglen)
				snprintf(msg, msglen,
					 "kernel command line: '%.*s' after an nmimgr policy is the kernel's panic timeout, not part of the policy; quote the policy (nmimgr.policy=\"...\") or use ';' if it was meant for nmimgr",
					 (int)(n > 32 ? 32 : n), w);
			ret = 1;
		}
		/* only the words right after the policy can be split off it */
		if (!memchr(w, '=', n))
			after_policy = false;
	}
	return ret;
}
