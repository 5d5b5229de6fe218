#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# bench/run.sh [DIR]
#
# Builds nmimgr-vmcore-check and nmimgr-bench (Release) and prints a table:
#   (a) the structural check (--no-scan) and the default check of a sparse
#       kdump-compressed dump describing 1 TiB of RAM: wall time and peak RSS
#       of the CLI (targets: < 2 s, < 64 MiB);
#   (b) --deep throughput on a dump of NMIMGR_BENCH_MIB MiB (default 1024)
#       of compressible page data, zlib and lzo, with --threads $(nproc)
#       (the CLI's default: all cores) and with --threads 1, against a
#       plain one-thread zlib/lzo loop over the same pages (target: all cores >= 1.6x the loop on 2 cores);
#   (c) the same pages read through libkdumpfile;
#   (d) the default check of a dump describing 1 TiB with 4 and 40 GiB of
#       dumped pages written in full (NMIMGR_BENCH_FLEET_GIB overrides);
#   (e) with NMIMGR_BENCH_LAB_DUMPS, the default check of those real dumps
#       side by side with makedumpfile --dump-dmesg.
# MB/s are MB (10^6 bytes) of page data (4 KiB per dumped page) per second
# of wall time.  Dumps are written once into DIR (default /tmp/nmimgr-bench)
# and reused; the timed runs read them from the page cache.
#
# Environment: NMIMGR_BENCH_BUILD (default /tmp/nmimgr-bench-build),
# NMIMGR_BENCH_MIB, NMIMGR_BENCH_RUNS (default 3; the best wall time and the
# largest peak RSS of the runs are shown).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/tmp/nmimgr-bench}
build=${NMIMGR_BENCH_BUILD:-/tmp/nmimgr-bench-build}
mib=${NMIMGR_BENCH_MIB:-1024}
runs=${NMIMGR_BENCH_RUNS:-3}

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
	-DNMIMGR_BUILD_TESTS=OFF > /dev/null
cmake --build "$build" -j2 --target nmimgr-vmcore-check nmimgr-bench \
	> /dev/null
bench=$build/bench/nmimgr-bench
cli=$build/tools/cli/nmimgr-vmcore-check
mkdir -p "$dir"

