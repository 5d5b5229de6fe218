# SPDX-License-Identifier: GPL-2.0-or-later
"""pytest wiring for the VM lab.

Kernels: ``--vm-kernels=5.10,6.1,6.12`` (or env NMIMGR_VMLAB_KERNELS; default
all).  A test that takes the ``kernel`` fixture runs once per selected kernel
and carries that kernel's marker (k510, k61, k612), so ``-m k61`` also selects.

Session-scoped (done once per kernel and run): :func:`kernel` (fetch),
:func:`nmimgr_ko` (module/ built), :func:`lab_module` (helper modules from
tests/vm/modules/), :func:`make_initrd` / :func:`initrd` (initramfs images).
Per test: :func:`boot` (start VMs, always killed afterwards) and :func:`vm` (a
guest with the default image, agent ready).

Real Debian roots (lab/roots.py): :func:`debian_roots` (session: build or
reuse a cached root) and :func:`debian_root` (per test: boot one on a fresh
overlay, optionally with a package or an install tree and first-boot commands),
:func:`installed_root` (per test: the same, with the install done once per
set of inputs and cached, lab.roots.install).
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import build, initramfs, kernels, roots  # noqa: E402
from lab.paths import LabError, REPO_DIR  # noqa: E402
from lab.vm import VM  # noqa: E402

KERNEL_MARKS = {"5.10": "k510", "6.1": "k61", "6.12": "k612"}


def pytest_addoption(parser):
    """--vm-kernels."""
    parser.addoption(
        "--vm-kernels", default=os.environ.get("NMIMGR_VMLAB_KERNELS", "all"),
        help="comma-separated kernel lines to test: 5.10,6.1,6.12 or all "
             "(env NMIMGR_VMLAB_KERNELS)")


def selected_kernels(config):
    """The kernel labels chosen on the command line, in the lab's order."""
    value = config.getoption("--vm-kernels")
    if value in ("", "all"):
        return kernels.labels()
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = set(chosen) - set(kernels.labels())
    if unknown:
        raise pytest.UsageError(f"--vm-kernels: unknown {', '.join(sorted(unknown))}; "
                                f"known: {', '.join(kernels.labels())}")
    return [k for k in kernels.labels() if k in chosen]


def pytest_generate_tests(metafunc):
    """Parametrize every test using ``kernel`` over the selected kernels."""
    if "kernel" in metafunc.fixturenames:
        params = [pytest.param(label, id=label,
                               marks=getattr(pytest.mark, KERNEL_MARKS[label]))
                  for label in selected_kernels(metafunc.config)]
        metafunc.parametrize("kernel", params, indirect=True, scope="session")


def pytest_collection_modifyitems(config, items):
    """Everything under tests/vm/ is a VM-lab test (marker ``vm``)."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session")
def kernel(request):
    """The fetched, unpacked kernel (a lab.kernels.Kernel) for this parameter."""
    try:
        return kernels.fetch(request.param)
    except LabError as exc:
        pytest.fail(f"kernel {request.param}: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def _module_cache():
    return {}


@pytest.fixture(scope="session")
def lab_module(_module_cache):
    """Factory: lab_module(kernel, name) -> .ko of tests/vm/modules/NAME (built once)."""
    def get(kernel, name, **kwargs):
        key = (kernel.kver, name)
        if key not in _module_cache:
            _module_cache[key] = build.build_test_module(kernel, name, **kwargs)
        return _module_cache[key]
    return get


@pytest.fixture(scope="session")
def nmimgr_ko(kernel, _module_cache):
    """module/ built for the kernel (skips when module/ has nothing to build)."""
    src = REPO_DIR / "module"
    if not ((src / "Kbuild").exists() or (src / "Makefile").exists()):
        pytest.skip("module/ has no Kbuild yet")
    key = (kernel.kver, "nmimgr")
    if key not in _module_cache:
        _module_cache[key] = build.build_module(kernel, src)
    return _module_cache[key]


@pytest.fixture(scope="session")
def make_initrd():
    """Factory: make_initrd(kernel, {path in image: host path or bytes}) -> image.

    Images are cached on disk by content, so asking twice is cheap.
    """
    def get(kernel, extra_files=None):
        return initramfs.build_initramfs(kernel, extra_files)
    return get


@pytest.fixture(scope="session")
def initrd(kernel, make_initrd):
    """The default image: the lab's base, no extra files."""
    return make_initrd(kernel)


def _started(make):
    """The factory pattern of the VM fixtures: MAKE(number, *args, **kwargs)
    builds a VM, start(...) starts it (with WAIT: until its agent is ready)
    and every VM started is killed when the test ends."""
    started = []

    def start(*args, wait=True, **kwargs):
        machine = make(len(started), *args, **kwargs)
        started.append(machine)
        machine.start()
        if wait:
            machine.boot_seconds = machine.wait_ready()
        return machine

    try:
        yield start
    finally:
        for machine in started:
            machine.kill()


