#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
#
# dracut cmdline hook (sourced): load nmimgr with /etc/nmimgr.conf before
# udev.  In a kdump capture kernel nmimgr starts latched (capture_module);
# in the first kernel it is loaded when boot_initramfs says so.  A failure
# is logged and never stops the boot: the dump may be the last resort.

if [ -x /usr/sbin/nmimgr-load ]; then
    if nmimgr_out=$(/usr/sbin/nmimgr-load --load --initramfs 2>&1); then
        [ -n "$nmimgr_out" ] && info "$nmimgr_out"
    else
        warn "nmimgr-load failed: $nmimgr_out"
    fi
    unset nmimgr_out
fi
