// The proxy's OpenSSL contexts, built once from the config and shared by all workers
// (SSL_CTX is safe to use from several threads once set up).
#pragma once

#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "common/tls.h"
#include "proxy/proxy_config.h"

namespace basalt::proxy {

struct TlsContexts {
  SslCtxPtr server;               // for the listeners; null without [tls]
  // Per-name certificates; the server context's SNI callback switches to them.
  std::vector<std::pair<std::vector<std::string>, SslCtxPtr>> sni;
  std::vector<SslCtxPtr> shards;  // by index in config.shards; null for plaintext shards

  SSL_CTX* shard(size_t index) const { return index < shards.size() ? shards[index].get() : nullptr; }
  SSL_CTX* for_name(std::string_view name) const;  // null: keep the default
};

// Shared, because the SNI callback points at the object: it must not move once built.
Result<std::shared_ptr<const TlsContexts>> make_tls_contexts(const ProxyConfig& config);

}  // namespace basalt::proxy
