// SPDX-License-Identifier: GPL-2.0-or-later
#include "discover.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string_view>
#include <tuple>

#include "dump_open.h"
#include "kdump_split.h"
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

// `kdumpctl test` has the capture kernel write "fail" here before the dump
// and "success" after it: a directory holding it was to receive a dump.
constexpr std::string_view kTestStatus = "vmcore-creation.status";

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
    return ProbeDumpSignature(src) == Probe::kMine ||
           DetectOuter(src) != OuterKind::kNone;
  } catch (const std::exception&) {
    return false;
  }
}

// The split identity of a kdump-compressed file, read through its outer
// compression (dump.1.xz): only the first header blocks are decoded.
std::optional<SplitIdentity> IdentityOf(const std::string& path) {
  try {
    Unwrapped u = UnwrapOuter(std::make_unique<FileSource>(path));
    return ReadSplitIdentity(*u.src);
  } catch (const std::exception&) {
    return std::nullopt;  // Unreadable: the check reports it.
  }
}

// What stands where a dump should be, when it is not a regular file:
// "a FIFO", "a dangling symbolic link", ...; empty for a regular file or a
// directory.
std::string NotAFile(const fs::path& p) {
  struct stat lst, st;
  if (::lstat(p.c_str(), &lst) != 0) return {};
  if (S_ISLNK(lst.st_mode) && ::stat(p.c_str(), &st) != 0)
    return "a dangling symbolic link";
  if (::stat(p.c_str(), &st) != 0) return {};
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return {};
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
    std::optional<SplitIdentity> id = IdentityOf(path);
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
  if (singles.empty() && splits.empty() && only_file.empty()) {
    // A dump was to be written here but is not: its name stands for
    // something else, or only the saved kernel log is left.
    std::string why;
    for (const auto& n : names)
      if (IsDumpFileName(n))
        if (std::string what = NotAFile(dir / n); !what.empty()) {
          why = fmt::format(
              "the dump never got written: {} is {}, not a dump file", n, what);
          break;
        }
    if (why.empty() && !logs.empty())
      why = fmt::format(
          "the dump never got written: the directory holds the saved kernel "
          "log {} but no dump file",
          logs.front());
    if (why.empty() &&
        std::find(names.begin(), names.end(), kTestStatus) != names.end())
      why = fmt::format(
          "the dump never got written: the directory holds the `kdumpctl "
          "test` status {} but no dump file",
          kTestStatus);
    if (!why.empty()) {
      DumpSet d;
      d.dir = dir.string();
      d.layout = layout;
      if (!logs.empty()) d.dmesg_file = (dir / logs.front()).string();
      d.missing = why;
      out.dumps.push_back(d);
    }
    return;
  }
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

// Whether `dir` is a dump directory: it holds a dump file, a dump name
// that is not a file (a FIFO, a dangling link: reported as dump-missing),
// or a saved kernel log.  A directory that cannot be read adds an error.
bool HasDumpFiles(const fs::path& dir, std::vector<std::string>& errors) {
  for (const auto& n : SortedEntries(dir, errors)) {
    if (IsDumpFileName(n) && (IsRegular(dir / n) || !NotAFile(dir / n).empty()))
      return true;
    if ((IsDmesgName(n) || n == kTestStatus) && IsRegular(dir / n)) return true;
  }
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
  // Checksums and signatures kept next to a dump (sha256sum dump.* >
  // dump.<stamp>.sha256) describe it; they are not dumps, nor is the
  // vmcore-creation.status of a `kdumpctl test` directory.
  for (std::string_view ext :
       {".sha256", ".sha512", ".sha384", ".sha224", ".sha1", ".md5", ".b2",
        ".sum", ".asc", ".sig", ".part", ".tmp", ".status"})
    if (EndsWith(n, ext)) return false;
  // dump.<stamp>[.xz|.gz|.bz2|.lz4], vmcore.<stamp>, and split parts named
  // after either.
  return StartsWith(n, "dump.") || StartsWith(n, "vmcore.") ||
         StartsWith(n, "vmcore_") || StartsWith(n, "dump_") ||
         StartsWith(n, "vmcore-") || StartsWith(n, "dump-");
}

namespace {

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return c >= '0' && c <= '9'; });
}

// A non-empty run of any characters but line breaks.
bool AnyText(std::string_view s) {
  return !s.empty() && s.find_first_of("\n\r") == std::string_view::npos;
}

// kdumpctl: <host>-YYYY-MM-DD-HH:MM:SS.
bool KdumpctlName(std::string_view n) {
  constexpr std::string_view kStamp = "-dddd-dd-dd-dd:dd:dd";  // d: a digit
  if (n.size() <= kStamp.size()) return false;
  const std::string_view stamp = n.substr(n.size() - kStamp.size());
  for (size_t i = 0; i < kStamp.size(); ++i)
    if (kStamp[i] == 'd' ? !AllDigits(stamp.substr(i, 1))
                         : stamp[i] != kStamp[i])
      return false;
  return AnyText(n.substr(0, n.size() - kStamp.size()));
}

