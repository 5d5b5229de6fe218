# SPDX-License-Identifier: GPL-2.0-or-later
"""nmimgr.ko builds without a warning from its own sources, with W=1 and
under sparse (C=1), against each Debian kernel's headers, and uses only
exported symbols."""

import re
import shutil

from lab import build
from lab.paths import REPO_DIR

OWN_SOURCES = ("nmimgr_main.c", "policy.c", "policy.h", "nmimgr_record.h")
#: "<path>/<own source>:<line>[:<col>]: warning|error: ...", from gcc or sparse
OWN_DIAGNOSTIC = re.compile(
    r"(^|/)(" + "|".join(re.escape(s) for s in OWN_SOURCES) + r"):\d+(:\d+)?: "
    r"(warning|error):")


def test_module_builds_warning_free_with_w1(kernel):
    ko = build.build_module(kernel, REPO_DIR / "module", name="nmimgr-w1", w1=True)
    log = (ko.parent / "build.log").read_text()
    own = [line for line in log.splitlines()
           if re.search(r"(warning|error):", line)
           and any(src in line for src in OWN_SOURCES)]
    assert not own, "\n".join(own)
    # modpost names every symbol the module uses that the kernel does not export
    assert "undefined!" not in log, log[-2000:]
    assert ko.stat().st_size > 0


def own_diagnostics(log):
    """Diagnostics about nmimgr's own files, each with its indented detail
    lines (sparse's "expected ... / got ...")."""
    found, keep = [], False
    for line in log.splitlines():
        if OWN_DIAGNOSTIC.search(line):
            found.append(line)
            keep = True
        elif keep and line[:1].isspace() and not re.match(r"\s+[A-Z]+\s", line):
            found.append(line)
        else:
            keep = False
    return found


def test_module_builds_sparse_clean_with_c1(kernel):
    # sparse (scripts/bootstrap.sh installs it) checks what gcc does not:
    # address spaces (__iomem, __user, __rcu), endianness, context
    # imbalance, symbols that should be static.
    assert shutil.which("sparse"), "sparse is not installed: run scripts/bootstrap.sh"
    ko = build.build_module(kernel, REPO_DIR / "module", name="nmimgr-sparse",
                            extra_args=("C=1",))
    log = (ko.parent / "build.log").read_text()
    # C=1 checks every file it compiles, and the build directory is fresh
    for src in ("nmimgr_main.c", "policy.c"):
        assert re.search(rf"^\s*CHECK\s+(\S*/)?{re.escape(src)}$", log, re.M), \
            f"sparse did not check {src}:\n{log[-2000:]}"
    own = own_diagnostics(log)
    assert not own, "\n".join(own)
