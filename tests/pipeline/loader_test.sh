#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# nmimgr-load against files and a fake /sys: validation with file:line, the
# module options, the capture command line, applying to a running module
# (and a refused write leaving the policy in force), loading through
# modprobe, the capture kernel's latch check and the stamp.
# shellcheck source=tests/pipeline/lib.sh
. "$(dirname "$0")/lib.sh"
load=${NMIMGR_LOAD_BIN:?}
fresh_work
cd "$NMIMGR_TEST_WORK"

# --- validation ---------------------------------------------------------
"$load" -c "$NMIMGR_SOURCE_DIR/etc/nmimgr.conf" --check > shipped.out
expect_eq "the shipped example is valid and all defaults" \
	"$(head -n 1 shipped.out)" "policy = ignore= drop= panic= mask=0xc0 dry_run=0 confirm=0"
expect_eq "every shield switch is on by default" \
	"$(grep -c '^capture_.* = yes$' shipped.out)" 4

bad() { # bad NAME CONTENT EXPECTED-MESSAGE-GLOB
	printf '%b' "$2" > "$1.conf"
	set +e
	"$load" -c "$1.conf" --check > /dev/null 2> "$1.err"
	rc=$?
	set -e
	expect_eq "$1: exit 1" "$rc" 1
	expect_match "$1: message" "$(cat "$1.err")" "$3"
}
bad reversed '# c\npanic = 5-3\n' "nmimgr-load: reversed.conf:2: panic: range 5-3 is reversed*"
bad mask 'mask = 0x0f\n' "nmimgr-load: mask.conf:1: mask: mask 0x0f drops bit*keep 0xc0"
bad twice 'drop = 0\n\nevents_drop = 1\n' "nmimgr-load: twice.conf:3: 'drop' is already set on line 1"
bad mixed 'policy = panic=0\nconfirm = 1\n' "nmimgr-load: mixed.conf:2: 'confirm' cannot be combined with 'policy' (line 1)*"
bad unknown 'panik = 0\n' "nmimgr-load: unknown.conf:1: unknown key 'panik'"
bad novalue 'panic 0\n' "nmimgr-load: novalue.conf:1: expected 'key = value'"
bad switch 'capture_extnmi = maybe\n' "nmimgr-load: switch.conf:1: capture_extnmi: 'maybe': expected yes or no"
bad types 'types = unknown,nmi\n' "nmimgr-load: types.conf:1: types: 'unknown,nmi'*"
bad confirm 'confirm = 50-100\n' "nmimgr-load: confirm.conf:1: confirm: window must be*"
bad list 'panic = 0, 1\n' "nmimgr-load: list.conf:1: panic: *"

cat > good.conf << 'CONF'
# the BMC button panics on a double press, SERR is dropped
panic = 0          # code 0: unknown NMIs
events_drop = 0x80
confirm = 1
types = unknown
capture_drop = managed
capture_watchdog = no
CONF
expect_eq "the policy in canonical form" "$("$load" -c good.conf --get policy)" \
	"ignore= drop=128 panic=0 mask=0xc0 dry_run=0 confirm=500-10000"
expect_eq "modprobe options are one word each, policy joined by ;" \
	"$("$load" -c good.conf --modprobe-options)" \
	"policy=ignore=;drop=128;panic=0;mask=0xc0;dry_run=0;confirm=500-10000 types=unknown capture_drop=managed"
printf 'policy = %s\n' "$("$load" -c good.conf --modprobe-options | sed 's/^policy=//; s/ .*//')" > word.conf
expect_eq "the ;-joined policy reads back through the policy core" \
	"$("$load" -c word.conf --get policy)" "$("$load" -c good.conf --get policy)"
expect_eq "the whole-policy form reads back" \
	"$(printf 'policy = %s\n' "$("$load" -c good.conf --get policy)" > whole.conf && "$load" -c whole.conf --get policy)" \
	"$("$load" -c good.conf --get policy)"

# --- the capture command line -------------------------------------------
mkdir -p sys/class/watchdog/watchdog0/device sys/bus/pci/drivers/hpwdt sys/module/hpwdt \
	sys/class/watchdog/watchdog1/device sys/bus/platform/drivers/iTCO_wdt sys/module/iTCO_wdt
