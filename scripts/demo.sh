#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Install what is missing, build, and run the BMC-NMI crash-capture demo in
# the VM lab: nmimgr installed from its own .debs into a real Debian 12 root
# with kdump-tools under QEMU, a BMC NMI, the dump, its verdict on the next
# boot.  The first run builds and caches the packages and the install boot
# (15.5 minutes here, about 6 more when the Debian root is not cached yet);
# later runs take about 4.  Extra arguments go to tests/vm/demo.py
# (--busybox: the 2-minute variant on the lab's busybox initramfs).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${NMIMGR_BUILD_DIR:-$top/build}

"$top/scripts/bootstrap.sh"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" -j"$(nproc)" > /dev/null
# Debian's interpreter: it has python3-libkdumpfile, whatever is first in PATH.
exec /usr/bin/python3 "$top/tests/vm/demo.py" --debs "$build/packages" "$@"
