#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# /init of the VM lab's initramfs (one image for the first and the capture
# kernel).  It mounts the host's 9p share at /out, then either
#  - capture kernel (/proc/vmcore exists): runs /out/capture.sh when the host
#    put one there, else writes /out/dump/vmcore with makedumpfile; records the
#    exit status in /out/capture.rc and powers off;
#  - first kernel: runs the agent, which reads command ids from the
#    virtio-serial port nmimgr.lab.agent, executes /out/cmd/ID.sh for each and
#    answers with ID.out (stdout+stderr) and then ID.rc (exit status, renamed
#    into place last, so the host never reads a partial answer).
# Markers on the console start with "nmimgr-lab:" (see lab/vm.py).

PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec < /dev/console > /dev/console 2>&1
mkdir -p /run /tmp /out
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp

say() {
	echo "nmimgr-lab: $*"
}

die() {
	say "FATAL: $*"
	poweroff -f
}

run_hooks() {
	for hook in "$1"/*.sh; do
		[ -f "$hook" ] || continue
		say "hook $hook"
		sh "$hook" || say "hook $hook exited $?"
	done
}

# The 9p stack, in the order modprobe --show-depends gave on the host.
while read -r ko; do
	[ -n "$ko" ] || continue
	insmod "$ko" 2> /dev/null || grep -q "^${ko##*/}" /proc/modules ||
		say "insmod $ko failed"
done < /etc/lab/modules

mount -t 9p -o trans=virtio,version=9p2000.L out /out ||
	die "cannot mount the 9p share 'out'"

if [ -e /proc/vmcore ]; then
	say "capture kernel $(uname -r) started"
	run_hooks /etc/lab/capture.d
	if [ -f /out/capture.sh ]; then
		sh /out/capture.sh
		rc=$?
	else
		mkdir -p /out/dump
		makedumpfile -l -d 31 --message-level 22 /proc/vmcore \
			/out/dump/vmcore.tmp
		rc=$?
		[ "$rc" -eq 0 ] && mv /out/dump/vmcore.tmp /out/dump/vmcore
	fi
	echo "$rc" > /out/capture.rc.tmp && mv /out/capture.rc.tmp /out/capture.rc
	say "capture done rc=$rc"
	sync
	umount /out
	poweroff -f
fi

# The agent's port (lab/vm.py AGENT_PORT): /dev/vportNpM named nmimgr.lab.agent.
agent_port() {
	for p in /sys/class/virtio-ports/*; do
		[ "$(cat "$p/name" 2> /dev/null)" = nmimgr.lab.agent ] || continue
		echo "/dev/${p##*/}"
		return 0
	done
	return 1
}

# Run the host's command ID (each id once, whatever the host sends).
serve() {
	case $1 in
	[0-9]*) ;;
	*) return 0 ;;
	esac
	[ -f "/out/cmd/$1.sh" ] && [ ! -e "/run/done/$1" ] || return 0
	: > "/run/done/$1"
	(cd / && sh "/out/cmd/$1.sh") > "/out/cmd/$1.out" 2>&1 < /dev/null
	echo "$?" > "/out/cmd/$1.rc.tmp"
	mv "/out/cmd/$1.rc.tmp" "/out/cmd/$1.rc"
}

# Block on the port for command ids; a read at end of file means the host
# has not connected (yet, or any more): wait and open the port again.
agent() {
	while :; do
		while read -r id; do
			serve "$id"
		done < "$port"
		sleep 1
	done
}

run_hooks /etc/lab/first.d
mkdir -p /out/cmd /run/done
port=$(agent_port) || die "no virtio-serial port nmimgr.lab.agent (virtio_console)"
say "agent ready $(uname -r)"
# "labshell=1" on the kernel command line reaches init's environment: a human
# gets a shell on the console, the agent keeps serving in the background.
# shellcheck disable=SC2154 # set by the kernel from its command line
if [ "${labshell:-0}" = 1 ]; then
	agent &
	while :; do
		setsid cttyhack sh -l
	done
fi
agent
