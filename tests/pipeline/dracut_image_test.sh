#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The real dracut (059 on Debian 12) with the installed dracut module:
# `dracut --no-hostonly --kver KVER --add nmimgr` against a Debian kernel
# whose modules carry nmimgr.ko where DKMS puts it (updates/dkms), checked
# with lsinitrd: the module (and modules.dep), the config, the loader and
# the cmdline hook are inside, and the image's loader runs with the image's
# libraries.  Then kdump builds (IN_KDUMP and --aggressive-strip, as
# mkdumprd does) with only the base module: nmimgr comes in through the
# drop-in when capture_module = yes, still loadable (dracut 059's
# aggressive strip takes an unsigned .ko's symbol table; the module turns
# it down to debug sections only), and stays out when it is no.
# shellcheck source=tests/pipeline/lib.sh
. "$(dirname "$0")/lib.sh"
for t in dracut lsinitrd depmod cpio; do
	command -v "$t" > /dev/null || skip "$t is missing (apt-get install dracut-core kmod cpio)"
done
# lab_kernel sets kver, private_modroot kmoddir (lib.sh)
kver='' kmoddir=''
lab_kernel
module_ko
fresh_work
cd "$NMIMGR_TEST_WORK" || exit 1
stage_install "$PWD/stage"
private_modroot "$PWD/modroot"

# dracut's own tree, with nmimgr's module and drop-in as installed
cp -a /usr/lib/dracut dracutbase
cp -a stage/usr/lib/dracut/modules.d/51nmimgr dracutbase/modules.d/
mkdir -p dracutbase/dracut.conf.d
cp -a stage/usr/lib/dracut/dracut.conf.d/99-nmimgr.conf dracutbase/dracut.conf.d/
export dracutbasedir=$PWD/dracutbase
export NMIMGR_LOAD=$PWD/stage/usr/sbin/nmimgr-load NMIMGR_CONF=$PWD/nmimgr.conf
printf '# test policy\npanic = 0\ndrop = 0x80\nconfirm = 1\n' > nmimgr.conf
mkdir tmp

build() { # build IMAGE DRACUT-ARGS...
	local img=$1
	shift
	if ! dracut --force --no-compress --tmpdir "$PWD/tmp" --kver "$kver" \
		--kmoddir "$kmoddir" "$@" "$img" > "$img.log" 2>&1; then
		tail -30 "$img.log"
		fail "dracut $* failed"
		finish
	fi
}

build full.img --no-hostonly --add nmimgr
lsinitrd full.img > full.list
has() { grep -qE "$2" "$1.list"; }
if has full " (usr/)?lib/modules/$kver/updates/dkms/nmimgr\.ko$"; then pass "nmimgr.ko (DKMS's copy) is in the image"; else fail "nmimgr.ko (DKMS's copy) is in the image"; fi
if has full " usr/sbin/nmimgr-load$"; then pass "the loader is in the image"; else fail "the loader is in the image"; fi
if has full " etc/nmimgr.conf$"; then pass "the config is in the image"; else fail "the config is in the image"; fi
if has full " (usr/)?lib/dracut/hooks/cmdline/00-nmimgr-load\.sh$"; then pass "the cmdline hook is in the image"; else fail "the cmdline hook is in the image"; fi
expect_eq "the image's config is the host's" "$(lsinitrd -f etc/nmimgr.conf full.img)" "$(cat nmimgr.conf)"
if lsinitrd -f "usr/lib/modules/$kver/modules.dep" full.img | grep -q '^updates/dkms/nmimgr\.ko:'; then pass "the image's modules.dep knows nmimgr"; else fail "the image's modules.dep knows nmimgr"; fi
order=$(lsinitrd full.img | grep -oE 'hooks/cmdline/[^ ]+' | sort | head -n 1)
expect_eq "nmimgr's hook is the first cmdline hook (before udev and every other one)" \
	"$order" "hooks/cmdline/00-nmimgr-load.sh"
lsinitrd -f usr/lib/dracut/hooks/cmdline/00-nmimgr-load.sh full.img > hook.sh
if sh -n hook.sh; then pass "the hook is POSIX sh"; else fail "the hook is POSIX sh"; fi

# kdump builds: only `base` asked for; the drop-in adds nmimgr when the
# file says capture_module = yes (nmimgr-load on PATH, as installed)
export PATH=$PWD/stage/usr/sbin:$PATH
IN_KDUMP=1 build kdump-yes.img --no-hostonly -m base --aggressive-strip
lsinitrd kdump-yes.img > kdump-yes.list
if has kdump-yes " (usr/)?lib/modules/$kver/updates/dkms/nmimgr\.ko$" && has kdump-yes " usr/sbin/nmimgr-load$"; then pass "kdump build, capture_module = yes: nmimgr is in"; else fail "kdump build, capture_module = yes: nmimgr is in"; fi
mkdir unpacked
(cd unpacked && cpio -id --quiet < ../kdump-yes.img)
expect_eq "the image's loader runs on the image's libraries and reads the image's config" \
	"$(chroot unpacked /usr/sbin/nmimgr-load --get policy)" \
	"ignore= drop=128 panic=0 mask=0xc0 dry_run=0 confirm=500-10000"
ko=unpacked/usr/lib/modules/$kver/updates/dkms/nmimgr.ko
expect_eq "the image's nmimgr.ko is built for $kver" \
	"$(modinfo -F vermagic "$ko" | cut -d' ' -f1)" "$kver"
# what the kernel needs to link the module: its symbol table, after strip
if readelf -S "$ko" | grep -q ' \.symtab '; then pass "after --aggressive-strip the module keeps its symbol table"; else fail "after --aggressive-strip the module keeps its symbol table"; fi
if readelf -S "$ko" | grep -q ' \.debug_'; then fail "the module's debug sections are stripped"; else pass "the module's debug sections are stripped"; fi
printf 'panic = 0\ncapture_module = no\n' > nmimgr.conf
IN_KDUMP=1 build kdump-no.img --no-hostonly -m base
lsinitrd kdump-no.img > kdump-no.list
if has kdump-no "nmimgr"; then fail "kdump build, capture_module = no: nmimgr stays out"; else pass "kdump build, capture_module = no: nmimgr stays out"; fi
build first.img --no-hostonly -m base
lsinitrd first.img > first.list
if has first "nmimgr"; then fail "first-kernel build, boot_initramfs = no: nmimgr stays out"; else pass "first-kernel build, boot_initramfs = no: nmimgr stays out"; fi
printf 'panic = 0\nboot_initramfs = yes\n' > nmimgr.conf
build early.img --no-hostonly -m base
lsinitrd early.img > early.list
if has early " (usr/)?lib/modules/$kver/updates/dkms/nmimgr\.ko$"; then pass "first-kernel build, boot_initramfs = yes: nmimgr is in"; else fail "first-kernel build, boot_initramfs = yes: nmimgr is in"; fi
finish
