#include "proxy/shard_map.h"

#include <gtest/gtest.h>

namespace basalt::proxy {
namespace {

ShardConfig shard(const char* name, std::vector<std::string> hosts, const char* imap) {
  ShardConfig s;
  s.name = name;
  s.hosts = std::move(hosts);
  s.imap_text = imap;
  s.imap = *parse_socket_address(imap);
  s.has_imap = true;
  return s;
}

TEST(ShardMap, ResolvesNamesAliasesAndAddresses) {
  std::vector<ShardConfig> shards = {shard("a", {"mail-a.example.org"}, "10.0.0.1:143"),
                                     shard("b", {"mail-b.example.org"}, "10.0.0.2:143")};
  ShardMap map(shards);
  EXPECT_EQ(map.resolve("a")->name, "a");
  EXPECT_EQ(map.resolve("B")->name, "b");
  EXPECT_EQ(map.resolve("mail-b.example.org")->name, "b");
  EXPECT_EQ(map.resolve("MAIL-A.example.org")->name, "a");
  EXPECT_EQ(map.resolve("10.0.0.2:143")->name, "b");
  EXPECT_EQ(map.resolve("10.0.0.1")->name, "a");
  EXPECT_EQ(map.resolve("mail-a.example.org:143")->name, "a");
}

TEST(ShardMap, UnknownRoutesResolveToNothing) {
  std::vector<ShardConfig> shards = {shard("a", {}, "10.0.0.1:143")};
  ShardMap map(shards);
  EXPECT_EQ(map.resolve(""), nullptr);
  EXPECT_EQ(map.resolve("c"), nullptr);
  EXPECT_EQ(map.resolve("10.0.0.1:144"), nullptr);
  EXPECT_EQ(map.resolve("10.0.0.9"), nullptr);
  EXPECT_EQ(map.resolve("a:143"), nullptr);
}

}  // namespace
}  // namespace basalt::proxy
