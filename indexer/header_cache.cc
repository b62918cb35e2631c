#include "indexer/header_cache.h"

#include <lzo/lzo1x.h>
#include <xxhash.h>

#include <cstring>
#include <mutex>

namespace basalt::index {
namespace {


void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_be(std::string_view in, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(in[pos + i]);
  return v;
}

// Reads the payload fields in order; any length that runs past the end marks it corrupt.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == in_.size(); }
  uint64_t number(int bytes) {
    if (!ok_ || in_.size() - pos_ < size_t(bytes)) {
      ok_ = false;
      return 0;
    }
    uint64_t v = get_be(in_, pos_, bytes);
    pos_ += bytes;
    return v;
  }
  std::string bytes() {
    uint64_t len = number(4);
    if (!ok_ || in_.size() - pos_ < len) {
      ok_ = false;
      return {};
    }
    std::string v(in_.substr(pos_, len));
    pos_ += len;
    return v;
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

bool lzo_ready() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = lzo_init() == LZO_E_OK; });
  return ok;
}

// LZO1X-1 output, or nullopt when compression does not pay off.
std::optional<std::string> lzo_compress(const std::string& in) {
  std::string out(in.size() + in.size() / 16 + 64 + 3, '\0');
  std::vector<lzo_align_t> work((LZO1X_1_MEM_COMPRESS + sizeof(lzo_align_t) - 1) / sizeof(lzo_align_t));
  lzo_uint out_len = out.size();
  int rc = lzo1x_1_compress(reinterpret_cast<const unsigned char*>(in.data()), in.size(),
                            reinterpret_cast<unsigned char*>(out.data()), &out_len, work.data());
  if (rc != LZO_E_OK || out_len >= in.size()) return std::nullopt;
  out.resize(out_len);
  return out;
}

MDB_val as_val(const std::string& s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view as_view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

Result<std::string> key_prefix(std::string_view user, uint64_t mailbox_id, uint32_t uidvalidity) {
  if (user.empty() || user.size() > HeaderCache::kMaxUserBytes) return make_error("cache key: bad user name length");
  std::string k;
  k.reserve(1 + user.size() + 16);
  k.push_back(static_cast<char>(user.size()));
  k.append(user);
  put_be(k, mailbox_id, 8);
  put_be(k, uidvalidity, 4);
  return k;
}

}  // namespace

Result<std::string> encode_cache_key(const CacheKey& key) {
  auto k = key_prefix(key.user, key.mailbox_id, key.uidvalidity);
  if (k) put_be(*k, key.uid, 4);
  return k;
}

Result<CacheKey> decode_cache_key(std::string_view bytes) {
  size_t n = bytes.empty() ? 0 : static_cast<uint8_t>(bytes[0]);
  if (n == 0 || bytes.size() != 1 + n + 16) return make_error("cache key of wrong size");
  std::string_view rest = bytes.substr(1 + n);
  return CacheKey{std::string(bytes.substr(1, n)), get_be(rest, 0, 8), static_cast<uint32_t>(get_be(rest, 8, 4)),
                  static_cast<uint32_t>(get_be(rest, 12, 4))};
}

Result<std::string> encode_cache_value(const MessageSummary& s, InternalDate date) {
  std::string payload;
  put_be(payload, s.size, 8);
  put_be(payload, s.raw_size, 8);
  put_be(payload, static_cast<uint64_t>(date.unix_seconds), 8);
  put_be(payload, static_cast<uint16_t>(date.tz_offset_minutes), 2);
  for (const std::string* field : {&s.header, &s.envelope, &s.bodystructure, &s.body}) {
    if (field->size() > HeaderCache::kMaxPayload) return make_error("summary field too large to cache");
    put_be(payload, field->size(), 4);
    payload += *field;
  }
  if (payload.size() > HeaderCache::kMaxPayload) return make_error("summary too large to cache");
  if (!lzo_ready()) return make_error("lzo_init failed");
  std::optional<std::string> packed = lzo_compress(payload);
  const std::string& stored = packed ? *packed : payload;
  std::string value;
  value.reserve(HeaderCache::kValueHeaderSize + stored.size());
  value.push_back(static_cast<char>(HeaderCache::kFormatVersion));
  value.push_back(packed ? 1 : 0);
  put_be(value, payload.size(), 4);
  put_be(value, stored.size(), 4);
  put_be(value, XXH32(payload.data(), payload.size(), 0), 4);
  value += stored;
  return value;
}

