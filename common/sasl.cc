#include "common/sasl.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace basalt::sasl {

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    bool pad = c == '=' && i + 2 >= text.size() && (i + 1 == text.size() || text[i + 1] == '=');
    if (!alnum && c != '+' && c != '/' && !pad) return std::nullopt;
  }
  std::string out(text.size() / 4 * 3, '\0');
  // EVP_DecodeBlock counts padding as zero bytes; drop them afterwards.
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

std::optional<PlainCredentials> decode_plain(std::string_view message) {
  auto first = message.find('\0');
  if (first == std::string_view::npos) return std::nullopt;
  auto second = message.find('\0', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  if (message.find('\0', second + 1) != std::string_view::npos) return std::nullopt;
  PlainCredentials c;
  c.authzid = message.substr(0, first);
  c.authcid = message.substr(first + 1, second - first - 1);
  if (second == first + 1) return std::nullopt;  // empty authcid; never copy the password
  c.password = message.substr(second + 1);
  return c;
}

std::string encode_plain(std::string_view authzid, std::string_view authcid, std::string_view password) {
  std::string message;
  message.reserve(authzid.size() + authcid.size() + password.size() + 2);
  message.append(authzid).push_back('\0');
  message.append(authcid).push_back('\0');
  message.append(password);
  std::string encoded = base64_encode(message);
  wipe(message);
  return encoded;
}

void wipe(std::string& secret) {
  // The whole buffer: a longer earlier value may linger beyond size().
  secret.resize(secret.capacity());
  OPENSSL_cleanse(secret.data(), secret.size());
  secret.clear();
}

}  // namespace basalt::sasl
