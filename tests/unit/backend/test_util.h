// Helpers shared by the backend (basalt_store) unit tests.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

namespace basalt::store::testing {

// A fresh directory under the test temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::path(::testing::TempDir()) /
            ("basalt-store-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string sub(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Sorted names in `dir` (all of them, dot-files included).
inline std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Runs `fn` in a forked child; `fn` returns "" on success or a failure description, which is
// returned here. With `unprivileged`, the child first gives up root's override of permissions
// (uid/gid 65534 when run as root); paths it needs must be made accessible (see chown_tree).
inline std::string run_in_child(const std::function<std::string()>& fn, bool unprivileged = false) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    if (unprivileged && ::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) {
      out = "cannot drop privileges";
    } else {
      out = fn();
    }
    if (!out.empty() && ::write(fds[1], out.data(), out.size()) < 0) ::_exit(3);
    ::_exit(out.empty() ? 0 : 1);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return "child died: " + out;
  if (WEXITSTATUS(status) != 0 && out.empty()) return "child failed";
  return out;
}

// Gives `path` (recursively) to the unprivileged test user when running as root.
inline void chown_tree(const std::string& path) {
  if (::geteuid() != 0) return;
  [[maybe_unused]] int rc = ::chown(path.c_str(), 65534, 65534);
  for (const auto& e : std::filesystem::recursive_directory_iterator(path)) {
    rc = ::chown(e.path().c_str(), 65534, 65534);
  }
}

// Lowers RLIMIT_FSIZE for the scope: writes past `bytes` fail with EFBIG (SIGXFSZ ignored).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lowered);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_ = nullptr;
};

}  // namespace basalt::store::testing

namespace basalt::store {

// The store's tests live in basalt::store and use the file helpers unqualified.
using testing::entries;
using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

}  // namespace basalt::store
