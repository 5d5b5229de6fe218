#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# fuzz/run.sh [SECONDS] [TARGET...]
#
# Builds the libFuzzer targets of nmimgr_vmcore and of the module's policy
# core with clang (ASan, UBSan) in a separate build directory, seeds each
# from small dumps written by the test tree's dump builder (policy: policy
# strings, fuzz/make_seeds.cc), runs each target for SECONDS (default 60), one
# after another, and copies every crash, leak, out-of-memory or timeout
# input into fuzz/corpus/<target>/, where nmimgr-fuzz-replay (ctest label
# unit) runs it on every build: one input per distinct report (the first
# line of the sanitizer's or libFuzzer's message), the smallest.  Prints
# executions and findings per target.
#
# Environment: NMIMGR_FUZZ_BUILD (default /tmp/nmimgr-fuzz-build) is the
# build directory; the growing working corpus lives under it in work/.
set -euo pipefail

secs=${1:-60}
[ $# -gt 0 ] && shift
src=$(cd "$(dirname "$0")/.." && pwd)
build=${NMIMGR_FUZZ_BUILD:-/tmp/nmimgr-fuzz-build}
work=$build/work
all_targets="elf kdump flattened split outer kernel-log trigger dump policy"
targets=${*:-$all_targets}

cmake -S "$src" -B "$build" -DNMIMGR_BUILD_FUZZ=ON -DNMIMGR_BUILD_TESTS=OFF \
	-DNMIMGR_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ > /dev/null
build_targets=nmimgr-fuzz-seeds
for t in $targets; do build_targets="$build_targets nmimgr-fuzz-$t"; done
# shellcheck disable=SC2086 # one word per target
cmake --build "$build" -j2 --target $build_targets > /dev/null

export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$src/fuzz/ubsan.supp"
export ASAN_OPTIONS="detect_leaks=1"

# The line that says what went wrong, without addresses and pids: the
# sanitizer's report, the escaped exception (numbers dropped: "invalid
# UTF-8 byte at index 3") or the broken property (policy_entry.cc), else
# libFuzzer's.
signature() {
	{ grep -m 1 -E 'runtime error:|ERROR: (Address|Leak)Sanitizer|what\(\):|property failed:' "$1" ||
		grep -m 1 -E 'ERROR: libFuzzer' "$1"; } |
		sed -E 's/==[0-9]+==//; s/0x[0-9a-fA-F]+/ADDR/g; s/ \(pid [0-9]+\)//; s/^ +//
            /what\(\)/ s/[0-9]+/N/g'
}

rm -rf "$work/seeds"
mkdir -p "$work"
"$build/fuzz/nmimgr-fuzz-seeds" "$work/seeds"

printf '%-11s %8s %10s %8s %s\n' target seconds execs exec/s findings
for t in $targets; do
	corpus=$work/corpus/$t
	artifacts=$work/artifacts/$t
	rm -rf "$artifacts"
	mkdir -p "$corpus" "$artifacts" "$src/fuzz/corpus/$t"
	# Fork mode keeps going after a crash, a timeout or an OOM and saves
	# each input under $artifacts.
	"$build/fuzz/nmimgr-fuzz-$t" -fork=1 -ignore_crashes=1 \
		-ignore_timeouts=1 -ignore_ooms=1 -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -artifact_prefix="$artifacts/" \
		"$corpus" "$work/seeds/$t" "$src/fuzz/corpus/$t" \
		> "$work/$t.log" 2>&1 || true
	# The last status line: "#<execs>: cov: ... time: Ts job: N ...".
	last=$(grep -E '^#[0-9]+: cov:' "$work/$t.log" | tail -n 1 || true)
	execs=$(echo "$last" | sed -nE 's/^#([0-9]+):.*/\1/p')
	rate=$((${execs:-0} / secs))
	# One input per distinct report, the smallest; the report goes next to
	# it in fuzz/corpus/<target>/KNOWN until the bug is fixed.
	found=""
	declare -A seen=()
	# shellcheck disable=SC2045 # libFuzzer names artifacts <kind>-<sha1>
	for f in $(ls -Sr "$artifacts"); do
		# Suppressed (fuzz/ubsan.supp) or not reproducible: nothing to keep.
		"$build/fuzz/nmimgr-fuzz-$t" -timeout=10 -rss_limit_mb=2048 \
			"$artifacts/$f" > "$work/replay.log" 2>&1 && continue
		sig=$(signature "$work/replay.log")
		sig=${sig:-${f%%-*}}
		[ -n "${seen[$sig]:-}" ] && continue
		seen[$sig]=1
		cp -n "$artifacts/$f" "$src/fuzz/corpus/$t/"
		if ! grep -qs "^$f " "$src/fuzz/corpus/$t/KNOWN"; then
			echo "$f $sig" >> "$src/fuzz/corpus/$t/KNOWN"
		fi
		found="$found $f"
	done
	unset seen
	printf '%-11s %8s %10s %8s %s\n' "$t" "$secs" "${execs:-?}" "${rate:-?}" \
		"${found:- none}"
done
echo "logs: $work/<target>.log; kept inputs: $src/fuzz/corpus/<target>/"
