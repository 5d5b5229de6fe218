// SPDX-License-Identifier: GPL-2.0-or-later
//
// The "policy" fuzz entry: the parsers and formatters of module/policy.c,
// which the module runs in the kernel on what root writes to its parameters
// and on the kernel command line.  Not crashing is not enough there, so the
// entry checks what module/policy.h promises and aborts with
// "policy property failed: <which>" when a promise is broken:
//
//  - a parse that fails returns -1, leaves its output byte for byte as it
//    was, and leaves a non-empty message NUL-terminated within the buffer
//    it was given (NMIMGR_ERR_BUF, or fewer bytes: then the same message,
//    cut); without a buffer it decides alike;
//  - a parse that succeeds gives a value the grammar allows, and its
//    canonical form (the format functions) fits the documented buffer
//    (NMIMGR_LIST_BUF, NMIMGR_POLICY_BUF), parses back to the same value,
//    and is a fixed point;
//  - a format into a short buffer writes a NUL-terminated prefix of the
//    full text, never past the buffer, and returns the full length;
//  - compiling puts each masked code in at most one match list, the first
//    list in evaluation order that claims it, and reports overlaps and
//    folded codes as documented; nmimgr_decide() follows the match lists,
//    the latch, dry_run and the capture kernel as documented.
//
// The input is the string for every parser at once (a list, a byte, a
// bool, a mask, a confirmation window, a policy, a kernel command line).
// Its bytes also make up a policy directly (lists as bit sets, then mask,
// dry_run and the window), which reaches policies no short string does.
//
// The checks use the header's functions, not a copy of the grammar, so a
// key added to the policy string is covered by the round trip as it is.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "entries.h"
#include "policy.h"

