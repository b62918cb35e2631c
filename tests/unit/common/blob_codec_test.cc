#include "common/blob_codec.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

namespace basalt {
namespace {

using namespace std::string_literals;

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Mail-like text: compresses well.
std::string text(size_t n) {
  std::string s;
  for (int i = 0; s.size() < n; ++i) {
    s += "Received: from mx" + std::to_string(i % 17) + ".example.net by shard-a; line " + std::to_string(i) + "\r\n";
  }
  s.resize(n);
  return s;
}

uint8_t flags_of(const std::string& blob) { return static_cast<uint8_t>(blob[5]); }

// Rewrites a header field then fixes the header checksum, to reach the checks behind it.
std::string with_field(std::string blob, size_t offset, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) blob[offset + i] = static_cast<char>((value >> (8 * i)) & 0xff);
  std::string sum;
  ByteWriter(sum).u64(checksum64(std::string_view(blob).substr(0, 32)));
  blob.replace(32, 8, sum);
  return blob;
}

std::string error_of(std::string_view blob) {
  auto r = decode_blob(blob);
  return r ? std::string("(decoded)") : r.error().message;
}

TEST(BlobCodec, RoundTripsEmptyOneByteTextAndRandom) {
  const std::vector<std::string> inputs = {"", "x", "\0"s, text(100), text(100000), random_bytes(65536, 1)};
  for (const auto& raw : inputs) {
    std::string blob = encode_blob(raw);
    auto decoded = decode_blob(blob);
    ASSERT_TRUE(decoded) << raw.size() << ": " << decoded.error().message;
    EXPECT_EQ(*decoded, raw);
    auto h = parse_blob_header(blob);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->raw_size, raw.size());
    EXPECT_EQ(blob.size(), kBlobHeaderSize + h->body_size);
  }
}

TEST(BlobCodec, CompressesTextAndStoresIncompressibleDataRaw) {
  std::string t = text(100000);
  std::string blob = encode_blob(t);
  EXPECT_EQ(flags_of(blob), kBlobFlagLzo);
  EXPECT_LT(blob.size(), t.size() / 3);

  std::string r = random_bytes(100000, 2);
  std::string stored = encode_blob(r);
  EXPECT_EQ(flags_of(stored), 0);
  EXPECT_EQ(stored.size(), kBlobHeaderSize + r.size());
  EXPECT_EQ(encode_blob("").size(), kBlobHeaderSize);
  EXPECT_EQ(flags_of(encode_blob("x")), 0);  // one byte cannot shrink
}

TEST(BlobCodec, RoundTripsTenMegabytes) {
  std::string raw = text(10u << 20);
  // Mix in an incompressible stretch so both LZO paths (literals and matches) are exercised.
  raw.replace(3u << 20, 1u << 20, random_bytes(1u << 20, 3));
  std::string blob = encode_blob(raw);
  auto decoded = decode_blob(blob);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_TRUE(*decoded == raw);
  EXPECT_LT(blob.size(), raw.size());
}

TEST(BlobCodec, HeaderLayoutIsAsDocumented) {
  std::string blob = encode_blob(text(5000));
  EXPECT_EQ(blob.substr(0, 4), "BSLT");
  EXPECT_EQ(blob[4], 1);
  ByteReader r(std::string_view(blob).substr(8));
  uint32_t raw_size = 0, body_size = 0;
  uint64_t sum = 0, body_sum = 0, header_sum = 0;
  ASSERT_TRUE(r.u32(raw_size) && r.u32(body_size) && r.u64(sum) && r.u64(body_sum) && r.u64(header_sum));
  EXPECT_EQ(raw_size, 5000u);
  EXPECT_EQ(body_size, blob.size() - 40);
  EXPECT_EQ(sum, checksum64(text(5000)));
  EXPECT_EQ(body_sum, checksum64(std::string_view(blob).substr(40)));
  EXPECT_EQ(header_sum, checksum64(std::string_view(blob).substr(0, 32)));
}

TEST(BlobCodec, EveryHeaderBitFlipIsDetected) {
  for (const std::string& raw : {text(3000), random_bytes(300, 4)}) {
    const std::string blob = encode_blob(raw);
    for (size_t bit = 0; bit < kBlobHeaderSize * 8; ++bit) {
      std::string bad = blob;
      bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
      std::string err = error_of(bad);
      if (bit < 32) {
        EXPECT_EQ(err, "blob: bad magic") << bit;
      } else if (bit < 40) {
        EXPECT_NE(err.find("unsupported version"), std::string::npos) << bit << err;
      } else {
        EXPECT_EQ(err, "blob: header checksum mismatch") << bit;
      }
    }
  }
}