Result<CachedMessage> decode_cache_value(std::string_view v) {
  if (v.size() < HeaderCache::kValueHeaderSize) return make_error("cache value truncated");
  auto version = static_cast<uint8_t>(v[0]), flags = static_cast<uint8_t>(v[1]);
  if (version != HeaderCache::kFormatVersion) {
    return make_error("cache value has unknown format version " + std::to_string(version));
  }
  if (flags & ~1u) return make_error("cache value uses unknown features");
  uint64_t raw_len = get_be(v, 2, 4), stored_len = get_be(v, 6, 4);
  auto checksum = static_cast<uint32_t>(get_be(v, 10, 4));
  std::string_view stored = v.substr(HeaderCache::kValueHeaderSize);
  if (stored.size() != stored_len || raw_len > HeaderCache::kMaxPayload) return make_error("cache value length mismatch");
  std::string payload;
  if (flags & 1u) {
    if (!lzo_ready()) return make_error("lzo_init failed");
    payload.resize(raw_len);
    lzo_uint out_len = raw_len;
    int rc = lzo1x_decompress_safe(reinterpret_cast<const unsigned char*>(stored.data()), stored.size(),
                                   reinterpret_cast<unsigned char*>(payload.data()), &out_len, nullptr);
    if (rc != LZO_E_OK || out_len != raw_len) return make_error("cache value does not decompress");
  } else {
    if (raw_len != stored_len) return make_error("cache value length mismatch");
    payload.assign(stored);
  }
  if (XXH32(payload.data(), payload.size(), 0) != checksum) return make_error("cache value checksum mismatch");
  Reader r(payload);
  CachedMessage m;
  m.summary.size = r.number(8);
  m.summary.raw_size = r.number(8);
  m.internal_date.unix_seconds = static_cast<int64_t>(r.number(8));
  m.internal_date.tz_offset_minutes = static_cast<int16_t>(r.number(2));
  m.summary.header = r.bytes();
  m.summary.envelope = r.bytes();
  m.summary.bodystructure = r.bytes();
  m.summary.body = r.bytes();
  if (!r.ok() || !r.at_end()) return make_error("cache value payload is malformed");
  return m;
}

Result<std::unique_ptr<HeaderCache>> HeaderCache::open(std::shared_ptr<LmdbEnv> env) {
  if (!env) return make_error("no LMDB environment");
  auto dbi = env->open_dbi("headers");
  if (!dbi) return dbi.error();
  return std::unique_ptr<HeaderCache>(new HeaderCache(std::move(env), *dbi));
}

Result<std::unique_ptr<HeaderCache>> HeaderCache::open(const std::string& index_root,
                                                       const LmdbEnv::Options& options) {
  auto env = LmdbEnv::open(index_root, options);
  if (!env) return env.error();
  return open(std::move(*env));
}

// Runs `body` in a write transaction; on MDB_MAP_FULL grows the map by at least
// `needed` bytes and runs it once more from scratch (the failed transaction is aborted).
Result<void> HeaderCache::write_with_growth(const std::function<int(const LmdbTxn&)>& body, size_t needed) {
  for (int attempt = 0;; ++attempt) {
    auto txn = LmdbTxn::begin(*env_, true);
    if (!txn) return txn.error();
    int rc = body(*txn);
    if (rc == 0) {
      rc = txn->commit_code();
    } else {
      txn->abort();
    }
    if (rc == 0) return {};
    if (rc != MDB_MAP_FULL || attempt > 0) return make_error(lmdb_error("header cache write", rc));
    auto grown = env_->grow_map(needed);
    if (!grown) return grown.error();
  }
}

Result<void> HeaderCache::put(const CacheKey& key, const MessageSummary& summary, InternalDate internal_date) {
  CacheEntry entry{key, &summary, internal_date};
  return put_batch({entry});
}

