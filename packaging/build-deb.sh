#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# build-deb.sh OUTDIR: build nmimgr's Debian packages from a clean copy of
# this checkout (packaging/copy-tree.sh) in a temporary directory, as
# dpkg-buildpackage writes its results next to the source tree, and put
# the .deb files (with the .changes and .buildinfo that list them) into
# OUTDIR.  Earlier nmimgr packages in OUTDIR are replaced.  The build log
# is OUTDIR/build-deb.log.  Unit tests are not run (nocheck).
set -euo pipefail

die() {
	printf 'build-deb.sh: %s\n' "$*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: build-deb.sh OUTDIR"
here=$(cd "$(dirname "$0")" && pwd)
top=${here%/*}
for t in dpkg-buildpackage dpkg-parsechangelog dh dh_dkms fakeroot; do
	command -v "$t" > /dev/null ||
		die "$t is missing (scripts/bootstrap.sh installs the packaging tools)"
done
mkdir -p "$1"
out=$(cd "$1" && pwd)
version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pkg-nmimgr.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
src=$tmp/nmimgr-$version
"$here/copy-tree.sh" "$src"

log=$out/build-deb.log
echo "build-deb.sh: building nmimgr $version in $tmp (log: $log)"
start=$SECONDS
if ! (cd "$src" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" \
	dpkg-buildpackage -b -us -uc) > "$log" 2>&1; then
	tail -n 40 "$log" >&2
	die "dpkg-buildpackage failed (whole log: $log)"
fi

shopt -s nullglob
debs=("$tmp"/*.deb)
[ ${#debs[@]} -gt 0 ] || die "dpkg-buildpackage made no .deb (log: $log)"
rm -f "$out"/nmimgr*_*.deb "$out"/nmimgr_*.changes "$out"/nmimgr_*.buildinfo
cp "${debs[@]}" "$tmp"/*.changes "$tmp"/*.buildinfo "$out/"
echo "build-deb.sh: $((SECONDS - start)) s; in $out:"
for d in "${debs[@]}"; do
	echo "  ${d##*/}"
done
