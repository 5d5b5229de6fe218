// SPDX-License-Identifier: GPL-2.0-or-later
#include "discover.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <tuple>

#include "kdump_reader.h"
#include "outer.h"
#include "source.h"

namespace nmimgr::vmcore {
namespace fs = std::filesystem;
namespace {

bool StartsWith(const std::string& s, std::string_view p) {
  return s.compare(0, p.size(), p) == 0;
}
bool EndsWith(const std::string& s, std::string_view p) {
  return s.size() >= p.size() &&
         s.compare(s.size() - p.size(), p.size(), p) == 0;
}

bool IsDmesgName(const std::string& n) {
  return n == "vmcore-dmesg.txt" || StartsWith(n, "dmesg.");
}

bool IsRegular(const fs::path& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::vector<std::string> SortedEntries(const fs::path& dir,
                                       std::vector<std::string>& errors) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec))
    names.push_back(it->path().filename().string());
  if (ec)
    errors.push_back(
        fmt::format("reading directory {}: {}", dir.string(), ec.message()));
  std::sort(names.begin(), names.end());
  return names;
}

std::string LayoutOfFiles(const std::vector<std::string>& names) {
  for (const auto& n : names) {
    if (n == "vmcore" || n == "vmcore-incomplete" || n == "vmcore.flat" ||
        n == "vmcore-dmesg.txt")
      return "kdumpctl";
    if (StartsWith(n, "dump.") || n == "dump-incomplete" ||
        StartsWith(n, "dmesg."))
      return "kdump-tools";
  }
  return "unknown";
}

// Whether the file starts like a dump (any format, any outer compression):
// used for directories and files named on the command line whose names are
// not the usual ones (split parts are named by whoever ran makedumpfile).
bool LooksLikeDump(const fs::path& p) {
  try {
    FileSource src(p.string());
    uint8_t m[13] = {};
    size_t n = src.ReadAt(0, m);
    std::string_view head(reinterpret_cast<const char*>(m), n);
    return head.starts_with("KDUMP   ") ||
           head.starts_with(
               "\x7f"
               "ELF") ||
           head.starts_with(std::string_view("makedumpfile\0", 13)) ||
           DetectOuter(src) != OuterKind::kNone;
  } catch (const std::exception&) {
    return false;
  }
}

// Collects the dumps of one dump directory.  With `probe`, files with other
// names count when their first bytes are a dump's.
void ScanDumpDir(const fs::path& dir, Discovery& out,
                 const std::string& only_file = {}, bool probe = false) {
  std::vector<std::string> names = SortedEntries(dir, out.errors);
  std::string layout = LayoutOfDirName(dir.filename().string());
  if (layout == "unknown") layout = LayoutOfFiles(names);
  std::vector<std::string> logs;
  for (const auto& n : names)
    if (IsDmesgName(n) && IsRegular(dir / n)) logs.push_back(n);
  auto has_log = [&](const std::string& n) {
    return std::find(logs.begin(), logs.end(), n) != logs.end();
  };
  // The saved log that belongs to a dump: vmcore-dmesg.txt next to
  // kdumpctl's vmcore*, dmesg.<stamp> next to dump.<stamp> or
  // vmcore.<stamp> (or in the <stamp> directory of dump-incomplete); else
  // the only log of a directory that holds only one dump.
  auto log_for = [&](const std::string& file, size_t sets) -> std::string {
    std::string n = fs::path(file).filename().string();
    std::string stamp;
    if (StartsWith(n, "dump.") || StartsWith(n, "vmcore.")) {
      size_t b = n.find('.') + 1, e = n.find('.', b);
      stamp = n.substr(b, e == std::string::npos ? e : e - b);
    } else if (n == "dump-incomplete") {
      std::string d = dir.filename().string();
      stamp = d.size() >= 12 ? d.substr(d.size() - 12) : "";
    }
    if (!stamp.empty() && has_log("dmesg." + stamp))
      return (dir / ("dmesg." + stamp)).string();
    if (StartsWith(n, "vmcore") && has_log("vmcore-dmesg.txt"))
      return (dir / "vmcore-dmesg.txt").string();
    if (sets == 1 && logs.size() == 1) return (dir / logs.front()).string();
    return {};
  };

  // Split parts grouped by the identity in their headers.
  using Key = std::tuple<std::string, std::string, int64_t, uint64_t>;
  std::map<Key, std::vector<std::pair<uint64_t, std::string>>> splits;
  std::vector<std::string> singles;
  for (const auto& n : names) {
    if (!IsRegular(dir / n) || IsDmesgName(n) || n == "nmimgr.json") continue;
    if (!IsDumpFileName(n) && !(probe && LooksLikeDump(dir / n))) continue;
    std::string path = (dir / n).string();
    std::optional<SplitIdentity> id;
    try {
      FileSource src(path);
      if (DetectOuter(src) == OuterKind::kNone) id = ReadSplitIdentity(src);
    } catch (const std::exception&) {
      // Unreadable: the check reports it.
    }
    if (id && id->split)
      splits[{id->utsname_release, id->nodename, id->timestamp, id->max_mapnr}]
          .push_back({id->start_pfn, path});
    else
      singles.push_back(path);
  }
  auto wanted = [&](const std::vector<std::string>& files) {
    return only_file.empty() ||
           std::find(files.begin(), files.end(), only_file) != files.end();
  };
  const size_t sets = singles.size() + splits.size();
  for (const auto& path : singles) {
    DumpSet d;
    d.dir = dir.string();
    d.files = {path};
    d.layout = layout;
    d.dmesg_file = log_for(path, sets);
    std::string n = fs::path(path).filename().string();
    d.name_incomplete = n.find("incomplete") != std::string::npos;
    if (wanted(d.files)) out.dumps.push_back(d);
  }
  for (auto& [key, parts] : splits) {
    std::sort(parts.begin(), parts.end());
    DumpSet d;
    d.dir = dir.string();
    for (auto& p : parts) d.files.push_back(p.second);
    d.layout = layout;
    d.dmesg_file = log_for(d.files.front(), sets);
    d.split = true;
    for (auto& f : d.files)
      if (fs::path(f).filename().string().find("incomplete") !=
          std::string::npos)
        d.name_incomplete = true;
    if (wanted(d.files)) out.dumps.push_back(d);
  }
}

