// SPDX-License-Identifier: GPL-2.0
/*
 * recplant: a test-only module of the nmimgr VM lab.  At load it writes
 * fired nmimgr trigger records (layout version 2, valid checksum) into
 * pages of its own, kept until the machine crashes, so the lab can check
 * that nmimgr-vmcore-check never names such a record as the trigger:
 *
 *   plant=stale  a record in place (phys = where it lies) whose boot began
 *                an hour before this boot: what a record left in RAM by an
 *                earlier boot looks like after a warm reset
 *   plant=copy   a record of now whose phys names another page: what a
 *                copy of a fired record looks like
 *
 * plant=stale,copy plants both.  Each is announced in the log with where
 * it lies, the phys it claims and its nonce.  Never load this on a machine
 * whose crash dumps you care about.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/random.h>
#include <linux/smp.h>
#include <linux/string.h>
#include <linux/timekeeping.h>

#include "nmimgr_record.h"

/* Offset in its page: 128-aligned, as nmimgr places its own record. */
#define RECPLANT_OFFSET 256
#define STALE_SHIFT_NS (3600ULL * NSEC_PER_SEC)

static char *plant = "";
module_param(plant, charp, 0444);
MODULE_PARM_DESC(plant, "Records to plant at load: stale, copy or stale,copy (default: none)");

/* Pages that hold a record, and the page a copy claims to live in. */
static unsigned long pages[3];

static void fill(struct nmimgr_record *r, u64 real_ns, u64 phys)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->magic, NMIMGR_RECORD_MAGIC, NMIMGR_RECORD_MAGIC_LEN);
	r->version = NMIMGR_RECORD_VERSION;
	r->size = NMIMGR_RECORD_SIZE;
	r->flags = NMIMGR_RECORD_FIRED;
	r->raw_code = 0x21;
	r->event_mask = 0xcf;
	r->masked_code = 0x21 & 0xcf;
	r->nmi_type = NMIMGR_TYPE_UNKNOWN;
	r->cpu = raw_smp_processor_id();
	r->mono_ns = ktime_get_ns();
	r->boot_ns = ktime_get_boottime_ns();
	r->real_ns = real_ns;
	r->nmis = 1;
	r->nonce = get_random_u64();
	r->phys = phys;
	r->checksum = nmimgr_record_checksum(r);
}

static int plant_one(const char *mode, unsigned int slot)
{
	struct nmimgr_record *r;
	u64 at, claims;

	pages[slot] = __get_free_page(GFP_KERNEL | __GFP_ZERO);
	if (!pages[slot])
		return -ENOMEM;
	r = (struct nmimgr_record *)(pages[slot] + RECPLANT_OFFSET);
	at = virt_to_phys(r);
	if (!strcmp(mode, "stale")) {
		claims = at;
		fill(r, ktime_get_real_ns() - STALE_SHIFT_NS, claims);
	} else {
		/* The page the "original" would be in: never written. */
		pages[2] = __get_free_page(GFP_KERNEL | __GFP_ZERO);
		if (!pages[2])
			return -ENOMEM;
		claims = virt_to_phys((void *)(pages[2] + RECPLANT_OFFSET));
		fill(r, ktime_get_real_ns(), claims);
	}
	pr_info("planted %s record at phys 0x%llx claims 0x%llx nonce %016llx\n",
		mode, at, claims, r->nonce);
	return 0;
}

static void free_all(void)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(pages); i++) {
		if (pages[i])
			free_page(pages[i]);
		pages[i] = 0;
	}
}

static int __init recplant_init(void)
{
	bool stale = false, copy = false;
	char buf[32], *s = buf, *word;
	int err = 0;

	if (strscpy(buf, plant, sizeof(buf)) < 0)
		return -EINVAL;
	while ((word = strsep(&s, ",")) != NULL) {
		if (!strcmp(word, "stale") && !stale)
			stale = true;
		else if (!strcmp(word, "copy") && !copy)
			copy = true;
		else if (*word)
			return -EINVAL;
	}
	if (stale)
		err = plant_one("stale", 0);
	if (!err && copy)
		err = plant_one("copy", 1);
	if (err)
		free_all();
	return err;
}

static void __exit recplant_exit(void)
{
	free_all();
}

module_init(recplant_init);
module_exit(recplant_exit);
MODULE_DESCRIPTION("nmimgr VM lab: plant stale and copied trigger records");
MODULE_LICENSE("GPL");
