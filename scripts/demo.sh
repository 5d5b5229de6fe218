#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Install what is missing, build, and run the BMC-NMI crash-capture demo in
# the VM lab (Debian's 6.1 kernel under QEMU; about two minutes once the
# kernel is cached).  Extra arguments go to tests/vm/demo.py.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${NMIMGR_BUILD_DIR:-$top/build}

"$top/scripts/bootstrap.sh"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" -j"$(nproc)" > /dev/null
# Debian's interpreter: it has python3-libkdumpfile, whatever is first in PATH.
exec /usr/bin/python3 "$top/tests/vm/demo.py" "$@"
