// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * nmimgr-load: the one reader of /etc/nmimgr.conf (nmimgr.conf(5)).
 *
 * It validates the file with the policy core the module is built from
 * (module/policy.c), loads nmimgr with the file's settings or applies them
 * to the running module, prints the module options and the capture
 * kernel's command-line shield, and tells what must be rebuilt for the
 * capture kernel.  The same binary runs in the first kernel (systemd unit),
 * in the first kernel's initramfs and in the kdump capture initramfs
 * (dracut and initramfs-tools), so it is plain C with no library beyond
 * libc.
 *
 * Exit status: 0 success; 1 the configuration is invalid (nothing was
 * changed); 2 usage error; 3 the module or the system refused an operation
 * (the policy in force is unchanged).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "policy.h"

#ifndef NMIMGR_VERSION
#define NMIMGR_VERSION "0.1.0"
#endif
#ifndef NMIMGR_CONF
#define NMIMGR_CONF "/etc/nmimgr.conf"
#endif
#ifndef NMIMGR_KDUMP_HELPER
#define NMIMGR_KDUMP_HELPER "/usr/sbin/nmimgr-kdump"
#endif

#define PROG "nmimgr-load"
#define LINE_MAX_LEN 4096

enum { EXIT_CONFIG = 1, EXIT_USAGE = 2, EXIT_SYSTEM = 3 };

/* Module-side types, as the module's types= accepts them. */
#define TYPE_UNKNOWN 1u
#define TYPE_SERR 2u
#define TYPE_IOCHK 4u

/* The switches of nmimgr.conf(5) besides the policy, with their defaults. */
enum switch_id {
	SW_BOOT_LOAD,
	SW_BOOT_INITRAMFS,
	SW_CAPTURE_MODULE,
	SW_CAPTURE_EXTNMI,
	SW_CAPTURE_NMI_SYSCTLS,
	SW_CAPTURE_WATCHDOG,
	SW_NR,
};

static const struct {
	const char *key;
	bool def;
} switches[SW_NR] = {
	[SW_BOOT_LOAD] = { "boot_load", true },
	[SW_BOOT_INITRAMFS] = { "boot_initramfs", false },
	[SW_CAPTURE_MODULE] = { "capture_module", true },
	[SW_CAPTURE_EXTNMI] = { "capture_extnmi", true },
	[SW_CAPTURE_NMI_SYSCTLS] = { "capture_nmi_sysctls", true },
	[SW_CAPTURE_WATCHDOG] = { "capture_watchdog", true },
};

/* Keys of the policy, in the module's grammar: one per policy field. */
enum pkey {
	PK_IGNORE,
	PK_DROP,
	PK_PANIC,
	PK_MASK,
	PK_DRY_RUN,
	PK_CONFIRM,
	PK_NR,
};

static const char *const pkey_names[PK_NR][2] = {
	[PK_IGNORE] = { "ignore", "events_ignore" },
	[PK_DROP] = { "drop", "events_drop" },
	[PK_PANIC] = { "panic", "events_panic" },
	[PK_MASK] = { "mask", "event_mask" },
	[PK_DRY_RUN] = { "dry_run", NULL },
	[PK_CONFIRM] = { "confirm", NULL },
};

struct conf {
	const char *path;
	bool present;			/* the file exists */
	struct nmimgr_policy policy;	/* compiled */
	unsigned int types;
	enum nmimgr_capture_drop capture_drop;
	bool sw[SW_NR];
	/* line each key was set on, 0 if not set: duplicates are errors */
	unsigned int pkey_line[PK_NR];
	unsigned int policy_line;
	unsigned int types_line;
	unsigned int capture_drop_line;
	unsigned int sw_line[SW_NR];
};

struct opts {
	const char *config;
	const char *sysroot;	/* prefix for /sys, /proc and /lib/modules */
	const char *kver;
	bool initramfs;
	bool quiet;
};

static struct opts opt = { .config = NULL, .sysroot = "" };

static void msg(const char *fmt, ...)
{
	va_list ap;

	if (opt.quiet)
		return;
	va_start(ap, fmt);
	fputs(PROG ": ", stdout);
	vfprintf(stdout, fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
}

static void err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int conf_err(const struct conf *c, unsigned int line, const char *fmt,
		    ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, PROG ": %s:%u: ", c->path, line);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -1;
}

