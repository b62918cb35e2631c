#include "backend/durable_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <filesystem>
#include <memory>
#include <system_error>

namespace basalt::store {
namespace {

std::string join(const std::string& dir, std::string_view name) {
  std::string path = dir;
  if (path.empty() || path.back() != '/') path.push_back('/');
  path.append(name);
  return path;
}

bool valid_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

// Writes all of `bytes` (write() may be partial on signals, quotas, NFS). Returns errno or 0.
int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

// Unique within the directory across processes and threads; O_EXCL catches the rest.
std::string temp_name(std::string_view name) {
  static std::atomic<uint64_t> counter{0};
  uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  // Keep the temp name within NAME_MAX even for a long final name.
  std::string out(kTempPrefix);
  out.append(name.substr(0, 64));
  out += "." + std::to_string(::getpid()) + "." + std::to_string(n) + "." + std::to_string(ts.tv_nsec);
  return out;
}

std::string parent_of(const std::string& path) {
  std::filesystem::path p(path);
  auto parent = p.parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// Writes the temp file fully and durably. The caller unlinks it on failure.
Result<void> fill_temp(int dir_fd, const std::string& tmp, const std::string& tmp_path, std::string_view bytes,
                       Fsync fsync) {
  UniqueFd fd(::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kFileMode));
  if (!fd.valid()) return io_error("create", tmp_path, errno);
  if (int err = write_all(fd.get(), bytes)) return io_error("write", tmp_path, err);
  if (fsync == Fsync::kOn && ::fsync(fd.get()) != 0) return io_error("fsync", tmp_path, errno);
  // close() reports deferred write errors on NFS; a failed close means unknown content.
  if (fd.close() != 0) return io_error("close", tmp_path, errno);
  return {};
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

int UniqueFd::close() {
  int fd = release();
  return fd >= 0 ? ::close(fd) : 0;
}

Error io_error(std::string_view what, std::string_view path, int err) {
  return make_error(std::string(what) + " " + std::string(path) + ": " + std::generic_category().message(err));
}

Result<void> write_file_atomically(const std::string& dir, std::string_view name, std::string_view bytes,
                                   Fsync fsync) {
  if (!valid_name(name)) return make_error("invalid file name '" + std::string(name) + "' in " + dir);
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd.valid()) return io_error("open directory", dir, errno);
  const std::string tmp = temp_name(name);
  const std::string tmp_path = join(dir, tmp);
  if (auto filled = fill_temp(dir_fd.get(), tmp, tmp_path, bytes, fsync); !filled) {
    ::unlinkat(dir_fd.get(), tmp.c_str(), 0);  // may not exist (create failed); nothing else to do
    return filled.error();
  }
  const std::string final_name(name);
  if (::renameat(dir_fd.get(), tmp.c_str(), dir_fd.get(), final_name.c_str()) != 0) {
    int err = errno;
    ::unlinkat(dir_fd.get(), tmp.c_str(), 0);
    return io_error("rename to", join(dir, name), err);
  }
  if (fsync == Fsync::kOn && ::fsync(dir_fd.get()) != 0) return io_error("fsync directory", dir, errno);
  return {};
}

Result<std::string> read_file(const std::string& path, uint64_t max_bytes, uint64_t* bytes_read) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return io_error("open", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("stat", path, errno);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes) {
    return make_error("read " + path + ": " + std::to_string(size) + " bytes exceeds the limit of " +
                      std::to_string(max_bytes));
  }
  // One spare byte so a file at its stat size is read in one pass and EOF seen on the next.
  std::string data(static_cast<size_t>(size) + 1, '\0');
  size_t got = 0;
  for (;;) {
    if (got == data.size()) {
      if (got > max_bytes) return make_error("read " + path + ": grew past the limit of " + std::to_string(max_bytes));
      data.resize(static_cast<size_t>(std::min<uint64_t>(max_bytes + 1, data.size() * 2)));
    }
    ssize_t n = ::read(fd.get(), data.data() + got, data.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("read", path, errno);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
    if (bytes_read) *bytes_read += static_cast<uint64_t>(n);
  }
  if (got > max_bytes) return make_error("read " + path + ": grew past the limit of " + std::to_string(max_bytes));
  data.resize(got);
  return data;
}

Result<void> fsync_directory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return io_error("open directory", dir, errno);
  if (::fsync(fd.get()) != 0) return io_error("fsync directory", dir, errno);
  return {};
}

Result<void> create_directories(const std::string& path, Fsync fsync) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return {};
    return io_error("create directory", path, ENOTDIR);
  }
  if (errno != ENOENT) return io_error("stat", path, errno);
  const std::string parent = parent_of(path);
  if (parent != path) {
    if (auto made = create_directories(parent, fsync); !made) return made;
  }
  if (::mkdir(path.c_str(), kDirMode) != 0) {
    if (errno == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return {};  // lost a race
    return io_error("create directory", path, errno);
  }
  if (fsync == Fsync::kOn) return fsync_directory(parent);
  return {};
}

