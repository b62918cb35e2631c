// Durable file primitives for the spool: atomic whole-file writes, fsync'd appends, durable
// directory creation and removal. POSIX only; every error names the path and the errno text.
//
// Guarantees (with Fsync::kOn): when a function returns ok, the change survives a crash or
// power loss of this machine (and, on NFS, is on the server: close() and fsync() report its
// errors). A reader never sees a half-written file under its final name.
// Fsync::kOff skips fsync/fdatasync only (ordering and atomic renames are kept); it is for
// tests and throwaway data, never for a production spool.
//
// Thread-safety: the free functions are thread-safe. An AppendFile is not: one owner at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace basalt::store {

enum class Fsync { kOn, kOff };

// Owns a file descriptor; closes it on destruction (close errors there are ignored: callers
// that care, i.e. writers, call close() explicitly and check it).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { int fd = fd_; fd_ = -1; return fd; }
  // Closes now; returns close()'s result (-1 with errno on error, e.g. a deferred NFS write error).
  int close();

 private:
  int fd_ = -1;
};

// Files created here get this mode (the indexer and support tools read the spool).
inline constexpr int kFileMode = 0640;
inline constexpr int kDirMode = 0750;
// Temporary files are "<kTempPrefix><name>.<pid>.<random>"; enumerations skip dot-files.
inline constexpr std::string_view kTempPrefix = ".tmp.";
// read_file's default bound: a maximal blob plus slack.
inline constexpr uint64_t kDefaultReadLimit = (uint64_t{1} << 30) + (uint64_t{1} << 26);

// "<what> <path>: <strerror(err)>", the one error format for I/O failures.
Error io_error(std::string_view what, std::string_view path, int err);

// Writes `bytes` to `dir`/`name`: a unique temp file in `dir`, write all, fsync, close, rename
// over `name`, fsync `dir`. On any failure before the rename the temp file is removed and
// `name` is untouched (old content or absent). If only the final directory fsync fails the new
// file is in place but not known durable: an error is still returned.
Result<void> write_file_atomically(const std::string& dir, std::string_view name, std::string_view bytes,
                                   Fsync fsync = Fsync::kOn);

// Reads a whole file. Errors if it is larger than `max_bytes` (checked before allocating).
// `bytes_read`, if given, is increased by the bytes actually read (also on failure).
Result<std::string> read_file(const std::string& path, uint64_t max_bytes = kDefaultReadLimit,
                              uint64_t* bytes_read = nullptr);

// fsync()s a directory, making the entries created, renamed or removed in it durable.
Result<void> fsync_directory(const std::string& dir);

// mkdir -p. Every directory it creates is made durable (its parent is fsync'd), so a file
// later renamed into it cannot vanish with its parent after a crash.
Result<void> create_directories(const std::string& path, Fsync fsync = Fsync::kOn);

// Removes `dir`/`name` and fsyncs `dir`. Returns false if it did not exist (not an error).
Result<bool> remove_file(const std::string& dir, std::string_view name, Fsync fsync = Fsync::kOn);

// Removes a directory tree (no fsync: callers first rename it out of sight, see Spool).
// A missing `path` is not an error.
Result<void> remove_tree(const std::string& path);

bool is_temp_name(std::string_view name);
// Removes temp files in `dir` last modified at least `min_age` ago (left by a crash). Returns
// how many were removed. A live writer's temp file is younger than any sane `min_age`.
Result<size_t> remove_stale_temp_files(const std::string& dir, std::chrono::seconds min_age);

// An append-only file for logs: each append() writes one whole record and, with Fsync::kOn,
// fdatasync()s before returning. If a write or sync fails, the file is truncated back to its
// size before the record (so the failed record can never be followed by later ones) and the
// error is returned; if even that truncation fails the file is marked broken and refuses
// further appends. Single writer: the size is tracked in memory.
class AppendFile {
 public:
  // Opens (creating if missing, then fsyncing the directory) `path` for appending.
  static Result<AppendFile> open(const std::string& path, Fsync fsync = Fsync::kOn);

  Result<void> append(std::string_view record);
  // Cuts the file to `size` bytes (used to drop a torn tail found by a reader) and syncs.
  Result<void> truncate(uint64_t size);
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  AppendFile(std::string path, UniqueFd fd, uint64_t size, Fsync fsync)
      : path_(std::move(path)), fd_(std::move(fd)), size_(size), fsync_(fsync) {}
  Result<void> undo(uint64_t size, const Error& cause);

  std::string path_;
  UniqueFd fd_;
  uint64_t size_ = 0;
  Fsync fsync_ = Fsync::kOn;
  bool broken_ = false;
};

}  // namespace basalt::store
