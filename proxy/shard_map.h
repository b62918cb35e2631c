// Maps a user's routing attribute (shard name, host alias, or host:port) to a configured shard.
#pragma once

#include <string_view>
#include <vector>

#include "proxy/proxy_config.h"

namespace basalt::proxy {

class ShardMap {
 public:
  explicit ShardMap(const std::vector<ShardConfig>& shards) : shards_(shards) {}

  // nullptr when the value names no configured shard.
  const ShardConfig* resolve(std::string_view route) const;

 private:
  const std::vector<ShardConfig>& shards_;
};

}  // namespace basalt::proxy
