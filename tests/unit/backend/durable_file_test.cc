#include "backend/durable_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <cstring>

#include "test_util.h"

namespace basalt::store {
namespace {

using testing::run_in_child;


TEST(DurableFile, WritesReplacesAndLeavesNoTempFiles) {
  TempDir dir;
  for (Fsync f : {Fsync::kOn, Fsync::kOff}) {
    ASSERT_TRUE(write_file_atomically(dir.path(), "a", "first", f));
    EXPECT_EQ(read_bytes(dir.sub("a")), "first");
    ASSERT_TRUE(write_file_atomically(dir.path(), "a", std::string(100000, 'z'), f));
    EXPECT_EQ(read_bytes(dir.sub("a")), std::string(100000, 'z'));
    ASSERT_TRUE(write_file_atomically(dir.path(), "a", "", f));
    EXPECT_EQ(read_bytes(dir.sub("a")), "");
  }
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"a"});
  struct stat st {};
  ASSERT_EQ(::stat(dir.sub("a").c_str(), &st), 0);
  mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777, static_cast<mode_t>(kFileMode) & ~mask);
}

TEST(DurableFile, RejectsNamesThatAreNotPlainFileNames) {
  TempDir dir;
  for (std::string_view bad : {"", ".", "..", "a/b", "../x"}) {
    auto r = write_file_atomically(dir.path(), bad, "x");
    EXPECT_FALSE(r) << bad;
  }
  EXPECT_FALSE(write_file_atomically(dir.path(), std::string_view("a\0b", 3), "x"));
  EXPECT_TRUE(entries(dir.path()).empty());
}

TEST(DurableFile, MissingDirectoryIsAnErrorNamingThePath) {
  TempDir dir;
  auto r = write_file_atomically(dir.sub("nope"), "a", "x");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(dir.sub("nope")), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("No such file or directory"), std::string::npos);
}

TEST(DurableFile, UnwritableDirectoryFailsAndKeepsTheOldFile) {
  TempDir dir;
  ASSERT_TRUE(write_file_atomically(dir.path(), "a", "old"));
  ASSERT_EQ(::chmod(dir.path().c_str(), 0555), 0);
  std::string err = run_in_child(
      [&]() -> std::string {
        auto r = write_file_atomically(dir.path(), "a", "new");
        if (r) return "write succeeded in a read-only directory";
        if (r.error().message.find("Permission denied") == std::string::npos) return "wrong error: " + r.error().message;
        return "";
      },
      /*unprivileged=*/true);
  ::chmod(dir.path().c_str(), 0755);
  EXPECT_EQ(err, "");
  EXPECT_EQ(read_bytes(dir.sub("a")), "old");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"a"});
}

TEST(DurableFile, FailedWriteMidFileRemovesTheTempFile) {
  TempDir dir;
  ASSERT_TRUE(write_file_atomically(dir.path(), "a", "old"));
  {
    testing::FileSizeLimit limit(4096);  // writes past 4 KiB fail with EFBIG
    auto r = write_file_atomically(dir.path(), "a", std::string(100000, 'n'));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("File too large"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("/.tmp.a."), std::string::npos) << r.error().message;
  }
  EXPECT_EQ(read_bytes(dir.sub("a")), "old");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"a"});
}

// A private mount namespace for this (child) process: as root directly, otherwise inside a new
// user namespace where we are root (Debian 12 allows unprivileged user namespaces), so a tmpfs
// can be mounted either way.
std::string enter_private_mount_namespace() {
  if (::unshare(CLONE_NEWNS) == 0) return "";
  const uid_t uid = ::getuid();
  const gid_t gid = ::getgid();
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
    return std::string("neither a mount nor a user namespace can be created here: ") + std::strerror(errno);
  }
  // A process that dropped root is not dumpable, which leaves /proc/self/*_map owned by root.
  ::prctl(PR_SET_DUMPABLE, 1);
  auto write_proc = [](const char* path, const std::string& text) -> std::string {
    int fd = ::open(path, O_WRONLY | O_CLOEXEC);
    bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    std::string why = ok ? "" : std::string(path) + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return why;
  };
  for (auto [path, text] : {std::pair<const char*, std::string>{"/proc/self/setgroups", "deny"},
                            {"/proc/self/uid_map", "0 " + std::to_string(uid) + " 1"},
                            {"/proc/self/gid_map", "0 " + std::to_string(gid) + " 1"}}) {
    if (std::string why = write_proc(path, text); !why.empty()) return why;
  }
  return "";
}

// ENOSPC for real: a 64 KiB tmpfs mounted in a private mount namespace of a child process.
std::string no_space_scenario(bool unprivileged) {
  TempDir dir;
  const std::string mnt = dir.sub("small");
  std::filesystem::create_directories(mnt);
  testing::chown_tree(dir.path());
  return run_in_child([&]() -> std::string {
    if (std::string ns = enter_private_mount_namespace(); !ns.empty()) return ns;
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=64k") != 0) {
      return std::string("cannot mount a 64 KiB tmpfs: ") + std::strerror(errno);
    }
    if (!write_file_atomically(mnt, "a", "old")) return "setup write failed";
    auto r = write_file_atomically(mnt, "a", std::string(1 << 20, 'n'));
    if (r) return "1 MiB fit in a 64 KiB file system";
    if (r.error().message.find("No space left on device") == std::string::npos) return "wrong error: " + r.error().message;
    if (read_bytes(mnt + "/a") != "old") return "old content lost";
    if (entries(mnt) != std::vector<std::string>{"a"}) return "temp file left behind";
    // The append helper rolls back a record that did not fit.
    auto log = AppendFile::open(mnt + "/log");
    if (!log || !log->append("record-1;")) return "append setup failed";
    auto big = log->append(std::string(1 << 20, 'r'));
    if (big) return "1 MiB record fit";
    if (log->size() != 9 || read_bytes(mnt + "/log") != "record-1;") return "partial record left in the log";
    if (!log->append("record-2;") || read_bytes(mnt + "/log") != "record-1;record-2;") return "append after ENOSPC";
    return "";
  }, unprivileged);
}

