// RAII for LMDB: one LmdbEnv per index root (STYLE: one Env per path), transactions that
// abort unless committed, no nested write transactions, and map growth on MDB_MAP_FULL.
#pragma once

#include <lmdb.h>

#include <cstddef>
#include <memory>
#include <shared_mutex>
#include <string>

#include "common/result.h"

namespace basalt::index {

std::string lmdb_error(const char* what, int rc);

class LmdbTxn;

class LmdbEnv {
 public:
  struct Options {
    size_t map_size = size_t{1} << 30;       // initial map (file grows sparsely up to it)
    size_t max_map_size = size_t{1} << 40;   // growth stops here
    unsigned max_dbs = 16;                   // the index root also holds other DBIs
  };

  // Opens (creating if needed) the environment in directory `dir`.
  static Result<std::shared_ptr<LmdbEnv>> open(const std::string& dir, const Options& options);
  ~LmdbEnv();
  LmdbEnv(const LmdbEnv&) = delete;
  LmdbEnv& operator=(const LmdbEnv&) = delete;

  MDB_env* get() const { return env_; }
  size_t map_size() const;

  // Opens or creates a named DBI; call at startup, before concurrent use.
  Result<MDB_dbi> open_dbi(const char* name);

  // Grows the map to at least twice its size and by at least `extra` bytes (up to
  // max_map_size). Waits until no transaction of this process is open, as
  // mdb_env_set_mapsize requires; never call it while holding a transaction.
  Result<void> grow_map(size_t extra = 0);

 private:
  friend class LmdbTxn;
  LmdbEnv(MDB_env* env, Options options) : env_(env), options_(options) {}

  MDB_env* env_;
  Options options_;
  // Transactions hold it shared; map growth takes it exclusively.
  mutable std::shared_mutex resize_mutex_;
};

class LmdbTxn {
 public:
  // A read-only or read-write transaction. A second write transaction on the same thread
  // is refused (LMDB would deadlock), as is one while the map is being grown.
  static Result<LmdbTxn> begin(LmdbEnv& env, bool write);

  LmdbTxn(LmdbTxn&& other) noexcept;
  LmdbTxn& operator=(LmdbTxn&&) = delete;
  ~LmdbTxn();  // aborts unless committed

  Result<void> commit();
  // commit() with LMDB's return code (e.g. MDB_MAP_FULL, which callers retry after growing).
  int commit_code();
  void abort();
  MDB_txn* get() const { return txn_; }

 private:
  LmdbTxn(LmdbEnv& env, MDB_txn* txn, bool write, std::shared_lock<std::shared_mutex> lock)
      : env_(&env), txn_(txn), write_(write), lock_(std::move(lock)) {}
  void release();

  LmdbEnv* env_;
  MDB_txn* txn_;
  bool write_;
  std::shared_lock<std::shared_mutex> lock_;
};

// A cursor closed on destruction (before its read-write transaction ends).
class LmdbCursor {
 public:
  static Result<LmdbCursor> open(const LmdbTxn& txn, MDB_dbi dbi);
  LmdbCursor(LmdbCursor&& other) noexcept : cursor_(other.cursor_) { other.cursor_ = nullptr; }
  LmdbCursor& operator=(LmdbCursor&&) = delete;
  ~LmdbCursor() {
    if (cursor_) mdb_cursor_close(cursor_);
  }
  MDB_cursor* get() const { return cursor_; }

 private:
  explicit LmdbCursor(MDB_cursor* cursor) : cursor_(cursor) {}
  MDB_cursor* cursor_;
};

}  // namespace basalt::index
