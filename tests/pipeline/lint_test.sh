#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Every shell file in the tree through shellcheck and shfmt: git's files,
# and new ones git does not ignore (not yet committed), with a .sh name or
# a sh/bash/dash shebang, dracut's sourced hooks and drop-ins and the bash
# completions included
# (debian/'s maintainer scripts by their shebang; debian/rules is make).
# shfmt takes its settings from the top-level .editorconfig.
# shellcheck source=tests/pipeline/lib.sh
. "$(dirname "$0")/lib.sh"
command -v shellcheck > /dev/null || skip "shellcheck is missing (apt-get install shellcheck)"
command -v shfmt > /dev/null || skip "shfmt is missing (apt-get install shfmt)"
cd "$NMIMGR_SOURCE_DIR" || exit 1
files=()
while IFS= read -r f; do
	[ -f "$f" ] || continue
	case $f in
	*.sh) files+=("$f") ;;
	dracut/*.conf) files+=("$f") ;;      # sourced by dracut's bash
	tools/completion/*) files+=("$f") ;; # sourced by bash-completion
	*) head -n 1 "$f" | grep -qE '^#!.*/(env )?(ba|da)?sh( |$)' && files+=("$f") ;;
	esac
done < <(git ls-files --cached --others --exclude-standard | grep -v -e '^fuzz/corpus/' -e '\.py$')
[ ${#files[@]} -gt 0 ] || fail "no shell files found"
echo "checking ${#files[@]} shell files"
if shellcheck -x -P SCRIPTDIR "${files[@]}"; then pass "shellcheck"; else fail "shellcheck"; fi
if out=$(shfmt -d "${files[@]}" 2>&1) && [ -z "$out" ]; then pass "shfmt"; else
	printf '%s\n' "$out" | head -60
	fail "shfmt (shfmt -w FILE fixes it)"
fi
finish
