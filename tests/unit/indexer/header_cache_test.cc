#include "indexer/header_cache.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace basalt::index {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "basalt-cache-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

MessageSummary sample(uint32_t n, size_t header_bytes = 40) {
  MessageSummary s;
  s.header = "Subject: message " + std::to_string(n) + "\r\n" + std::string(header_bytes, 'h') + "\r\n\r\n";
  s.envelope = "(NIL \"message " + std::to_string(n) + "\" NIL NIL NIL NIL NIL NIL NIL NIL)";
  s.bodystructure = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1 NIL NIL NIL NIL)";
  s.body = "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)";
  s.size = 1000 + n;
  s.raw_size = 900 + n;
  return s;
}

void expect_same(const MessageSummary& a, const MessageSummary& b) {
  EXPECT_EQ(a.header, b.header);
  EXPECT_EQ(a.envelope, b.envelope);
  EXPECT_EQ(a.bodystructure, b.bodystructure);
  EXPECT_EQ(a.body, b.body);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.raw_size, b.raw_size);
}

std::unique_ptr<HeaderCache> open_cache(const TempDir& dir, size_t map_size = size_t{1} << 26) {
  LmdbEnv::Options options;
  options.map_size = map_size;
  auto cache = HeaderCache::open(dir.path(), options);
  EXPECT_TRUE(cache.ok()) << (cache.ok() ? "" : cache.error().message);
  return cache.ok() ? std::move(*cache) : nullptr;
}

TEST(CacheKey, UserThenBigEndianMailboxUidvalidityUid) {
  auto k = encode_cache_key({"al", 0x0102030405060708ull, 0x090a0b0c, 0x0d0e0f10});
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(*k, std::string("\x02" "al\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 19));
  auto back = decode_cache_key(*k);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, (CacheKey{"al", 0x0102030405060708ull, 0x090a0b0c, 0x0d0e0f10}));
  EXPECT_FALSE(decode_cache_key(k->substr(1)).ok());
  EXPECT_FALSE(encode_cache_key({"", 1, 1, 1}).ok());
  EXPECT_FALSE(encode_cache_key({std::string(256, 'u'), 1, 1, 1}).ok());
}

// Mailbox ids are per user: the same (mailbox, uidvalidity, uid) of two users are two entries.
TEST(HeaderCache, UsersWithTheSameMailboxIdDoNotCollide) {
  TempDir dir;
  auto cache = open_cache(dir);
  ASSERT_TRUE(cache);
  ASSERT_TRUE(cache->put({"alice", 1, 1, 1}, sample(1, 10), {1, 0}));
  ASSERT_TRUE(cache->put({"bob", 1, 1, 1}, sample(2, 20), {2, 0}));
  auto a = cache->get({"alice", 1, 1, 1});
  auto b = cache->get({"bob", 1, 1, 1});
  ASSERT_TRUE(a.ok() && *a && b.ok() && *b);
  EXPECT_EQ((*a)->internal_date.unix_seconds, 1);
  EXPECT_EQ((*b)->internal_date.unix_seconds, 2);
  EXPECT_EQ(*cache->remove_mailbox("alice", 1, 1), 1u);
  EXPECT_TRUE(cache->get({"bob", 1, 1, 1})->has_value());
  // "bo" is a prefix of "bob": length-prefixed keys keep their ranges apart.
  ASSERT_TRUE(cache->put({"bo", 1, 1, 1}, sample(3, 10), {3, 0}));
  size_t seen = 0;
  ASSERT_TRUE(cache->for_each("bo", 1, 1, [&](uint32_t, Result<CachedMessage>) { return ++seen, true; }));
  EXPECT_EQ(seen, 1u);
}

TEST(CacheValue, RoundTripsCompressedAndStored) {
  for (size_t header_bytes : {size_t{0}, size_t{5000}}) {
    MessageSummary s = sample(7, header_bytes);
    auto v = encode_cache_value(s, {1700000000, -300});
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(static_cast<uint8_t>((*v)[0]), HeaderCache::kFormatVersion);
    if (header_bytes > 0) {
      EXPECT_EQ((*v)[1], 1) << "a repetitive header compresses";
    }
    auto m = decode_cache_value(*v);
    ASSERT_TRUE(m.ok()) << m.error().message;
    expect_same(m->summary, s);
    EXPECT_EQ(m->internal_date, (InternalDate{1700000000, -300}));
  }
}

TEST(CacheValue, CorruptValuesAreErrorsNotCrashes) {
  for (size_t header_bytes : {size_t{0}, size_t{3000}}) {
    auto v = encode_cache_value(sample(1, header_bytes), {});
    ASSERT_TRUE(v.ok());
    const std::string good = *v;
    for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(decode_cache_value(good.substr(0, n)).ok()) << n;
    EXPECT_FALSE(decode_cache_value(good + "x").ok());
    for (size_t i = 0; i < good.size(); ++i) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ 0x41);
      EXPECT_FALSE(decode_cache_value(bad).ok()) << "flipped byte " << i;
    }
  }
}

