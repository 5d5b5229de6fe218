// SPDX-License-Identifier: GPL-2.0-or-later
// The trigger record header is shared by the module and the tools.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstring>

#include "nmimgr_record.h"

namespace {

nmimgr_record Fired() {
  nmimgr_record r{};
  std::memcpy(r.magic, NMIMGR_RECORD_MAGIC, NMIMGR_RECORD_MAGIC_LEN);
  r.version = NMIMGR_RECORD_VERSION;
  r.size = NMIMGR_RECORD_SIZE;
  r.flags = NMIMGR_RECORD_FIRED;
  r.raw_code = 0x21;
  r.masked_code = 0x01;
  r.event_mask = 0xcf;
  r.nmi_type = NMIMGR_TYPE_UNKNOWN;
  r.cpu = 0;
  r.mono_ns = 123456789;
  r.checksum = nmimgr_record_checksum(&r);
  return r;
}

}  // namespace

TEST_CASE("the record layout is the documented 128 bytes", "[unit][record]") {
  CHECK(sizeof(nmimgr_record) == 128);
  CHECK(NMIMGR_RECORD_VERSION == 2);
  CHECK(offsetof(nmimgr_record, flags) == 12);
  CHECK(offsetof(nmimgr_record, raw_code) == 16);
  CHECK(offsetof(nmimgr_record, nmi_type) == 19);
  CHECK(offsetof(nmimgr_record, cpu) == 20);
  CHECK(offsetof(nmimgr_record, real_ns) == 32);
  CHECK(offsetof(nmimgr_record, nmis) == 48);
  CHECK(offsetof(nmimgr_record, would_panic) == 80);
  CHECK(offsetof(nmimgr_record, nonce) == 88);
  CHECK(offsetof(nmimgr_record, phys) == 96);
  CHECK(offsetof(nmimgr_record, confirm_ns) == 104);
  CHECK(offsetof(nmimgr_record, confirm_min_ms) == 112);
  CHECK(offsetof(nmimgr_record, confirm_max_ms) == 116);
  CHECK(offsetof(nmimgr_record, oops_depth) == 120);
  CHECK(offsetof(nmimgr_record, checksum) == 124);
  // Version 1 is the same up to would_panic, checksum at 92.
  CHECK(NMIMGR_RECORD_V1_SIZE == 96);
  CHECK(NMIMGR_RECORD_V1_CHECKSUM_OFFSET == 92);
}

TEST_CASE("the checksum covers every byte before it", "[unit][record]") {
  nmimgr_record r = Fired();
  const uint32_t good = r.checksum;
  CHECK(nmimgr_record_checksum(&r) == good);
  auto* bytes = reinterpret_cast<unsigned char*>(&r);
  for (size_t i = 0; i < NMIMGR_RECORD_CHECKSUM_OFFSET; ++i) {
    CAPTURE(i);
    bytes[i] ^= 0x01;
    CHECK(nmimgr_record_checksum(&r) != good);
    bytes[i] ^= 0x01;
  }
}

TEST_CASE("an unfired record's checksum does not match a zero checksum",
          "[unit][record]") {
  // What every copy of nmimgr.ko in memory holds: header, no data.
  nmimgr_record r{};
  std::memcpy(r.magic, NMIMGR_RECORD_MAGIC, NMIMGR_RECORD_MAGIC_LEN);
  r.version = NMIMGR_RECORD_VERSION;
  r.size = NMIMGR_RECORD_SIZE;
  CHECK(r.checksum == 0);
  CHECK(nmimgr_record_checksum(&r) != 0);
  CHECK((r.flags & NMIMGR_RECORD_FIRED) == 0);
}

TEST_CASE("type names are the ones the panic line prints", "[unit][record]") {
  CHECK(std::string(nmimgr_type_name(NMIMGR_TYPE_UNKNOWN)) == "unknown");
  CHECK(std::string(nmimgr_type_name(NMIMGR_TYPE_SERR)) == "serr");
  CHECK(std::string(nmimgr_type_name(NMIMGR_TYPE_IOCHK)) == "iochk");
  CHECK(std::string(nmimgr_type_name(0)) == "invalid");
}
