#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# packaging_deb: packaging/build-deb.sh builds the .debs into
# NMIMGR_PACKAGES_DIR (the fixture nmimgr_debs), lintian passes them, and
# their contents and maintainer scripts are what the packages promise.
# With the VM lab's cached kernel headers, the packaged DKMS source is
# also built as dkms.conf tells DKMS to (no root, no /var/lib/dkms).
# shellcheck source=tests/pipeline/lib.sh
. "$NMIMGR_SOURCE_DIR/tests/pipeline/lib.sh"
: "${NMIMGR_PACKAGES_DIR:?}" "${NMIMGR_VERSION:?}"
for t in dpkg-buildpackage dh dh_dkms fakeroot lintian dpkg-deb; do
	command -v "$t" > /dev/null ||
		skip "$t is missing (scripts/bootstrap.sh installs the packaging tools)"
done
fresh_work
cd "$NMIMGR_SOURCE_DIR" || exit 1
version=$(dpkg-parsechangelog -S Version)
expect_eq "debian/changelog's version is the CMake project version" \
	"$version" "$NMIMGR_VERSION"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
pkgs=$NMIMGR_PACKAGES_DIR
main=$pkgs/nmimgr_${version}_$arch.deb
dkms=$pkgs/nmimgr-dkms_${version}_all.deb

packaging/build-deb.sh "$pkgs" || {
	fail "packaging/build-deb.sh"
	finish
}
for f in "$main" "$dkms"; do
	[ -f "$f" ] || fail "build-deb.sh made no ${f##*/}"
done
# shellcheck disable=SC2154 # failures: lib.sh counts them
[ "$failures" -eq 0 ] || finish

# lintian on the .changes (every .deb it lists); the overrides in
# debian/*.lintian-overrides are part of the packages
if lintian --fail-on error,warning "$pkgs/nmimgr_${version}_$arch.changes" \
	> "$NMIMGR_TEST_WORK/lintian.txt" 2>&1; then
	pass "lintian: no errors or warnings"
else
	fail "lintian"
fi
grep -v '^running with root privileges' "$NMIMGR_TEST_WORK/lintian.txt" || true

# has LISTING PATH...: each PATH (./usr/...) is in the dpkg-deb -c LISTING
has() {
	local listing=$1 p paths
	shift
	paths=$(awk '{print $6}' "$listing")
	for p in "$@"; do
		if grep -qxF "$p" <<< "$paths"; then
			pass "${listing##*/}: $p"
		else
			fail "${listing##*/}: $p is missing"
		fi
	done
}

# field DEB FIELD: the control field
field() {
	dpkg-deb -f "$1" "$2"
}

# script_has DEB SCRIPT TEXT: the maintainer script contains TEXT
script_has() {
	local dir=$NMIMGR_TEST_WORK/control-${1##*/}
	[ -d "$dir" ] || dpkg-deb -e "$1" "$dir"
	if [ -f "$dir/$2" ] && grep -qF -- "$3" "$dir/$2"; then
		pass "${1##*/} $2: $3"
	else
		fail "${1##*/} $2 lacks: $3"
	fi
}

# --- nmimgr-dkms: the module's source, registered with DKMS ------------
src=./usr/src/nmimgr-$version
dpkg-deb -c "$dkms" > "$NMIMGR_TEST_WORK/nmimgr-dkms.list"
has "$NMIMGR_TEST_WORK/nmimgr-dkms.list" "$src/dkms.conf" "$src/Kbuild" \
	"$src/Makefile" "$src/nmimgr_main.c" "$src/policy.c" "$src/policy.h" \
	"$src/nmimgr_record.h" "$src/dkms-post-install"
expect_eq "nmimgr-dkms is Architecture: all" "$(field "$dkms" Architecture)" all
expect_match "nmimgr-dkms depends on dkms" "$(field "$dkms" Depends)" "*dkms (>=*"
script_has "$dkms" postinst "DKMS_NAME=nmimgr"
script_has "$dkms" postinst "DKMS_VERSION=$version"
script_has "$dkms" postinst "common.postinst"
script_has "$dkms" postinst "mokutil --sb-state"
script_has "$dkms" prerm "dkms remove -m \$DKMS_NAME -v \$DKMS_VERSION --all"
x=$NMIMGR_TEST_WORK/x-dkms
dpkg-deb -x "$dkms" "$x"
conf=$x/usr/src/nmimgr-$version/dkms.conf
expect_eq "dkms.conf PACKAGE_VERSION" \
	"$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$conf")" "$version"
expect_eq "dkms.conf AUTOINSTALL" "$(sed -n 's/^AUTOINSTALL="\(.*\)"$/\1/p' "$conf")" yes
if grep -q '^POST_INSTALL="dkms-post-install ' "$conf" &&
	[ -x "$x/usr/src/nmimgr-$version/dkms-post-install" ]; then
	pass "dkms.conf POST_INSTALL runs the packaged dkms-post-install"
else
	fail "dkms.conf POST_INSTALL / dkms-post-install"
fi