// `kdumpctl test`: kdump.sh saves into <path>/kdump-test-<id>, the id being
// kdumpctl's `date +%s-%N`.
bool KdumpctlTestName(std::string_view n) {
  constexpr std::string_view kPrefix = "kdump-test-";
  if (n.substr(0, kPrefix.size()) != kPrefix) return false;
  const std::string_view id = n.substr(kPrefix.size());
  const size_t dash = id.find('-');
  return dash != std::string_view::npos && AllDigits(id.substr(0, dash)) &&
         AllDigits(id.substr(dash + 1));
}

// kdump-tools: YYYYMMDDHHMM, or <prefix>-YYYYMMDDHHMM.
bool KdumpToolsName(std::string_view n) {
  if (n.size() < 12 || !AllDigits(n.substr(n.size() - 12))) return false;
  const std::string_view before = n.substr(0, n.size() - 12);
  return before.empty() ||
         (before.back() == '-' && AnyText(before.substr(0, before.size() - 1)));
}

}  // namespace

// Hand-written rather than std::regex: the three patterns cost every start
// of nmimgr-vmcore-check 0.3 ms to compile.  They match what
// ^.+-\d{4}-\d{2}-\d{2}-\d{2}:\d{2}:\d{2}$, ^kdump-test-\d+-\d+$ and
// ^(.+-)?\d{12}$ match (ECMAScript: '.' is anything but a line break).
std::string LayoutOfDirName(const std::string& name) {
  if (KdumpctlName(name) || KdumpctlTestName(name)) return "kdumpctl";
  if (KdumpToolsName(name)) return "kdump-tools";
  return "unknown";
}

Discovery Discover(const std::vector<std::string>& paths) {
  Discovery out;
  // Split parts named on the command line, by identity, wherever they
  // live: parts from several directories are one set.
  using Key = std::tuple<std::string, std::string, int64_t, uint64_t>;
  std::map<Key, std::map<std::string, uint64_t>> named_parts;
  std::map<Key, DumpSet> named_sets;  // where the set's first file lies
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
      const std::string file = (dir / path.filename()).string();
      std::optional<SplitIdentity> id = IdentityOf(file);
      size_t before = out.dumps.size();
      ScanDumpDir(dir, out, file, true);
      if (id && id->split) {
        // This part and its siblings in its directory join the parts
        // named from other directories.
        Key key{id->utsname_release, id->nodename, id->timestamp,
                id->max_mapnr};
        std::vector<std::string> files = {file};
        if (out.dumps.size() > before) {
          files = out.dumps.back().files;
          if (!named_sets.count(key)) named_sets[key] = out.dumps.back();
          out.dumps.resize(before);
        }
        for (const auto& f : files)
          if (auto fid = IdentityOf(f); fid && fid->split)
            named_parts[key][f] = fid->start_pfn;
        continue;
      }
      if (out.dumps.size() == before) {
        // Not a dump name: check the file as given.
        DumpSet d;
        d.dir = dir.string();
        d.files = {file};
        d.layout = "unknown";
        out.dumps.push_back(d);
      }
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      out.errors.push_back(fmt::format("{}: not a file or directory", p));
      continue;
    }
    // A directory that cannot be read is an error, never "no dumps".
    const size_t errors_before = out.errors.size();
    std::vector<std::string> entries = SortedEntries(path, out.errors);
    if (out.errors.size() > errors_before) continue;
    size_t before = out.dumps.size();
    if (HasDumpFiles(path, out.errors)) ScanDumpDir(path, out);
    // The dump directories of a crash root, also when the root holds a
    // loose dump file of its own.
    for (const auto& n : entries) {
      fs::path sub = path / n;
      struct stat sst;
      if (::stat(sub.c_str(), &sst) != 0 || !S_ISDIR(sst.st_mode)) continue;
      // lost+found of a crash file system is not a dump directory.
      std::vector<std::string> sub_errors;
      bool has = HasDumpFiles(sub, sub_errors);
      if (n != "lost+found")
        out.errors.insert(out.errors.end(), sub_errors.begin(),
                          sub_errors.end());
      if (has) ScanDumpDir(sub, out);
    }
    // A directory named on the command line whose files carry other names.
    if (out.dumps.size() == before && out.errors.size() == errors_before)
      ScanDumpDir(path, out, {}, true);
  }
  for (auto& [key, parts] : named_parts) {
    std::vector<std::pair<uint64_t, std::string>> order;
    for (const auto& [f, pfn] : parts) order.push_back({pfn, f});
    std::sort(order.begin(), order.end());
    DumpSet d;
    if (auto it = named_sets.find(key); it != named_sets.end()) d = it->second;
    d.files.clear();
    for (const auto& [pfn, f] : order) d.files.push_back(f);
    if (d.dir.empty()) d.dir = fs::path(d.files.front()).parent_path().string();
    if (d.layout.empty()) d.layout = "unknown";
    d.split = true;
    out.dumps.push_back(d);
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
