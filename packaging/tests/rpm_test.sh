#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# packaging_rpm: packaging/rpm/nmimgr.spec parses (rpmspec -P), carries
# the CMake project version, and rpmbuild -bs makes an SRPM from a tarball
# of the tree (packaging/copy-tree.sh).  With NMIMGR_RPM_BB=1 it also runs
# rpmbuild -bb --nodeps with packaging/rpm/non-fedora.macros standing in
# for Fedora's cmake and systemd macros, and checks the files.
# shellcheck source=tests/pipeline/lib.sh
. "$NMIMGR_SOURCE_DIR/tests/pipeline/lib.sh"
: "${NMIMGR_VERSION:?}"
for t in rpmspec rpmbuild rpm; do
	command -v "$t" > /dev/null || skip "$t is missing (apt-get install rpm)"
done
fresh_work
spec=$NMIMGR_SOURCE_DIR/packaging/rpm/nmimgr.spec
top=$NMIMGR_TEST_WORK/rpmbuild

if rpmspec -P "$spec" > "$NMIMGR_TEST_WORK/parsed.spec"; then
	pass "rpmspec -P parses nmimgr.spec"
else
	fail "rpmspec -P"
	finish
fi
expect_eq "the spec's Version is the CMake project version" \
	"$(rpmspec -q --srpm --qf '%{VERSION}' "$spec")" "$NMIMGR_VERSION"
expect_eq "the spec makes nmimgr and nmimgr-dkms" \
	"$(rpmspec -q --qf '%{NAME}\n' "$spec" | sort | tr '\n' ' ')" "nmimgr nmimgr-dkms "
for s in "nmimgr-kdump install" "nmimgr-kdump remove" "dkms add -m" "dkms remove -m" "%systemd_post"; do
	if grep -qF -- "$s" "$NMIMGR_TEST_WORK/parsed.spec"; then
		pass "scriptlets: $s"
	else
		fail "scriptlets lack: $s"
	fi
done

name=nmimgr-$NMIMGR_VERSION
mkdir -p "$top/SOURCES"
"$NMIMGR_SOURCE_DIR/packaging/copy-tree.sh" "$NMIMGR_TEST_WORK/$name"
tar -czf "$top/SOURCES/$name.tar.gz" -C "$NMIMGR_TEST_WORK" "$name"
srpm=$top/SRPMS/$name-1.src.rpm
if rpmbuild -bs --define "_topdir $top" --define "dist %{nil}" "$spec" \
	> "$NMIMGR_TEST_WORK/bs.log" 2>&1 && [ -f "$srpm" ]; then
	pass "rpmbuild -bs makes ${srpm##*/}"
else
	cat "$NMIMGR_TEST_WORK/bs.log"
	fail "rpmbuild -bs"
	finish
fi
expect_eq "the SRPM holds the spec and the tarball" \
	"$(rpm -qpl "$srpm" 2> /dev/null | sort | tr '\n' ' ')" "$name.tar.gz nmimgr.spec "

if [ "${NMIMGR_RPM_BB:-0}" = 1 ]; then
	if nice -n 10 rpmbuild -bb --nodeps --define "_topdir $top" --define "dist %{nil}" \
		--load "$NMIMGR_SOURCE_DIR/packaging/rpm/non-fedora.macros" "$spec" \
		> "$NMIMGR_TEST_WORK/bb.log" 2>&1; then
		pass "rpmbuild -bb --nodeps (stand-in macros)"
		files=$(rpm -qpl "$top/RPMS/noarch/nmimgr-dkms-$NMIMGR_VERSION-1.noarch.rpm")
		if grep -qxF "/usr/src/$name/dkms.conf" <<< "$files"; then
			pass "nmimgr-dkms holds /usr/src/$name/dkms.conf"
		else
			fail "nmimgr-dkms lacks /usr/src/$name/dkms.conf"
		fi
	else
		tail -30 "$NMIMGR_TEST_WORK/bb.log"
		fail "rpmbuild -bb --nodeps"
	fi
else
	echo "note: NMIMGR_RPM_BB=1 also runs rpmbuild -bb --nodeps (a full build)"
fi
finish
