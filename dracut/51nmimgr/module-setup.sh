#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# dracut module nmimgr: puts nmimgr.ko (the copy modprobe finds for the
# target kernel, DKMS's under updates/dkms included), /etc/nmimgr.conf and
# nmimgr-load into the initramfs, and loads nmimgr from the cmdline hook,
# before udev and before anything else runs.  In a kdump capture kernel
# (/proc/vmcore) nmimgr starts latched and drops the NMIs that reach it
# while the dump is written; in the first kernel it applies the policy.
#
# 51: dracut keeps 50-59 for modules from outside its tree.  50 is taken
# (50drm, 50plymouth, Ubuntu's 50kdump-tools); the number orders only the
# install() calls, and nothing here depends on another module's files.
#
# Included when asked (dracut --add nmimgr), in kdump builds (mkdumprd
# exports IN_KDUMP) when nmimgr.conf says capture_module = yes, and in
# first-kernel builds when it says boot_initramfs = yes.  The settings come
# from the one reader of the file, nmimgr-load.
#
# NMIMGR_LOAD and NMIMGR_CONF (host paths) override where nmimgr-load and
# the configuration are taken from; the image always gets
# /usr/sbin/nmimgr-load and /etc/nmimgr.conf.

nmimgr_load_bin() {
    local _bin=${NMIMGR_LOAD:-/usr/sbin/nmimgr-load}
    [[ -x ${dracutsysrootdir-}$_bin ]] || return 1
    echo "${dracutsysrootdir-}$_bin"
}

nmimgr_conf() {
    echo "${NMIMGR_CONF:-/etc/nmimgr.conf}"
}

# nmimgr_setting KEY: the setting as nmimgr-load reads it from the file.
nmimgr_setting() {
    local _bin
    _bin=$(nmimgr_load_bin) || return 1
    "$_bin" -q -c "${dracutsysrootdir-}$(nmimgr_conf)" --get "$1"
}

# called by dracut
check() {
    local _want
    nmimgr_load_bin > /dev/null || return 1
    require_binaries modprobe || return 1
    if [[ ${IN_KDUMP-} ]]; then
        # an invalid file fails the build loudly rather than drop the shield
        _want=$(nmimgr_setting capture_module) || return 1
        [[ $_want == yes ]] && return 0
        return 1
    fi
    _want=$(nmimgr_setting boot_initramfs) || return 1
    [[ $_want == yes ]] && return 0
    return 255
}

# called by dracut
depends() {
    return 0
}

# nmimgr_keep_symbols: keep dracut's strip from making nmimgr.ko unloadable.
# dracut up to 059 (Debian 12) strips every unsigned, uncompressed module
# with the binaries' options, and mkdumprd asks for --aggressive-strip
# (`strip -p`): that takes the module's symbol table, and the capture
# kernel refuses it ("module has no symbols (stripped?)", ENOEXEC).  DKMS
# modules are unsigned unless MOK signing is set up.  dracut-ng strips
# modules with -g only since PR 667; here the same is had by turning the
# aggressive strip off for this image (dracut reads the variable after the
# modules are installed): modules and binaries lose their debug sections
# only, and distribution binaries are stripped already.  Compressing
# nmimgr.ko instead does not hold: in a no-hostonly build a later module
# copied the plain .ko in again beside the .ko.xz.
# shellcheck disable=SC2154 # initdir, kernel: dracut's, as in install()
nmimgr_keep_symbols() {
    local _ko
    [[ ${aggressive_strip-} == yes && ${do_strip-yes} == yes ]] || return 0
    # the copy instmods put into the image, as dracut's strip will see it
    while IFS= read -r -d '' _ko; do
        [[ $(tail -c 28 "$_ko" | tr -d '\000') == '~Module signature appended~' ]] && continue
        dinfo "nmimgr: ${_ko#"$initdir"} is unsigned: stripping debug sections only (not --aggressive-strip), so that it keeps its symbol table"
        aggressive_strip=no
        return 0
    done < <(find "$initdir" -name nmimgr.ko -path "*/modules/$kernel/*" -print0)
}

# called by dracut
installkernel() {
    # a hostonly (kdump: strict) build keeps only modules the host has
    # loaded; nmimgr is wanted whether or not it is loaded right now
    hostonly='' instmods nmimgr
    nmimgr_keep_symbols
}

# called by dracut
install() {
    local _bin _conf
    _bin=$(nmimgr_load_bin) || return 1
    inst_binary "${_bin#"${dracutsysrootdir-}"}" /usr/sbin/nmimgr-load
    inst_multiple modprobe
    _conf=$(nmimgr_conf)
    if [[ -e ${dracutsysrootdir-}$_conf ]]; then
        inst_simple "${dracutsysrootdir-}$_conf" /etc/nmimgr.conf
    fi
    # shellcheck disable=SC2154 # dracut sets moddir for install()
    inst_hook cmdline 00 "$moddir/nmimgr-load.sh"
}
