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
#       (the CLI's default: all cores) and with --threads 1, against
#       one-thread decode loops over the same pages (for zlib pages: zlib,
#       libdeflate and ISA-L, each checked to give zlib's bytes; target:
#       all cores within 1.2x of the fastest loop divided by the cores);
#   (c) the same pages read through libkdumpfile's C API, one thread;
#   (d) the default check of a dump describing 1 TiB with 4 and 40 GiB of
#       dumped pages written in full (NMIMGR_BENCH_FLEET_GIB overrides);
#   (e) the default check of the real lab dumps (or of the files in
#       NMIMGR_BENCH_LAB_DUMPS) side by side with makedumpfile --dump-dmesg;
#   (f) (b) and (c) on the real lab dumps: zlib, lzo, snappy (transcoded),
#       ELF, flattened and flattened through xz.
# The real lab dumps are made once into NMIMGR_BENCH_LAB_DIR (default
# DIR/lab) with `python3 -m lab dumps` (tests/vm: about 3 minutes under
# TCG); NMIMGR_BENCH_NO_LAB=1 leaves (e) and (f) out.
# MB/s are MB (10^6 bytes) of page data (4 KiB per dumped page) per second
# of wall time.  Dumps are written once into DIR (default /tmp/nmimgr-bench)
# and reused; the timed runs read them from the page cache.
#
# Environment: NMIMGR_BENCH_BUILD (default /tmp/nmimgr-bench-build),
# NMIMGR_BENCH_BEFORE (another build's nmimgr-vmcore-check, e.g. of an
# earlier commit: its --deep on all cores is shown under each dump's),
# NMIMGR_BENCH_MIB, NMIMGR_BENCH_RUNS (default 3; the best wall time and the
# largest peak RSS of the runs are shown).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/tmp/nmimgr-bench}
build=${NMIMGR_BENCH_BUILD:-/tmp/nmimgr-bench-build}
mib=${NMIMGR_BENCH_MIB:-1024}
runs=${NMIMGR_BENCH_RUNS:-3}
lab=${NMIMGR_BENCH_LAB_DIR:-$dir/lab}

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

