# SPDX-License-Identifier: GPL-2.0-or-later
"""nmimgr.ko builds without a warning from its own sources, with W=1,
against each Debian kernel's headers, and uses only exported symbols."""

import re

from lab import build
from lab.paths import REPO_DIR

OWN_SOURCES = ("nmimgr_main.c", "policy.c", "policy.h", "nmimgr_record.h")


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
