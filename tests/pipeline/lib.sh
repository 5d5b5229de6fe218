#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Helpers for the pipeline tests (sourced).  A test exits 0 (pass), 1
# (fail) or 77 (skipped, with the reason on stdout; ctest SKIP_RETURN_CODE).
set -euo pipefail

: "${NMIMGR_SOURCE_DIR:?}" "${NMIMGR_TEST_WORK:?}"
failures=0

skip() {
	echo "SKIP: $*"
	exit 77
}

fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

pass() {
	echo "ok: $*"
}

# expect_eq WHAT GOT WANT
expect_eq() {
	if [ "$2" = "$3" ]; then
		pass "$1"
	else
		fail "$1: got [$2], want [$3]"
	fi
}

# expect_match WHAT TEXT GLOB
expect_match() {
	# shellcheck disable=SC2053 # the pattern is a glob on purpose
	if [[ $2 == $3 ]]; then
		pass "$1"
	else
		fail "$1: [$2] does not match [$3]"
	fi
}

finish() {
	if [ "$failures" -ne 0 ]; then
		echo "$failures check(s) failed"
		exit 1
	fi
	echo "all checks passed"
}

fresh_work() {
	rm -rf "$NMIMGR_TEST_WORK"
	mkdir -p "$NMIMGR_TEST_WORK"
}

# lab_kernel: set kver, kroot (dpkg -x of the kernel packages) and kmodroot
# (depmod'ed modules) from the VM lab's cache (python3 -m lab fetch), the
# release NMIMGR_TEST_KVER names or else the newest 6.1; skip without one.
lab_kernel() {
	local cache=${NMIMGR_VMLAB_CACHE:-/var/cache/nmimgr-vmlab} d
	kver=
	for d in "$cache"/kernels/*/; do
		d=${d%/}
		if ! [ -e "$d/unpacked" ] || ! [ -d "$d/modroot/lib/modules/${d##*/}" ]; then
			continue
		fi
		if [ -n "${NMIMGR_TEST_KVER:-}" ]; then
			[ "${d##*/}" = "$NMIMGR_TEST_KVER" ] && kver=${d##*/}
		elif [[ ${d##*/} == 6.1.* ]]; then
			kver=${d##*/}
		fi
	done
	[ -n "$kver" ] || skip "no ${NMIMGR_TEST_KVER:-6.1} kernel in $cache/kernels (run: cd tests/vm && python3 -m lab fetch)"
	kroot=$cache/kernels/$kver/root
	kmodroot=$cache/kernels/$kver/modroot
}

# module_ko: build nmimgr.ko for $kver against the cached headers (once;
# again when module/ changed) and set ko to its path.
module_ko() {
	local dir=$NMIMGR_BINARY_DIR/tests/pipeline/ko-$kver f stale=
	local headers=$kroot/usr/src/linux-headers-$kver
	[ -e "$headers/Makefile" ] || skip "no headers for $kver in $kroot/usr/src"
	ko=$dir/nmimgr.ko
	for f in Kbuild Makefile nmimgr_main.c policy.c policy.h nmimgr_record.h; do
		[ -e "$ko" ] && [ "$ko" -nt "$NMIMGR_SOURCE_DIR/module/$f" ] || stale=1
	done
	[ -n "$stale" ] || return 0
	rm -rf "$dir"
	mkdir -p "$dir"
	for f in Kbuild Makefile nmimgr_main.c policy.c policy.h nmimgr_record.h; do
		cp "$NMIMGR_SOURCE_DIR/module/$f" "$dir/"
	done
	make -s -C "$headers" M="$dir" modules > "$dir/build.log" 2>&1 || {
		tail -20 "$dir/build.log"
		fail "building nmimgr.ko for $kver"
		finish
	}
}

# private_modroot DIR: a copy of the kernel's modules (hard links) with
# nmimgr.ko where DKMS puts it, depmod'ed; sets kmoddir.
private_modroot() {
	mkdir -p "$1/lib/modules"
	cp -al "$kmodroot/lib/modules/$kver" "$1/lib/modules/"
	# depmod writes new index files: none of them may be the cache's inode
	rm -f "$1/lib/modules/$kver"/modules.*
	for f in modules.builtin modules.order modules.builtin.modinfo; do
		[ -e "$kmodroot/lib/modules/$kver/$f" ] &&
			cp "$kmodroot/lib/modules/$kver/$f" "$1/lib/modules/$kver/"
	done
	mkdir -p "$1/lib/modules/$kver/updates/dkms"
	cp "$ko" "$1/lib/modules/$kver/updates/dkms/nmimgr.ko"
	depmod -b "$1" "$kver"
	# shellcheck disable=SC2034 # read by the tests that source this file
	kmoddir=$1/lib/modules/$kver
}

# stage_install DIR: the pipeline component installed into DIR (prefix /usr)
stage_install() {
	DESTDIR=$1 cmake --install "$NMIMGR_BINARY_DIR" --component pipeline --prefix /usr > "$1.log"
}
