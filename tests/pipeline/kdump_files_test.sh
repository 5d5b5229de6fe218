#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# nmimgr-kdump on sample kdump-tools and kdumpctl files in a --root: the
# shield lands in KDUMP_CMDLINE_APPEND without losing kdump-tools' defaults
# (the file is read by dash and by systemd), the NMI sysctls and the stamp
# in /etc/kdump/sysctl.conf, rebuild triggers only on a change, and remove
# gives back every file byte for byte, an admin-edited one included.
# shellcheck source=tests/pipeline/lib.sh
. "$(dirname "$0")/lib.sh"
load=${NMIMGR_LOAD_BIN:?}
helper=$NMIMGR_SOURCE_DIR/kdump-hooks/nmimgr-kdump
samples=$NMIMGR_SOURCE_DIR/tests/pipeline/samples
command -v dash > /dev/null || skip "dash is missing (kdump-config's shell)"
fresh_work
cd "$NMIMGR_TEST_WORK"
export NMIMGR_LOAD=$load NMIMGR_CONF=$PWD/nmimgr.conf
printf 'panic = 0\nconfirm = 1\n' > nmimgr.conf
shield=$("$load" -c nmimgr.conf --cmdline)
kt_default="reset_devices systemd.unit=kdump-tools-dump.service nr_cpus=1 irqpoll usbcore.nousb"

# a root with kdump-tools
mkroot() { # mkroot DIR DEFAULTS-SAMPLE
	mkdir -p "$1/etc/default" "$1/etc/kdump" "$1/usr/sbin"
	cp "$2" "$1/etc/default/kdump-tools"
	cp "$samples/kdump-sysctl.conf" "$1/etc/kdump/sysctl.conf"
	cp "$samples/kdump-config" "$1/usr/sbin/kdump-config"
	printf '#!/bin/sh\n' > "$1/usr/sbin/mkinitramfs"
	chmod +x "$1/usr/sbin/mkinitramfs"
}
# sourced the way kdump-config does it
dash_value() {
	# shellcheck disable=SC2016 # expanded by dash
	env -i dash -c '. "$1"; printf %s "$KDUMP_CMDLINE_APPEND"' sh "$1/etc/default/kdump-tools"
}

for sample in kdump-tools.default kdump-tools.admin; do
	r=$PWD/root-$sample
	mkroot "$r" "$samples/$sample"
	"$helper" --root "$r" install > install.out
	if [ "$sample" = kdump-tools.default ]; then base=$kt_default; else
		base="$kt_default console=ttyS0,115200"
	fi
	expect_eq "$sample: dash sees the defaults, then the shield" "$(dash_value "$r")" "$base $shield"
	expect_match "$sample: systemd.unit=kdump-tools-dump.service survives" \
		" $(dash_value "$r") " "* systemd.unit=kdump-tools-dump.service *"
	# systemd's EnvironmentFile= takes the line as it is: no expansion inside
	line=$(grep '^KDUMP_CMDLINE_APPEND=' "$r/etc/default/kdump-tools" | tail -n 1)
	expect_eq "$sample: one literal assignment, the same for systemd" "$line" \
		"KDUMP_CMDLINE_APPEND=\"$base $shield\""
	expect_eq "$sample: the capture root's NMI sysctls" \
		"$(grep '^kernel\.' "$r/etc/kdump/sysctl.conf" | tr '\n' ' ')" \
		"kernel.unknown_nmi_panic=0 kernel.panic_on_io_nmi=0 kernel.panic_on_unrecovered_nmi=0 "
	expect_eq "$sample: the package's own sysctls stay" \
		"$(grep -c '^vm\.' "$r/etc/kdump/sysctl.conf")" 2
	expect_match "$sample: install says to reload" "$(cat install.out)" "*kdump-config reload*rebuilt*"

	cp "$r/etc/default/kdump-tools" once
	cp "$r/etc/kdump/sysctl.conf" once.sysctl
	"$helper" --root "$r" install > again.out
	if cmp -s once "$r/etc/default/kdump-tools" && cmp -s once.sysctl "$r/etc/kdump/sysctl.conf"; then pass "$sample: installing twice changes nothing"; else fail "$sample: installing twice changes nothing"; fi
	expect_match "$sample: nothing to rebuild when nothing changed" "$(cat again.out)" "*up to date, nothing to rebuild*"
	expect_eq "$sample: one block" "$(grep -c '^# >>> nmimgr' "$r/etc/default/kdump-tools")" 1

	"$helper" --root "$r" remove > /dev/null
	if cmp "$samples/$sample" "$r/etc/default/kdump-tools"; then pass "$sample: remove restores the defaults file byte for byte"; else fail "$sample: remove restores the defaults file byte for byte"; fi
	if cmp "$samples/kdump-sysctl.conf" "$r/etc/kdump/sysctl.conf"; then pass "$sample: remove restores sysctl.conf byte for byte"; else fail "$sample: remove restores sysctl.conf byte for byte"; fi
