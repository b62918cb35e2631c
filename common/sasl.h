// SASL wire helpers (no I/O): base64 and the PLAIN / LOGIN mechanisms' payloads.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace basalt::sasl {

std::string base64_encode(std::string_view data);
// Strict RFC 4648 decoding (padding required, no whitespace). nullopt on any error.
std::optional<std::string> base64_decode(std::string_view text);

struct PlainCredentials {
  std::string authzid;
  std::string authcid;
  std::string password;
};

// RFC 4616 message: [authzid] NUL authcid NUL passwd. nullopt if malformed.
std::optional<PlainCredentials> decode_plain(std::string_view message);
std::string encode_plain(std::string_view authzid, std::string_view authcid, std::string_view password);

// Overwrites all of `secret`'s buffer (capacity, not just size) and clears it.
void wipe(std::string& secret);

}  // namespace basalt::sasl