TEST(CacheValue, RefusesUnknownVersionsAndFeatures) {
  auto v = encode_cache_value(sample(1), {});
  ASSERT_TRUE(v.ok());
  std::string newer = *v;
  newer[0] = 2;
  auto r = decode_cache_value(newer);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("version"), std::string::npos);
  std::string feature = *v;
  feature[1] = static_cast<char>(feature[1] | 0x80);
  EXPECT_FALSE(decode_cache_value(feature).ok());
}

TEST(HeaderCache, PutGetRemoveAndPersist) {
  TempDir dir;
  {
    auto cache = open_cache(dir);
    ASSERT_TRUE(cache);
    auto missing = cache->get({"u", 1, 2, 3});
    ASSERT_TRUE(missing.ok());
    EXPECT_FALSE(missing->has_value());
    ASSERT_TRUE(cache->put({"u", 1, 2, 3}, sample(3), {1600000000, 60}).ok());
  }
  auto cache = open_cache(dir);  // reopened: the entry survived
  auto got = cache->get({"u", 1, 2, 3});
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  expect_same((*got)->summary, sample(3));
  EXPECT_EQ((*got)->internal_date, (InternalDate{1600000000, 60}));
  auto removed = cache->remove({"u", 1, 2, 3});
  ASSERT_TRUE(removed.ok());
  EXPECT_TRUE(*removed);
  auto again = cache->remove({"u", 1, 2, 3});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
  EXPECT_FALSE(cache->get({"u", 1, 2, 3})->has_value());
}

TEST(HeaderCache, CorruptEntryFailsOnlyThatMessage) {
  TempDir dir;
  auto cache = open_cache(dir);
  ASSERT_TRUE(cache->put({"u", 1, 1, 1}, sample(1), {}).ok());
  ASSERT_TRUE(cache->put({"u", 1, 1, 3}, sample(3), {}).ok());
  {
    auto txn = LmdbTxn::begin(cache->env(), true);
    ASSERT_TRUE(txn.ok());
    auto dbi = 0u;
    ASSERT_EQ(mdb_dbi_open(txn->get(), "headers", 0, &dbi), 0);
    std::string k = *encode_cache_key({"u", 1, 1, 2}), v = "\x01garbage";
    MDB_val kv{k.size(), k.data()}, vv{v.size(), v.data()};
    ASSERT_EQ(mdb_put(txn->get(), dbi, &kv, &vv, 0), 0);
    ASSERT_TRUE(txn->commit().ok());
  }
  EXPECT_FALSE(cache->get({"u", 1, 1, 2}).ok());
  EXPECT_TRUE(cache->get({"u", 1, 1, 3}).ok());
  std::vector<std::pair<uint32_t, bool>> seen;
  ASSERT_TRUE(cache->for_each("u", 1, 1, [&](uint32_t uid, Result<CachedMessage> m) {
    seen.emplace_back(uid, m.ok());
    return true;
  }).ok());
  EXPECT_EQ(seen, (std::vector<std::pair<uint32_t, bool>>{{1, true}, {2, false}, {3, true}}));
}

TEST(HeaderCache, IterationIsInUidOrderWithinOneMailbox) {
  TempDir dir;
  auto cache = open_cache(dir);
  for (uint32_t uid : {300u, 2u, 70000u, 1u, 256u}) ASSERT_TRUE(cache->put({"u", 5, 9, uid}, sample(uid), {}).ok());
  // Neighbours that must not show up: other uidvalidity, other mailboxes.
  ASSERT_TRUE(cache->put({"u", 5, 8, 4}, sample(4), {}).ok());
  ASSERT_TRUE(cache->put({"u", 5, 10, 5}, sample(5), {}).ok());
  ASSERT_TRUE(cache->put({"u", 4, 9, 6}, sample(6), {}).ok());
  ASSERT_TRUE(cache->put({"u", 6, 9, 0}, sample(0), {}).ok());
  std::vector<uint32_t> uids;
  ASSERT_TRUE(cache->for_each("u", 5, 9, [&](uint32_t uid, Result<CachedMessage> m) {
    EXPECT_TRUE(m.ok());
    if (m.ok()) {
      EXPECT_EQ(m->summary.envelope, sample(uid).envelope);
    }
    uids.push_back(uid);
    return true;
  }).ok());
  EXPECT_EQ(uids, (std::vector<uint32_t>{1, 2, 256, 300, 70000}));
  uids.clear();
  ASSERT_TRUE(cache->for_each("u", 5, 9, [&](uint32_t uid, Result<CachedMessage>) {
    uids.push_back(uid);
    return uids.size() < 2;
  }, 3).ok());
  EXPECT_EQ(uids, (std::vector<uint32_t>{256, 300}));
}