done

# an edit made while installed, outside the block, is kept by remove
r=$PWD/root-edit
mkroot "$r" "$samples/kdump-tools.default"
"$helper" --root "$r" install > /dev/null
sed -i 's/^USE_KDUMP=1/USE_KDUMP=0/' "$r/etc/default/kdump-tools"
"$helper" --root "$r" remove > /dev/null
sed 's/^USE_KDUMP=1/USE_KDUMP=0/' "$samples/kdump-tools.default" > want
if cmp want "$r/etc/default/kdump-tools"; then pass "remove keeps the admin's later edit"; else fail "remove keeps the admin's later edit"; fi

# refresh: a policy change rebuilds, a command-line change only reloads
r=$PWD/root-refresh
mkroot "$r" "$samples/kdump-tools.default"
"$helper" --root "$r" install > /dev/null
cp "$r/etc/kdump/sysctl.conf" s0
printf 'panic = 0\nconfirm = 0\n' > nmimgr.conf
out=$("$helper" --root "$r" refresh)
if cmp -s s0 "$r/etc/kdump/sysctl.conf"; then fail "a policy change rewrites the stamp"; else pass "a policy change rewrites the stamp (kdump-config rebuilds on a changed sysctl.conf)"; fi
expect_match "a policy change: rebuild" "$out" "*kdump-config reload*rebuilt*"
printf 'panic = 0\nconfirm = 0\ncapture_extnmi = no\n' > nmimgr.conf
out=$("$helper" --root "$r" refresh)
expect_match "a shield change: reload, no rebuild" "$out" "*new command line (no rebuild needed)*"
expect_match "capture_extnmi = no takes apic_extnmi=none away" " $(dash_value "$r") " "* systemd.unit=kdump-tools-dump.service *"
case " $(dash_value "$r") " in *" apic_extnmi=none "*) fail "apic_extnmi=none gone" ;; *) pass "apic_extnmi=none gone" ;; esac
out=$("$helper" --root "$r" refresh)
expect_match "refresh without a change: nothing to do" "$out" "*up to date, nothing to rebuild*"
cp "$r/etc/default/kdump-tools" d1
printf 'panic = 5-3\n' > nmimgr.conf
set +e
"$helper" --root "$r" refresh > bad.out 2>&1
rc=$?
set -e
expect_eq "an invalid nmimgr.conf: refresh fails" "$rc" 1
expect_match "an invalid nmimgr.conf: file:line" "$(cat bad.out)" "*nmimgr.conf:1: panic: range 5-3 is reversed*"
if cmp -s d1 "$r/etc/default/kdump-tools"; then pass "an invalid nmimgr.conf changes nothing"; else fail "an invalid nmimgr.conf changes nothing"; fi
printf 'panic = 0\nconfirm = 1\n' > nmimgr.conf

