#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Install what is missing, build everything and run every test: the unit
# tests and the VM lab (real Debian kernels under QEMU, real NMIs, real
# kdump).  Extra arguments go to ctest, e.g. `scripts/test.sh -L unit`.
# ctest runs tests side by side (-j, one per core) except the heavy ones
# (VM lab, image builds, package build), which are RUN_SERIAL.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${NMIMGR_BUILD_DIR:-$top/build}

"$top/scripts/bootstrap.sh"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "$@"