Result<bool> remove_file(const std::string& dir, std::string_view name, Fsync fsync) {
  const std::string path = join(dir, name);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return false;
    return io_error("remove", path, errno);
  }
  if (fsync == Fsync::kOn) {
    if (auto synced = fsync_directory(dir); !synced) return synced.error();
  }
  return true;
}

Result<void> remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return make_error("remove " + path + ": " + ec.message());
  return {};
}

bool is_temp_name(std::string_view name) { return name.substr(0, kTempPrefix.size()) == kTempPrefix; }

Result<size_t> remove_stale_temp_files(const std::string& dir, std::chrono::seconds min_age) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return io_error("open directory", dir, errno);
  const time_t cutoff = ::time(nullptr) - static_cast<time_t>(min_age.count());
  size_t removed = 0;
  while (dirent* e = ::readdir(d.get())) {
    if (!is_temp_name(e->d_name)) continue;
    struct stat st {};
    if (::fstatat(::dirfd(d.get()), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    if (st.st_mtime > cutoff) continue;
    if (::unlinkat(::dirfd(d.get()), e->d_name, 0) == 0) ++removed;
  }
  return removed;
}

Result<AppendFile> AppendFile::open(const std::string& path, Fsync fsync) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  if (!fd.valid() && errno == ENOENT) {
    fd = UniqueFd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, kFileMode));
    // The new name must survive a crash before the first record does.
    if (fd.valid() && fsync == Fsync::kOn) {
      if (auto synced = fsync_directory(parent_of(path)); !synced) return synced.error();
    }
  }
  if (!fd.valid()) return io_error("open for append", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return io_error("stat", path, errno);
  return AppendFile(path, std::move(fd), static_cast<uint64_t>(st.st_size), fsync);
}

Result<void> AppendFile::append(std::string_view record) {
  if (broken_) return make_error("append " + path_ + ": file is in an unknown state after an earlier failure");
  if (int err = write_all(fd_.get(), record)) return undo(size_, io_error("append", path_, err));
  if (fsync_ == Fsync::kOn && ::fdatasync(fd_.get()) != 0) return undo(size_, io_error("fdatasync", path_, errno));
  size_ += record.size();
  return {};
}

Result<void> AppendFile::truncate(uint64_t size) {
  if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) return io_error("truncate", path_, errno);
  if (fsync_ == Fsync::kOn && ::fdatasync(fd_.get()) != 0) return io_error("fdatasync", path_, errno);
  size_ = size;
  broken_ = false;
  return {};
}

Result<void> AppendFile::undo(uint64_t size, const Error& cause) {
  // A partial record must not stay: a later record behind it would turn a torn tail into
  // corruption in the middle of the log.
  if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0 ||
      (fsync_ == Fsync::kOn && ::fdatasync(fd_.get()) != 0)) {
    broken_ = true;
    return make_error(cause.message + " (and truncating back failed: " + std::generic_category().message(errno) +
                      ")");
  }
  return cause;
}

}  // namespace basalt::store
