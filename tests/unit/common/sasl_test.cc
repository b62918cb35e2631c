#include "common/sasl.h"

#include <gtest/gtest.h>

namespace basalt::sasl {
namespace {

TEST(Base64, RoundTripsEveryLengthAndByte) {
  std::string data;
  for (int i = 0; i < 300; ++i) {
    auto decoded = base64_decode(base64_encode(data));
    ASSERT_TRUE(decoded.has_value()) << i;
    EXPECT_EQ(*decoded, data);
    data.push_back(static_cast<char>(i * 37));
  }
}

TEST(Base64, KnownVectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(*base64_decode("Zm9vYg=="), "foob");
  EXPECT_EQ(*base64_decode("Zm9vYmE="), "fooba");
}

TEST(Base64, RejectsMalformedInput) {
  for (const char* bad : {"Zg=", "Zg", "Z===", "Zm9v\r\n", "Zm 9v", "Zm9v!===", "=Zm9", "Zg==Zg==", "Zm=v"}) {
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
  }
}

TEST(Plain, DecodesAuthzidAuthcidPassword) {
  auto c = decode_plain(std::string("admin\0alice\0pw with spaces", 26));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->authzid, "admin");
  EXPECT_EQ(c->authcid, "alice");
  EXPECT_EQ(c->password, "pw with spaces");
  auto no_authz = decode_plain(std::string("\0bob\0x", 6));
  ASSERT_TRUE(no_authz.has_value());
  EXPECT_EQ(no_authz->authzid, "");
  EXPECT_EQ(no_authz->authcid, "bob");
}

TEST(Plain, RejectsMissingPartsExtraNulsAndEmptyAuthcid) {
  EXPECT_FALSE(decode_plain("alice").has_value());
  EXPECT_FALSE(decode_plain(std::string("alice\0pw", 8)).has_value());
  EXPECT_FALSE(decode_plain(std::string("\0\0pw", 4)).has_value());
  EXPECT_FALSE(decode_plain(std::string("\0a\0b\0c", 6)).has_value());
}

TEST(Plain, EncodeMatchesDecode) {
  auto c = decode_plain(*base64_decode(encode_plain("alice", "proxy", "s3cret")));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->authzid, "alice");
  EXPECT_EQ(c->authcid, "proxy");
  EXPECT_EQ(c->password, "s3cret");
}

TEST(Wipe, ClearsTheString) {
  std::string secret = "hunter2";
  wipe(secret);
  EXPECT_TRUE(secret.empty());
}

}  // namespace
}  // namespace basalt::sasl
