// SPDX-License-Identifier: GPL-2.0-or-later
#include "host.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

extern char** environ;

namespace nmimgr::ctl {

namespace fs = std::filesystem;

Host::Host(fs::path root) : root_(std::move(root)) {
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(root_, ec);
  live_ = !ec && canon == "/";
}

fs::path Host::Path(std::string_view abs) const {
  if (live_) return fs::path(abs);
  std::string_view rel = abs;
  while (!rel.empty() && rel.front() == '/') rel.remove_prefix(1);
  return root_ / fs::path(rel);
}

bool Host::Exists(std::string_view abs) const {
  std::error_code ec;
  return fs::exists(fs::symlink_status(Path(abs), ec)) && !ec;
}

std::optional<std::string> Host::Read(std::string_view abs,
                                      size_t limit) const {
  const fs::path p = Path(abs);
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw HostError("reading " + std::string(abs) + ": " +
                    std::strerror(errno));
  }
  std::string out;
  char buf[8192];
  while (out.size() < limit) {
    ssize_t n = ::read(fd, buf, std::min(sizeof(buf), limit - out.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      throw HostError("reading " + std::string(abs) + ": " + std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::optional<std::string> Host::ReadLine(std::string_view abs) const {
  std::optional<std::string> s = Read(abs);
  if (!s) return s;
  while (!s->empty() && std::isspace(static_cast<unsigned char>(s->back())))
    s->pop_back();
  return s;
}

std::optional<FileInfo> Host::Info(std::string_view abs) const {
  struct stat st;
  if (::stat(Path(abs).c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    throw HostError("stat " + std::string(abs) + ": " + std::strerror(errno));
  }
  FileInfo info;
  info.size = static_cast<uint64_t>(st.st_size);
  info.mtime_ns =
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return info;
}

std::vector<std::string> Host::List(std::string_view abs) const {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(Path(abs), ec), end; !ec && it != end;
       it.increment(ec))
    names.push_back(it->path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<std::string> Host::LinkName(std::string_view abs) const {
  std::error_code ec;
  fs::path target = fs::read_symlink(Path(abs), ec);
  if (ec) return std::nullopt;
  return target.filename().string();
}

ProcessResult RunProcess(const std::vector<std::string>& argv) {
  if (argv.empty()) throw HostError("running a program: no program given");
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0)
    throw HostError("pipe: " + std::string(std::strerror(errno)));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    throw HostError("pipe: " + std::string(std::strerror(errno)));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(out[0]);
    ::close(err[0]);
    throw HostError("running " + argv[0] + ": " + std::strerror(rc));
  }
  ProcessResult res;
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&res.out, &res.err};
  int open_fds = 2;
  char buf[8192];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0 && sinks[i]->size() < (16u << 20)) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (n < 0 && errno != EINTR)) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  res.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return res;
}

std::string Trim(std::string_view text) {
  size_t b = text.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return std::string();
  size_t e = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(b, e - b + 1));
}

std::vector<std::string> Words(std::string_view text) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
      ++i;
    size_t j = i;
    while (j < text.size() &&
           !std::isspace(static_cast<unsigned char>(text[j])))
      ++j;
    if (j > i) words.emplace_back(text.substr(i, j - i));
    i = j;
  }
  return words;
}

std::vector<std::string> Lines(std::string_view text) {
  std::vector<std::string> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    lines.emplace_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

}  // namespace nmimgr::ctl
