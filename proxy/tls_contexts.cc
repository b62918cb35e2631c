#include "proxy/tls_contexts.h"

namespace basalt::proxy {

Result<TlsContexts> make_tls_contexts(const ProxyConfig& config) {
  TlsContexts contexts;
  if (config.tls_enabled) {
    auto server = make_server_tls_context(config.tls);
    if (!server) return server.error();
    contexts.server = std::move(*server);
  }
  for (const auto& shard : config.shards) {
    contexts.shards.emplace_back();
    if (!shard.tls) continue;
    auto client = make_client_tls_context(shard.tls_ca, shard.tls_verify);
    if (!client) return make_error("shard " + shard.name + ": " + client.error().message);
    contexts.shards.back() = std::move(*client);
  }
  return contexts;
}

}  // namespace basalt::proxy
