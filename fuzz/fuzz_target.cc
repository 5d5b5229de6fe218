// SPDX-License-Identifier: GPL-2.0-or-later
//
// One libFuzzer target; NMIMGR_FUZZ_TARGET names its entry (entries.h).
#include <cstdio>
#include <cstdlib>

#include "entries.h"

namespace {
nmimgr::fuzz::Entry entry = nullptr;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const nmimgr::fuzz::Target* t = nmimgr::fuzz::FindTarget(NMIMGR_FUZZ_TARGET);
  if (!t) {
    std::fprintf(stderr, "no fuzz entry %s\n", NMIMGR_FUZZ_TARGET);
    std::abort();
  }
  entry = t->entry;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  entry(data, size);
  return 0;
}
