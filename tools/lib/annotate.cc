// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgr.json next to a dump.  Written atomically: a temporary file created
// with O_EXCL|O_NOFOLLOW in the same directory, fsync, then rename(2) over
// the final name.  rename never follows a symbolic link in its final
// component (it replaces the link itself), the dump files are never opened
// for writing, and an identical existing file is left alone, so running the
// check twice changes nothing.  The content has no check-time timestamp for
// the same reason; it records instead the writer (tool and version) and the
// size and modification time of every file the check read, which is what
// `--new` compares (WhyNew).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
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

constexpr const char* kSchema = "nmimgr-vmcore-check/annotation/1";

}  // namespace

std::string AnnotationWriter() {
  return std::string("nmimgr-vmcore-check ") + NMIMGR_VERSION;
}

std::string WhyNew(const std::string& dir,
                   const std::vector<const DumpSet*>& sets) {
  const std::string path = dir + "/nmimgr.json";
  std::optional<std::string> text = ReadExisting(path);
  if (!text) {
    struct stat st;
    return ::lstat(path.c_str(), &st) != 0 && errno == ENOENT
               ? "no annotation"
               : "annotation unreadable";
  }
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "annotation unreadable";
  const nlohmann::json* checked =
      j.contains("checked") && j["checked"].is_object() ? &j["checked"]
                                                        : nullptr;
  std::string by =
      checked && (*checked).value("by", nlohmann::json()).is_string()
          ? (*checked)["by"].get<std::string>()
          : "an earlier version";
  if (j.value("schema", nlohmann::json()) != kSchema ||
      by != AnnotationWriter())
    return "annotation by " + by;
  // The files the check would read now, against those it read then.
  std::map<std::string, std::pair<uint64_t, int64_t>> now, then;
  for (const DumpSet* s : sets)
    for (const FileStamp& f : StampsOf(*s)) now[f.name] = {f.size, f.mtime_ns};
  const nlohmann::json& files = (*checked).value("files", nlohmann::json());
  if (!files.is_array()) return "annotation unreadable";
  for (const nlohmann::json& f : files) {
    if (!f.is_object() || !f.value("name", nlohmann::json()).is_string() ||
        !f.value("size", nlohmann::json()).is_number_unsigned() ||
        !f.value("mtime_ns", nlohmann::json()).is_number_integer())
      return "annotation unreadable";
    then[f["name"].get<std::string>()] = {f["size"].get<uint64_t>(),
                                          f["mtime_ns"].get<int64_t>()};
  }
  auto name_of = [](const auto& kv) { return kv.first; };
  std::set<std::string> recorded, present;
  std::transform(then.begin(), then.end(),
                 std::inserter(recorded, recorded.end()), name_of);
  std::transform(now.begin(), now.end(), std::inserter(present, present.end()),
                 name_of);
  if (recorded != present) return "files differ";
  for (const auto& [name, stamp] : then)
    if (now[name] != stamp) return name + " changed";
  return {};
}

std::string Annotate(const DumpResult& r,
                     const std::vector<const DumpResult*>& in_dir) {
  nlohmann::json j = DumpToJson(r);
  j.erase("path");  // the file sits in that directory
  j["schema"] = kSchema;
  // What was checked, for --new: every file of every dump in the directory
  // as it was before the check read it.
  std::map<std::string, const FileStamp*> stamps;
  for (const FileStamp& f : r.stamps) stamps[f.name] = &f;
  for (const DumpResult* d : in_dir)
    for (const FileStamp& f : d->stamps) stamps[f.name] = &f;
  nlohmann::json files = nlohmann::json::array();
  for (const auto& [name, f] : stamps)
    files.push_back(
        {{"name", name}, {"size", f->size}, {"mtime_ns", f->mtime_ns}});
  j["checked"] = {{"by", AnnotationWriter()}, {"files", files}};
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
