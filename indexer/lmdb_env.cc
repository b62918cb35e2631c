#include "indexer/lmdb_env.h"

#include <sys/stat.h>

#include <cerrno>
#include <mutex>
#include <algorithm>
#include <cstring>

namespace basalt::index {
namespace {

// The environment this thread has a write transaction open on (LMDB allows one per env,
// and a second begin on the same thread would wait for itself forever).
thread_local const LmdbEnv* tls_writer = nullptr;

}  // namespace

std::string lmdb_error(const char* what, int rc) { return std::string(what) + ": " + mdb_strerror(rc); }

Result<std::shared_ptr<LmdbEnv>> LmdbEnv::open(const std::string& dir, const Options& options) {
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return make_error("mkdir " + dir + ": " + std::strerror(errno));
  }
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc != 0) return make_error(lmdb_error("mdb_env_create", rc));
  std::shared_ptr<LmdbEnv> owner(new LmdbEnv(env, options));
  if ((rc = mdb_env_set_maxdbs(env, options.max_dbs)) != 0) return make_error(lmdb_error("mdb_env_set_maxdbs", rc));
  if ((rc = mdb_env_set_mapsize(env, options.map_size)) != 0) {
    return make_error(lmdb_error("mdb_env_set_mapsize", rc));
  }
  // MDB_NOTLS: read transactions are not tied to threads (the store reads from a pool).
  if ((rc = mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0640)) != 0) {
    return make_error(lmdb_error(("mdb_env_open " + dir).c_str(), rc));
  }
  return owner;
}

LmdbEnv::~LmdbEnv() { mdb_env_close(env_); }

size_t LmdbEnv::map_size() const {
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  return info.me_mapsize;
}

Result<MDB_dbi> LmdbEnv::open_dbi(const char* name) {
  auto txn = LmdbTxn::begin(*this, true);
  if (!txn) return txn.error();
  MDB_dbi dbi = 0;
  int rc = mdb_dbi_open(txn->get(), name, MDB_CREATE, &dbi);
  if (rc != 0) return make_error(lmdb_error("mdb_dbi_open", rc));
  auto committed = txn->commit();
  if (!committed) return committed.error();
  return dbi;
}

Result<void> LmdbEnv::grow_map(size_t extra) {
  if (tls_writer == this) return make_error("grow_map called inside a write transaction");
  std::unique_lock lock(resize_mutex_);
  size_t current = map_size();
  if (current >= options_.max_map_size) return make_error("LMDB map is at its maximum size");
  size_t next = std::min(std::max(current * 2, current + extra), options_.max_map_size);
  int rc = mdb_env_set_mapsize(env_, next);
  if (rc != 0) return make_error(lmdb_error("mdb_env_set_mapsize", rc));
  return {};
}

Result<LmdbTxn> LmdbTxn::begin(LmdbEnv& env, bool write) {
  if (write && tls_writer == &env) return make_error("nested LMDB write transaction");
  std::shared_lock lock(env.resize_mutex_);
  MDB_txn* txn = nullptr;
  int rc = mdb_txn_begin(env.get(), nullptr, write ? 0 : MDB_RDONLY, &txn);
  if (rc == MDB_MAP_RESIZED) {
    // Another process grew the map: adopt its size (legal: we hold no transaction).
    lock.unlock();
    {
      std::unique_lock exclusive(env.resize_mutex_);
      mdb_env_set_mapsize(env.get(), 0);
    }
    lock.lock();
    rc = mdb_txn_begin(env.get(), nullptr, write ? 0 : MDB_RDONLY, &txn);
  }
  if (rc != 0) return make_error(lmdb_error("mdb_txn_begin", rc));
  if (write) tls_writer = &env;
  return LmdbTxn(env, txn, write, std::move(lock));
}

LmdbTxn::LmdbTxn(LmdbTxn&& other) noexcept
    : env_(other.env_), txn_(other.txn_), write_(other.write_), lock_(std::move(other.lock_)) {
  other.txn_ = nullptr;
}

LmdbTxn::~LmdbTxn() { abort(); }

void LmdbTxn::release() {
  txn_ = nullptr;
  if (write_ && tls_writer == env_) tls_writer = nullptr;
  if (lock_.owns_lock()) lock_.unlock();
}

void LmdbTxn::abort() {
  if (!txn_) return;
  mdb_txn_abort(txn_);
  release();
}

int LmdbTxn::commit_code() {
  if (!txn_) return EINVAL;
  int rc = mdb_txn_commit(txn_);  // frees the transaction even when it fails
  release();
  return rc;
}

Result<void> LmdbTxn::commit() {
  int rc = commit_code();
  if (rc != 0) return make_error(lmdb_error("mdb_txn_commit", rc));
  return {};
}

Result<LmdbCursor> LmdbCursor::open(const LmdbTxn& txn, MDB_dbi dbi) {
  MDB_cursor* cursor = nullptr;
  int rc = mdb_cursor_open(txn.get(), dbi, &cursor);
  if (rc != 0) return make_error(lmdb_error("mdb_cursor_open", rc));
  return LmdbCursor(cursor);
}

}  // namespace basalt::index