Result<void> HeaderCache::put_batch(const std::vector<CacheEntry>& entries) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(entries.size());
  size_t bytes = 0;
  for (const CacheEntry& e : entries) {
    if (!e.summary) return make_error("cache entry without summary");
    auto value = encode_cache_value(*e.summary, e.internal_date);
    if (!value) return value.error();
    auto key = encode_cache_key(e.key);
    if (!key) return key.error();
    bytes += key->size() + value->size();
    encoded.emplace_back(std::move(*key), std::move(*value));
  }
  // Pages are copied on write: budget twice the data plus a page per entry.
  size_t needed = 2 * bytes + 4096 * (entries.size() + 8);
  return write_with_growth(
      [&](const LmdbTxn& txn) {
        for (const auto& [k, v] : encoded) {
          MDB_val key = as_val(k), val = as_val(v);
          int rc = mdb_put(txn.get(), dbi_, &key, &val, 0);
          if (rc != 0) return rc;
        }
        return 0;
      },
      needed);
}

Result<std::optional<CachedMessage>> HeaderCache::get(const CacheKey& key) const {
  auto k = encode_cache_key(key);
  if (!k) return k.error();
  auto txn = LmdbTxn::begin(*env_, false);
  if (!txn) return txn.error();
  MDB_val kv = as_val(*k), value{};
  int rc = mdb_get(txn->get(), dbi_, &kv, &value);
  if (rc == MDB_NOTFOUND) return std::optional<CachedMessage>();
  if (rc != 0) return make_error(lmdb_error("mdb_get", rc));
  auto decoded = decode_cache_value(as_view(value));
  if (!decoded) return decoded.error();
  return std::optional<CachedMessage>(std::move(*decoded));
}

Result<bool> HeaderCache::remove(const CacheKey& key) {
  bool removed = false;
  auto k = encode_cache_key(key);
  if (!k) return k.error();
  auto done = write_with_growth(
      [&](const LmdbTxn& txn) {
        MDB_val kv = as_val(*k);
        int rc = mdb_del(txn.get(), dbi_, &kv, nullptr);
        removed = rc == 0;
        return rc == MDB_NOTFOUND ? 0 : rc;
      },
      1 << 20);
  if (!done) return done.error();
  return removed;
}

Result<size_t> HeaderCache::remove_mailbox(std::string_view user, uint64_t mailbox_id, uint32_t uidvalidity) {
  size_t count = 0;
  auto prefixed = key_prefix(user, mailbox_id, uidvalidity);
  if (!prefixed) return prefixed.error();
  const std::string& prefix = *prefixed;
  auto done = write_with_growth(
      [&](const LmdbTxn& txn) {
        count = 0;
        auto cursor = LmdbCursor::open(txn, dbi_);
        if (!cursor) return EINVAL;
        std::string start = prefix + std::string(4, '\0');
        for (;;) {
          // Seek again after every delete: simple, and correct in every LMDB version.
          MDB_val k = as_val(start), v{};
          int rc = mdb_cursor_get(cursor->get(), &k, &v, MDB_SET_RANGE);
          if (rc == MDB_NOTFOUND) return 0;
          if (rc != 0) return rc;
          if (as_view(k).substr(0, prefix.size()) != prefix) return 0;
          if ((rc = mdb_cursor_del(cursor->get(), 0)) != 0) return rc;
          ++count;
        }
      },
      1 << 20);
  if (!done) return done.error();
  return count;
}

Result<void> HeaderCache::for_each(std::string_view user, uint64_t mailbox_id, uint32_t uidvalidity,
                                   const Visitor& fn, uint32_t first_uid) const {
  auto prefixed = key_prefix(user, mailbox_id, uidvalidity);
  if (!prefixed) return prefixed.error();
  const std::string& prefix = *prefixed;
  std::string start = prefix;
  put_be(start, first_uid, 4);
  auto txn = LmdbTxn::begin(*env_, false);
  if (!txn) return txn.error();
  auto cursor = LmdbCursor::open(*txn, dbi_);
  if (!cursor) return cursor.error();
  MDB_val k = as_val(start), v{};
  for (int rc = mdb_cursor_get(cursor->get(), &k, &v, MDB_SET_RANGE);;
       rc = mdb_cursor_get(cursor->get(), &k, &v, MDB_NEXT)) {
    if (rc == MDB_NOTFOUND) return {};
    if (rc != 0) return make_error(lmdb_error("mdb_cursor_get", rc));
    std::string_view key = as_view(k);
    if (key.size() != prefix.size() + 4 || key.substr(0, prefix.size()) != prefix) return {};
    auto uid = static_cast<uint32_t>(get_be(key, prefix.size(), 4));
    if (!fn(uid, decode_cache_value(as_view(v)))) return {};
  }
}

}  // namespace basalt::index