# DKMS's build, by hand: dkms copies the source to its tree and sources
# dkms.conf with kernel_source_dir and dkms_tree set, then runs MAKE[0].
headers=
for d in "${NMIMGR_VMLAB_CACHE:-/var/cache/nmimgr-vmlab}"/kernels/6.1.*/root/usr/src/linux-headers-*-amd64; do
	[ -e "$d/Makefile" ] && headers=$d
done
if [ -z "$headers" ]; then
	echo "note: no cached 6.1 headers (cd tests/vm && python3 -m lab fetch): the DKMS source is not built"
else
	tree=$NMIMGR_TEST_WORK/dkms-tree
	mkdir -p "$tree/nmimgr/$version"
	cp -a "$x/usr/src/nmimgr-$version" "$tree/nmimgr/$version/build"
	# shellcheck disable=SC2016 # expanded by the inner bash, as dkms does
	if kernel_source_dir=$headers dkms_tree=$tree bash -c \
		'. "$1" && eval "${MAKE[0]}"' sh "$conf" > "$NMIMGR_TEST_WORK/dkms-make.log" 2>&1 &&
		[ -f "$tree/nmimgr/$version/build/nmimgr.ko" ]; then
		pass "dkms.conf's MAKE[0] builds nmimgr.ko from the package against ${headers##*/}"
	else
		tail -20 "$NMIMGR_TEST_WORK/dkms-make.log"
		fail "dkms.conf's MAKE[0] against ${headers##*/}"
	fi
fi

# --- nmimgr: tools, loader, dracut module, kdump hooks, units -----------
dpkg-deb -c "$main" > "$NMIMGR_TEST_WORK/nmimgr.list"
has "$NMIMGR_TEST_WORK/nmimgr.list" ./usr/sbin/nmimgr-load ./usr/sbin/nmimgr-kdump \
	./usr/bin/nmimgr-vmcore-check ./lib/systemd/system/nmimgr.service \
	./lib/systemd/system/nmimgr-annotate.service \
	./lib/systemd/system/nmimgr-test-report.service \
	./etc/nmimgr.conf ./etc/kdump/pre.d/50-nmimgr \
	./usr/lib/dracut/modules.d/51nmimgr/module-setup.sh \
	./usr/lib/dracut/modules.d/51nmimgr/nmimgr-load.sh \
	./usr/lib/dracut/dracut.conf.d/99-nmimgr.conf \
	./usr/share/initramfs-tools/hooks/nmimgr \
	./usr/share/initramfs-tools/scripts/init-top/nmimgr \
	./usr/share/man/man1/nmimgr-vmcore-check.1.gz \
	./usr/share/man/man5/nmimgr.conf.5.gz \
	./usr/share/man/man8/nmimgr-load.8.gz ./usr/share/man/man8/nmimgr-kdump.8.gz \
	./usr/share/nmimgr/platforms.json ./usr/share/doc/nmimgr/copyright
# every unit cmake --install puts under /lib/systemd/system is packaged
# (dh_missing fails the build otherwise; this names them)
awk '$6 ~ /^\.\/lib\/systemd\/system\/.*\.service$/ {print "  unit: " $6}' \
	"$NMIMGR_TEST_WORK/nmimgr.list"
dpkg-deb --ctrl-tarfile "$main" | tar -xOf - ./conffiles > "$NMIMGR_TEST_WORK/conffiles"
if grep -qxF /etc/nmimgr.conf "$NMIMGR_TEST_WORK/conffiles"; then
	pass "/etc/nmimgr.conf is a conffile"
else
	fail "/etc/nmimgr.conf is not a conffile"
fi
script_has "$main" postinst "nmimgr-kdump install"
script_has "$main" postinst "deb-systemd-helper enable 'nmimgr.service'"
script_has "$main" postinst "deb-systemd-helper enable 'nmimgr-annotate.service'"
script_has "$main" postinst "deb-systemd-helper enable 'nmimgr-test-report.service'"
script_has "$main" prerm "nmimgr-kdump remove"
script_has "$main" postrm "rm -rf /var/lib/nmimgr"
script_has "$main" postrm "deb-systemd-helper purge "
if grep -q "deb-systemd-helper purge .*'nmimgr.service'" \
	"$NMIMGR_TEST_WORK/control-${main##*/}/postrm"; then
	pass "postrm purges nmimgr.service's enablement state"
else
	fail "postrm does not purge nmimgr.service's state"
fi
# the boot initramfs is rebuilt only when nmimgr.conf puts nmimgr in it
# (tests/vm/test_root_nmimgr.py proves both ways on a real root)
script_has "$main" postinst "dpkg-trigger --no-await update-initramfs"
script_has "$main" prerm "dpkg-trigger --no-await update-initramfs"
if dpkg-deb --ctrl-tarfile "$main" | tar -xOf - ./triggers 2> /dev/null |
	grep -q update-initramfs; then
	fail "nmimgr activates update-initramfs on every install and removal (triggers file)"
else
	pass "nmimgr activates update-initramfs only from its scripts, when boot_initramfs = yes"
fi
finish