// As root and as an unprivileged user (the user-namespace path), so both ways are proven here.
TEST(DurableFile, NoSpaceLeavesNeitherPartialFileNorTempFile) {
  EXPECT_EQ(no_space_scenario(false), "");
  EXPECT_EQ(no_space_scenario(true), "") << "unprivileged";
}

TEST(DurableFile, ReadFileReadsCountsAndBounds) {
  TempDir dir;
  write_bytes(dir.sub("f"), std::string(70000, 'q'));
  uint64_t count = 5;
  auto r = read_file(dir.sub("f"), kDefaultReadLimit, &count);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, std::string(70000, 'q'));
  EXPECT_EQ(count, 70005u);
  auto limited = read_file(dir.sub("f"), 69999);
  ASSERT_FALSE(limited);
  EXPECT_NE(limited.error().message.find("exceeds"), std::string::npos);
  EXPECT_TRUE(read_file(dir.sub("f"), 70000));
  auto missing = read_file(dir.sub("none"));
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find(dir.sub("none")), std::string::npos);
  write_bytes(dir.sub("empty"), "");
  EXPECT_EQ(*read_file(dir.sub("empty")), "");
}

TEST(AppendFile, AppendsCreatesReopensAndTruncates) {
  TempDir dir;
  const std::string path = dir.sub("log");
  {
    auto log = AppendFile::open(path);
    ASSERT_TRUE(log) << log.error().message;
    EXPECT_EQ(log->size(), 0u);
    ASSERT_TRUE(log->append("one;"));
    ASSERT_TRUE(log->append("two;"));
    EXPECT_EQ(log->size(), 8u);
  }
  auto log = AppendFile::open(path, Fsync::kOff);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->size(), 8u);
  ASSERT_TRUE(log->append("three;"));
  EXPECT_EQ(read_bytes(path), "one;two;three;");
  ASSERT_TRUE(log->truncate(4));
  ASSERT_TRUE(log->append("four;"));
  EXPECT_EQ(read_bytes(path), "one;four;");
  EXPECT_FALSE(AppendFile::open(dir.sub("no/such/dir/log")));
}

TEST(AppendFile, FailedAppendIsRolledBack) {
  TempDir dir;
  auto log = AppendFile::open(dir.sub("log"));
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->append(std::string(3000, 'a')));
  {
    testing::FileSizeLimit limit(4096);
    auto r = log->append(std::string(3000, 'b'));  // 1096 bytes fit, then EFBIG
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("File too large"), std::string::npos) << r.error().message;
  }
  EXPECT_EQ(log->size(), 3000u);
  EXPECT_EQ(read_bytes(dir.sub("log")), std::string(3000, 'a'));
  ASSERT_TRUE(log->append("c"));
  EXPECT_EQ(read_bytes(dir.sub("log")), std::string(3000, 'a') + "c");
}

TEST(DurableFile, CreateDirectoriesAndRemoveFile) {
  TempDir dir;
  ASSERT_TRUE(create_directories(dir.sub("a/b/c")));
  EXPECT_TRUE(std::filesystem::is_directory(dir.sub("a/b/c")));
  ASSERT_TRUE(create_directories(dir.sub("a/b/c"), Fsync::kOff));  // idempotent
  write_bytes(dir.sub("file"), "x");
  EXPECT_FALSE(create_directories(dir.sub("file/sub")));
  EXPECT_FALSE(create_directories(dir.sub("file")));
  auto removed = remove_file(dir.path(), "file");
  ASSERT_TRUE(removed);
  EXPECT_TRUE(*removed);
  auto again = remove_file(dir.path(), "file");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  ASSERT_TRUE(remove_tree(dir.sub("a")));
  EXPECT_FALSE(std::filesystem::exists(dir.sub("a")));
  EXPECT_TRUE(remove_tree(dir.sub("a")));
}

TEST(DurableFile, StaleTempFilesAreRemovedYoungOnesKept) {
  TempDir dir;
  write_bytes(dir.sub(".tmp.x.1.2.3"), "old temp");
  write_bytes(dir.sub(".tmp.y.1.2.3"), "young temp");
  write_bytes(dir.sub("keep"), "data");
  timespec old_times[2] = {{::time(nullptr) - 7200, 0}, {::time(nullptr) - 7200, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, dir.sub(".tmp.x.1.2.3").c_str(), old_times, 0), 0);
  auto n = remove_stale_temp_files(dir.path(), std::chrono::hours(1));
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1u);
  EXPECT_EQ(entries(dir.path()), (std::vector<std::string>{".tmp.y.1.2.3", "keep"}));
  EXPECT_TRUE(is_temp_name(".tmp.a"));
  EXPECT_FALSE(is_temp_name("a.tmp."));
}

}  // namespace
}  // namespace basalt::store
