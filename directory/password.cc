#include "directory/password.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <strings.h>

#include <array>
#include <memory>

#include "common/handles.h"

namespace basalt::directory {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

const EVP_MD* digest_for(PasswordScheme scheme) {
  switch (scheme) {
    case PasswordScheme::kSsha: return EVP_sha1();
    case PasswordScheme::kSsha256: return EVP_sha256();
    case PasswordScheme::kSsha512: return EVP_sha512();
    case PasswordScheme::kPlain:
    case PasswordScheme::kCrypt: return nullptr;
  }
  return nullptr;
}

using MdCtx = CHandle<EVP_MD_CTX, EVP_MD_CTX_free>;

// digest(a || b); empty string on a library failure.
std::string digest2(const EVP_MD* md, std::string_view a, std::string_view b) {
  MdCtx ctx(EVP_MD_CTX_new());
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  if (!ctx || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), a.data(), a.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), b.data(), b.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(out.data()), len);
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool verify_salted(const StoredPassword& stored, std::string_view secret) {
  const EVP_MD* md = digest_for(stored.scheme);
  auto digest_len = static_cast<size_t>(EVP_MD_get_size(md));
  std::string_view data = stored.data;
  std::string computed = digest2(md, secret, data.substr(digest_len));
  bool ok = !computed.empty() && equal_constant_time(computed, data.substr(0, digest_len));
  OPENSSL_cleanse(computed.data(), computed.size());
  return ok;
}

bool verify_crypt(const StoredPassword& stored, std::string_view secret) {
  // crypt(3) takes a C string: a secret with a NUL byte cannot be what was hashed.
  if (secret.find('\0') != std::string_view::npos) return false;
  std::string phrase(secret);
  auto data = std::make_unique<crypt_data>();  // ~32 KiB: keep it off the stack
  const char* out = crypt_rn(phrase.c_str(), stored.data.c_str(), data.get(), sizeof(crypt_data));
  bool ok = out != nullptr && out[0] != '*' && equal_constant_time(out, stored.data);
  OPENSSL_cleanse(phrase.data(), phrase.size());
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  return ok;
}

struct SchemeName {
  const char* name;
  PasswordScheme scheme;
};
constexpr SchemeName kSchemes[] = {
    {"PLAIN", PasswordScheme::kPlain},   {"SSHA", PasswordScheme::kSsha},
    {"SSHA256", PasswordScheme::kSsha256}, {"SSHA512", PasswordScheme::kSsha512},
    {"CRYPT", PasswordScheme::kCrypt},
};

Result<StoredPassword> check_payload(StoredPassword stored, std::string_view value) {
  switch (stored.scheme) {
    case PasswordScheme::kPlain:
      if (value.empty()) return make_error("empty {PLAIN} password");
      stored.data = std::string(value);
      return stored;
    case PasswordScheme::kSsha:
    case PasswordScheme::kSsha256:
    case PasswordScheme::kSsha512: {
      auto decoded = base64_decode(value);
      if (!decoded) return make_error(std::string("{") + to_string(stored.scheme) + "} value: " + decoded.error().message);
      auto digest_len = static_cast<size_t>(EVP_MD_get_size(digest_for(stored.scheme)));
      if (decoded->size() <= digest_len) {
        return make_error(std::string("{") + to_string(stored.scheme) + "} value too short (no salt)");
      }
      stored.data = std::move(*decoded);
      return stored;
    }
    case PasswordScheme::kCrypt: {
      stored.data = std::string(value);
      int check = crypt_checksalt(stored.data.c_str());
      if (check != CRYPT_SALT_OK && check != CRYPT_SALT_METHOD_LEGACY && check != CRYPT_SALT_TOO_CHEAP) {
        return make_error("{CRYPT} value is not a hash libcrypt supports");
      }
      return stored;
    }
  }
  return make_error("unknown scheme");
}

}  // namespace

const char* to_string(PasswordScheme scheme) {
  switch (scheme) {
    case PasswordScheme::kPlain: return "PLAIN";
    case PasswordScheme::kSsha: return "SSHA";
    case PasswordScheme::kSsha256: return "SSHA256";
    case PasswordScheme::kSsha512: return "SSHA512";
    case PasswordScheme::kCrypt: return "CRYPT";
  }
  return "?";
}

Result<StoredPassword> parse_stored_password(std::string_view text) {
  if (text.empty() || text.front() != '{') return make_error("password has no {SCHEME} prefix");
  auto close = text.find('}');
  if (close == std::string_view::npos) return make_error("password has no {SCHEME} prefix");
  std::string name(text.substr(1, close - 1));
  for (const auto& s : kSchemes) {
    if (strcasecmp(name.c_str(), s.name) == 0) {
      StoredPassword stored;
      stored.scheme = s.scheme;
      return check_payload(std::move(stored), text.substr(close + 1));
    }
  }
  return make_error("unsupported password scheme {" + name + "}");
}

bool verify_password(const StoredPassword& stored, std::string_view secret) {
  switch (stored.scheme) {
    case PasswordScheme::kPlain: {
      // Compare digests so that neither the length nor the content leaks through timing.
      std::string a = digest2(EVP_sha256(), secret, {});
      std::string b = digest2(EVP_sha256(), stored.data, {});
      bool ok = !a.empty() && equal_constant_time(a, b);
      OPENSSL_cleanse(a.data(), a.size());
      OPENSSL_cleanse(b.data(), b.size());
      return ok;
    }
    case PasswordScheme::kSsha:
    case PasswordScheme::kSsha256:
    case PasswordScheme::kSsha512: return verify_salted(stored, secret);
    case PasswordScheme::kCrypt: return verify_crypt(stored, secret);
  }
  return false;
}

Result<std::string> make_stored_password(PasswordScheme scheme, std::string_view secret,
                                         std::string_view salt) {
  switch (scheme) {
    case PasswordScheme::kPlain: return std::string("{PLAIN}").append(secret);
    case PasswordScheme::kSsha:
    case PasswordScheme::kSsha256:
    case PasswordScheme::kSsha512: {
      if (salt.empty()) return make_error("a salt is required");
      std::string digest = digest2(digest_for(scheme), secret, salt);
      if (digest.empty()) return make_error("digest failed");
      // append() rather than operator+: GCC 12 warns falsely (-Wrestrict) on "literal" + string.
      std::string out = std::string("{").append(to_string(scheme)).append("}");
      return out.append(base64_encode(digest.append(salt)));
    }
    case PasswordScheme::kCrypt: return make_error("use crypt(3) or mkpasswd for {CRYPT}");
  }
  return make_error("unknown scheme");
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return make_error("base64 length is not a multiple of 4");
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    uint32_t group = 0;
    for (size_t k = 0; k < 4; ++k) {
      char c = text[i + k];
      int v = base64_value(c);
      if (c == '=' && last && k >= 2 && (k == 3 || text[i + 3] == '=')) {
        ++pad;
        v = 0;
      } else if (v < 0 || pad > 0) {
        return make_error("invalid base64");
      }
      group = (group << 6) | static_cast<uint32_t>(v);
    }
    out.push_back(static_cast<char>(group >> 16));
    if (pad < 2) out.push_back(static_cast<char>((group >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(group & 0xff));
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t group = 0;
    for (size_t k = 0; k < 3; ++k) {
      group = (group << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    }
    for (size_t k = 0; k < 4; ++k) {
      out.push_back(k <= n ? kAlphabet[(group >> (18 - 6 * k)) & 0x3f] : '=');
    }
  }
  return out;
}

}  // namespace basalt::directory