TEST(BlobCodec, FieldChecksBehindTheHeaderChecksum) {
  const std::string raw = text(3000);
  const std::string blob = encode_blob(raw);
  const std::string stored = encode_blob(random_bytes(300, 5));
  EXPECT_NE(error_of(with_field(blob, 5, 0x03, 1)).find("unknown flags"), std::string::npos);
  EXPECT_NE(error_of(with_field(blob, 6, 1, 2)).find("unknown flags"), std::string::npos);
  EXPECT_NE(error_of(with_field(blob, 8, kMaxBlobRawSize + 1ull, 4)).find("exceeds"), std::string::npos);
  EXPECT_NE(error_of(with_field(blob, 8, 0xffffffff, 4)).find("exceeds"), std::string::npos);
  // A compressed body claiming more than LZO's worst case for its raw size.
  EXPECT_NE(error_of(with_field(blob, 12, 4000, 4)).find("impossible"), std::string::npos);
  // Stored raw: body and raw sizes must agree.
  EXPECT_NE(error_of(with_field(stored, 8, 299, 4)).find("impossible"), std::string::npos);
  // Raw size disagreeing with what the body decompresses to.
  EXPECT_NE(error_of(with_field(blob, 8, 2999, 4)).find("corrupt compressed body"), std::string::npos);
  EXPECT_NE(error_of(with_field(blob, 8, 3001, 4)).find("corrupt compressed body"), std::string::npos);
  EXPECT_EQ(error_of(with_field(blob, 16, checksum64(raw) ^ 1, 8)), "blob: checksum mismatch");
  EXPECT_EQ(error_of(with_field(blob, 24, 12345, 8)), "blob: body checksum mismatch");
  EXPECT_EQ(error_of(with_field(stored, 16, 12345, 8)), "blob: checksum mismatch");
  EXPECT_EQ(error_of(with_field(stored, 24, 12345, 8)), "blob: checksum mismatch");
  // A stored body marked as compressed.
  EXPECT_NE(error_of(with_field(stored, 5, kBlobFlagLzo, 1)), "(decoded)");
  EXPECT_NE(error_of(with_field(blob, 4, 2, 1)).find("unsupported version 2"), std::string::npos);
}

TEST(BlobCodec, EveryBodyBitFlipIsDetected) {
  for (const std::string& raw : {text(600), random_bytes(80, 6)}) {
    const std::string blob = encode_blob(raw);
    for (size_t bit = kBlobHeaderSize * 8; bit < blob.size() * 8; ++bit) {
      std::string bad = blob;
      bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
      auto r = decode_blob(bad);
      EXPECT_FALSE(r) << "bit " << bit;
    }
  }
}

TEST(BlobCodec, TruncationAtEveryLengthIsDetected) {
  for (const std::string& raw : {text(700), random_bytes(100, 7), std::string("x")}) {
    const std::string blob = encode_blob(raw);
    for (size_t len = 0; len < blob.size(); ++len) {
      std::string err = error_of(std::string_view(blob).substr(0, len));
      EXPECT_NE(err.find("truncated"), std::string::npos) << len << ": " << err;
    }
    EXPECT_EQ(error_of(blob + "x"), "blob: trailing bytes after the body");
  }
}

TEST(BlobCodec, ParseHeaderNeedsOnlyTheHeader) {
  std::string blob = encode_blob(text(10000));
  auto h = parse_blob_header(std::string_view(blob).substr(0, kBlobHeaderSize));
  ASSERT_TRUE(h);
  EXPECT_TRUE(h->compressed());
  EXPECT_EQ(h->raw_size, 10000u);
}

TEST(BlobCodec, ThreadsEncodeAndDecodeConcurrently) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      for (int i = 0; i < 50; ++i) {
        std::string raw = text(1000 + 97 * i + t);
        auto back = decode_blob(encode_blob(raw));
        if (!back || *back != raw) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(ByteCodec, RoundTripsAndStopsAtTheEnd) {
  std::string out;
  ByteWriter w(out);
  w.u8(0xab);
  w.u16(0xbeef);
  w.u32(0xdeadbeef);
  w.u64(0x0123456789abcdefull);
  w.i64(-2);
  w.bytes("xyz");
  EXPECT_EQ(out.size(), 1u + 2 + 4 + 8 + 8 + 3);
  EXPECT_EQ(static_cast<unsigned char>(out[1]), 0xef);  // little-endian
  ByteReader r(out);
  uint8_t a;
  uint16_t b;
  uint32_t c;
  uint64_t d;
  int64_t e;
  std::string_view f;
  ASSERT_TRUE(r.u8(a) && r.u16(b) && r.u32(c) && r.u64(d) && r.i64(e) && r.bytes(3, f));
  EXPECT_EQ(a, 0xab);
  EXPECT_EQ(b, 0xbeef);
  EXPECT_EQ(c, 0xdeadbeefu);
  EXPECT_EQ(d, 0x0123456789abcdefull);
  EXPECT_EQ(e, -2);
  EXPECT_EQ(f, "xyz");
  EXPECT_FALSE(r.u8(a));
  ByteReader short_reader(std::string_view(out).substr(0, 3));
  EXPECT_TRUE(short_reader.u8(a));
  EXPECT_FALSE(short_reader.u32(c));
  EXPECT_EQ(short_reader.remaining(), 2u);  // a failed read consumes nothing
}

}  // namespace
}  // namespace basalt