field() { # field NAME LINE
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# best_of CMD...: runs CMD $runs times under "nmimgr-bench spawn"; prints
# "<best wall s> <largest maxrss KiB> <exit status>".
best_of() {
	local best="" rss=0 status=0 line w r
	for _ in $(seq "$runs"); do
		line=$("$bench" spawn "$@")
		w=$(field wall_s "$line")
		r=$(field maxrss_kib "$line")
		status=$(field status "$line")
		if [ -z "$best" ] || awk "BEGIN{exit !($w < $best)}"; then best=$w; fi
		[ "$r" -gt "$rss" ] && rss=$r
	done
	echo "$best $rss $status"
}

row() { printf '%-44s %10s %12s %8s\n' "$@"; }

sparse=$dir/sparse-1tib/vmcore
if [ ! -f "$sparse" ]; then
	mkdir -p "$(dirname "$sparse")"
	"$bench" sparse "$sparse"
fi
echo "(a) sparse kdump-compressed dump describing 1 TiB: $(du -h "$sparse" | cut -f1) on disk, $(stat -c %s "$sparse") bytes apparent"
row "run" "wall s" "peak RSS MiB" "exit"
for mode in --no-scan default; do
	args=(--quiet)
	[ "$mode" = default ] || args+=("$mode")
	read -r w r s < <(best_of "$cli" "${args[@]}" "$sparse")
	row "nmimgr-vmcore-check $mode" "$w" "$((r / 1024))" "$s"
done
echo

echo "(d) the default check (the next-boot annotation) of a dump describing 1 TiB"
echo "    of RAM as a server's capture writes it: bitmaps and descriptor table in"
echo "    full, a module area and a bound record; GiB of dumped pages as given"
echo "    (targets: < 50 ms, < 64 MiB, no growth from the first size to the second)"
row "run" "wall s" "peak RSS MiB" "exit"
for gib in ${NMIMGR_BENCH_FLEET_GIB:-4 40}; do
	fleet=$dir/fleet-$gib/vmcore
	if [ ! -f "$fleet" ]; then
		mkdir -p "$(dirname "$fleet")"
		"$bench" fleet "$fleet" "$gib"
	fi
	cat "$fleet" > /dev/null # into the page cache
	read -r w r s < <(best_of "$cli" --quiet "$fleet")
	row "  $gib GiB dumped, $(du -h "$fleet" | cut -f1) file" "$w" "$((r / 1024))" "$s"
done
echo

# (e) real dumps (NMIMGR_BENCH_LAB_DUMPS: dump files the VM lab wrote,
# separated by white space), the default check side by side with
# makedumpfile --dump-dmesg on the same file (target: no slower).
if [ -n "${NMIMGR_BENCH_LAB_DUMPS:-}" ]; then
	echo "(e) real lab dumps: the default check and makedumpfile --dump-dmesg"
	row "run" "wall s" "peak RSS MiB" "exit"
	for d in $NMIMGR_BENCH_LAB_DUMPS; do
		cat "$d" > /dev/null
		echo "$d ($(du -h "$d" | cut -f1))"
		# both through the same sh: makedumpfile refuses an existing output
		# shellcheck disable=SC2016 # $1... are the inner sh's arguments
		read -r w r s < <(best_of sh -c 'rm -f "$1"; exec "$2" --quiet "$3"' \
			sh "$dir/dmesg.out" "$cli" "$d")
		row "  nmimgr-vmcore-check" "$w" "$((r / 1024))" "$s"
		# shellcheck disable=SC2016
		read -r w r s < <(best_of sh -c 'rm -f "$1"; exec makedumpfile --dump-dmesg "$2" "$1"' \
			sh "$dir/dmesg.out" "$d")
		row "  makedumpfile --dump-dmesg" "$w" "$((r / 1024))" "$s"
	done
	echo
fi

echo "(b, c) --deep on $mib MiB of page data; MB/s of page data"
row "run" "wall s" "MB/s" "vs loop"
for codec in zlib lzo; do
	dump=$dir/$codec-$mib/vmcore
	if [ ! -f "$dump.idx" ]; then
		mkdir -p "$(dirname "$dump")"
		"$bench" dump "$dump" "$codec" "$mib" > /dev/null
	fi
	cat "$dump" > /dev/null # into the page cache
	pages=$(($(stat -c %s "$dump.idx") / 24))
	mb=$(awk "BEGIN{print $pages * 4096 / 1e6}")
	echo "$codec: $pages pages, $(du -h "$dump" | cut -f1) file"
	line=$("$bench" decode "$dump")
	loop=$(field mb_per_s "$line")
	row "  plain one-thread $codec loop" "$(field secs "$line")" "$loop" "1.00x"
	for threads in "$(nproc)" 1; do
		args=(--quiet --deep --threads "$threads")
		read -r w _ s < <(best_of "$cli" "${args[@]}" "$dump")
		rate=$(awk "BEGIN{printf \"%.1f\", $mb / $w}")
		row "  nmimgr-vmcore-check --deep --threads $threads" "$w" "$rate" \
			"$(awk "BEGIN{printf \"%.2fx\", $rate / $loop}")"
		[ "$s" = 0 ] || echo "  (exit status $s)"
	done
	if line=$("$bench" kdumpfile "$dump" 2>&1); then
		rate=$(field mb_per_s "$line")
		row "  libkdumpfile kdump_read, one thread" "$(field secs "$line")" \
			"$rate" "$(awk "BEGIN{printf \"%.2fx\", $rate / $loop}")"
	else
		echo "  libkdumpfile: $line"
	fi
done
