# SPDX-License-Identifier: GPL-2.0-or-later
"""nmimgr VM lab: boot Debian kernels under QEMU (TCG) and drive them.

The pieces, each usable on its own:

* :mod:`lab.kernels`   resolve, download and unpack Debian kernels (cached)
* :mod:`lab.build`     build out-of-tree modules against those kernels
* :mod:`lab.initramfs` one busybox initramfs per kernel (agent + capture)
* :mod:`lab.vm`        the QEMU runner (serial log, QMP, 9p share, agent)
* :mod:`lab.kdump`     arm kdump in a running guest and collect the dump

Everything persistent lives under :func:`lab.paths.cache_dir`.
"""
