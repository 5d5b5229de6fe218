// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgr-fuzz-seeds DIR: writes small seed inputs for every fuzz target into
// DIR/<target>/: dumps built with the test tree's dump builder
// (tools/tests/dump_builder.h), and policy strings.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "codec.h"
#include "dump_builder.h"
#include "dump_open.h"
#include "entries.h"
#include "reader.h"
#include "source.h"

namespace t = nmimgr::testing;
namespace v = nmimgr::vmcore;
using t::Bytes;

namespace {

// A small dump: text, a zero page, excluded pages, a trigger record, a panic
// message in memory and a printk ring buffer.
t::DumpSpec Spec(uint32_t codec) {
  t::DumpSpec s;
  s.codec = codec;
  s.max_mapnr = 64;
  s.pages[0] = t::Page(4096, 0x11, "first page");
  s.pages[1] = t::Page(4096, 0);
  Bytes rec = t::Record(0x21, 0xcf, 0, 0);
  s.pages[2] = t::Page(4096, 0, std::string(rec.begin(), rec.end()), 256);
  s.pages[3] = t::Page(
      4096, 0,
      std::string("Kernel panic - not syncing: nmimgr: panic on NMI event "
                  "0x21 (33) type=unknown cpu=0 mask=0xcf\0",
                  88),
      64);
  s.excluded = {4, 5, 30};
  t::AddPrintkRing(
      s, {{1000000, "Linux version 6.1.0"},
          {3449047000,
           "nmimgr: panic on NMI event 0x21 (33) type=unknown "
           "cpu=0 mask=0xcf"},
          {3449100000, "Kernel panic - not syncing: nmimgr: NMI 0x21"}});
  return s;
}

void Write(const std::string& dir, const std::string& name, const Bytes& b) {
  ::mkdir(dir.c_str(), 0755);
  t::WriteFile(dir + "/" + name, b);
}

void Append(Bytes& out, const Bytes& b) {
  out.insert(out.end(), b.begin(), b.end());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: nmimgr-fuzz-seeds DIR\n");
    return 2;
  }
  const std::string out = argv[1];
  ::mkdir(out.c_str(), 0755);
  auto dir = [&](const char* target) { return out + "/" + target; };

  const std::pair<const char*, uint32_t> codecs[] = {{"raw", 0},
                                                     {"zlib", v::kDumpZlib},
                                                     {"lzo", v::kDumpLzo},
                                                     {"snappy", v::kDumpSnappy},
                                                     {"zstd", v::kDumpZstd}};
  for (auto [name, codec] : codecs) {
    t::DumpSpec s = Spec(codec);
    Bytes k = t::BuildKdump(s);
    Write(dir("kdump"), name, k);
    Write(dir("dump"), std::string("kdump-") + name, k);
  }
  for (int version : {1, 3, 5}) {
    t::DumpSpec s = Spec(v::kDumpLzo);
    s.header_version = version;
    Write(dir("kdump"), "v" + std::to_string(version), t::BuildKdump(s));
  }
  t::DumpSpec s = Spec(v::kDumpZlib);
  t::Layout lay;
  Bytes kdump = t::BuildKdump(s, &lay);
  {
    // The consistency cases: a zeroed second bitmap, a second bitmap cut
    // short with its table zero after (a capture that stopped), and a
    // second bitmap that is not a subset of the first.
    const uint64_t bm2 = lay.bitmap_off + lay.bitmap_len / 2;
    Bytes zeroed = kdump;
    std::fill(zeroed.begin() + static_cast<long>(bm2),
              zeroed.begin() + static_cast<long>(bm2 + lay.bitmap_len / 2), 0);
    Write(dir("kdump"), "zeroed-bitmap2", zeroed);
    Bytes stopped = kdump;
    const size_t keep = lay.desc_at.size() / 2;
    for (size_t i = keep; i < lay.desc_at.size(); ++i)
      std::fill_n(stopped.begin() + static_cast<long>(lay.desc_at[i]), 24, 0);
    std::fill(stopped.begin() + static_cast<long>(bm2 + 2),
              stopped.begin() + static_cast<long>(bm2 + lay.bitmap_len / 2), 0);
    Write(dir("kdump"), "stopped-cycle", stopped);
    Bytes stray = kdump;
    stray[lay.bitmap_off] = 0;
    Write(dir("kdump"), "bitmap2-not-subset", stray);
  }
  Bytes elf = t::BuildElf(s);
  Write(dir("elf"), "elf", elf);
  Write(dir("dump"), "elf", elf);