TEST(HeaderCache, RemoveMailboxDeletesOnlyThatRange) {
  TempDir dir;
  auto cache = open_cache(dir);
  std::vector<MessageSummary> summaries;
  for (uint32_t uid = 1; uid <= 500; ++uid) summaries.push_back(sample(uid));
  std::vector<CacheEntry> batch;
  for (uint32_t uid = 1; uid <= 500; ++uid) batch.push_back({{"u", 7, 1, uid}, &summaries[uid - 1], {}});
  ASSERT_TRUE(cache->put_batch(batch).ok());
  ASSERT_TRUE(cache->put({"u", 7, 2, 1}, sample(1), {}).ok());
  ASSERT_TRUE(cache->put({"u", 8, 1, 1}, sample(1), {}).ok());
  ASSERT_TRUE(cache->put({"u", 6, 0xffffffff, 0xffffffff}, sample(1), {}).ok());
  auto n = cache->remove_mailbox("u", 7, 1);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 500u);
  EXPECT_FALSE(cache->get({"u", 7, 1, 250})->has_value());
  EXPECT_TRUE(cache->get({"u", 7, 2, 1})->has_value());
  EXPECT_TRUE(cache->get({"u", 8, 1, 1})->has_value());
  EXPECT_TRUE(cache->get({"u", 6, 0xffffffff, 0xffffffff})->has_value());
  EXPECT_EQ(*cache->remove_mailbox("u", 7, 1), 0u);
}

TEST(HeaderCache, MapFullGrowsTheMapAndRetries) {
  TempDir dir;
  auto cache = open_cache(dir, 64 * 1024);  // a few pages: the first batch cannot fit
  ASSERT_TRUE(cache);
  size_t initial = cache->env().map_size();
  std::vector<MessageSummary> summaries;
  for (uint32_t uid = 1; uid <= 200; ++uid) summaries.push_back(sample(uid, 4000 + uid * 7));
  std::vector<CacheEntry> batch;
  for (uint32_t uid = 1; uid <= 200; ++uid) batch.push_back({{"u", 1, 1, uid}, &summaries[uid - 1], {}});
  auto put = cache->put_batch(batch);
  ASSERT_TRUE(put.ok()) << put.error().message;
  EXPECT_GT(cache->env().map_size(), initial);
  for (uint32_t uid = 1; uid <= 200; ++uid) {
    auto got = cache->get({"u", 1, 1, uid});
    ASSERT_TRUE(got.ok() && got->has_value()) << uid;
    expect_same((*got)->summary, summaries[uid - 1]);
  }
  // Single puts keep growing it as needed.
  for (uint32_t uid = 201; uid <= 400; ++uid) ASSERT_TRUE(cache->put({"u", 1, 1, uid}, sample(uid, 20000), {}).ok());
}

TEST(HeaderCache, MapAtItsMaximumIsAnError) {
  TempDir dir;
  LmdbEnv::Options options;
  options.map_size = 64 * 1024;
  options.max_map_size = 64 * 1024;
  auto cache = HeaderCache::open(dir.path(), options);
  ASSERT_TRUE(cache.ok());
  Result<void> last;
  for (uint32_t uid = 1; uid <= 100 && last.ok(); ++uid) last = (*cache)->put({"u", 1, 1, uid}, sample(uid, 8000), {});
  EXPECT_FALSE(last.ok());
  // The failed write left nothing half-done: earlier entries still read back.
  EXPECT_TRUE((*cache)->get({"u", 1, 1, 1}).ok());
}

TEST(LmdbTxn, NestedWriteTransactionIsRefusedAndAbortIsDefault) {
  TempDir dir;
  auto cache = open_cache(dir);
  {
    auto outer = LmdbTxn::begin(cache->env(), true);
    ASSERT_TRUE(outer.ok());
    auto inner = LmdbTxn::begin(cache->env(), true);
    EXPECT_FALSE(inner.ok());
    unsigned dbi = 0;
    ASSERT_EQ(mdb_dbi_open(outer->get(), "headers", 0, &dbi), 0);
    std::string k = *encode_cache_key({"u", 2, 2, 2}), v = "x";
    MDB_val kv{k.size(), k.data()}, vv{v.size(), v.data()};
    ASSERT_EQ(mdb_put(outer->get(), dbi, &kv, &vv, 0), 0);
    // not committed: destroyed here, which aborts
  }
  EXPECT_FALSE(cache->get({"u", 2, 2, 2})->has_value());
  EXPECT_TRUE(LmdbTxn::begin(cache->env(), true).ok()) << "the writer slot was released";
}

}  // namespace
}  // namespace basalt::index
