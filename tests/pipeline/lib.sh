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