ln -s ../../../../bus/pci/drivers/hpwdt sys/class/watchdog/watchdog0/device/driver
ln -s ../../../module/hpwdt sys/bus/pci/drivers/hpwdt/module
ln -s ../../../../bus/platform/drivers/iTCO_wdt sys/class/watchdog/watchdog1/device/driver
ln -s ../../../module/iTCO_wdt sys/bus/platform/drivers/iTCO_wdt/module
words=$("$load" --sysroot "$PWD" -c "$NMIMGR_SOURCE_DIR/etc/nmimgr.conf" --cmdline)
for w in apic_extnmi=none sysctl.kernel.unknown_nmi_panic=0 sysctl.kernel.panic_on_io_nmi=0 \
	sysctl.kernel.panic_on_unrecovered_nmi=0 hpwdt.pretimeout=0 hpwdt.kdumptimeout=0 iTCO_wdt.pretimeout=0; do
	expect_match "capture cmdline has $w" " $words " "* $w *"
done
expect_eq "each word once" "$(tr ' ' '\n' <<< "$words" | sort | uniq -d)" ""
printf 'capture_extnmi = no\ncapture_nmi_sysctls = no\ncapture_watchdog = no\n' > off.conf
expect_eq "every layer can be switched off" "$("$load" --sysroot "$PWD" -c off.conf --cmdline)" ""
expect_eq "no sysctl lines when switched off" "$("$load" -c off.conf --sysctl)" ""
expect_eq "the capture root's sysctls" "$("$load" -c good.conf --sysctl | tr '\n' ' ')" \
	"kernel.unknown_nmi_panic=0 kernel.panic_on_io_nmi=0 kernel.panic_on_unrecovered_nmi=0 "

# --- applying to a running module (a fake /sys/module/nmimgr) ---------------
params=sys/module/nmimgr/parameters
mkdir -p "$params" sys/kernel/nmimgr
echo "ignore= drop= panic= mask=0xc0 dry_run=0 confirm=0" > "$params/policy"
echo unknown > "$params/types"
echo all > "$params/capture_drop"
out=$(NMIMGR_KDUMP_HELPER=/nonexistent "$load" --sysroot "$PWD" -c good.conf --apply)
expect_eq "--apply writes the canonical policy in one write" "$(cat "$params/policy")" \
	"ignore= drop=128 panic=0 mask=0xc0 dry_run=0 confirm=500-10000"
expect_eq "--apply writes capture_drop" "$(cat "$params/capture_drop")" managed
expect_match "--apply says what is in force" "$out" "*policy in force: ignore= drop=128 panic=0*"
expect_match "--apply says the capture side was not told" "$out" "*rebuild the kdump initramfs yourself*"

before=$(cat "$params/policy")
set +e
NMIMGR_KDUMP_HELPER=/nonexistent "$load" --sysroot "$PWD" -c reversed.conf --apply > /dev/null 2>&1
rc=$?
set -e
expect_eq "an invalid file: exit 1" "$rc" 1
expect_eq "an invalid file: the policy in force is unchanged" "$(cat "$params/policy")" "$before"

printf 'panic = 0\n' > panic0.conf
mv "$params/policy" policy.saved
ln -s /dev/full "$params/policy" # every write fails, as a refused one does
set +e
err=$(NMIMGR_KDUMP_HELPER=/nonexistent "$load" --sysroot "$PWD" -c panic0.conf --apply 2>&1)
rc=$?
set -e
expect_eq "a write the module refuses: exit 3" "$rc" 3
expect_match "a write the module refuses: said so" "$err" "*nmimgr rejected policy=*the policy in force is unchanged*"
rm "$params/policy"
mv policy.saved "$params/policy"

echo unknown,serr > "$params/types"
out=$(NMIMGR_KDUMP_HELPER=/nonexistent "$load" --sysroot "$PWD" -c good.conf --apply)
expect_match "types cannot change at runtime: said so" "$out" "*types=unknown is read at load time only*"

# the helper is run on --apply
cat > helper.sh << 'SH'
#!/bin/sh
echo "helper called with $*" > "$(dirname "$0")/helper.log"
SH
chmod +x helper.sh
NMIMGR_KDUMP_HELPER=$PWD/helper.sh "$load" -q --sysroot "$PWD" -c good.conf --apply
expect_eq "--apply runs nmimgr-kdump refresh" "$(cat helper.log 2> /dev/null)" "helper called with refresh"

