#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The real mkinitramfs (initramfs-tools 0.142 on Debian 12) with nmimgr's
# installed hook and init-top script: kdump-tools' initrd
# (CONFDIR=/var/lib/kdump/initramfs-tools, as kdump-config builds it) gets
# nmimgr.ko, the loader and the config, and runs the script before udev;
# any other initrd gets nothing unless boot_initramfs = yes; capture_module
# = no keeps it out of kdump-tools' too.  The host is not touched: the
# kernel's modules, the hooks and the kdump CONFDIR appear only inside a
# private mount namespace (overlays on /usr/lib, /usr/share/initramfs-tools
# and /var/lib).
# shellcheck source=tests/pipeline/lib.sh
. "$(dirname "$0")/lib.sh"
for t in mkinitramfs lsinitramfs unshare depmod; do
	command -v "$t" > /dev/null || skip "$t is missing (apt-get install initramfs-tools-core util-linux kmod)"
done
[ -d /boot ] || skip "no /boot to mount the kernel's config on"
[ "$(id -u)" -eq 0 ] || skip "needs root for a private mount namespace"
unshare -m true 2> /dev/null || skip "cannot make a private mount namespace here"
lab_kernel
module_ko
fresh_work
cd "$NMIMGR_TEST_WORK"
stage_install "$PWD/stage"
private_modroot "$PWD/modroot"
mkdir -p up/lib/modules up/itools/hooks up/itools/scripts/init-top up/var/kdump/initramfs-tools \
	wk/lib wk/itools wk/var first-conf
cp -al "modroot/lib/modules/$kver" up/lib/modules/
cp -a stage/usr/share/initramfs-tools/hooks/nmimgr up/itools/hooks/
cp -a stage/usr/share/initramfs-tools/scripts/init-top/nmimgr up/itools/scripts/init-top/
# a small, quick initramfs.conf: no module autodetection on a build host
for d in up/var/kdump/initramfs-tools first-conf; do
	printf 'MODULES=list\nBUSYBOX=n\nCOMPRESS=gzip\nRUNSIZE=10%%\nFSTYPE=auto\n' > "$d/initramfs.conf"
	: > "$d/modules"
done
export NMIMGR_LOAD=$PWD/stage/usr/sbin/nmimgr-load NMIMGR_CONF=$PWD/nmimgr.conf

# inside IMAGE CONFDIR: mkinitramfs in the private namespace
inside() {
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -m bash -c '
		set -e
		w=$1 kver=$2 img=$3 confdir=$4 kroot=$5
		mount --bind "$kroot/boot" /boot # mkinitramfs reads config-$kver
		mount -t overlay overlay -o "lowerdir=/usr/lib,upperdir=$w/up/lib,workdir=$w/wk/lib" /usr/lib
		mount -t overlay overlay -o "lowerdir=/usr/share/initramfs-tools,upperdir=$w/up/itools,workdir=$w/wk/itools" /usr/share/initramfs-tools
		mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$w/up/var,workdir=$w/wk/var" /var/lib
		mkinitramfs -d "$confdir" -o "$w/$img" "$kver"
	' sh "$PWD" "$kver" "$1" "$2" "$kroot" > "$1.log" 2>&1 || {
		tail -20 "$1.log"
		fail "mkinitramfs for $1"
		finish
	}
	lsinitramfs "$1" > "$1.list"
}
has() { grep -qE "$2" "$1.list"; }

printf 'panic = 0\nconfirm = 1\n' > nmimgr.conf
inside kdump.img /var/lib/kdump/initramfs-tools
if has kdump.img "lib/modules/$kver/updates/dkms/nmimgr\.ko$"; then pass "kdump initrd: nmimgr.ko (DKMS's copy)"; else fail "kdump initrd: nmimgr.ko (DKMS's copy)"; fi
if has kdump.img "^usr/sbin/nmimgr-load$"; then pass "kdump initrd: the loader"; else fail "kdump initrd: the loader"; fi
if has kdump.img "^etc/nmimgr.conf$"; then pass "kdump initrd: the config"; else fail "kdump initrd: the config"; fi
if has kdump.img "^scripts/init-top/nmimgr$"; then pass "kdump initrd: the init-top script"; else fail "kdump initrd: the init-top script"; fi
mkdir x
unmkinitramfs kdump.img x > /dev/null 2>&1 || true
order=$(find x -path '*scripts/init-top/ORDER' | head -n 1)
if [ -n "$order" ] && grep -q 'init-top/nmimgr' "$order"; then pass "the script is in init-top's ORDER"; else fail "the script is in init-top's ORDER"; fi
if cmp -s nmimgr.conf "$(find x -path '*/etc/nmimgr.conf' | head -n 1)"; then pass "kdump initrd: the host's config"; else fail "kdump initrd: the host's config"; fi

inside first.img "$PWD/first-conf"
if has first.img "nmimgr\.ko|nmimgr-load|nmimgr\.conf"; then fail "first kernel's initrd: nothing of nmimgr's"; else pass "first kernel's initrd: nothing of nmimgr's"; fi
printf 'panic = 0\nboot_initramfs = yes\n' > nmimgr.conf
inside early.img "$PWD/first-conf"
if has early.img "nmimgr\.ko$" && has early.img "^usr/sbin/nmimgr-load$"; then pass "boot_initramfs = yes: the first kernel's initrd loads nmimgr"; else fail "boot_initramfs = yes: the first kernel's initrd loads nmimgr"; fi
printf 'panic = 0\ncapture_module = no\n' > nmimgr.conf
inside nocap.img /var/lib/kdump/initramfs-tools
if has nocap.img "nmimgr\.ko|nmimgr-load"; then fail "capture_module = no: kept out of the kdump initrd"; else pass "capture_module = no: kept out of the kdump initrd"; fi
if [ -e /var/lib/kdump/initramfs-tools ]; then fail "the host's /var/lib is untouched"; else pass "the host's /var/lib is untouched"; fi
finish