  Bytes flat = t::Flatten(kdump, {.record_size = 3000, .unwritten = {}});
  Write(dir("flattened"), "kdump", flat);
  Write(dir("flattened"), "kdump-rewritten",
        t::Flatten(
            kdump,
            {.record_size = 8192, .rewrite_header = true, .unwritten = {}}));
  Write(dir("flattened"), "elf", t::Flatten(elf));
  Write(dir("dump"), "flattened", flat);

  const std::pair<const char*, v::OuterKind> outers[] = {
      {"xz", v::OuterKind::kXz},
      {"gz", v::OuterKind::kGzip},
      {"bz2", v::OuterKind::kBzip2},
      {"lz4", v::OuterKind::kLz4}};
  for (auto [name, kind] : outers) {
    Write(dir("outer"), std::string("kdump.") + name, t::Compress(kind, kdump));
    Write(dir("outer"), std::string("flat.") + name, t::Compress(kind, flat));
    Write(dir("dump"), std::string("flat.") + name, t::Compress(kind, flat));
    // Two streams (members, frames) with NUL padding after them, and a
    // bomb: megabytes of zeros with no dump signature.
    const size_t half = kdump.size() / 2;
    Bytes two = t::Compress(kind, Bytes(kdump.begin(), kdump.begin() + half));
    Append(two, t::Compress(kind, Bytes(kdump.begin() + half, kdump.end())));
    two.insert(two.end(), 8, 0);
    Write(dir("outer"), std::string("two-padded.") + name, two);
    Write(dir("outer"), std::string("bomb.") + name,
          t::Compress(kind, Bytes(8u << 20, 0)));
  }

  for (const std::vector<uint64_t>& cuts :
       {std::vector<uint64_t>{32}, std::vector<uint64_t>{16, 40}}) {
    std::vector<Bytes> parts = t::BuildSplit(s, cuts);
    Bytes in{static_cast<uint8_t>(parts.size() - 1)};
    for (const Bytes& p : parts) {
      uint32_t n = static_cast<uint32_t>(p.size());
      for (int i = 0; i < 4; ++i)
        in.push_back(static_cast<uint8_t>(n >> (8 * i)));
      Append(in, p);
    }
    Write(dir("split"), "parts" + std::to_string(parts.size()), in);
  }
  {
    // Split parts whose copies of the bitmaps disagree.
    std::vector<Bytes> parts = t::BuildSplit(s, {32});
    parts[1][lay.bitmap_off] ^= 0x01;
    Bytes in{1};
    for (const Bytes& p : parts) {
      uint32_t n = static_cast<uint32_t>(p.size());
      for (int i = 0; i < 4; ++i)
        in.push_back(static_cast<uint8_t>(n >> (8 * i)));
      Append(in, p);
    }
    Write(dir("split"), "bitmaps-disagree", in);
  }

  // kernel-log: the VMCOREINFO the dump carries, then pfns 40-56.
  for (bool direct : {false, true}) {
    t::DumpSpec ks;
    ks.max_mapnr = 64;
    t::AddPrintkRing(ks,
                     {{1000000, "Linux version 6.1.0"},
                      {2000000, "line one\nline two"},
                      {3449047000,
                       "nmimgr: panic on NMI event 0x21 (33) "
                       "type=unknown cpu=0 mask=0xcf"}},
                     5, 4000, direct);
    Bytes built = t::BuildKdump(ks);
    v::OpenedDump dump;
    v::Findings findings;
    v::OpenDump(std::make_unique<v::MemorySource>(built), "kernel-log seed",
                dump, findings);
    v::DumpFacts facts;
    dump.reader->CheckStructure(facts, findings);
    Bytes in(facts.vmcoreinfo.begin(), facts.vmcoreinfo.end());
    in.push_back(0);
    for (uint64_t pfn = 40; pfn <= 56; ++pfn) {
      auto it = ks.pages.find(pfn);
      Append(in, it != ks.pages.end() ? it->second : Bytes(4096, 0));
    }
    Write(dir("kernel-log"), direct ? "direct-map" : "text-map", in);
  }

