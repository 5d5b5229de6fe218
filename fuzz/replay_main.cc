// SPDX-License-Identifier: GPL-2.0-or-later
//
// nmimgr-fuzz-replay CORPUS_DIR: runs every file in CORPUS_DIR/<target>/
// through the fuzz entry of <target> (entries.h), each in a child process,
// in a normal build without libFuzzer.  Fails when an input crashes, raises
// an exception the library does not turn into a finding, or takes longer
// than 60 s (2 s for a known bug).
//
// An input that still shows a bug that is not fixed yet is listed in
// CORPUS_DIR/<target>/KNOWN, one "<file> <why>" per line; it is run and its
// outcome printed, but it does not fail the test.  Some bugs show only under
// a sanitizer (fuzz/run.sh); in this build such an input runs clean.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "entries.h"

namespace {

std::vector<std::string> List(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') names.push_back(e->d_name);
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::map<std::string, std::string> Known(const std::string& dir) {
  std::map<std::string, std::string> known;
  std::ifstream f(dir + "/KNOWN");
  for (std::string line; std::getline(f, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string name, why;
    in >> name;
    std::getline(in >> std::ws, why);
    known[name] = why;
  }
  return known;
}

// Runs `entry` on the file in a child; returns "" or what went wrong.
std::string Replay(nmimgr::fuzz::Entry entry, const std::string& path,
                   unsigned seconds) {
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> data((std::istreambuf_iterator<char>(f)),
                            std::istreambuf_iterator<char>());
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(seconds);
    try {
      entry(data.data(), data.size());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "  exception: %s\n", e.what());
      ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
    return "an exception escaped";
  if (WIFSIGNALED(status))
    return WTERMSIG(status) == SIGALRM
               ? "took longer than " + std::to_string(seconds) + " s"
               : "killed by signal " + std::to_string(WTERMSIG(status));
  return "exit status " + std::to_string(WEXITSTATUS(status));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: nmimgr-fuzz-replay CORPUS_DIR\n");
    return 2;
  }
  const std::string root = argv[1];
  int failed = 0, ran = 0, known_bad = 0;
  for (const std::string& target : List(root)) {
    struct stat st;
    if (::stat((root + "/" + target).c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      continue;  // a README next to the target directories
    const nmimgr::fuzz::Target* t = nmimgr::fuzz::FindTarget(target);
    if (!t) {
      std::fprintf(stderr, "%s: no fuzz target of that name\n", target.c_str());
      ++failed;
      continue;
    }
    const std::string dir = root + "/" + target;
    std::map<std::string, std::string> known = Known(dir);
    for (const std::string& name : List(dir)) {
      if (name == "KNOWN") continue;
      // A known hang is cut short: it must not hold up the test.
      auto k = known.find(name);
      std::string err =
          Replay(t->entry, dir + "/" + name, k != known.end() ? 2 : 60);
      ++ran;
      if (k != known.end()) {
        ++known_bad;
        std::printf("%s/%s: known bug (%s): %s\n", target.c_str(), name.c_str(),
                    k->second.c_str(),
                    err.empty()
                        ? "runs clean in this build; a sanitizer may still "
                          "report it (fuzz/run.sh)"
                        : err.c_str());
      } else if (!err.empty()) {
        ++failed;
        std::printf("%s/%s: FAILED: %s\n", target.c_str(), name.c_str(),
                    err.c_str());
      }
    }
  }
  std::printf("%d inputs replayed, %d failed, %d known bugs\n", ran, failed,
              known_bad);
  return failed ? 1 : 0;
}