static void path_in_root(char *buf, size_t len, const char *path)
{
	snprintf(buf, len, "%s%s", opt.sysroot, path);
}

static bool exists_in_root(const char *path)
{
	char p[PATH_MAX];

	path_in_root(p, sizeof(p), path);
	return access(p, F_OK) == 0;
}

/* --- the configuration file ------------------------------------------ */

static void conf_init(struct conf *c, const char *path)
{
	unsigned int i;

	memset(c, 0, sizeof(*c));
	c->path = path;
	nmimgr_policy_init(&c->policy);
	nmimgr_policy_compile(&c->policy, NULL);
	c->types = TYPE_UNKNOWN;
	c->capture_drop = NMIMGR_CAPTURE_DROP_ALL;
	for (i = 0; i < SW_NR; i++)
		c->sw[i] = switches[i].def;
}

static int parse_switch(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	unsigned int i;

	for (i = 0; i < 4; i++) {
		if (!strcmp(v, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(v, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int parse_types(const char *v, unsigned int *out)
{
	unsigned int t = 0;
	const char *p = v;

	while (*p) {
		size_t n = strcspn(p, ",");

		if (n == 7 && !strncmp(p, "unknown", n))
			t |= TYPE_UNKNOWN;
		else if (n == 4 && !strncmp(p, "serr", n))
			t |= TYPE_SERR;
		else if (n == 5 && !strncmp(p, "iochk", n))
			t |= TYPE_IOCHK;
		else
			return -1;
		p += n;
		if (*p == ',' && *++p == '\0')
			return -1;
	}
	if (!t)
		return -1;
	*out = t;
	return 0;
}

static void format_types(unsigned int t, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s%s", t & TYPE_UNKNOWN ? "unknown" : "",
		 (t & TYPE_UNKNOWN) && (t & (TYPE_SERR | TYPE_IOCHK)) ? "," : "",
		 t & TYPE_SERR ? "serr" : "",
		 (t & TYPE_SERR) && (t & TYPE_IOCHK) ? "," : "",
		 t & TYPE_IOCHK ? "iochk" : "");
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int set_line(const struct conf *c, unsigned int *slot,
		    unsigned int line, const char *key)
{
	if (*slot)
		return conf_err(c, line, "'%s' is already set on line %u", key,
				*slot);
	*slot = line;
	return 0;
}

/*
 * One "key = value" line.  The policy keys take the module's own grammar,
 * checked by the policy core's parsers (the ones the module's parameters
 * use), so the file accepts exactly what the module accepts.
 */
static int conf_line(struct conf *c, struct nmimgr_policy *p, char *key,
		     char *val, unsigned int line)
{
	char e[NMIMGR_ERR_BUF];
	unsigned int k, i;

	for (k = 0; k < PK_NR; k++)
		if (!strcmp(key, pkey_names[k][0]) ||
		    (pkey_names[k][1] && !strcmp(key, pkey_names[k][1])))
			break;
	if (k < PK_NR) {
		if (c->policy_line)
			return conf_err(c, line,
					"'%s' cannot be combined with 'policy' (line %u): write the whole policy in one place",
					key, c->policy_line);
		if (set_line(c, &c->pkey_line[k], line, pkey_names[k][0]))
			return -1;
		switch (k) {
		case PK_IGNORE:
		case PK_DROP:
		case PK_PANIC:
			if (nmimgr_parse_list(val, &p->lists[k - PK_IGNORE +
						NMIMGR_LIST_IGNORE], e, sizeof(e)))
				goto bad;
			return 0;
		case PK_MASK:
			if (nmimgr_parse_mask(val, &p->mask, e, sizeof(e)))
				goto bad;
			return 0;
		case PK_DRY_RUN:
			if (nmimgr_parse_bool(val, &p->dry_run, e, sizeof(e)))
				goto bad;
			return 0;
		default:
			if (nmimgr_parse_confirm(val, &p->confirm_min_ms,
						 &p->confirm_max_ms, e,
						 sizeof(e)))
				goto bad;
			return 0;
		}
	}
	if (!strcmp(key, "policy")) {
		for (i = 0; i < PK_NR; i++)
			if (c->pkey_line[i])
				return conf_err(c, line,
						"'policy' cannot be combined with '%s' (line %u): write the whole policy in one place",
						pkey_names[i][0], c->pkey_line[i]);
		if (set_line(c, &c->policy_line, line, key))
			return -1;
		if (nmimgr_policy_parse(val, p, e, sizeof(e)))
			goto bad;
		return 0;
	}
	if (!strcmp(key, "types")) {
		if (set_line(c, &c->types_line, line, key))
			return -1;
		if (parse_types(val, &c->types))
			return conf_err(c, line,
					"types: '%s': expected a list of unknown, serr, iochk",
					val);
		return 0;
	}
	if (!strcmp(key, "capture_drop")) {
		if (set_line(c, &c->capture_drop_line, line, key))
			return -1;
		if (!strcmp(val, "all"))
			c->capture_drop = NMIMGR_CAPTURE_DROP_ALL;
		else if (!strcmp(val, "managed"))
			c->capture_drop = NMIMGR_CAPTURE_DROP_MANAGED;
		else
			return conf_err(c, line,
					"capture_drop: '%s': expected all or managed",
					val);
		return 0;
	}
	for (i = 0; i < SW_NR; i++) {
		if (strcmp(key, switches[i].key))
			continue;
		if (set_line(c, &c->sw_line[i], line, key))
			return -1;
		if (parse_switch(val, &c->sw[i]))
			return conf_err(c, line,
					"%s: '%s': expected yes or no", key,
					val);
		return 0;
	}
	return conf_err(c, line, "unknown key '%s'", key);
bad:
	return conf_err(c, line, "%s: %s", key, e);
}

/* Parse @path into @c.  A missing file means every default. */
static int conf_read(struct conf *c, const char *path)
{
	struct nmimgr_compile_report report;
	struct nmimgr_policy p;
	char buf[LINE_MAX_LEN + 2];
	unsigned int line = 0;
	char list[NMIMGR_LIST_BUF];
	FILE *f;
	int ret = 0;

	conf_init(c, path);
	nmimgr_policy_init(&p);
	f = fopen(path, "r");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		err("%s: %s", path, strerror(errno));
		return -1;
	}
	c->present = true;
	while (fgets(buf, sizeof(buf), f)) {
		char *s, *eq, *key, *val, *hash;
		size_t n = strlen(buf);

		line++;
		if (n > LINE_MAX_LEN && buf[n - 1] != '\n') {
			ret = conf_err(c, line, "line longer than %d characters",
				       LINE_MAX_LEN);
			break;
		}
		s = trim(buf);
		if (!*s || *s == '#')
			continue;
		/* a comment may follow a value after a blank */
		for (hash = s; (hash = strchr(hash, '#')); hash++)
			if (hash[-1] == ' ' || hash[-1] == '\t') {
				*hash = '\0';
				break;
			}
		eq = strchr(s, '=');
		if (!eq) {
			ret = conf_err(c, line, "expected 'key = value'");
			break;
		}
		*eq = '\0';
		key = trim(s);
		val = trim(eq + 1);
		if (!*key) {
			ret = conf_err(c, line, "expected a key before '='");
			break;
		}
		if (conf_line(c, &p, key, val, line)) {
			ret = -1;
			break;
		}
	}
	if (!ret && ferror(f)) {
		err("%s: read error", path);
		ret = -1;
	}
	fclose(f);
	if (ret)
		return ret;
	nmimgr_policy_compile(&p, &report);
	if (!nmimgr_codeset_empty(&report.overlap)) {
		nmimgr_format_list(&report.overlap, list, sizeof(list));
		err("%s: warning: masked codes %s are in more than one list; the first of ignore, drop, panic decides",
		    path, list);
	}
	if (!nmimgr_codeset_empty(&report.folded)) {
		nmimgr_format_list(&report.folded, list, sizeof(list));
		err("%s: warning: listed codes %s differ only in bits mask 0x%02x drops and match alike",
		    path, list, p.mask);
	}
	c->policy = p;
	return 0;
}

/* The canonical policy, as the module prints it back. */
static void policy_string(const struct conf *c, char *buf, size_t len)
{
	nmimgr_policy_format(&c->policy, buf, len);
}

/*
 * The policy as one word with no blank: `;` separates keys (the grammar
 * allows it), so it survives the kernel command line, modprobe's argument
 * list and modprobe.d alike.
 */
static void policy_word(const struct conf *c, char *buf, size_t len)
{
	char *s;

	policy_string(c, buf, len);
	for (s = buf; *s; s++)
		if (*s == ' ')
			*s = ';';
}

/* The command-line switches act at kdump load time, not in the image. */
static bool sw_in_image(unsigned int i)
{
	return i != SW_CAPTURE_EXTNMI && i != SW_CAPTURE_NMI_SYSCTLS &&
	       i != SW_CAPTURE_WATCHDOG;
}

static void conf_print_some(const struct conf *c, FILE *out, bool image_only)
{
	char buf[NMIMGR_POLICY_BUF];
	unsigned int i;

	policy_string(c, buf, sizeof(buf));
	fprintf(out, "policy = %s\n", buf);
	format_types(c->types, buf, sizeof(buf));
	fprintf(out, "types = %s\n", buf);
	fprintf(out, "capture_drop = %s\n",
		c->capture_drop == NMIMGR_CAPTURE_DROP_ALL ? "all" : "managed");
	for (i = 0; i < SW_NR; i++)
		if (!image_only || sw_in_image(i))
			fprintf(out, "%s = %s\n", switches[i].key,
				c->sw[i] ? "yes" : "no");
}

static void conf_print(const struct conf *c, FILE *out)
{
	conf_print_some(c, out, false);
}

/* --- what the capture kernel's command line gets ----------------------- */

struct words {
	char buf[2048];
	size_t len;
};

static void words_add(struct words *w, const char *word)
{
	size_t n = strlen(word), i = 0;

	/* each word once */
	while (i < w->len) {
		size_t k = strcspn(w->buf + i, " ");

		if (k == n && !memcmp(w->buf + i, word, n))
			return;
		i += k + 1;
	}
	if (w->len + n + 2 > sizeof(w->buf))
		return;
	if (w->len)
		w->buf[w->len++] = ' ';
	memcpy(w->buf + w->len, word, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

/* Basename of the link at @path, '-' made '_' as module names are. */
static bool link_name(const char *path, char *out, size_t len)
{
	char target[PATH_MAX];
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	const char *b;
	char *s;

	if (n <= 0)
		return false;
	target[n] = '\0';
	b = strrchr(target, '/');
	b = b ? b + 1 : target;
	if (strlen(b) >= len)
		return false;
	memcpy(out, b, strlen(b) + 1);
	for (s = out; *s; s++)
		if (*s == '-')
			*s = '_';
	return *out != '\0';
}

/*
 * Watchdog pre-timeouts are disarmed the way kdumpctl does it: one
 * <module>.pretimeout=0 per watchdog device's driver, and
 * hpwdt.kdumptimeout=0 for hpwdt.  ipmi_watchdog is no watchdog-core
 * device; its NMI pre-timeout goes the same way when it is loaded.
 */
static void watchdog_words(struct words *w)
{
	char dir[PATH_MAX], p[PATH_MAX + 64], name[128], word[192];
	struct dirent *d;
	DIR *dp;

	path_in_root(dir, sizeof(dir), "/sys/class/watchdog");
	dp = opendir(dir);
	while (dp && (d = readdir(dp))) {
		if (d->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s/device/driver/module",
				     dir, d->d_name) >= sizeof(p))
			continue;
		if (!link_name(p, name, sizeof(name))) {
			p[strlen(p) - strlen("/module")] = '\0';
			if (!link_name(p, name, sizeof(name)))
				continue;
		}
		snprintf(word, sizeof(word), "%s.pretimeout=0", name);
		words_add(w, word);
		if (!strcmp(name, "hpwdt"))
			words_add(w, "hpwdt.kdumptimeout=0");
	}
	if (dp)
		closedir(dp);
	if (exists_in_root("/sys/module/hpwdt")) {
		words_add(w, "hpwdt.pretimeout=0");
		words_add(w, "hpwdt.kdumptimeout=0");
	}
	if (exists_in_root("/sys/module/ipmi_watchdog"))
		words_add(w, "ipmi_watchdog.pretimeout=0");
}

static void cmdline_words(const struct conf *c, struct words *w)
{
	memset(w, 0, sizeof(*w));
	if (c->sw[SW_CAPTURE_EXTNMI])
		words_add(w, "apic_extnmi=none");
	if (c->sw[SW_CAPTURE_NMI_SYSCTLS]) {
		/* unknown_nmi_panic=0 as a boot word would set it to 1 */
		words_add(w, "sysctl.kernel.unknown_nmi_panic=0");
		words_add(w, "sysctl.kernel.panic_on_io_nmi=0");
		words_add(w, "sysctl.kernel.panic_on_unrecovered_nmi=0");
	}
	if (c->sw[SW_CAPTURE_WATCHDOG])
		watchdog_words(w);
}

/* --- the stamp: what the capture image was built from ------------------ */

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
	const unsigned char *s = data;

	while (n--) {
		h ^= *s++;
		h *= 0x100000001b3ull;
	}
	return h;
}

static const char *kernel_release(void)
{
	static struct utsname u;

	if (opt.kver)
		return opt.kver;
	if (uname(&u))
		return "unknown";
	return u.release;
}

/* The nmimgr.ko that modprobe would find for @kver, or "" if none. */
static void module_file(const char *kver, char *out, size_t len)
{
	static const char *const dirs[] = {
		"updates/dkms", "updates", "extra", "kernel/drivers/misc",
	};
	static const char *const exts[] = { "", ".xz", ".zst", ".gz" };
	char p[PATH_MAX];
	unsigned int i, j;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		for (j = 0; j < sizeof(exts) / sizeof(exts[0]); j++) {
			snprintf(p, sizeof(p), "%s/lib/modules/%s/%s/nmimgr.ko%s",
				 opt.sysroot, kver, dirs[i], exts[j]);
			if (access(p, R_OK) == 0) {
				snprintf(out, len, "%s", p);
				return;
			}
		}
	out[0] = '\0';
}

/*
 * A hash of everything a capture image takes from the host: the settings
 * it acts on, in their canonical form (a comment or a reordering changes
 * nothing; the command-line switches act when kdump loads, not in the
 * image), and the module file (path, size, modification time).
 */
static uint64_t stamp(const struct conf *c, const char *kver)
{
	char buf[NMIMGR_POLICY_BUF + 512], ko[PATH_MAX];
	uint64_t h = 0xcbf29ce484222325ull;
	struct stat st;
	FILE *m;
	char *text = NULL;
	size_t tlen = 0;

	m = open_memstream(&text, &tlen);
	if (m) {
		conf_print_some(c, m, true);
		fclose(m);
		h = fnv(h, text, tlen);
		free(text);
	}
	module_file(kver, ko, sizeof(ko));
	if (ko[0] && stat(ko, &st) == 0)
		snprintf(buf, sizeof(buf), "ko %s %lld %lld\n",
			 ko + strlen(opt.sysroot), (long long)st.st_size,
			 (long long)st.st_mtime);
	else
		snprintf(buf, sizeof(buf), "ko none\n");
	return fnv(h, buf, strlen(buf));
}

/* --- the running module ------------------------------------------------ */

static bool module_loaded(void)
{
	return exists_in_root("/sys/module/nmimgr/parameters/policy");
}

static int read_param(const char *name, char *buf, size_t len)
{
	char p[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/sys/module/nmimgr/parameters/%s",
		 opt.sysroot, name);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	trim(buf);
	return 0;
}

/* One write(2) of the whole value: the module takes it or keeps the old. */
static int write_param(const char *name, const char *val)
{
	char p[PATH_MAX];
	size_t n = strlen(val);
	ssize_t w;
	int fd, e;

	snprintf(p, sizeof(p), "%s/sys/module/nmimgr/parameters/%s",
		 opt.sysroot, name);
	fd = open(p, O_WRONLY | O_CLOEXEC | O_TRUNC);
	if (fd < 0) {
		err("%s: %s", p, strerror(errno));
		return -1;
	}
	w = write(fd, val, n);
	e = errno;
	if (close(fd) && w == (ssize_t)n) {
		w = -1;
		e = errno;
	}
	if (w != (ssize_t)n) {
		err("nmimgr rejected %s=\"%s\": %s (see the kernel log); the policy in force is unchanged",
		    name, val, w < 0 ? strerror(e) : "short write");
		return -1;
	}
	return 0;
}

static int apply_running(const struct conf *c)
{
	char want[NMIMGR_POLICY_BUF], have[NMIMGR_POLICY_BUF];
	unsigned int running;

	policy_string(c, want, sizeof(want));
	if (write_param("policy", want))
		return -1;
	if (read_param("policy", have, sizeof(have)) || strcmp(have, want)) {
		err("nmimgr reads its policy back as \"%s\", not \"%s\"", have,
		    want);
		return -1;
	}
	if (write_param("capture_drop",
			c->capture_drop == NMIMGR_CAPTURE_DROP_ALL ? "all" :
								     "managed"))
		return -1;
	msg("policy in force: %s", have);
	if (!read_param("types", have, sizeof(have)) &&
	    !parse_types(have, &running) && running != c->types) {
		format_types(c->types, want, sizeof(want));
		msg("types=%s is read at load time only; nmimgr runs with types=%s until it is reloaded (modprobe -r nmimgr && nmimgr-load --load)",
		    want, have);
	}
	return 0;
}

static int run(char *const argv[])
{
	pid_t pid;
	int status;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		err("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, PROG ": %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void modprobe_args(const struct conf *c, char *policy, size_t plen,
			  char *types, size_t tlen, char *cdrop, size_t clen)
{
	char buf[NMIMGR_POLICY_BUF];
	char tb[24];

	policy_word(c, buf, sizeof(buf));
	snprintf(policy, plen, "policy=%s", buf);
	format_types(c->types, tb, sizeof(tb));
	snprintf(types, tlen, "types=%s", tb);
	snprintf(cdrop, clen, "capture_drop=%s",
		 c->capture_drop == NMIMGR_CAPTURE_DROP_ALL ? "all" : "managed");
}

static int modprobe(const struct conf *c)
{
	char policy[NMIMGR_POLICY_BUF + 16], types[48], cdrop[32];
	const char *prog = getenv("NMIMGR_MODPROBE");
	char *argv[6];
	int rc;

	modprobe_args(c, policy, sizeof(policy), types, sizeof(types), cdrop,
		      sizeof(cdrop));
	argv[0] = (char *)(prog && *prog ? prog : "modprobe");
	argv[1] = "nmimgr";
	argv[2] = policy;
	argv[3] = types;
	argv[4] = cdrop;
	argv[5] = NULL;
	rc = run(argv);
	if (rc) {
		err("modprobe nmimgr failed (exit %d); see the kernel log", rc);
		return -1;
	}
	return 0;
}

static bool stats_flag(const char *key)
{
	char p[PATH_MAX], line[256];
	size_t n = strlen(key);
	bool on = false;
	FILE *f;

	path_in_root(p, sizeof(p), "/sys/kernel/nmimgr/stats");
	f = fopen(p, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ' ')
			on = line[n + 1] == '1';
	fclose(f);
	return on;
}

/* --- commands ---------------------------------------------------------- */

static int cmd_load(const struct conf *c, bool apply)
{
	bool capture = exists_in_root("/proc/vmcore");
	bool loaded = module_loaded();

	if (capture && !c->sw[SW_CAPTURE_MODULE]) {
		msg("capture kernel: capture_module=no in %s, not loading nmimgr",
		    c->path);
		return 0;
	}
	if (!capture && !apply && opt.initramfs &&
	    !c->sw[SW_BOOT_INITRAMFS]) {
		msg("boot_initramfs=no in %s: nmimgr is loaded later, from the root file system",
		    c->path);
		return 0;
	}
	if (!capture && !c->sw[SW_BOOT_LOAD] && !loaded) {
		msg("boot_load=no in %s: not loading nmimgr", c->path);
		return 0;
	}
	if (loaded) {
		if (apply_running(c))
			return EXIT_SYSTEM;
	} else {
		if (modprobe(c))
			return EXIT_SYSTEM;
		if (!module_loaded()) {
			err("modprobe succeeded but /sys/module/nmimgr is missing");
			return EXIT_SYSTEM;
		}
		msg("nmimgr loaded");
	}
	if (capture) {
		if (!stats_flag("latched")) {
			err("capture kernel: nmimgr is loaded but not latched (is /proc/vmcore from a capture kernel?)");
			return EXIT_SYSTEM;
		}
		msg("capture kernel: nmimgr latched, every NMI that reaches it is %s",
		    c->capture_drop == NMIMGR_CAPTURE_DROP_ALL ?
			    "dropped" : "dropped if listed");
	}
	return 0;
}

static int cmd_apply(const struct conf *c)
{
	const char *helper = getenv("NMIMGR_KDUMP_HELPER");
	char *argv[3];
	int rc;

	if (!helper || !*helper)
		helper = NMIMGR_KDUMP_HELPER;
	rc = cmd_load(c, true);
	if (rc)
		return rc;
	if (access(helper, X_OK) == 0) {
		/* the capture side: command lines, sysctls, rebuild triggers */
		argv[0] = (char *)helper;
		argv[1] = "refresh";
		argv[2] = NULL;
		rc = run(argv);
		if (rc) {
			err("%s refresh failed (exit %d)", helper, rc);
			return EXIT_SYSTEM;
		}
	} else {
		msg("%s not installed: the kdump services were not told; rebuild the kdump initramfs yourself (kdumpctl restart, or kdump-config reload after removing /var/lib/kdump/initrd.img-%s)",
		    helper, kernel_release());
	}
	if (c->sw[SW_BOOT_INITRAMFS])
		msg("boot_initramfs=yes: the first kernel's initramfs keeps the copy it was built with: rebuild it (update-initramfs -u, or dracut -f)");
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: " PROG " [OPTIONS] [COMMAND]\n"
		"Read " NMIMGR_CONF " (nmimgr.conf(5)) and act on it.\n"
		"\n"
		"Commands (one; the default is --check):\n"
		"  --check              validate the file; print every setting in canonical form\n"
		"  --apply              validate, then make the running system follow the file:\n"
		"                       load nmimgr or write its policy, refresh the kdump\n"
		"                       integration (" NMIMGR_KDUMP_HELPER " refresh), say what to rebuild\n"
		"  --load               load nmimgr as the boot (or the capture kernel) would:\n"
		"                       honours boot_load, boot_initramfs and capture_module\n"
		"  --modprobe-options   print the module options (one line, for modprobe.d)\n"
		"  --cmdline            print the words the capture kernel's command line gets\n"
		"  --sysctl             print the sysctl lines for the capture kernel's root\n"
		"  --get KEY            print one setting (yes, no or its value)\n"
		"  --stamp              print a hash of what a capture image takes from this host\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE    read FILE instead of " NMIMGR_CONF "\n"
		"  --initramfs          (--load) running in the first kernel's initramfs\n"
		"  --kver VERSION       (--stamp) kernel release (default: the running one)\n"
		"  --sysroot DIR        look for /sys, /proc and /lib/modules under DIR\n"
		"  -q, --quiet          no progress messages\n"
		"  -h, --help, --version\n"
		"\n"
		"Exit status: 0 success; 1 invalid configuration (file:line on stderr,\n"
		"nothing changed); 2 usage error; 3 the module or the system refused\n"
		"(the policy in force is unchanged).\n");
}

enum cmd {
	CMD_CHECK, CMD_APPLY, CMD_LOAD, CMD_MODPROBE, CMD_CMDLINE, CMD_SYSCTL,
	CMD_GET, CMD_STAMP,
};

int main(int argc, char **argv)
{
	enum {
		O_CHECK = 256, O_APPLY, O_LOAD, O_MODPROBE, O_CMDLINE, O_SYSCTL,
		O_GET, O_STAMP, O_INITRAMFS, O_KVER, O_SYSROOT, O_VERSION,
	};
	static const struct option longopts[] = {
		{ "check", no_argument, NULL, O_CHECK },
		{ "apply", no_argument, NULL, O_APPLY },
		{ "load", no_argument, NULL, O_LOAD },
		{ "modprobe-options", no_argument, NULL, O_MODPROBE },
		{ "cmdline", no_argument, NULL, O_CMDLINE },
		{ "sysctl", no_argument, NULL, O_SYSCTL },
		{ "get", required_argument, NULL, O_GET },
		{ "stamp", no_argument, NULL, O_STAMP },
		{ "config", required_argument, NULL, 'c' },
		{ "initramfs", no_argument, NULL, O_INITRAMFS },
		{ "kver", required_argument, NULL, O_KVER },
		{ "sysroot", required_argument, NULL, O_SYSROOT },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	enum cmd cmd = CMD_CHECK;
	const char *get_key = NULL;
	unsigned int ncmd = 0;
	struct conf c;
	struct words w;
	char buf[NMIMGR_POLICY_BUF + 64];
	int o;

	while ((o = getopt_long(argc, argv, "c:qh", longopts, NULL)) != -1) {
		switch (o) {
		case O_CHECK: cmd = CMD_CHECK; ncmd++; break;
		case O_APPLY: cmd = CMD_APPLY; ncmd++; break;
		case O_LOAD: cmd = CMD_LOAD; ncmd++; break;
		case O_MODPROBE: cmd = CMD_MODPROBE; ncmd++; break;
		case O_CMDLINE: cmd = CMD_CMDLINE; ncmd++; break;
		case O_SYSCTL: cmd = CMD_SYSCTL; ncmd++; break;
		case O_GET: cmd = CMD_GET; get_key = optarg; ncmd++; break;
		case O_STAMP: cmd = CMD_STAMP; ncmd++; break;
		case 'c': opt.config = optarg; break;
		case O_INITRAMFS: opt.initramfs = true; break;
		case O_KVER: opt.kver = optarg; break;
		case O_SYSROOT: opt.sysroot = optarg; break;
		case 'q': opt.quiet = true; break;
		case 'h': usage(stdout); return 0;
		case O_VERSION: printf(PROG " " NMIMGR_VERSION "\n"); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc || ncmd > 1) {
		err(optind < argc ? "unexpected argument '%s'" :
				    "give one command%s",
		    optind < argc ? argv[optind] : "");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!opt.config)
		opt.config = NMIMGR_CONF;
	if (conf_read(&c, opt.config))
		return EXIT_CONFIG;

	switch (cmd) {
	case CMD_CHECK:
		if (!c.present)
			msg("%s does not exist: every setting is its default",
			    c.path);
		conf_print(&c, stdout);
		return 0;
	case CMD_APPLY:
		return cmd_apply(&c);
	case CMD_LOAD:
		return cmd_load(&c, false);
	case CMD_MODPROBE: {
		char p[NMIMGR_POLICY_BUF + 16], t[48], d[32];

		modprobe_args(&c, p, sizeof(p), t, sizeof(t), d, sizeof(d));
		printf("%s %s %s\n", p, t, d);
		return 0;
	}
	case CMD_CMDLINE:
		cmdline_words(&c, &w);
		printf("%s\n", w.buf);
		return 0;
	case CMD_SYSCTL:
		if (c.sw[SW_CAPTURE_NMI_SYSCTLS])
			printf("kernel.unknown_nmi_panic=0\nkernel.panic_on_io_nmi=0\nkernel.panic_on_unrecovered_nmi=0\n");
		return 0;
	case CMD_GET: {
		FILE *m;
		char *text = NULL, *line, *save = NULL;
		size_t tlen = 0, klen = strlen(get_key);

		m = open_memstream(&text, &tlen);
		if (!m)
			return EXIT_SYSTEM;
		conf_print(&c, m);
		fclose(m);
		for (line = strtok_r(text, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save))
			if (!strncmp(line, get_key, klen) &&
			    !strncmp(line + klen, " = ", 3)) {
				printf("%s\n", line + klen + 3);
				free(text);
				return 0;
			}
		free(text);
		err("--get: unknown key '%s'", get_key);
		return EXIT_USAGE;
	}
	case CMD_STAMP:
		snprintf(buf, sizeof(buf), "%016llx",
			 (unsigned long long)stamp(&c, kernel_release()));
		printf("%s\n", buf);
		return 0;
	}
	return 0;
}