# min_of A B: the smaller number; B when A is empty.
min_of() {
	awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'
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
		best=$(min_of "$best" "$w")
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

# (f) the real lab dumps: one nmimgr NMI panic on Debian's 6.1 kernel in a
# 1 GiB guest, written by makedumpfile in the capture kernel in each format
# (python3 -m lab dumps: about 3 minutes under TCG, made once); snappy, which
# Debian's makedumpfile cannot write, is the zlib dump's pages transcoded.
make_lab_dumps() {
	if [ ! -f "$lab/c.vmcore/c.vmcore" ]; then
		echo "making the real lab dumps in $lab (python3 -m lab dumps)"
		(cd "$src/tests/vm" && /usr/bin/python3 -m lab dumps "$lab") > /dev/null
	fi
	for f in c l e; do
		d=$lab/$f.vmcore/$f.vmcore
		[ -f "$d.idx" ] || "$bench" index "$d" > /dev/null
	done
	snappy=$lab/p.vmcore/p.vmcore
	if [ ! -f "$snappy.idx" ]; then
		mkdir -p "$(dirname "$snappy")"
		"$bench" transcode "$lab/c.vmcore/c.vmcore" "$snappy" snappy > /dev/null
	fi
}

if [ -z "${NMIMGR_BENCH_NO_LAB:-}" ]; then
	make_lab_dumps
	: "${NMIMGR_BENCH_LAB_DUMPS:=$lab/c.vmcore/c.vmcore $lab/l.vmcore/l.vmcore $lab/e.vmcore/e.vmcore $lab/f.flat/f.flat}"
else
	lab=""
fi

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

# best_secs CMD...: runs an nmimgr-bench loop $runs times; prints the best
# "secs=" it reported.
best_secs() {
	local best="" line w
	for _ in $(seq "$runs"); do
		line=$("$@")
		w=$(field secs "$line")
		best=$(min_of "$best" "$w")
	done
	echo "$best"
}

# deep_rows DUMP IDX [ZLIB_CODEC...]: the decode loops over the pages in
# IDX.idx (one per zlib codec named: zlib pages need one; the other pages
# have one codec each, and none when no codec is named), --deep with all
# cores and with one thread, and libkdumpfile over the same pages; MB/s of
# page data, peak RSS, and --deep's wall time against the fastest loop
# divided by the cores (target <= 1.2) and libkdumpfile's time against
# --deep's.
deep_rows() {
	local dump=$1 idx=$2 pages mb best="" cores w r s rate line deep_all=""
	shift 2
	cores=$(nproc)
	cat "$dump" > /dev/null # into the page cache
	pages=$(($(stat -c %s "$idx.idx") / 24))
	mb=$(awk "BEGIN{print $pages * 4096 / 1e6}")
	echo "$(basename "$dump"): $pages pages ($mb MB of page data), $(du -h "$dump" | cut -f1) file"
	for codec in "$@"; do
		"$bench" verify "$idx" "$codec" > /dev/null ||
			echo "  $codec: some page does not decode to zlib's bytes: $("$bench" verify "$idx" "$codec")"
		w=$(best_secs "$bench" decode "$idx" "$codec")
		row "  one-thread decode loop ($codec)" "$w" "$(awk "BEGIN{printf \"%.1f\", $mb / $w}")" "-"
		best=$(min_of "$best" "$w")
	done
	for threads in "$cores" 1; do
		read -r w r s < <(best_of "$cli" --quiet --deep --threads "$threads" "$dump")
		[ -n "$deep_all" ] || deep_all=$w
		rate=$(awk "BEGIN{printf \"%.1f\", $mb / $w}")
		row "  nmimgr-vmcore-check --deep --threads $threads" "$w" "$rate" "$((r / 1024))"
		[ "$s" = 0 ] || echo "  (exit status $s)"
	done
	if [ -n "${NMIMGR_BENCH_BEFORE:-}" ]; then
		read -r w r s < <(best_of "$NMIMGR_BENCH_BEFORE" --quiet --deep "$dump")
		row "  the same, NMIMGR_BENCH_BEFORE's build" "$w" \
			"$(awk "BEGIN{printf \"%.1f\", $mb / $w}")" "$((r / 1024))"
	fi
	if [ -n "$best" ]; then
		echo "  --deep, $cores threads / (fastest loop / $cores cores): $(awk "BEGIN{printf \"%.2f\", $deep_all / ($best / $cores)}") (target <= 1.2)"
	fi
	[ "$idx" = "$dump" ] || return 0
	if line=$("$bench" kdumpfile "$dump" 2>&1); then
		w=$(field secs "$line")
		row "  libkdumpfile kdump_read, one thread" "$w" "$(field mb_per_s "$line")" "-"
		echo "  libkdumpfile / --deep, $cores threads: $(awk "BEGIN{printf \"%.1fx\", $w / $deep_all}")"
	else
		echo "  libkdumpfile: $line"
	fi
}

echo "(b, c) --deep on $mib MiB of page data; MB/s of page data"
row "run" "wall s" "MB/s" "peak RSS MiB"
for codec in zlib lzo; do
	dump=$dir/$codec-$mib/vmcore
	if [ ! -f "$dump.idx" ]; then
		mkdir -p "$(dirname "$dump")"
		"$bench" dump "$dump" "$codec" "$mib" > /dev/null
	fi
	if [ "$codec" = zlib ]; then
		deep_rows "$dump" "$dump" zlib libdeflate isal
	else
		deep_rows "$dump" "$dump" zlib
	fi
done
echo

if [ -n "$lab" ]; then
	echo "(f) --deep on the real lab dumps; MB/s of page data"
	row "run" "wall s" "MB/s" "peak RSS MiB"
	deep_rows "$lab/c.vmcore/c.vmcore" "$lab/c.vmcore/c.vmcore" zlib libdeflate isal
	for f in l p e; do
		deep_rows "$lab/$f.vmcore/$f.vmcore" "$lab/$f.vmcore/$f.vmcore" zlib
	done
	# the same capture as l.vmcore (-l), flattened; and that through xz
	for f in f.flat f.flat.xz; do
		deep_rows "$lab/$f/$f" "$lab/l.vmcore/l.vmcore"
	done
fi