# kdump-tools on a root whose initramfs generator is dracut: said, not hidden
r=$PWD/root-dracut
mkroot "$r" "$samples/kdump-tools.default"
out=$("$helper" --root "$r" --kdump-tools install)
expect_match "kdump-tools with mkinitramfs: no warning" "$out" "*kdump-config reload*"
case $out in *warning*) fail "kdump-tools with mkinitramfs: no warning" ;; *) pass "kdump-tools with mkinitramfs: no warning" ;; esac
"$helper" --root "$r" remove > /dev/null
rm "$r/usr/sbin/mkinitramfs"
out=$("$helper" --root "$r" --kdump-tools install)
expect_match "kdump-tools without mkinitramfs: the fix is named" "$out" \
	"*warning: kdump-tools: no mkinitramfs*install initramfs-tools-core*"

# kdumpctl: /etc/sysconfig/kdump, the pre.d trigger
r=$PWD/root-kdumpctl
mkdir -p "$r/etc/kdump/pre.d" "$r/usr/bin"
: > "$r/etc/kdump.conf"
cp "$NMIMGR_SOURCE_DIR/kdump-hooks/kdumpctl/pre.d/50-nmimgr" "$r/etc/kdump/pre.d/"
touch -d '2001-01-01' "$r/etc/kdump/pre.d/50-nmimgr"
"$helper" --root "$r" --kdumpctl install > kc.out
expect_eq "kdumpctl: a missing sysconfig file is created with the shield" \
	"$(bash -c '. "$1"; printf %s "$KDUMP_COMMANDLINE_APPEND"' sh "$r/etc/sysconfig/kdump")" "$shield"
[ "$r/etc/kdump/pre.d/50-nmimgr" -nt "$r/etc/kdump.conf" ] || touch -d '2001-01-01' "$r/etc/kdump.conf"
t1=$(stat -c %Y "$r/etc/kdump/pre.d/50-nmimgr")
expect_eq "kdumpctl: install marks the image out of date (pre.d hook touched)" "$([ "$t1" -gt 978307200 ] && echo yes)" yes
expect_match "kdumpctl: says to restart" "$(cat kc.out)" "*kdumpctl restart*rebuilt*"
touch -d '2001-01-01' "$r/etc/kdump/pre.d/50-nmimgr"
out=$("$helper" --root "$r" --kdumpctl refresh)
expect_eq "kdumpctl: no change, hook not touched" "$(stat -c %Y "$r/etc/kdump/pre.d/50-nmimgr")" 978307200
expect_match "kdumpctl: no change, nothing to rebuild" "$out" "*kdumpctl: up to date*"
printf 'panic = 0\ndrop = 0x80\n' > nmimgr.conf
"$helper" --root "$r" --kdumpctl refresh > /dev/null
if [ "$(stat -c %Y "$r/etc/kdump/pre.d/50-nmimgr")" -gt 978307200 ]; then pass "kdumpctl: a policy change touches the watched pre.d hook"; else fail "kdumpctl: a policy change touches the watched pre.d hook"; fi
"$helper" --root "$r" --kdumpctl remove > /dev/null
if [ -e "$r/etc/sysconfig/kdump" ] || [ -e "$r/var/lib/nmimgr" ]; then
	fail "kdumpctl: remove deletes the file it created, and its state"
else
	pass "kdumpctl: remove deletes the file it created, and its state"
fi

mkdir -p "$r/etc/sysconfig"
cp "$samples/sysconfig-kdump" "$r/etc/sysconfig/kdump"
"$helper" --root "$r" --kdumpctl install > /dev/null
expect_eq "kdumpctl: the admin's APPEND, then the shield" \
	"$(bash -c '. "$1"; printf %s "$KDUMP_COMMANDLINE_APPEND"' sh "$r/etc/sysconfig/kdump")" \
	"irqpoll nr_cpus=1 reset_devices panic=10 $("$load" -c nmimgr.conf --cmdline)"
"$helper" --root "$r" --kdumpctl remove > /dev/null
if cmp "$samples/sysconfig-kdump" "$r/etc/sysconfig/kdump"; then pass "kdumpctl: remove restores /etc/sysconfig/kdump byte for byte"; else fail "kdumpctl: remove restores /etc/sysconfig/kdump byte for byte"; fi
finish
