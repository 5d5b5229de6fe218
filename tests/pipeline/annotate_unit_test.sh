#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# nmimgr-annotate.service as cmake --install puts it under DESTDIR: the unit
# directory nmimgr.service uses, systemd-analyze verify (offline, in the
# staged root) without a word, and the properties the boot relies on: it
# never holds multi-user.target, runs at low priority for a bounded time,
# writes only into the crash directory, logs with sd-daemon prefixes, and
# its command line works on an empty crash directory.
# shellcheck source=tests/pipeline/lib.sh
. "$(dirname "$0")/lib.sh"
command -v systemd-analyze > /dev/null || skip "systemd-analyze is missing (apt-get install systemd)"
fresh_work
cd "$NMIMGR_TEST_WORK"
root=$PWD/root
# the tools' files, at the prefix the build was configured with (the unit
# names the program by that path)
DESTDIR=$root cmake --install "$NMIMGR_BINARY_DIR" --component Unspecified > install.log
unitdir=$(sed -n 's/^NMIMGR_SYSTEMD_UNITDIR:PATH=//p' "$NMIMGR_BINARY_DIR/CMakeCache.txt")
unit=$root$unitdir/nmimgr-annotate.service
[ -e "$unit" ] || {
	fail "cmake --install puts nmimgr-annotate.service into $unitdir"
	finish
}
pass "cmake --install puts nmimgr-annotate.service into $unitdir, beside nmimgr.service"

# key=value of the unit, comments and the commented drop-in left out
prop() {
	sed -n "s/^$1=//p" "$unit"
}

# --- systemd-analyze verify ------------------------------------------------
# The targets it names, from this machine's systemd, so that verify can
# build the start job in the staged root.
mkdir -p "$root/lib/systemd/system"
for t in /lib/systemd/system/*.target; do
	[ -e "$root/lib/systemd/system/${t##*/}" ] || cp "$t" "$root/lib/systemd/system/"
done
set +e
systemd-analyze verify --man=no --root="$root" "$unitdir/nmimgr-annotate.service" > verify.out 2>&1
rc=$?
set -e
expect_eq "systemd-analyze verify exits 0" "$rc" 0
expect_eq "systemd-analyze verify says nothing (no unknown key, no missing program)" "$(cat verify.out)" ""
exe=$(prop ExecStart | cut -d' ' -f1)
if [ -x "$root$exe" ]; then pass "ExecStart names the installed program ($exe)"; else fail "ExecStart names the installed program ($exe)"; fi
# nmimgrctl's metrics refresh: verified the same way; its timer is
# installed, not enabled (debian/rules), and its commands are the
# installed nmimgrctl
set +e
systemd-analyze verify --man=no --root="$root" "$unitdir/nmimgr-metrics.service" \
	"$unitdir/nmimgr-metrics.timer" > verify-metrics.out 2>&1
rc=$?
set -e
expect_eq "systemd-analyze verify of nmimgr-metrics.service and .timer exits 0" "$rc" 0
expect_eq "it says nothing" "$(cat verify-metrics.out)" ""
while read -r metrics_exe; do
	if [ -x "$root$metrics_exe" ]; then pass "nmimgr-metrics runs the installed $metrics_exe"; else fail "nmimgr-metrics runs the installed $metrics_exe"; fi
