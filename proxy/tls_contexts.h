// The proxy's OpenSSL contexts, built once from the config and shared by all workers
// (SSL_CTX is safe to use from several threads once set up).
#pragma once

#include <vector>

#include "common/result.h"
#include "common/tls.h"
#include "proxy/proxy_config.h"

namespace basalt::proxy {

struct TlsContexts {
  SslCtxPtr server;               // for the listeners; null without [tls]
  std::vector<SslCtxPtr> shards;  // by index in config.shards; null for plaintext shards

  SSL_CTX* shard(size_t index) const { return index < shards.size() ? shards[index].get() : nullptr; }
};

Result<TlsContexts> make_tls_contexts(const ProxyConfig& config);

}  // namespace basalt::proxy
