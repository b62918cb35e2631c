// Server-side TLS contexts (OpenSSL) built from configuration.
#pragma once

#include <openssl/ssl.h>

#include <string>

#include "common/handles.h"
#include "common/result.h"

namespace basalt {

using SslCtxPtr = CHandle<SSL_CTX, SSL_CTX_free>;
using SslPtr = CHandle<SSL, SSL_free>;

struct TlsSettings {
  std::string certificate;   // PEM chain
  std::string private_key;   // PEM key
  std::string min_version = "TLSv1.2";  // TLSv1.2 | TLSv1.3
  std::string ciphers;       // TLS 1.2 cipher list; empty = OpenSSL's default
  std::string ciphersuites;  // TLS 1.3 suites; empty = OpenSSL's default
};

// Loads certificate and key and checks that they match.
Result<SslCtxPtr> make_server_tls_context(const TlsSettings& settings);

// A client context that verifies the peer against `ca_file` (empty: the system's CAs).
Result<SslCtxPtr> make_client_tls_context(const std::string& ca_file, bool verify);

// Prepares `ssl` to connect to `name` (a DNS name or an IP address): SNI for names, and the
// name or address the certificate must carry.
Result<void> set_tls_peer_name(SSL* ssl, const std::string& name);

// The last OpenSSL error queue entry as text, and clears the queue.
std::string openssl_error_text();

}  // namespace basalt