  // trigger: log text, and a page holding a record that crosses into the
  // next page.
  std::string log =
      "[    3.449047] nmimgr: panic on NMI event 0x21 (33) type=unknown "
      "cpu=0 mask=0xcf\n"
      "[    3.449100] Kernel panic - not syncing: nmimgr: panic on NMI event "
      "0x31 (49) type=iochk cpu=1\n";
  Write(dir("trigger"), "log", Bytes(log.begin(), log.end()));
  Bytes pages(2 * 4096, 0);
  Bytes rec = t::Record(0x31, 0xff, 2, 1);
  std::copy(rec.begin(), rec.end(), pages.begin() + 4048);
  Write(dir("trigger"), "crossing-record", pages);

  // policy: policy strings, lists and command lines, and the edges of the
  // grammar (module/policy.h): ranges, hex, separators, aliases, windows,
  // values just inside and outside the bounds, the length limit.
  const std::pair<const char*, std::string> policies[] = {
      {"default", "ignore= drop= panic= mask=0xc0 dry_run=0 confirm=0"},
      {"ranges", "ignore=0 drop=13,16-20 panic=0x21,0x30-0x3f\n"},
      {"separators", "panic=0x21;drop=0-3\tignore=255;;mask=0xC0 "},
      {"aliases",
       "events_ignore=1 events_drop=2 events_panic=3 event_mask=0xff"},
      {"overlap", "ignore=0-63 drop=32-127 panic=0x40,0x80-0xff mask=0xc0"},
      {"confirm", "panic=0 dry_run=y confirm=1"},
      {"window", "panic=0x80 confirm=100-600000 dry_run=N"},
      {"window-bad", "panic=1 confirm=600000-600001"},
      {"twice", "drop=1 drop=2"},
      {"reversed", "drop=20-16"},
      {"out-of-range", "panic=256,0x100,99999999999"},
      {"bad-mask", "mask=0x40"},
      {"list", "0,13,16-20,0x21,0X30-0x3F"},
      {"byte", "0xff"},
      {"bool", "y\n"},
      {"cmdline", "root=/dev/sda nmimgr.policy=drop=1 panic=33 quiet"},
      {"cmdline-split", "nmimgr.events_panic=0 mask=0xc0 confirm=1"},
      {"cmdline-quoted", "nmimgr.policy=\"drop=1 panic=33\" panic=10"}};
  for (const auto& [name, text] : policies)
    Write(dir("policy"), name, Bytes(text.begin(), text.end()));
  std::string every_other = "drop=0";
  for (int c = 2; c < 256; c += 2) every_other += "," + std::to_string(c);
  Write(dir("policy"), "every-other",
        Bytes(every_other.begin(), every_other.end()));
  // NMIMGR_MAX_INPUT (1024) characters, with and without the newline that
  // does not count, and one more.
  std::string longest = "drop=1";
  while (longest.size() < 1024) longest += ",1";
  Write(dir("policy"), "longest", Bytes(longest.begin(), longest.end()));
  std::string nl = longest + "\n";
  Write(dir("policy"), "longest-newline", Bytes(nl.begin(), nl.end()));
  std::string over = "drop=01" + longest.substr(6);
  Write(dir("policy"), "too-long", Bytes(over.begin(), over.end()));
  // As a policy of bytes: runs of two codes with one left out in every
  // list (the longest canonical lists), mask 0xff, dry_run, and a window
  // of 599999-600000 ms.
  Bytes wide;
  for (int l = 0; l < 3; ++l)
    for (int k = 0; k < 32; ++k) {
      uint8_t b = 0;
      for (int i = 0; i < 8; ++i)
        if ((k * 8 + i + l) % 3 != 2) b |= 1 << i;
      wide.push_back(b);
    }
  Append(wide, {0xff, 0x01, 0x00, 0x09, 0x27, 0xbf, 0x00, 0x09, 0x27, 0xc0});
  Write(dir("policy"), "wide-bytes", wide);
  return 0;
}
