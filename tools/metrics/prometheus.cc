// SPDX-License-Identifier: GPL-2.0-or-later
#include "prometheus.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace nmimgr::metrics {

namespace {

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 9.007199254740992e15)
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  else
    std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

}  // namespace

void Metrics::Add(const std::string& name, const std::string& type,
                  const std::string& help, const Labels& labels, double value) {
  if (name.rfind("nmimgr_", 0) != 0)
    throw std::logic_error("metric " + name + " lacks the nmimgr_ prefix");
  bool total =
      name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0;
  if ((type == "counter") != total)
    throw std::logic_error("metric " + name +
                           ": counters, and only they, end in _total");
  for (Family& f : families_) {
    if (f.name == name) {
      f.samples.emplace_back(labels, value);
      return;
    }
  }
  families_.push_back(Family{name, type, help, {{labels, value}}});
}

std::string Metrics::Text() const {
  std::string out;
  for (const Family& f : families_) {
    out += "# HELP " + f.name + " " + f.help + "\n";
    out += "# TYPE " + f.name + " " + f.type + "\n";
    for (const auto& [labels, value] : f.samples) {
      out += f.name;
      if (!labels.empty()) {
        out += "{";
        for (size_t i = 0; i < labels.size(); ++i) {
          if (i) out += ",";
          out += labels[i].first + "=\"" + Escape(labels[i].second) + "\"";
        }
        out += "}";
      }
      out += " " + Number(value) + "\n";
    }
  }
  return out;
}

void WriteFileAtomically(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  fs::path target(path);
  fs::path dir =
      target.has_parent_path() ? target.parent_path() : fs::path(".");
  // node_exporter reads only *.prom: the temporary name is not one
  std::string tmpl =
      (dir / ("." + target.filename().string() + ".XXXXXX")).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) throw WriteError("writing " + path + ": " + std::strerror(errno));
  auto fail = [&](const char* what) {
    int e = errno;
    ::close(fd);
    ::unlink(name.data());
    throw WriteError(std::string(what) + " " + path + ": " + std::strerror(e));
  };
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("writing");
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd, 0644) != 0) fail("writing");
  if (::fsync(fd) != 0) fail("writing");
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(name.data());
    throw WriteError("writing " + path + ": " + std::strerror(e));
  }
  if (::rename(name.data(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(name.data());
    throw WriteError("renaming into " + path + ": " + std::strerror(e));
  }
}

}  // namespace nmimgr::metrics