namespace nmimgr::fuzz {
namespace {

[[noreturn]] void Broken(const char* what, const char* input) {
  // The first line is what fuzz/run.sh files the input under.
  std::fprintf(stderr, "policy property failed: %s\n", what);
  std::fprintf(stderr, "input: \"");
  for (const char* c = input; *c && c - input < 2048; ++c) {
    if (*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\')
      std::fputc(*c, stderr);
    else
      std::fprintf(stderr, "\\x%02x", static_cast<unsigned char>(*c));
  }
  std::fprintf(stderr, "\"\n");
  std::abort();
}

#define REQUIRE(cond, what) \
  do {                      \
    if (!(cond)) Broken(what, input_); \
  } while (0)

// A buffer of exactly `n` bytes on the heap, filled with a byte that is not
// NUL, so that ASan sees a write past it and a missing NUL shows.
std::unique_ptr<char[]> Filled(size_t n) {
  std::unique_ptr<char[]> b(new char[n ? n : 1]);
  std::memset(b.get(), 'Z', n ? n : 1);
  return b;
}

bool SameSet(const nmimgr_codeset& a, const nmimgr_codeset& b) {
  return std::memcmp(&a, &b, sizeof(a)) == 0;
}

bool WindowValid(uint32_t lo, uint32_t hi) {
  return (lo == 0 && hi == 0) ||
         (lo >= NMIMGR_CONFIRM_FLOOR_MS && lo < hi &&
          hi <= NMIMGR_CONFIRM_CEIL_MS);
}

class Checker {
 public:
  Checker(const char* input, const uint8_t* data, size_t size)
      : input_(input), data_(data), size_(size) {}

  void Run();

 private:
  // One parser, as the kernel calls it: (string, output, err, errlen).
  template <typename Out, typename ParseFn>
  int Parse(ParseFn parse, Out* out);
  template <typename FormatFn>
  std::string Format(FormatFn format, size_t limit, const char* what);
  void CheckList(const nmimgr_codeset& set);
  void CheckPolicy(const nmimgr_policy& p);
  void CheckCompile(const nmimgr_policy& p);
  void CheckDecide(const nmimgr_policy& p);
  void CheckCmdline();
  nmimgr_policy FromBytes() const;

  const char* input_;
  const uint8_t* data_;
  size_t size_;
};

// Runs `parse` on the input three ways: with an NMIMGR_ERR_BUF message
// buffer, without one, and with a short one, each into an output filled
// with 0xa5 bytes.  Returns its result; on success *out is the value.
template <typename Out, typename ParseFn>
int Checker::Parse(ParseFn parse, Out* out) {
  // Raw bytes: 0xa5 is no valid bool, so they are read as bytes only.
  struct Slot {
    alignas(Out) unsigned char bytes[sizeof(Out)];
    Slot() { std::memset(bytes, 0xa5, sizeof(bytes)); }
    Out* get() { return reinterpret_cast<Out*>(bytes); }
    bool operator==(const Slot& o) const {
      return std::memcmp(bytes, o.bytes, sizeof(bytes)) == 0;
    }
  };
  const Slot before;
  Slot o1, o2, o3;

  std::unique_ptr<char[]> err = Filled(NMIMGR_ERR_BUF);
  int r = parse(input_, o1.get(), err.get(), size_t{NMIMGR_ERR_BUF});
  REQUIRE(r == 0 || r == -1, "a parser returned neither 0 nor -1");
  const char* nul =
      static_cast<const char*>(std::memchr(err.get(), 0, NMIMGR_ERR_BUF));
  if (r) {
    REQUIRE(o1 == before, "a failed parse changed its output");
    REQUIRE(nul, "an error message is not NUL-terminated in NMIMGR_ERR_BUF");
    REQUIRE(nul != err.get(), "a failed parse left no error message");
  }

  REQUIRE(parse(input_, o2.get(), nullptr, size_t{0}) == r,
          "a parser decides differently without an error buffer");
  REQUIRE(o1 == o2, "a parser's output depends on the error buffer");

  // A short buffer, 1 to NMIMGR_ERR_BUF - 1 bytes, chosen by the input.
  size_t n = 1 + (size_ ? data_[size_ - 1] : 0) % (NMIMGR_ERR_BUF - 1);
  std::unique_ptr<char[]> small = Filled(n);
  REQUIRE(parse(input_, o3.get(), small.get(), n) == r,
          "a parser decides differently with a short error buffer");
  REQUIRE(o1 == o3, "a parser's output depends on the error buffer");
  if (r) {
    const char* snul = static_cast<const char*>(std::memchr(small.get(), 0, n));
    REQUIRE(snul, "an error message overflows a short buffer unterminated");
    size_t full = static_cast<size_t>(nul - err.get());
    size_t cut = static_cast<size_t>(snul - small.get());
    REQUIRE(cut == (full < n - 1 ? full : n - 1) &&
                std::memcmp(small.get(), err.get(), cut) == 0,
            "an error message cut to a short buffer is not its prefix");
    return r;
  }
  std::memcpy(static_cast<void*>(out), o1.bytes, sizeof(Out));
  return r;
}

// Formats with `format(buf, len)`: the full text, which must be shorter
// than `limit`; then into buffers of 0, 1, about half and exactly the
// length, each of exactly that many bytes.
template <typename FormatFn>
std::string Checker::Format(FormatFn format, size_t limit,
                            const char* what) {
  std::unique_ptr<char[]> buf = Filled(limit);
  size_t n = format(buf.get(), limit);
  REQUIRE(n < limit, what);
  REQUIRE(std::memchr(buf.get(), 0, limit) == buf.get() + n,
          "a format's return value is not the length it wrote");
  std::string full(buf.get(), n);

  REQUIRE(format(nullptr, 0) == n, "a format into no buffer counts wrong");
  size_t chosen = 1 + (size_ ? data_[0] : 0) % (n + 1);
  for (size_t len : {size_t{1}, n / 2, n, n + 1, chosen}) {
    if (len == 0) continue;
    std::unique_ptr<char[]> b = Filled(len);
    REQUIRE(format(b.get(), len) == n,
            "a format into a short buffer does not return the full length");
    size_t cut = n < len - 1 ? n : len - 1;
    REQUIRE(std::memcmp(b.get(), full.data(), cut) == 0 && b[cut] == '\0',
            "a format into a short buffer is not a terminated prefix");
  }
  return full;
}

void Checker::CheckList(const nmimgr_codeset& set) {
  std::string text = Format(
      [&](char* b, size_t l) { return nmimgr_format_list(&set, b, l); },
      NMIMGR_LIST_BUF, "a canonical list does not fit NMIMGR_LIST_BUF");
  nmimgr_codeset back;
  char err[NMIMGR_ERR_BUF];
  REQUIRE(nmimgr_parse_list(text.c_str(), &back, err, sizeof(err)) == 0,
          "a canonical list does not parse");
  REQUIRE(SameSet(back, set), "a canonical list parses to another set");
}

void Checker::CheckCompile(const nmimgr_policy& p) {
  nmimgr_policy q = p;
  nmimgr_compile_report rep;
  std::memset(&rep, 0xa5, sizeof(rep));
  nmimgr_policy_compile(&q, &rep);
  nmimgr_policy again = q;
  nmimgr_policy_compile(&again, nullptr);
  REQUIRE(std::memcmp(&again, &q, sizeof(q)) == 0,
          "compiling twice, or without a report, gives another policy");

  // Per masked code: which lists claim it, and how many distinct listed
  // codes fold onto it.
  const unsigned mask = q.mask;
  bool claims[NMIMGR_NR_LISTS][NMIMGR_NR_CODES] = {};
  unsigned codes[NMIMGR_NR_CODES] = {};
  for (unsigned c = 0; c < NMIMGR_NR_CODES; ++c) {
    bool listed = false;
    for (unsigned l = 0; l < NMIMGR_NR_LISTS; ++l)
      if (nmimgr_codeset_test(&q.lists[l], c))
        listed = claims[l][c & mask] = true;
    codes[c & mask] += listed;
  }
  for (unsigned m = 0; m < NMIMGR_NR_CODES; ++m) {
    unsigned in = 0, nclaims = 0, owner = NMIMGR_NR_LISTS;
    for (unsigned l = 0; l < NMIMGR_NR_LISTS; ++l) {
      in += nmimgr_codeset_test(&q.match[l], m);
      if (claims[l][m] && nclaims++ == 0) owner = l;
    }
    REQUIRE(in <= 1, "a masked code sits in more than one match list");
    REQUIRE(in == 0 || (m & mask) == m, "a match list holds an unmasked code");
    for (unsigned l = 0; l < NMIMGR_NR_LISTS; ++l)
      REQUIRE(nmimgr_codeset_test(&q.match[l], m) == (l == owner),
              "a masked code is not matched by the first list claiming it");
    REQUIRE(nmimgr_codeset_test(&rep.overlap, m) == (nclaims > 1),
            "the report's overlap is not the codes several lists claim");
  }
  for (unsigned c = 0; c < NMIMGR_NR_CODES; ++c) {
    bool listed = false;
    for (unsigned l = 0; l < NMIMGR_NR_LISTS; ++l)
      listed |= nmimgr_codeset_test(&q.lists[l], c);
    REQUIRE(nmimgr_codeset_test(&rep.folded, c) ==
                (listed && codes[c & mask] > 1),
            "the report's folded codes are not the listed codes that match "
            "alike");
  }
  CheckDecide(q);
}

void Checker::CheckDecide(const nmimgr_policy& compiled) {
  for (bool dry : {false, true}) {
    nmimgr_policy p = compiled;
    p.dry_run = dry;
    for (unsigned raw = 0; raw < 256; ++raw) {
      unsigned l = 0;
      while (l < NMIMGR_NR_LISTS && !nmimgr_codeset_test(&p.match[l],
                                                         raw & p.mask))
        ++l;
      const bool managed = l < NMIMGR_NR_LISTS;
      nmimgr_action by_list =
          l == NMIMGR_LIST_IGNORE ? NMIMGR_IGNORE
          : l == NMIMGR_LIST_DROP ? NMIMGR_DROP
          : l == NMIMGR_LIST_PANIC
              ? (dry ? NMIMGR_WOULD_PANIC : NMIMGR_PANIC)
              : NMIMGR_UNMANAGED;
      for (int k = 0; k < 6; ++k) {
        nmimgr_state st = {};
        st.latched = k & 1;
        st.capture_kernel = k >= 2;
        st.capture_drop =
            k >= 4 ? NMIMGR_CAPTURE_DROP_MANAGED : NMIMGR_CAPTURE_DROP_ALL;
        nmimgr_action want =
            st.capture_kernel
                ? (st.capture_drop == NMIMGR_CAPTURE_DROP_ALL || managed
                       ? NMIMGR_LATCHED_DROP
                       : NMIMGR_UNMANAGED)
            : !managed   ? NMIMGR_UNMANAGED
            : st.latched ? NMIMGR_LATCHED_DROP
                         : by_list;
        nmimgr_action a = nmimgr_decide(&p, &st, static_cast<uint8_t>(raw));
        REQUIRE(a == want, "nmimgr_decide() does not follow the match lists");
        REQUIRE(std::strcmp(nmimgr_action_name(a), "invalid") != 0,
                "a decided action has no name");
      }
    }
  }
}

void Checker::CheckPolicy(const nmimgr_policy& p) {
  char err[NMIMGR_ERR_BUF];
  REQUIRE(nmimgr_check_mask(p.mask, err, sizeof(err)) == 0,
          "a parsed policy has a mask without both event bits");
  REQUIRE(WindowValid(p.confirm_min_ms, p.confirm_max_ms),
          "a parsed policy has a confirmation window outside the bounds");
  nmimgr_policy compiled = p;
  nmimgr_policy_compile(&compiled, nullptr);
  REQUIRE(std::memcmp(&compiled, &p, sizeof(p)) == 0,
          "a parsed policy is not compiled");
  for (const nmimgr_codeset& l : p.lists) CheckList(l);

  auto format = [](const nmimgr_policy& q) {
    return [&q](char* b, size_t l) { return nmimgr_policy_format(&q, b, l); };
  };
  std::string text = Format(format(p), NMIMGR_POLICY_BUF,
                            "a canonical policy does not fit NMIMGR_POLICY_BUF");
  nmimgr_policy back;
  std::memset(&back, 0x5a, sizeof(back));
  REQUIRE(nmimgr_policy_parse(text.c_str(), &back, err, sizeof(err)) == 0,
          "a canonical policy does not parse");
  REQUIRE(std::memcmp(&back, &p, sizeof(p)) == 0,
          "a canonical policy parses to another policy");
  std::string again = Format(format(back), NMIMGR_POLICY_BUF,
                             "a canonical policy does not fit "
                             "NMIMGR_POLICY_BUF");
  REQUIRE(again == text, "the canonical policy is not a fixed point");
  CheckCompile(p);
}

// A policy made of the input's bytes: 32 per list, then mask, dry_run and
// a window (a window the grammar forbids, or a mask without the event
// bits, is kept: compile and format must cope, only the round trip is
// skipped).
nmimgr_policy Checker::FromBytes() const {
  nmimgr_policy p;
  nmimgr_policy_init(&p);
  size_t at = 0;
  auto next = [&]() -> uint8_t { return at < size_ ? data_[at++] : 0; };
  for (nmimgr_codeset& l : p.lists)
    for (unsigned c = 0; c < NMIMGR_NR_CODES; c += 8) {
      uint8_t b = next();
      for (unsigned i = 0; i < 8; ++i)
        if (b & (1u << i)) nmimgr_codeset_set(&l, c + i);
    }
  if (at < size_) p.mask = next();
  p.dry_run = next() & 1;
  uint32_t w[2] = {0, 0};
  for (uint32_t& v : w)
    for (int i = 0; i < 4; ++i) v = v << 8 | next();
  p.confirm_min_ms = w[0];
  p.confirm_max_ms = w[0] ? w[1] : 0;
  nmimgr_policy_compile(&p, nullptr);
  return p;
}

void Checker::CheckCmdline() {
  std::unique_ptr<char[]> msg = Filled(NMIMGR_ERR_BUF * 4);
  int r = nmimgr_cmdline_check(input_, msg.get(), NMIMGR_ERR_BUF * 4);
  REQUIRE(r >= -1 && r <= 1, "nmimgr_cmdline_check() returned out of range");
  REQUIRE(std::memchr(msg.get(), 0, NMIMGR_ERR_BUF * 4),
          "a command line message is not NUL-terminated");
  REQUIRE(r == 0 || msg[0] != '\0', "a command line verdict has no message");
  REQUIRE(nmimgr_cmdline_check(input_, nullptr, 0) == r,
          "nmimgr_cmdline_check() decides differently without a buffer");
}

void Checker::Run() {
  nmimgr_codeset set;
  if (Parse(nmimgr_parse_list, &set) == 0) CheckList(set);

  uint8_t byte = 0, mask = 0;
  int rb = Parse(nmimgr_parse_byte, &byte);
  int rm = Parse(nmimgr_parse_mask, &mask);
  char err[NMIMGR_ERR_BUF];
  REQUIRE(rm == (rb || nmimgr_check_mask(byte, err, sizeof(err)) ? -1 : 0) &&
              (rm || mask == byte),
          "nmimgr_parse_mask() is not nmimgr_parse_byte() and the mask check");

  bool b = false;
  Parse(nmimgr_parse_bool, &b);

  struct Window {
    uint32_t lo, hi;
  } w;
  auto confirm = [](const char* s, Window* o, char* e, size_t el) {
    return nmimgr_parse_confirm(s, &o->lo, &o->hi, e, el);
  };
  if (Parse(confirm, &w) == 0) {
    REQUIRE(WindowValid(w.lo, w.hi), "a parsed window is outside the bounds");
    std::string text = Format(
        [&](char* buf, size_t l) {
          return nmimgr_format_confirm(w.lo, w.hi, buf, l);
        },
        NMIMGR_POLICY_BUF, "a window's canonical form is too long");
    Window back{};
    REQUIRE(nmimgr_parse_confirm(text.c_str(), &back.lo, &back.hi, err,
                                 sizeof(err)) == 0 &&
                back.lo == w.lo && back.hi == w.hi,
            "a window's canonical form parses to another window");
  }

  nmimgr_policy p;
  if (Parse(nmimgr_policy_parse, &p) == 0) CheckPolicy(p);

  nmimgr_policy raw = FromBytes();
  for (const nmimgr_codeset& l : raw.lists) CheckList(l);
  std::string text = Format(
      [&](char* buf, size_t l) { return nmimgr_policy_format(&raw, buf, l); },
      NMIMGR_POLICY_BUF, "a policy's format does not fit NMIMGR_POLICY_BUF");
  CheckCompile(raw);
  if (nmimgr_check_mask(raw.mask, err, sizeof(err)) == 0 &&
      WindowValid(raw.confirm_min_ms, raw.confirm_max_ms)) {
    nmimgr_policy back;
    REQUIRE(nmimgr_policy_parse(text.c_str(), &back, err, sizeof(err)) == 0,
            "a valid policy's format does not parse");
    REQUIRE(std::memcmp(&back, &raw, sizeof(raw)) == 0,
            "a valid policy's format parses to another policy");
  }

  CheckCmdline();
}

#undef REQUIRE

}  // namespace

void FuzzPolicy(const uint8_t* data, size_t size) {
  // Exactly size + 1 bytes, so that ASan sees a read past the NUL.  A NUL
  // in the input ends the string there, as it would in the kernel.
  std::unique_ptr<char[]> s(new char[size + 1]);
  std::memcpy(s.get(), data, size);
  s[size] = '\0';
  Checker(s.get(), data, size).Run();
}

}  // namespace nmimgr::fuzz
