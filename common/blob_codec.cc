#include "common/blob_codec.h"

#include <lzo/lzo1x.h>
#include <xxhash.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace basalt {
namespace {

constexpr size_t kHeaderChecksumOffset = 32;

// lzo_init() must run once before any other LZO call; a function-local static is initialised
// exactly once even when threads race (C++11 magic statics).
bool lzo_ready() {
  static const bool ok = lzo_init() == LZO_E_OK;
  return ok;
}

// LZO1X-1 needs 128 KiB of scratch; one per thread avoids an allocation per message.
unsigned char* lzo_work_memory() {
  thread_local std::unique_ptr<unsigned char[]> work(new unsigned char[LZO1X_1_MEM_COMPRESS]);
  return work.get();
}

// Worst case LZO1X output for incompressible input (from the LZO documentation).
size_t lzo_bound(size_t n) { return n + n / 16 + 64 + 3; }

Error blob_error(const std::string& what) { return make_error("blob: " + what); }

void write_header(std::string& out, uint8_t flags, uint32_t raw_size, uint64_t raw_checksum) {
  const auto body_size = static_cast<uint32_t>(out.size() - kBlobHeaderSize);
  std::string header;
  header.reserve(kBlobHeaderSize);
  ByteWriter w(header);
  w.bytes(kBlobMagic);
  w.u8(kBlobVersion);
  w.u8(flags);
  w.u16(0);
  w.u32(raw_size);
  w.u32(body_size);
  w.u64(raw_checksum);
  // A stored body is the raw bytes: one checksum pass serves both fields.
  w.u64((flags & kBlobFlagLzo) ? checksum64(std::string_view(out).substr(kBlobHeaderSize)) : raw_checksum);
  w.u64(checksum64(header));
  out.replace(0, kBlobHeaderSize, header);
}

}  // namespace

uint64_t checksum64(std::string_view bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

std::string encode_blob(std::string_view raw) {
  if (raw.size() > kMaxBlobRawSize || !lzo_ready()) {
    std::fprintf(stderr, "encode_blob: %zu bytes exceeds the blob limit or LZO failed to initialise\n", raw.size());
    std::abort();
  }
  const auto raw_size = static_cast<uint32_t>(raw.size());
  const uint64_t sum = checksum64(raw);
  std::string out(kBlobHeaderSize + lzo_bound(raw.size()), '\0');
  lzo_uint compressed = 0;
  bool use_lzo = false;
  if (!raw.empty()) {
    int rc = lzo1x_1_compress(reinterpret_cast<const unsigned char*>(raw.data()), raw.size(),
                              reinterpret_cast<unsigned char*>(out.data() + kBlobHeaderSize), &compressed,
                              lzo_work_memory());
    use_lzo = rc == LZO_E_OK && compressed < raw.size();
  }
  if (use_lzo) {
    out.resize(kBlobHeaderSize + compressed);
    write_header(out, kBlobFlagLzo, raw_size, sum);
  } else {
    // Compression did not help (random data, already-compressed attachments): store as is.
    out.resize(kBlobHeaderSize);
    out.append(raw);
    write_header(out, 0, raw_size, sum);
  }
  return out;
}

Result<BlobHeader> parse_blob_header(std::string_view blob) {
  if (blob.size() < kBlobHeaderSize) {
    return blob_error("truncated (" + std::to_string(blob.size()) + " bytes, header needs " +
                      std::to_string(kBlobHeaderSize) + ")");
  }
  ByteReader r(blob.substr(0, kBlobHeaderSize));
  std::string_view magic;
  uint16_t reserved = 0;
  uint64_t header_sum = 0;
  BlobHeader h;
  (void)r.bytes(4, magic);
  if (magic != kBlobMagic) return blob_error("bad magic");
  (void)r.u8(h.version);
  // The version is checked before the header checksum: a newer format may lay it out differently.
  if (h.version != kBlobVersion) return blob_error("unsupported version " + std::to_string(h.version));
  (void)(r.u8(h.flags) && r.u16(reserved) && r.u32(h.raw_size) && r.u32(h.body_size) &&
         r.u64(h.raw_checksum) && r.u64(h.body_checksum) && r.u64(header_sum));
  if (header_sum != checksum64(blob.substr(0, kHeaderChecksumOffset))) return blob_error("header checksum mismatch");
  if ((h.flags & ~kBlobFlagLzo) != 0 || reserved != 0) {
    return blob_error("unknown flags " + std::to_string(h.flags) + "/" + std::to_string(reserved));
  }
  if (h.raw_size > kMaxBlobRawSize) {
    return blob_error("raw size " + std::to_string(h.raw_size) + " exceeds " + std::to_string(kMaxBlobRawSize));
  }
  bool body_ok = h.compressed() ? h.body_size <= lzo_bound(h.raw_size) && (h.raw_size == 0) == (h.body_size == 0)
                                : h.body_size == h.raw_size;
  if (!body_ok) {
    return blob_error("body size " + std::to_string(h.body_size) + " impossible for raw size " +
                      std::to_string(h.raw_size));
  }
  return h;
}

Result<std::string> decode_blob(std::string_view blob) {
  auto parsed = parse_blob_header(blob);
  if (!parsed) return parsed.error();
  const BlobHeader& h = *parsed;
  std::string_view body = blob.substr(kBlobHeaderSize);
  if (body.size() < h.body_size) {
    return blob_error("truncated (body " + std::to_string(body.size()) + " of " + std::to_string(h.body_size) +
                      " bytes)");
  }
  if (body.size() > h.body_size) return blob_error("trailing bytes after the body");
  if (!h.compressed()) {
    if (h.body_checksum != h.raw_checksum || checksum64(body) != h.raw_checksum) return blob_error("checksum mismatch");
    return std::string(body);
  }
  if (checksum64(body) != h.body_checksum) return blob_error("body checksum mismatch");
  if (!lzo_ready()) return blob_error("LZO failed to initialise");
  std::string raw(h.raw_size, '\0');
  lzo_uint out_len = h.raw_size;
  int rc = lzo1x_decompress_safe(reinterpret_cast<const unsigned char*>(body.data()), body.size(),
                                 reinterpret_cast<unsigned char*>(raw.data()), &out_len, nullptr);
  if (rc != LZO_E_OK || out_len != h.raw_size) {
    return blob_error("corrupt compressed body (lzo error " + std::to_string(rc) + ", " + std::to_string(out_len) +
                      " of " + std::to_string(h.raw_size) + " bytes)");
  }
  if (checksum64(raw) != h.raw_checksum) return blob_error("checksum mismatch");
  return raw;
}

}  // namespace basalt