# --- loading through modprobe ----------------------------------------------
rm -rf sys/module/nmimgr
cat > modprobe.sh << 'SH'
#!/bin/sh
# a modprobe that "loads" nmimgr into the fake /sys and records its arguments
root=$(dirname "$0")
printf '%s\n' "$@" > "$root/modprobe.args"
mkdir -p "$root/sys/module/nmimgr/parameters"
echo "ignore= drop= panic= mask=0xc0 dry_run=0 confirm=0" > "$root/sys/module/nmimgr/parameters/policy"
if [ -e "$root/proc/vmcore" ]; then l=1; else l=0; fi
printf 'nmis 0\nlatched %s\ncapture_kernel %s\n' "$l" "$l" > "$root/sys/kernel/nmimgr/stats"
SH
chmod +x modprobe.sh
out=$(NMIMGR_MODPROBE=$PWD/modprobe.sh "$load" --sysroot "$PWD" -c good.conf --load)
expect_eq "--load runs modprobe with the options" "$(tr '\n' ' ' < modprobe.args)" \
	"nmimgr policy=ignore=;drop=128;panic=0;mask=0xc0;dry_run=0;confirm=500-10000 types=unknown capture_drop=managed "
expect_match "--load says so" "$out" "*nmimgr loaded*"

rm -rf sys/module/nmimgr modprobe.args
printf 'boot_load = no\n' > noboot.conf
NMIMGR_MODPROBE=$PWD/modprobe.sh "$load" -q --sysroot "$PWD" -c noboot.conf --load
expect_eq "boot_load = no: nothing loaded" "$([ -e modprobe.args ] && echo loaded || echo none)" none
NMIMGR_MODPROBE=$PWD/modprobe.sh "$load" -q --sysroot "$PWD" -c good.conf --load --initramfs
expect_eq "first kernel's initramfs without boot_initramfs: nothing loaded" \
	"$([ -e modprobe.args ] && echo loaded || echo none)" none

mkdir -p proc && : > proc/vmcore
out=$(NMIMGR_MODPROBE=$PWD/modprobe.sh "$load" --sysroot "$PWD" -c good.conf --load --initramfs)
expect_match "capture kernel: loaded and latched" "$out" "*capture kernel: nmimgr latched*"
rm -rf sys/module/nmimgr modprobe.args
printf 'capture_module = no\n' > nocap.conf
NMIMGR_MODPROBE=$PWD/modprobe.sh "$load" -q --sysroot "$PWD" -c nocap.conf --load --initramfs
expect_eq "capture_module = no: nothing loaded in the capture kernel" \
	"$([ -e modprobe.args ] && echo loaded || echo none)" none
sed -i 's/^if .*then l=1.*/l=0/' modprobe.sh
set +e
NMIMGR_MODPROBE=$PWD/modprobe.sh "$load" -q --sysroot "$PWD" -c good.conf --load > /dev/null 2> latch.err
rc=$?
set -e
expect_eq "capture kernel without the latch: exit 3" "$rc" 3
rm -f proc/vmcore

# --- the stamp -------------------------------------------------------------
mkdir -p lib/modules/6.1.0-test/updates/dkms
echo ko > lib/modules/6.1.0-test/updates/dkms/nmimgr.ko
s1=$("$load" --sysroot "$PWD" --kver 6.1.0-test -c good.conf --stamp)
{
	echo "# a comment changes nothing"
	cat good.conf
} > good2.conf
s2=$("$load" --sysroot "$PWD" --kver 6.1.0-test -c good2.conf --stamp)
expect_eq "a comment does not change the stamp" "$s2" "$s1"
sed 's/^confirm = 1/confirm = 0/' good.conf > good3.conf
s3=$("$load" --sysroot "$PWD" --kver 6.1.0-test -c good3.conf --stamp)
if [ "$s3" != "$s1" ]; then pass "a policy change changes the stamp"; else fail "a policy change changes the stamp"; fi
{
	cat good.conf
	echo "capture_extnmi = no"
} > good4.conf
expect_eq "a command-line switch does not change the stamp (it acts when kdump loads)" \
	"$("$load" --sysroot "$PWD" --kver 6.1.0-test -c good4.conf --stamp)" "$s1"
touch -d '2001-01-01' lib/modules/6.1.0-test/updates/dkms/nmimgr.ko
s4=$("$load" --sysroot "$PWD" --kver 6.1.0-test -c good.conf --stamp)
if [ "$s4" != "$s1" ]; then pass "a new nmimgr.ko changes the stamp"; else fail "a new nmimgr.ko changes the stamp"; fi

expect_eq "only libc (it runs in initramfs images)" \
	"$(ldd "$load" | awk '{print $1}' | grep -v -e linux-vdso -e ld-linux -e '^libc.so' || true)" ""
finish
