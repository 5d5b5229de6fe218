#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# copy-tree.sh DEST: a clean copy of this checkout in DEST (created; must
# not exist yet): git's tracked files as they are in the work tree, plus
# the untracked ones git does not ignore, without build directories.
# Outside a git checkout: everything but .git and build directories.
set -euo pipefail

die() {
	printf 'copy-tree.sh: %s\n' "$*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: copy-tree.sh DEST"
top=$(cd "$(dirname "$0")/.." && pwd)
dest=$1
[ ! -e "$dest" ] || die "$dest exists"
mkdir -p "$dest"

# a CMake build directory is a build directory whatever its name
is_build_dir() {
	[ -e "$top/$1/CMakeCache.txt" ] || [ -e "$top/$1/CMakeFiles" ]
}

list() {
	local f d
	while IFS= read -r -d '' f; do
		# tracked but deleted in the work tree: not part of the copy
		[ -e "$f" ] || [ -L "$f" ] || continue
		case $f in
		*/*)
			d=${f%%/*}
			is_build_dir "$d" && continue
			;;
		esac
		printf '%s\0' "$f"
	done
}

cd "$top"
if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard | list |
		tar --null --no-recursion -T - -cf - | tar -xf - -C "$dest"
else
	find . -mindepth 1 -maxdepth 1 ! -name .git ! -name out \
		! -name build ! -name 'build-*' ! -name 'obj-*' -printf '%P\0' |
		while IFS= read -r -d '' d; do
			is_build_dir "$d" || printf '%s\0' "$d"
		done | tar --null -T - -cf - | tar -xf - -C "$dest"
fi