bool HasDumpFiles(const fs::path& dir) {
  std::vector<std::string> ignored;
  for (const auto& n : SortedEntries(dir, ignored))
    if (IsDumpFileName(n) && IsRegular(dir / n)) return true;
  return false;
}

}  // namespace

bool IsDumpFileName(const std::string& n) {
  if (n == "vmcore" || n == "vmcore-incomplete" || n == "vmcore.flat" ||
      n == "dump-incomplete")
    return true;
  if (n == "vmcore-dmesg.txt" || EndsWith(n, ".txt") || EndsWith(n, ".log") ||
      EndsWith(n, ".json") || n.find("dmesg") != std::string::npos)
    return false;
  // dump.<stamp>[.xz|.gz|.bz2|.lz4], vmcore.<stamp>, and split parts named
  // after either.
  return StartsWith(n, "dump.") || StartsWith(n, "vmcore.") ||
         StartsWith(n, "vmcore_") || StartsWith(n, "dump_") ||
         StartsWith(n, "vmcore-") || StartsWith(n, "dump-");
}

std::string LayoutOfDirName(const std::string& name) {
  static const std::regex kdumpctl(
      R"(^.+-\d{4}-\d{2}-\d{2}-\d{2}:\d{2}:\d{2}$)");
  static const std::regex kdump_tools(R"(^(.+-)?\d{12}$)");
  if (std::regex_match(name, kdumpctl)) return "kdumpctl";
  if (std::regex_match(name, kdump_tools)) return "kdump-tools";
  return "unknown";
}

Discovery Discover(const std::vector<std::string>& paths) {
  Discovery out;
  for (const std::string& p : paths) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) {
      out.errors.push_back(fmt::format("{}: {}", p, std::strerror(errno)));
      continue;
    }
    fs::path path = fs::path(p).lexically_normal();
    if (path.has_filename() == false) path = path.parent_path();
    if (S_ISREG(st.st_mode)) {
      fs::path dir = path.has_parent_path() ? path.parent_path() : ".";
      size_t before = out.dumps.size();
      ScanDumpDir(dir, out, (dir / path.filename()).string(), true);
      if (out.dumps.size() == before) {
        // Not a dump name: check the file as given.
        DumpSet d;
        d.dir = dir.string();
        d.files = {(dir / path.filename()).string()};
        d.layout = "unknown";
        out.dumps.push_back(d);
      }
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      out.errors.push_back(fmt::format("{}: not a file or directory", p));
      continue;
    }
    if (HasDumpFiles(path)) {
      ScanDumpDir(path, out);
      continue;
    }
    size_t before = out.dumps.size();
    for (const auto& n : SortedEntries(path, out.errors)) {
      fs::path sub = path / n;
      struct stat sst;
      if (::stat(sub.c_str(), &sst) != 0 || !S_ISDIR(sst.st_mode)) continue;
      if (HasDumpFiles(sub)) ScanDumpDir(sub, out);
    }
    // A directory named on the command line whose files carry other names.
    if (out.dumps.size() == before) ScanDumpDir(path, out, {}, true);
  }
  // The same dump named twice (a set and one of its parts) is checked once.
  std::vector<DumpSet> unique;
  for (auto& d : out.dumps)
    if (std::none_of(unique.begin(), unique.end(),
                     [&](const DumpSet& u) { return u.files == d.files; }))
      unique.push_back(std::move(d));
  out.dumps = std::move(unique);
  return out;
}

}  // namespace nmimgr::vmcore
