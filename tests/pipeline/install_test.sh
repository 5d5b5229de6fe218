#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# cmake --install of the pipeline component with DESTDIR and a prefix puts
# every file where the services look, with the right modes; removing what
# install_manifest.txt lists leaves nothing behind.
# shellcheck source=tests/pipeline/lib.sh
. "$(dirname "$0")/lib.sh"
fresh_work
cd "$NMIMGR_TEST_WORK" || exit 1
stage_install "$PWD/stage"
want="etc/kdump/pre.d/50-nmimgr
etc/nmimgr.conf
lib/systemd/system/nmimgr.service
usr/lib/dracut/dracut.conf.d/99-nmimgr.conf
usr/lib/dracut/modules.d/51nmimgr/module-setup.sh
usr/lib/dracut/modules.d/51nmimgr/nmimgr-load.sh
usr/sbin/nmimgr-kdump
usr/sbin/nmimgr-load
usr/share/initramfs-tools/hooks/nmimgr
usr/share/initramfs-tools/scripts/init-top/nmimgr
usr/share/man/man5/nmimgr.conf.5
usr/share/man/man8/nmimgr-kdump.8
usr/share/man/man8/nmimgr-load.8
usr/share/nmimgr/platforms.json"
expect_eq "every pipeline file, under DESTDIR" "$(cd stage && find . -type f | sed 's|^\./||' | sort)" "$want"
for x in etc/kdump/pre.d/50-nmimgr usr/sbin/nmimgr-kdump usr/sbin/nmimgr-load \
	usr/share/initramfs-tools/hooks/nmimgr usr/share/initramfs-tools/scripts/init-top/nmimgr \
	usr/lib/dracut/modules.d/51nmimgr/module-setup.sh; do
	if [ -x "stage/$x" ]; then pass "$x is executable"; else fail "$x is executable"; fi
done
# paths compiled in and written into the unit come from the configured prefix
expect_match "the unit runs the loader" "$(cat stage/lib/systemd/system/nmimgr.service)" \
	"*ExecStart=/*/sbin/nmimgr-load --load*"
DESTDIR=$PWD/stage2 cmake --install "$NMIMGR_BINARY_DIR" --component pipeline --prefix /opt/nm > /dev/null
if [ -x stage2/opt/nm/sbin/nmimgr-load ] && [ -e stage2/etc/nmimgr.conf ]; then pass "the prefix moves the programs, /etc stays /etc"; else fail "the prefix moves the programs, /etc stays /etc"; fi
manifest=$NMIMGR_BINARY_DIR/install_manifest_pipeline.txt
[ -e "$manifest" ] || manifest=$NMIMGR_BINARY_DIR/install_manifest.txt
DESTDIR=$PWD/stage3 cmake --install "$NMIMGR_BINARY_DIR" --component pipeline --prefix /usr > /dev/null
# the manifest has no newline after its last name
while read -r f || [ -n "$f" ]; do rm -f "stage3$f"; done < "$manifest"
expect_eq "removing the manifest's files leaves no file behind" "$(find stage3 -type f | wc -l)" 0
finish
