// basalt-store: the shard store: LMTP delivery into the spool and the header cache, POP3.
//   basalt-store -c CONF              run the LMTP and POP3 servers until SIGTERM/SIGINT
//   basalt-store -c CONF init         make spool_root an initialized spool (idempotent)
//   basalt-store -c CONF dump USER    the user's mailboxes, UIDs, sizes, ENVELOPEs as JSON
//   basalt-store -c CONF cat USER UID the raw INBOX message (as stored, Return-Path included)
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "backend/delivery.h"
#include "backend/imap_server.h"
#include "backend/lmtp_server.h"
#include "backend/mailbox_list.h"
#include "backend/mailbox_state.h"
#include "backend/pop3_server.h"
#include "backend/spool.h"
#include "backend/store_config.h"
#include "common/handles.h"
#include "common/tls.h"
#include "common/log.h"
#include "directory/file_directory.h"

namespace basalt::store {
namespace {

RecipientPolicy make_policy(const StoreConfig& c) {
  return [users = c.users, shard = c.shard_name, status = c.status](std::string_view address, std::string& user) {
    const directory::FileUser* u = users->find(address);
    if (!u) {
      size_t at = address.rfind('@');
      if (at != std::string_view::npos) u = users->find(address.substr(0, at));
    }
    if (!u) return RcptVerdict::kUnknown;
    switch (status.classify(u->status)) {
      case directory::AuthOutcome::kDisabled:
        return RcptVerdict::kDisabled;
      case directory::AuthOutcome::kMoving:
        return RcptVerdict::kMoving;
      case directory::AuthOutcome::kOk:
      case directory::AuthOutcome::kBadCredentials:
      case directory::AuthOutcome::kUnavailable:
        break;
    }
    if (u->shard != shard) return RcptVerdict::kOtherShard;
    user = u->name;
    return RcptVerdict::kAccept;
  };
}

// A listening socket for a client service ([imap], [pop3]); -1 when the service is off.
int listen_service(const ServiceConfig& service) {
  if (service.listen_text.empty()) return -1;
  auto fd = listen_tcp(service.listen, service.listen_text, 128);
  if (!fd) throw std::runtime_error(fd.error().message);
  return *fd;
}

void on_signal(evutil_socket_t sig, short, void* base) {
  logger("store")->info("signal {}: stopping", sig);
  event_base_loopexit(static_cast<event_base*>(base), nullptr);
}

int run(const StoreConfig& c) {
  auto spool = Spool::open(c.spool_root, SpoolOptions{c.fsync ? Fsync::kOn : Fsync::kOff});
  if (!spool) throw std::runtime_error(spool.error().message);
  auto cache = index::HeaderCache::open(c.index_root);
  if (!cache) throw std::runtime_error("header cache: " + cache.error().message);
  auto fd = listen_tcp(c.lmtp_listen, c.lmtp_listen_text, 128);
  if (!fd) throw std::runtime_error(fd.error().message);
  int pop3_fd = listen_service(c.pop3);
  int imap_fd = listen_service(c.imap);
  evthread_use_pthreads();
  CHandle<event_base, event_base_free> base{event_base_new()};
  HubOptions hub_options{c.fsync ? Fsync::kOn : Fsync::kOff, {}};
  hub_options.quota = [&c](std::string_view user) { return quota_of(c, user); };
  MailboxHub hub(**spool, cache->get(), std::move(hub_options));
  Deliverer deliverer(hub);
  LmtpOptions options;
  options.max_message = c.max_message_size;
  options.max_connections = c.max_connections;
  options.timeout = std::chrono::seconds(c.lmtp_timeout_s);
  auto pool = std::make_unique<ThreadPool>(c.delivery_threads);
  auto server = std::make_unique<LmtpServer>(base.get(), deliverer, *pool, make_policy(c), options);
  if (auto r = server->listen(*fd); !r) throw std::runtime_error(r.error().message);
  SslCtxPtr tls;  // STARTTLS / STLS
  if (c.tls_enabled) {
    auto ctx = make_server_tls_context(c.tls);
    if (!ctx) throw std::runtime_error("tls: " + ctx.error().message);
    tls = std::move(*ctx);
  }
  auto io_pool = std::make_unique<ThreadPool>(c.io_threads);  // client sessions' hub calls
  std::unique_ptr<Pop3Server> pop3;
  if (pop3_fd >= 0) {
    pop3 = std::make_unique<Pop3Server>(base.get(), c, hub, *io_pool, tls.get());
    if (auto r = pop3->listen(pop3_fd); !r) throw std::runtime_error(r.error().message);
  }
  std::unique_ptr<ImapServer> imap;
  if (imap_fd >= 0) {
    imap = std::make_unique<ImapServer>(base.get(), c, hub, *io_pool, tls.get());
    if (auto r = imap->listen(imap_fd); !r) throw std::runtime_error(r.error().message);
  }
  event* signals[] = {evsignal_new(base.get(), SIGTERM, on_signal, base.get()),
                      evsignal_new(base.get(), SIGINT, on_signal, base.get())};
  for (event* e : signals) evsignal_add(e, nullptr);
  logger("store")->info("basalt-store shard={} lmtp={} pop3={} imap={} spool={} users={}", c.shard_name,
                        c.lmtp_listen_text, c.pop3.listen_text, c.imap.listen_text, c.spool_root, c.users->size());
  event_base_dispatch(base.get());
  for (event* e : signals) event_free(e);
  pool.reset();  // finishes running deliveries; their replies are dropped with the loop
  io_pool.reset();
  pop3.reset();
  server.reset();
  imap.reset();
  logger("store")->info("basalt-store stopped");
  return 0;
}

nlohmann::json dump_user(const StoreConfig& c, const std::string& user) {
  auto spool = Spool::open(c.spool_root, SpoolOptions{Fsync::kOff});
  if (!spool) throw std::runtime_error(spool.error().message);
  auto cache = index::HeaderCache::open(c.index_root);
  if (!cache) throw std::runtime_error("header cache: " + cache.error().message);
  auto user_dir = (*spool)->user_dir(user);
  if (!user_dir) throw std::runtime_error(user_dir.error().message);
  auto list = MailboxList::open(*user_dir, MailboxListOptions{Fsync::kOff, {}});
  if (!list) throw std::runtime_error(list.error().message);
  nlohmann::json out = {{"user", user}, {"mailboxes", nlohmann::json::array()}};
  for (const MailboxInfo& info : list->list()) {
    auto dir = (*spool)->mailbox_dir(user, info.id);
    nlohmann::json mbox = {{"name", info.name}, {"id", to_u64(info.id)}, {"uidvalidity", info.uidvalidity},
                           {"messages", nlohmann::json::array()}};
    if (!dir || !MailboxState::exists(*dir)) {
      out["mailboxes"].push_back(mbox);
      continue;
    }
    auto state = MailboxState::open(*dir, StateOptions{Fsync::kOff});
    if (!state) throw std::runtime_error(state.error().message);
    mbox["uidnext"] = state->uidnext();
    for (const MessageMeta& m : state->messages()) {
      nlohmann::json msg = {{"uid", m.uid}, {"size", m.size}, {"internal_date", m.internal_date}, {"flags", m.flags}};
      auto cached = (*cache)->get(index::CacheKey{user, to_u64(info.id), state->uidvalidity(), m.uid});
      if (!cached) {
        msg["cache_error"] = cached.error().message;
      } else if (*cached) {
        msg["envelope"] = (**cached).summary.envelope;
        msg["raw_size"] = (**cached).summary.raw_size;
      }
      mbox["messages"].push_back(msg);
    }
    out["mailboxes"].push_back(mbox);
  }
  return out;
}

int cat_message(const StoreConfig& c, const std::string& user, uint32_t uid) {
  auto spool = Spool::open(c.spool_root, SpoolOptions{Fsync::kOff});
  if (!spool) throw std::runtime_error(spool.error().message);
  auto user_dir = (*spool)->user_dir(user);
  if (!user_dir) throw std::runtime_error(user_dir.error().message);
  auto list = MailboxList::open(*user_dir, MailboxListOptions{Fsync::kOff, {}});
  if (!list) throw std::runtime_error(list.error().message);
  auto inbox = list->find(MailboxList::kInbox);
  if (!inbox) throw std::runtime_error("no INBOX");
  auto raw = (*spool)->read_message(user, inbox->id, inbox->uidvalidity, uid);
  if (!raw) throw std::runtime_error(raw.error().message);
  std::cout.write(raw->data(), static_cast<std::streamsize>(raw->size()));
  return 0;
}

int main_impl(int argc, char** argv) {
  CLI::App app{"basalt-store: the shard store (LMTP delivery)"};
  std::string config_path = "/etc/basalt/basalt-store.toml";
  app.add_option("-c,--config", config_path, "configuration file");
  auto* init = app.add_subcommand("init", "initialize the spool root (idempotent)");
  auto* dump = app.add_subcommand("dump", "print a user's mailboxes and messages as JSON");
  std::string user;
  uint32_t uid = 0;
  dump->add_option("user", user)->required();
  auto* cat = app.add_subcommand("cat", "print one raw INBOX message");
  cat->add_option("user", user)->required();
  cat->add_option("uid", uid)->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  auto config = load_store_config(config_path);
  if (!config) throw std::runtime_error(config.error().message);
  set_log_level(config->log_level);
  if (*init) {
    std::filesystem::create_directories(config->spool_root);
    if (auto r = Spool::initialize(config->spool_root); !r) throw std::runtime_error(r.error().message);
    return 0;
  }
  if (*dump) {
    std::cout << dump_user(*config, user).dump(2) << "\n";
    return 0;
  }
  if (*cat) return cat_message(*config, user, uid);
  return run(*config);
}

}  // namespace
}  // namespace basalt::store

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  try {
    return basalt::store::main_impl(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "basalt-store: " << e.what() << "\n";
    return 1;
  }
}
