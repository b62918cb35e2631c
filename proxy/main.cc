// basalt-proxy: loads the config, binds the listeners and runs the workers until SIGTERM.
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <iostream>

#include <CLI/CLI.hpp>

#include "common/log.h"
#include "proxy/admin_http.h"
#include "proxy/proxy_config.h"
#include "proxy/worker.h"

namespace basalt::proxy {
namespace {

// After the ports are bound: nothing the proxy does later needs root.
Result<void> drop_privileges(const std::string& user) {
  if (user.empty()) return {};
  errno = 0;
  passwd* pw = getpwnam(user.c_str());
  if (!pw) return make_error("proxy.user '" + user + "': no such user");
  if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
    return make_error("cannot switch to user '" + user + "': " + std::strerror(errno));
  }
  if (pw->pw_uid != 0 && setuid(0) == 0) return make_error("privileges could be regained after the switch");
  return {};
}

struct Runtime {
  CHandle<event_base, event_base_free> base{event_base_new()};
  std::vector<std::unique_ptr<Worker>> workers;
  std::string config_path;
  std::shared_ptr<const ProxyConfig> config;  // the current one (reloads replace it)
  const Stats* stats = nullptr;
  ClientLimits* limits = nullptr;
  event* drain_timer = nullptr;
  std::chrono::steady_clock::time_point drain_deadline;
  bool draining = false;
  bool kicked = false;
};

void stop_now(Runtime* rt) {
  for (auto& w : rt->workers) w->stop();
  event_base_loopexit(rt->base.get(), nullptr);
}

// Every 100 ms while draining: done when no session is left; at the deadline, everyone left is
// told goodbye and gets a second to read it.
void on_drain_tick(evutil_socket_t, short, void* arg) {
  auto* rt = static_cast<Runtime*>(arg);
  auto now = std::chrono::steady_clock::now();
  if (rt->stats->sessions.load() == 0 || now >= rt->drain_deadline + std::chrono::seconds(1)) {
    logger("proxy")->info("drain finished: {} sessions left", rt->stats->sessions.load());
    return stop_now(rt);
  }
  if (now >= rt->drain_deadline && !rt->kicked) {
    rt->kicked = true;
    for (auto& w : rt->workers) w->post([w = w.get()] { w->kick_all("Server shutting down."); });
  }
  timeval tick{0, 100 * 1000};
  evtimer_add(rt->drain_timer, &tick);
}

// Settings that need a restart: the sockets are bound and the threads started.
void warn_about_fixed_settings(const ProxyConfig& old, const ProxyConfig& next) {
  bool listeners_changed = old.listeners.size() != next.listeners.size();
  for (size_t i = 0; !listeners_changed && i < old.listeners.size(); ++i) {
    const auto &a = old.listeners[i], &b = next.listeners[i];
    listeners_changed = a.address_text != b.address_text || a.protocol != b.protocol || a.proxy_protocol != b.proxy_protocol;
  }
  if (listeners_changed) logger("proxy")->warn("reload: [[listener]] changes need a restart; ignored");
  if (old.workers != next.workers) logger("proxy")->warn("reload: proxy.workers changes need a restart; ignored");
  if (old.admin.address_text != next.admin.address_text || old.admin.token != next.admin.token) {
    logger("proxy")->warn("reload: [admin] changes need a restart; ignored");
  }
}

// SIGHUP: read and validate the file, load certificates, then hand the new generation to the
// workers. Sessions already open keep the settings they started with.
void reload(Runtime* rt) {
  auto next = load_proxy_config(rt->config_path);
  if (!next) return logger("proxy")->error("reload failed, keeping the running configuration: {}", next.error().message);
  auto tls = make_tls_contexts(*next);
  if (!tls) return logger("proxy")->error("reload failed, keeping the running configuration: {}", tls.error().message);
  warn_about_fixed_settings(*rt->config, *next);
  auto config = std::make_shared<ProxyConfig>(std::move(*next));
  config->workers = rt->config->workers;  // fixed for this run
  config->listeners = rt->config->listeners;
  config->admin = rt->config->admin;
  rt->config = config;
  auto contexts = *tls;
  set_log_level(config->log_level);
  rt->limits->update(limit_settings(*config));
  for (auto& w : rt->workers) w->post([w = w.get(), config, contexts] { w->reload(config, contexts); });
  logger("proxy")->info("configuration reloaded from {}", rt->config_path);
}

void on_signal(evutil_socket_t signal, short, void* arg) {
  auto* rt = static_cast<Runtime*>(arg);
  if (signal == SIGHUP) return reload(rt);
  if (rt->draining) {
    logger("proxy")->info("signal {} while draining: stopping now", signal);
    return stop_now(rt);
  }
  logger("proxy")->info("signal {}: draining (up to {} s), no new connections", signal, rt->config->drain_timeout.count());
  rt->draining = true;
  rt->drain_deadline = std::chrono::steady_clock::now() + rt->config->drain_timeout;
  for (auto& w : rt->workers) w->post([w = w.get()] { w->begin_drain(); });
  on_drain_tick(-1, 0, rt);
}

int run(const std::string& config_path, bool check_only) {
  auto loaded = load_proxy_config(config_path);
  if (!loaded) {
    std::cerr << "basalt-proxy: " << loaded.error().message << "\n";
    return 3;
  }
  auto config = std::make_shared<const ProxyConfig>(std::move(*loaded));
  set_log_level(config->log_level);
  auto loaded_tls = make_tls_contexts(*config);
  if (!loaded_tls) {
    std::cerr << "basalt-proxy: " << loaded_tls.error().message << "\n";
    return 3;
  }
  auto tls = *loaded_tls;
  if (check_only) {
    std::cout << "configuration ok\n";
    return 0;
  }
  std::vector<ListenSocket> sockets;
  for (const auto& l : config->listeners) {
    auto fd = listen_tcp(l.address, l.address_text, 1024);
    if (!fd) {
      logger("proxy")->error("{}", fd.error().message);
      return 1;
    }
    sockets.push_back({*fd, l.protocol, l.proxy_protocol});
    logger("proxy")->info("listening proto={} address={}", to_string(l.protocol), l.address_text);
  }
  Stats stats;
  Runtime rt;
  rt.config_path = config_path;
  rt.config = config;
  rt.stats = &stats;
  LoopTasks main_tasks(rt.base.get());
  ClientLimits limits(limit_settings(*config));
  rt.limits = &limits;
  AuthCache auth_cache({config->auth_cache.ttl, config->auth_cache.iterations, config->auth_cache.max_entries});
  auto pool = std::make_unique<ThreadPool>(2);  // slow hashing, off the event loops
  for (unsigned i = 0; i < config->workers; ++i) {
    rt.workers.push_back(std::make_unique<Worker>(i, config, tls, stats, limits, auth_cache, *pool));
    if (auto ok = rt.workers.back()->init(sockets); !ok) {
      logger("proxy")->error("worker {}: {}", i, ok.error().message);
      return 1;
    }
  }
  std::vector<Worker*> workers;
  for (auto& w : rt.workers) workers.push_back(w.get());
  AdminHttp admin(config->admin, stats, workers, main_tasks);
  if (config->admin.enabled) {
    if (auto ok = admin.start(rt.base.get()); !ok) {
      logger("proxy")->error("{}", ok.error().message);
      return 1;
    }
    logger("proxy")->info("admin endpoint on {}", config->admin.address_text);
  }
  if (auto dropped = drop_privileges(config->run_as_user); !dropped) {
    logger("proxy")->error("{}", dropped.error().message);
    return 1;
  }
  if (!config->run_as_user.empty()) logger("proxy")->info("running as user {}", config->run_as_user);
  event* signals[] = {evsignal_new(rt.base.get(), SIGTERM, on_signal, &rt), evsignal_new(rt.base.get(), SIGINT, on_signal, &rt),
                      evsignal_new(rt.base.get(), SIGHUP, on_signal, &rt)};
  for (event* e : signals) evsignal_add(e, nullptr);
  rt.drain_timer = evtimer_new(rt.base.get(), on_drain_tick, &rt);
  for (auto& w : rt.workers) w->start();
  logger("proxy")->info("basalt-proxy ready: {} workers", config->workers);
  event_base_dispatch(rt.base.get());
  for (auto& w : rt.workers) w->join();
  pool.reset();  // its tasks post to the workers: finish them while the workers still exist
  rt.workers.clear();
  for (event* e : signals) event_free(e);
  event_free(rt.drain_timer);
  for (const auto& s : sockets) close(s.fd);
  logger("proxy")->info("basalt-proxy stopped");
  return 0;
}

}  // namespace
}  // namespace basalt::proxy

int main(int argc, char** argv) {
  CLI::App app{"basalt-proxy: IMAP/POP3 reverse proxy with LDAP authentication and shard routing"};
  std::string config_path = "/etc/basalt/proxy.toml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_flag("--check", check_only, "validate the configuration and exit");
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  evthread_use_pthreads();
  // Session lines are written in batches (one write(2) per 100 ms instead of two per login);
  // warnings at once, and everything left when run() returns (SIGTERM, errors) or on throw.
  basalt::BufferedLogging batched_logs(std::chrono::milliseconds(100));
  try {
    return basalt::proxy::run(config_path, check_only);
  } catch (const std::exception& e) {
    std::cerr << "basalt-proxy: " << e.what() << "\n";
    return 1;
  }
}
