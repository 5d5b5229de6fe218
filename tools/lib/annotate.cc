// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgr.json next to a dump.  Written atomically: a temporary file created
// with O_EXCL|O_NOFOLLOW in the same directory, fsync, then rename(2) over
// the final name.  rename never follows a symbolic link in its final
// component (it replaces the link itself), the dump files are never opened
// for writing, and an identical existing file is left alone, so running the
// check twice changes nothing.  The content has no check-time timestamp for
// the same reason.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <string>

#include "check.h"
#include "checked.h"

namespace nmimgr::vmcore {
namespace {

// The existing regular file's content, or nullopt (absent, a link, other).
std::optional<std::string> ReadExisting(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> out;
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (1 << 24)) {
    std::string s(static_cast<size_t>(st.st_size), '\0');
    if (::pread(fd, s.data(), s.size(), 0) == static_cast<ssize_t>(s.size()))
      out = std::move(s);
  }
  ::close(fd);
  return out;
}

}  // namespace

std::string Annotate(const DumpResult& r,
                     const std::vector<const DumpResult*>& in_dir) {
  nlohmann::json j = DumpToJson(r);
  j.erase("path");  // the file sits in that directory
  j["schema"] = "nmimgr-vmcore-check/annotation/1";
  if (in_dir.size() > 1) {
    // Several dumps share the directory and its one nmimgr.json: it
    // describes the worst of them, and lists each with its verdict.
    nlohmann::json all = nlohmann::json::array();
    for (const DumpResult* d : in_dir) {
      nlohmann::json e = DumpToJson(*d);
      all.push_back({{"files", e["files"]}, {"verdict", e["verdict"]}});
    }
    j["dumps_in_directory"] = all;
  }
  // Strings from the dump are valid UTF-8 already (ValidUtf8); replace is
  // the backstop for anything else (a directory name), and is deterministic,
  // so annotating stays idempotent.
  std::string text =
      j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  const std::string final_path = r.set.dir + "/nmimgr.json";
  if (auto old = ReadExisting(final_path); old && *old == text)
    return "unchanged";

  std::random_device rd;
  std::string tmp;
  int fd = -1;
  for (int tries = 0; tries < 16 && fd < 0; ++tries) {
    tmp = fmt::format("{}/.nmimgr.json.{:08x}", r.set.dir, rd());
    fd = ::open(tmp.c_str(),
                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0)
    throw IoError(fmt::format("annotating {}: creating a temporary file: {}",
                              r.set.dir, std::strerror(errno)));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw IoError(fmt::format("annotating {}: writing {}: {}", r.set.dir, tmp,
                                std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw IoError(fmt::format("annotating {}: flushing {}: {}", r.set.dir, tmp,
                              std::strerror(err)));
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw IoError(fmt::format("annotating {}: renaming to nmimgr.json: {}",
                              r.set.dir, std::strerror(err)));
  }
  int dfd = ::open(r.set.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return "written";
}

}  // namespace nmimgr::vmcore