@pytest.fixture
def boot(kernel, initrd, tmp_path):
    """Factory: boot(initrd=None, append="", wait=True, **VM kwargs) -> started VM.

    Each VM gets its own work directory under tmp_path (serial.log, share/);
    every VM started here is killed when the test ends.
    """
    def make(number, image=None, append="", **kwargs):
        return VM(kernel, image or initrd, workdir=tmp_path / f"vm{number}", append=append,
                  **kwargs)

    yield from _started(make)


@pytest.fixture
def vm(boot):
    """A guest booted with the default image, its agent ready."""
    return boot()


@pytest.fixture(scope="session")
def k61(request):
    """Debian's current 6.1 kernel, when selected (for the 6.1-only sets)."""
    if "6.1" not in selected_kernels(request.config):
        pytest.skip("6.1 not selected (--vm-kernels)")
    return kernels.fetch("6.1")


@pytest.fixture(scope="session")
def debian_roots(k61):
    """Factory: debian_roots(flavour) -> lab.roots.Root, built once and cached.

    FLAVOUR is "kdump-tools" or "kdumpctl" (lab.roots.FLAVOURS).  A cold build
    (the base both share with mmdebstrap, the flavour's packages, the image)
    takes minutes; afterwards it is a lookup.  The kdumpctl root is skipped, saying
    why, when ../shared/peers/kdump-utils is absent.
    """
    built = {}

    def get(flavour):
        if flavour not in built:
            if flavour == "kdumpctl" and not (roots.KDUMP_UTILS / "kdumpctl").is_file():
                pytest.skip(f"the real kdump-utils tree is absent ({roots.KDUMP_UTILS})")
            try:
                built[flavour] = roots.build_root(flavour, k61)
            except LabError as exc:
                pytest.fail(f"root {flavour}: {exc}", pytrace=False)
        return built[flavour]
    return get


@pytest.fixture
def debian_root(debian_roots, tmp_path):
    """Factory: debian_root(flavour, install=None, files=None, firstboot=(),
    append="", wait=True, **RootVM kwargs) -> a started lab.roots.RootVM.

    Each VM boots a fresh qcow2 overlay of the cached root (the cache stays
    pristine) in its own work directory under tmp_path.  INSTALL is a .deb (or
    a list of them; installed with apt-get at first boot, offline) or a
    directory copied over / (``cmake --install`` DESTDIR output).  FILES
    ({path in root: host path, str or bytes}) land in the root first,
    FIRSTBOOT commands (``sh -e``, in order) run after the install; all of it
    before the kdump service starts, and a failure fails the boot.  With WAIT
    the agent is ready and every first-boot command succeeded.  After the VM
    powers off, ``vm.read_out("/var/crash", dest)`` copies files off its disk.
    Every VM started here is killed when the test ends.
    """
    def make(number, flavour, install=None, files=None, firstboot=(), append="", **kwargs):
        root = debian_roots(flavour)
        inst_files, inst_cmds = roots.install_plan(install)
        inst_files.update(files or {})
        workdir = tmp_path / f"{flavour}{number}"
        return roots.RootVM(root, roots.overlay(root, workdir), workdir=workdir,
                            files=inst_files, firstboot=inst_cmds + list(firstboot),
                            append=append, **kwargs)

    yield from _started(make)


@pytest.fixture
def installed_root(debian_roots, tmp_path):
    """Factory: installed_root(flavour, install=None, files=None, prepare=(),
    firstboot=(), then=(), wait=True, **RootVM kwargs) -> a started lab.roots.RootVM.

    As :func:`debian_root` (PREPARE: commands run before the install's own),
    but the install (FILES, PREPARE, the packages, FIRSTBOOT, and THEN:
    commands run through the agent once the capture kernel is loaded, their
    results in ``.info["then"]``) happens in a boot of its own that is cached
    by its inputs
    (lab.roots.install): the VM boots a fresh overlay of the installed,
    powered-off root, as the admin's server boots after the install.
    ``vm.installed`` is the lab.roots.Installed (``.info``: the first-boot
    commands' status and output, the install boot's timings); ``vm.fresh`` says
    whether this run did the install boot.
    """
    def make(number, flavour, install=None, files=None, prepare=(), firstboot=(), then=(),
             install_timeout=1500, **kwargs):
        root = debian_roots(flavour)
        inst_files, inst_cmds = roots.install_plan(install)
        inst_files.update(files or {})
        commands = list(prepare) + inst_cmds + list(firstboot)
        before = (roots.cached_install(root, inst_files, commands, then).dir
                  / "installed.json").exists()
        try:
            done = roots.install(root, files=inst_files, firstboot=commands, then=then,
                                 boot_timeout=install_timeout)
        except LabError as exc:
            pytest.fail(f"install into {flavour}: {exc}", pytrace=False)
        workdir = tmp_path / f"{flavour}{number}"
        machine = roots.RootVM(done, roots.overlay(done, workdir), workdir=workdir, **kwargs)
        machine.installed, machine.fresh = done, not before
        return machine

    yield from _started(make)
