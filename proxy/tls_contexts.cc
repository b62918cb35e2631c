#include "proxy/tls_contexts.h"

#include <cctype>

namespace basalt::proxy {
namespace {

bool name_matches(std::string_view pattern, std::string_view name) {
  if (pattern.starts_with("*.")) {  // one label, as in RFC 6125
    auto dot = name.find('.');
    return dot != std::string_view::npos && dot > 0 && name.substr(dot) == pattern.substr(1);
  }
  return pattern == name;
}

int on_servername(SSL* ssl, int*, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;
  std::string lower(name);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (SSL_CTX* ctx = static_cast<const TlsContexts*>(arg)->for_name(lower)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

SSL_CTX* TlsContexts::for_name(std::string_view name) const {
  for (const auto& [names, ctx] : sni) {
    for (const auto& pattern : names) {
      if (name_matches(pattern, name)) return ctx.get();
    }
  }
  return nullptr;
}

Result<std::shared_ptr<const TlsContexts>> make_tls_contexts(const ProxyConfig& config) {
  auto built = std::make_shared<TlsContexts>();
  TlsContexts& contexts = *built;
  if (config.tls_enabled) {
    auto server = make_server_tls_context(config.tls);
    if (!server) return server.error();
    contexts.server = std::move(*server);
    for (const auto& entry : config.sni) {
      TlsSettings settings = config.tls;
      settings.certificate = entry.certificate;
      settings.private_key = entry.private_key;
      auto ctx = make_server_tls_context(settings);
      if (!ctx) return make_error("tls.sni " + entry.names.front() + ": " + ctx.error().message);
      contexts.sni.emplace_back(entry.names, std::move(*ctx));
    }
    if (!contexts.sni.empty()) {
      SSL_CTX_set_tlsext_servername_callback(contexts.server.get(), on_servername);
      SSL_CTX_set_tlsext_servername_arg(contexts.server.get(), built.get());
    }
  }
  for (const auto& shard : config.shards) {
    contexts.shards.emplace_back();
    if (!shard.tls) continue;
    auto client = make_client_tls_context(shard.tls_ca, shard.tls_verify);
    if (!client) return make_error("shard " + shard.name + ": " + client.error().message);
    contexts.shards.back() = std::move(*client);
  }
  return std::shared_ptr<const TlsContexts>(std::move(built));
}

}  // namespace basalt::proxy