done < <(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$root$unitdir/nmimgr-metrics.service")
# the metrics of the dumps: read-only on the crash directory, the dumps
# the boot annotated taken from their nmimgr.json
expect_match "nmimgr-metrics counts the dumps without writing into /var/crash" \
	"$(sed -n 's/^ExecStart=//p' "$root$unitdir/nmimgr-metrics.service" | grep vmcore-check)" \
	"/*/nmimgr-vmcore-check --new --quiet * --prometheus /var/lib/prometheus/node-exporter/nmimgr-dumps.prom /var/crash"
expect_eq "and may write its textfile directory only" \
	"$(sed -n 's/^ReadWritePaths=//p' "$root$unitdir/nmimgr-metrics.service")" /var/lib/prometheus/node-exporter
# nmimgrctl test's report on the boot after the test: verified, skipped
# without a pending test, never in the boot's way, writing only its state
report=$root$unitdir/nmimgr-test-report.service
set +e
systemd-analyze verify --man=no --root="$root" "$unitdir/nmimgr-test-report.service" > verify-report.out 2>&1
rc=$?
set -e
expect_eq "systemd-analyze verify of nmimgr-test-report.service exits 0" "$rc" 0
expect_eq "it says nothing" "$(cat verify-report.out)" ""
report_exe=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$report")
if [ -x "$root$report_exe" ]; then pass "nmimgr-test-report runs the installed $report_exe"; else fail "nmimgr-test-report runs the installed $report_exe"; fi
expect_eq "it runs nmimgrctl test --report --journal" "$(sed -n 's/^ExecStart=[^ ]* //p' "$report")" "test --report --journal"
expect_eq "skipped unless a test is pending" "$(sed -n 's/^ConditionPathExists=//p' "$report")" /var/lib/nmimgr/test.json
expect_eq "Type=exec" "$(sed -n 's/^Type=//p' "$report")" exec
expect_eq "writes only nmimgr's state" "$(sed -n 's/^ReadWritePaths=//p' "$report")" /var/lib/nmimgr
expect_eq "a bad dump (exit 1) is a finding" "$(sed -n 's/^SuccessExitStatus=//p' "$report")" 1
man=$(sed -n 's|^-- Installing: \(.*/man1/nmimgr-vmcore-check.1\)$|\1|p' install.log)
if [ -n "$man" ] && [ -e "$man" ]; then pass "Documentation= man page is installed"; else fail "Documentation= man page is installed"; fi

# --- boot: never in the way ------------------------------------------------
expect_eq "Type=exec: started once running, so multi-user.target does not wait" "$(prop Type)" exec
expect_eq "no RemainAfterExit (the unit is done when the check is)" "$(prop RemainAfterExit)" ""
expect_eq "enabled into multi-user.target" "$(prop WantedBy)" multi-user.target
expect_eq "not ordered before anything the boot waits for" "$(prop Before)" ""
expect_eq "DefaultDependencies kept (after basic.target, stopped at shutdown)" "$(prop DefaultDependencies)" ""
expect_eq "RequiresMountsFor the crash directory" "$(prop RequiresMountsFor)" /var/crash
expect_eq "skipped when the crash directory is missing or empty" "$(prop ConditionDirectoryNotEmpty)" /var/crash
expect_eq "a finding (exit 1) does not fail the unit, an error (2) does" "$(prop SuccessExitStatus)" 1

# --- priority and time -----------------------------------------------------
expect_eq "Nice=19" "$(prop Nice)" 19
expect_match "CPUSchedulingPolicy idle or batch" "$(prop CPUSchedulingPolicy)" "@(idle|batch)"
expect_eq "IOSchedulingClass=idle" "$(prop IOSchedulingClass)" idle
expect_match "RuntimeMaxSec bounds the run" "$(prop RuntimeMaxSec)" "+([0-9])min"

# --- sandbox -----------------------------------------------------------------
expect_eq "ProtectSystem=strict" "$(prop ProtectSystem)" strict
expect_eq "writes into the crash directory only" "$(prop ReadWritePaths)" /var/crash
for p in NoNewPrivileges PrivateNetwork PrivateDevices PrivateTmp ProtectHome \
	ProtectKernelTunables ProtectKernelModules ProtectControlGroups; do
	expect_eq "$p=yes" "$(prop "$p")" yes
done
set +e
systemd-analyze security --offline=yes --root="$root" nmimgr-annotate.service > security.out 2>&1
set -e
level=$(sed -n 's/.*Overall exposure level for nmimgr-annotate.service: \([0-9.]*\).*/\1/p' security.out)
if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'; then
	pass "systemd-analyze security: exposure $level (at most 2.0)"
else
	fail "systemd-analyze security: exposure [$level], want at most 2.0"
fi

# --- the journal -------------------------------------------------------------
expect_eq "StandardOutput=journal" "$(prop StandardOutput)" journal
expect_eq "SyslogLevelPrefix=yes: journald takes the <N> prefix as the priority" "$(prop SyslogLevelPrefix)" yes
expect_match "checks new dumps, annotates, one journal line each" "$(prop ExecStart)" \
	"/*/nmimgr-vmcore-check --new --annotate --journal * /var/crash"

# --- the command line, run ---------------------------------------------------
mkdir crash
read -r -a argv <<< "$(prop ExecStart)"
argv[0]=$root$exe
argv[${#argv[@]} - 1]=$PWD/crash
set +e
out=$("${argv[@]}" 2>&1)
rc=$?
set -e
expect_eq "ExecStart on an empty crash directory exits 0" "$rc" 0
expect_eq "and logs one line at info priority" "$out" "<6>no dumps found"
finish
