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
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lab import build, initramfs, kernels  # noqa: E402
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


@pytest.fixture
def boot(kernel, initrd, tmp_path):
    """Factory: boot(initrd=None, append="", wait=True, **VM kwargs) -> started VM.

    Each VM gets its own work directory under tmp_path (serial.log, share/);
    every VM started here is killed when the test ends.
    """
    started = []

    def start(image=None, append="", wait=True, **kwargs):
        workdir = tmp_path / f"vm{len(started)}"
        machine = VM(kernel, image or initrd, workdir=workdir, append=append, **kwargs)
        started.append(machine)
        machine.start()
        if wait:
            machine.boot_seconds = machine.wait_ready()
        return machine

    yield start
    for machine in started:
        machine.kill()


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
