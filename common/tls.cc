#include "common/tls.h"

#include <openssl/err.h>

namespace basalt {

std::string openssl_error_text() {
  unsigned long code = ERR_get_error();
  std::string text;
  while (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    text = buf;  // keep the last (most specific) one
    code = ERR_get_error();
  }
  return text.empty() ? "unknown TLS error" : text;
}

Result<SslCtxPtr> make_server_tls_context(const TlsSettings& s) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return make_error("SSL_CTX_new: " + openssl_error_text());
  int min = TLS1_2_VERSION;
  if (s.min_version == "TLSv1.3") {
    min = TLS1_3_VERSION;
  } else if (s.min_version != "TLSv1.2") {
    return make_error("tls.min_version must be TLSv1.2 or TLSv1.3, not '" + s.min_version + "'");
  }
  SSL_CTX_set_min_proto_version(ctx.get(), min);
  // Compression (CRIME) and renegotiation are never wanted on a mail proxy.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                     SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  if (!s.ciphers.empty() && SSL_CTX_set_cipher_list(ctx.get(), s.ciphers.c_str()) != 1) {
    return make_error("tls.ciphers '" + s.ciphers + "': " + openssl_error_text());
  }
  if (!s.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx.get(), s.ciphersuites.c_str()) != 1) {
    return make_error("tls.ciphersuites '" + s.ciphersuites + "': " + openssl_error_text());
  }
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), s.certificate.c_str()) != 1) {
    return make_error("tls.certificate '" + s.certificate + "': " + openssl_error_text());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), s.private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return make_error("tls.private_key '" + s.private_key + "': " + openssl_error_text());
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return make_error("tls.private_key does not match tls.certificate: " + openssl_error_text());
  }
  return ctx;
}

}  // namespace basalt
