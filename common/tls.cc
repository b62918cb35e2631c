#include "common/tls.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

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

Result<SslCtxPtr> make_client_tls_context(const std::string& ca_file, bool verify) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return make_error("SSL_CTX_new: " + openssl_error_text());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  int loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx.get())
                               : SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr);
  if (loaded != 1) return make_error("tls_ca '" + ca_file + "': " + openssl_error_text());
  SSL_CTX_set_verify(ctx.get(), verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return ctx;
}

Result<void> set_tls_peer_name(SSL* ssl, const std::string& name) {
  unsigned char ip[16];
  bool is_ip = inet_pton(AF_INET, name.c_str(), ip) == 1 || inet_pton(AF_INET6, name.c_str(), ip) == 1;
  if (is_ip) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1) {
      return make_error("cannot verify address " + name);
    }
    return {};
  }
  if (SSL_set_tlsext_host_name(ssl, name.c_str()) != 1 || SSL_set1_host(ssl, name.c_str()) != 1) {
    return make_error("cannot verify name " + name);
  }
  return {};
}

}  // namespace basalt
