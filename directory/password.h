// Stored password formats of the file directory ("{SCHEME}value", as in OpenLDAP's
// userPassword) and their constant-time verification.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace basalt::directory {

enum class PasswordScheme {
  kPlain,    // {PLAIN}secret
  kSsha,     // {SSHA}base64(SHA1(secret || salt) || salt)
  kSsha256,  // {SSHA256}base64(SHA256(secret || salt) || salt)
  kSsha512,  // {SSHA512}base64(SHA512(secret || salt) || salt)
  kCrypt,    // {CRYPT}crypt(3) string ($6$..., $y$..., $2b$...), verified through libcrypt
};

const char* to_string(PasswordScheme scheme);

struct StoredPassword {
  PasswordScheme scheme = PasswordScheme::kPlain;
  std::string data;  // plain text, decoded digest || salt, or the crypt(3) string
};

// Parses "{SCHEME}value" (scheme name case-insensitive). A value without a known scheme is
// refused, so a typo can never silently become a plain-text password.
Result<StoredPassword> parse_stored_password(std::string_view text);

// True when `secret` matches. Comparisons are constant-time in the secret's content.
bool verify_password(const StoredPassword& stored, std::string_view secret);

// Builds "{SSHA...}base64(digest || salt)" for a salted scheme (kSsha, kSsha256, kSsha512),
// or "{PLAIN}secret" for kPlain. For tools and tests; kCrypt is not produced here.
Result<std::string> make_stored_password(PasswordScheme scheme, std::string_view secret,
                                         std::string_view salt);

// Strict RFC 4648 base64 (padding required, no whitespace). Exposed for tests.
Result<std::string> base64_decode(std::string_view text);
std::string base64_encode(std::string_view bytes);

}  // namespace basalt::directory
