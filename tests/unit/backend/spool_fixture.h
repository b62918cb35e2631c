// A fresh spool and header cache in a temp dir (fsync off), for store tests.
#pragma once

#include <filesystem>
#include <memory>

#include "backend/spool.h"
#include "indexer/header_cache.h"
#include "test_util.h"

namespace basalt::store::testing {

struct SpoolFixture {
  TempDir tmp;
  std::unique_ptr<Spool> spool;
  std::unique_ptr<index::HeaderCache> cache;

  SpoolFixture() {
    std::filesystem::create_directories(tmp.sub("spool"));
    EXPECT_TRUE(Spool::initialize(tmp.sub("spool"), Fsync::kOff));
    spool = std::move(Spool::open(tmp.sub("spool"), SpoolOptions{Fsync::kOff}).value());
    index::LmdbEnv::Options o;
    o.map_size = 16u << 20;
    cache = std::move(index::HeaderCache::open(tmp.sub("index"), o).value());
  }
};

}  // namespace basalt::store::testing
