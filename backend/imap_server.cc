#include "backend/imap_server.h"

#include "backend/imap_session.h"

namespace basalt::store {

ImapServer::ImapServer(event_base* base, const StoreConfig& config, MailboxHub& hub, ThreadPool& pool,
                       ssl_ctx_st* tls)
    : config_(config), hub_(hub), pool_(pool), tls_(tls),
      listener_(base, ListenerOptions{"imap", config.imap.max_connections,
                                      "* BYE [UNAVAILABLE] Too many connections\r\n", 4096},
                [this](Listener& l, uint64_t id, bufferevent* bev, const SocketAddress& peer) {
                  return std::make_unique<ImapSession>(*this, l, id, bev, peer);
                }) {}

void ImapServer::post(uint64_t id, std::function<void(ImapSession&)> fn) {
  listener_.post(id, [fn = std::move(fn)](Connection& c) { fn(static_cast<ImapSession&>(c)); });
}

}  // namespace basalt::store
