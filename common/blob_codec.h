// Message blob codec (no I/O): the on-disk form of one message on the spool, and the
// little-endian field codec shared by Basalt's on-disk formats.
//
// Blob layout (all integers little-endian; see docs/storage.md):
//
//   offset size  field
//   0      4     magic "BSLT"
//   4      1     format version (kBlobVersion)
//   5      1     flags: bit 0 = body is LZO1X-1 compressed (else stored raw); other bits 0
//   6      2     reserved, 0
//   8      4     raw size (bytes of the message), <= kMaxBlobRawSize
//   12     4     body size (bytes that follow the header)
//   16     8     XXH3-64 of the RAW message bytes
//   24     8     XXH3-64 of the body as stored (so any flipped bit is caught, even one LZO
//                would decode to the same output)
//   32     8     XXH3-64 of header bytes 0..31 (sizes are trusted for allocation only after this)
//   40     ...   body (exactly `body size` bytes; nothing may follow)
//
// Decoding verifies every length before allocating, checks the body checksum, decompresses
// with lzo1x_decompress_safe and checks the raw checksum, so a blob either decodes to exactly
// the bytes that were encoded or yields an error. All functions are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace basalt {

inline constexpr std::string_view kBlobMagic = "BSLT";
inline constexpr uint8_t kBlobVersion = 1;
inline constexpr size_t kBlobHeaderSize = 40;
inline constexpr uint8_t kBlobFlagLzo = 0x01;
// Upper bound on a message; LMTP/APPEND limits must be at or below it.
inline constexpr uint32_t kMaxBlobRawSize = 1u << 30;

struct BlobHeader {
  uint8_t version = 0;
  uint8_t flags = 0;
  uint32_t raw_size = 0;
  uint32_t body_size = 0;
  uint64_t raw_checksum = 0;
  uint64_t body_checksum = 0;

  bool compressed() const { return (flags & kBlobFlagLzo) != 0; }
};

// Encodes `raw` (LZO1X-1, or stored raw when compression does not shrink it).
// Precondition: raw.size() <= kMaxBlobRawSize (callers enforce their message limit first;
// violating it aborts, as it is a programming error, not bad input).
std::string encode_blob(std::string_view raw);

// Validates the 40-byte header at the start of `blob` (magic, version, header checksum,
// flags, size bounds). `blob` may be just the header: body presence is not checked.
Result<BlobHeader> parse_blob_header(std::string_view blob);

// Decodes a whole blob. Errors start with "blob: " and name the failure: "bad magic",
// "unsupported version N", "truncated", "header checksum mismatch", "unknown flags",
// "raw size ... exceeds", "trailing bytes", "body checksum mismatch", "corrupt compressed body",
// "checksum mismatch".
Result<std::string> decode_blob(std::string_view blob);

// XXH3-64, the checksum of every Basalt on-disk format.
uint64_t checksum64(std::string_view bytes);

// Appends little-endian fields to a string.
class ByteWriter {
 public:
  explicit ByteWriter(std::string& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void i64(int64_t v) { put(static_cast<uint64_t>(v), 8); }
  void bytes(std::string_view v) { out_.append(v); }

 private:
  void put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string& out_;
};

// Reads little-endian fields; every read returns false (and reads nothing) past the end.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  bool u8(uint8_t& v) { uint64_t t; if (!get(t, 1)) return false; v = static_cast<uint8_t>(t); return true; }
  bool u16(uint16_t& v) { uint64_t t; if (!get(t, 2)) return false; v = static_cast<uint16_t>(t); return true; }
  bool u32(uint32_t& v) { uint64_t t; if (!get(t, 4)) return false; v = static_cast<uint32_t>(t); return true; }
  bool u64(uint64_t& v) { return get(v, 8); }
  bool i64(int64_t& v) { uint64_t t; if (!get(t, 8)) return false; v = static_cast<int64_t>(t); return true; }
  bool bytes(size_t n, std::string_view& v) {
    if (n > remaining()) return false;
    v = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }

 private:
  bool get(uint64_t& v, int n) {
    if (remaining() < static_cast<size_t>(n)) return false;
    v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t{static_cast<unsigned char>(in_[pos_ + i])} << (8 * i);
    pos_ += n;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace basalt
