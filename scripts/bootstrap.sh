#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Install, with apt and idempotently, everything a fresh Debian 12 machine
# needs to build nmimgr, run its tests and run the VM lab.  Only packages
# that are missing are installed; the machine's apt sources are not touched.
set -euo pipefail

packages=(
	# build
	build-essential cmake pkg-config git
	libboost-program-options-dev libspdlog-dev nlohmann-json3-dev catch2
	zlib1g-dev liblzo2-dev libsnappy-dev libzstd-dev libdeflate-dev
	liblzma-dev libbz2-dev liblz4-dev
	# kernel module builds against Debian's headers (6.12 needs pahole)
	kmod dwarves libelf-dev bc flex bison
	# VM lab
	qemu-system-x86 qemu-utils busybox-static cpio kexec-tools makedumpfile
	dracut-core e2fsprogs xz-utils zstd
	# real Debian roots (tests/vm/lab/roots.py)
	mmdebstrap debian-archive-keyring
	python3 python3-pytest
	# bench/: ISA-L's inflate, one of the zlib page codecs compared
	libisal-dev
	# cross-checks and lint
	libkdumpfile-dev python3-libkdumpfile shellcheck shfmt sparse
	# the bash completions' test (tests/pipeline/completion_test.sh)
	bash-completion
	# pipeline tests: mkinitramfs and lsinitramfs (no kernel hooks)
	initramfs-tools-core
	# packages (packaging/, ctest -L packaging): debian/control's
	# Build-Depends are the build list above plus these
	dpkg-dev debhelper dh-dkms dkms fakeroot lintian rpm
)

missing=()
for p in "${packages[@]}"; do
	# dpkg-query prints nothing useful for absent packages; trust the status.
	if ! dpkg-query -W -f='${Status}\n' "$p" 2> /dev/null |
		grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "bootstrap: all ${#packages[@]} packages present"
	exit 0
fi

echo "bootstrap: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
