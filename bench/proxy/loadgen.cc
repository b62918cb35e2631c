// Load generator for bench/proxy/run.py: IMAP/POP3 logins, idle sessions, big FETCHes.
// One thread, epoll, non-blocking sockets, optional TLS (OpenSSL). Prints one JSON line.
//
//   loadgen login --host H --port P --users FILE [--proto imap|pop3] [--concurrency C]
//                 [--duration S | --count N] [--offset K] [--sources 127.0.0.10,127.0.0.11]
//       C clients in a loop of: connect, greeting, LOGIN, SELECT INBOX, LOGOUT, wait for the
//       server to close (POP3: USER, PASS, STAT, QUIT). Latency = connect .. tagged LOGOUT OK.
//   loadgen idle  --host H --port P --users FILE --count N [--concurrency C] [--tls]
//       opens N sessions and logs each in (LOGIN only), prints {"ready":...} and holds them
//       until a line (or EOF) arrives on stdin, then closes them and prints {"closed":...}.
//   loadgen fetch --host H --port P --user U --password W [--streams S] [--fetches K]
//       S sessions log in and SELECT INBOX; then each runs K x "FETCH 1 BODY.PEEK[]".
//
// Build: g++ -O2 -std=c++20 loadgen.cc -o loadgen -lssl -lcrypto
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

struct Options {
  std::string mode, host = "127.0.0.1", proto = "imap", users_file, user, password;
  int port = 0, concurrency = 50, count = 0, offset = 0, streams = 1, fetches = 1;
  double duration = 0, timeout = 15;
  bool tls = false, per_user_host = false;
  std::vector<std::string> sources;
};

enum class Step {
  Connecting, Handshake, Greeting, Login, Select, Logout, WaitClose,  // imap
  PUser, PPass, PStat, PQuit,                                          // pop3
  Held, FetchReady, Fetching, Done
};

struct Conn {
  int fd = -1;
  SSL* ssl = nullptr;
  Step step = Step::Connecting;
  std::string in, out;
  double t_start = 0, t_deadline = 0;
  size_t user = 0;
  int64_t literal_left = 0;  // bytes of a literal still to skip (fetch)
  int fetches_left = 0;
  bool want_write = false;
  int id = 0;
};

struct Stats {
  long ok = 0, errors = 0, started = 0;
  std::vector<double> lat_ms;
  std::vector<std::string> samples;
  std::map<std::string, long> kinds;
  int64_t bytes = 0;
  void error(const std::string& kind, const std::string& what) {
    ++errors;
    ++kinds[kind];
    if (samples.size() < 5) samples.push_back(kind + ": " + what);
  }
};

Options opt;
Stats st;
std::vector<std::pair<std::string, std::string>> users;
std::vector<in_addr> user_hosts;  // --per-user-host: third column of the users file
int ep = -1;
SSL_CTX* ctx = nullptr;
std::vector<Conn*> conns;  // by id
long live = 0;
long held_count = 0;
size_t next_user = 0;
size_t next_source = 0;
std::vector<sockaddr_in> source_addrs;

std::string json_escape(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') { o += '\\'; o += char(c); }
    else if (c < 0x20) { char b[8]; snprintf(b, sizeof b, "\\u%04x", c); o += b; }
    else o += char(c);
  }
  return o;
}

std::string quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) { if (c == '"' || c == '\\') o += '\\'; o += c; }
  return o + "\"";
}

void update_events(Conn* c) {
  epoll_event ev{};
  ev.events = EPOLLIN | ((c->want_write || !c->out.empty() || c->step == Step::Connecting) ? uint32_t(EPOLLOUT) : 0u);
  ev.data.u32 = c->id;
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

void close_conn(Conn* c) {
  if (c->ssl) { SSL_free(c->ssl); c->ssl = nullptr; }
  if (c->fd >= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, nullptr); close(c->fd); c->fd = -1; }
  if (c->step == Step::Held) --held_count;
  c->step = Step::Done;
  --live;
}

void fail(Conn* c, const std::string& kind, const std::string& what) {
  st.error(kind, what);
  close_conn(c);
}

// Returns false when the connection failed (and was closed).
bool flush(Conn* c) {
  while (!c->out.empty()) {
    ssize_t n;
    if (c->ssl) {
      n = SSL_write(c->ssl, c->out.data(), int(c->out.size()));
      if (n <= 0) {
        int e = SSL_get_error(c->ssl, int(n));
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) { c->want_write = true; update_events(c); return true; }
        fail(c, "write", "SSL_write failed");
        return false;
      }
    } else {
      n = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) { c->want_write = true; update_events(c); return true; }
        fail(c, "write", strerror(errno));
        return false;
      }
    }
    c->out.erase(0, size_t(n));
  }
  if (c->want_write) { c->want_write = false; update_events(c); }
  return true;
}

bool send_line(Conn* c, const std::string& line) {
  c->out += line;
  c->out += "\r\n";
  return flush(c);
}

bool start_conn(Conn* c);

const auto& cur_user(Conn* c) { return users[c->user % users.size()]; }

bool after_connect(Conn* c) {
  if (opt.tls) {
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_connect_state(c->ssl);
    c->step = Step::Handshake;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) { c->step = Step::Greeting; return true; }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      c->want_write = (e == SSL_ERROR_WANT_WRITE);
      update_events(c);
      return true;
    }
    fail(c, "tls", "handshake failed");
    return false;
  }
  c->step = Step::Greeting;
  update_events(c);
  return true;
}

bool tagged(const std::string& line, const char* tag, bool* ok) {
  size_t n = strlen(tag);
  if (line.size() < n + 1 || line.compare(0, n, tag) != 0 || line[n] != ' ') return false;
  *ok = line.compare(n + 1, 2, "OK") == 0;
  return true;
}

// One operation done: its latency runs from c->t_start.
void count_ok(Conn* c) {
  ++st.ok;
  st.lat_ms.push_back((now_s() - c->t_start) * 1000);
}

// Logged in, in idle mode: the session is held open (and the login counted).
bool hold(Conn* c) {
  c->step = Step::Held;
  ++held_count;
  count_ok(c);
  return true;
}

// Logged out: the server is given 2 s to close the connection.
bool wait_close(Conn* c) {
  c->step = Step::WaitClose;
  c->t_deadline = now_s() + 2;
  return true;
}

// One complete line (without CRLF) in the current step. Returns false if c was closed.
bool on_line(Conn* c, const std::string& line) {
  bool ok = false;
  const bool imap = opt.proto == "imap";
  switch (c->step) {
    case Step::Greeting:
      if (imap) {
        if (line.rfind("* OK", 0) != 0) { fail(c, "greeting", line); return false; }
        const auto& u = cur_user(c);
        c->step = Step::Login;
        return send_line(c, "a1 LOGIN " + quote(u.first) + " " + quote(u.second));
      } else {
        if (line.rfind("+OK", 0) != 0) { fail(c, "greeting", line); return false; }
        c->step = Step::PUser;
        return send_line(c, "USER " + cur_user(c).first);
      }
    case Step::Login:
      if (!tagged(line, "a1", &ok)) return true;
      if (!ok) { fail(c, "login", line); return false; }
      if (opt.mode == "idle") return hold(c);
      c->step = Step::Select;
      return send_line(c, "a2 SELECT INBOX");
    case Step::Select:
      if (!tagged(line, "a2", &ok)) return true;
      if (!ok) { fail(c, "select", line); return false; }
      if (opt.mode == "fetch") { c->step = Step::FetchReady; return true; }
      c->step = Step::Logout;
      return send_line(c, "a3 LOGOUT");
    case Step::Logout:
      if (!tagged(line, "a3", &ok)) return true;
      if (!ok) { fail(c, "logout", line); return false; }
      if (opt.mode != "fetch") count_ok(c);
      return wait_close(c);
    case Step::PUser:
      if (line.rfind("+OK", 0) != 0) { fail(c, "login", line); return false; }
      c->step = Step::PPass;
      return send_line(c, "PASS " + cur_user(c).second);
    case Step::PPass:
      if (line.rfind("+OK", 0) != 0) { fail(c, "login", line); return false; }
      if (opt.mode == "idle") return hold(c);
      c->step = Step::PStat;
      return send_line(c, "STAT");
    case Step::PStat:
      if (line.rfind("+OK", 0) != 0) { fail(c, "stat", line); return false; }
      c->step = Step::PQuit;
      return send_line(c, "QUIT");
    case Step::PQuit:
      if (line.rfind("+OK", 0) != 0) { fail(c, "quit", line); return false; }
      count_ok(c);
      return wait_close(c);
    case Step::Fetching: {
      // "* 1 FETCH (BODY[] {N}" then N bytes, then ")" and "fN OK"
      if (line.size() > 2 && line.back() == '}') {
        size_t b = line.rfind('{');
        if (b != std::string::npos) { c->literal_left = strtoll(line.c_str() + b + 1, nullptr, 10); st.bytes += c->literal_left; }
        return true;
      }
      if (line.rfind("f ", 0) == 0) {
        if (line.compare(2, 2, "OK") != 0) { fail(c, "fetch", line); return false; }
        count_ok(c);
        if (--c->fetches_left > 0) {
          c->t_start = now_s();
          return send_line(c, "f FETCH 1 BODY.PEEK[]");
        }
        c->step = Step::Logout;
        return send_line(c, "a3 LOGOUT");
      }
      return true;
    }
    case Step::Held:
    case Step::FetchReady:
    case Step::WaitClose:
      return true;
    default:
      fail(c, "protocol", "unexpected line: " + line);
      return false;
  }
}

bool process_input(Conn* c) {
  size_t pos = 0;
  while (c->step != Step::Done) {
    if (c->literal_left > 0) {
      size_t take = size_t(std::min<int64_t>(c->literal_left, int64_t(c->in.size() - pos)));
      c->literal_left -= int64_t(take);
      pos += take;
      if (c->literal_left > 0) break;
      continue;
    }
    size_t e = c->in.find("\r\n", pos);
    if (e == std::string::npos) break;
    std::string line = c->in.substr(pos, e - pos);
    pos = e + 2;
    if (!on_line(c, line)) return false;
  }
  if (c->step != Step::Done) c->in.erase(0, pos);
  return c->step != Step::Done;
}

char rbuf[1 << 20];

void on_readable(Conn* c) {
  for (;;) {
    ssize_t n;
    if (c->ssl) {
      n = SSL_read(c->ssl, rbuf, sizeof rbuf);
      if (n <= 0) {
        int e = SSL_get_error(c->ssl, int(n));
        if (e == SSL_ERROR_WANT_READ) return;
        if (e == SSL_ERROR_WANT_WRITE) { c->want_write = true; update_events(c); return; }
        n = 0;  // closed
      }
    } else {
      n = recv(c->fd, rbuf, sizeof rbuf, 0);
      if (n < 0) {
        if (errno == EAGAIN) return;
        if (c->step == Step::WaitClose) { close_conn(c); return; }
        fail(c, "read", strerror(errno));
        return;
      }
    }
    if (n == 0) {
      if (c->step == Step::WaitClose) { close_conn(c); return; }
      fail(c, "eof", "connection closed by server");
      return;
    }
    // fast path for big literals: skip without copying
    size_t off = 0;
    if (c->literal_left > 0 && c->in.empty()) {
      size_t take = size_t(std::min<int64_t>(c->literal_left, n));
      c->literal_left -= int64_t(take);
      off = take;
    }
    if (off < size_t(n)) {
      c->in.append(rbuf + off, size_t(n) - off);
      if (!process_input(c)) return;
    }
  }
}

void on_event(Conn* c, uint32_t events) {
  if (c->step == Step::Done) return;
  if (c->step == Step::Connecting) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) { fail(c, "connect", strerror(err)); return; }
    if (!(events & (EPOLLOUT | EPOLLIN))) return;
    after_connect(c);
    return;
  }
  if (c->step == Step::Handshake) {
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) { c->step = Step::Greeting; c->want_write = false; update_events(c); }
    else {
      int e = SSL_get_error(c->ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        bool ww = e == SSL_ERROR_WANT_WRITE;
        if (ww != c->want_write) { c->want_write = ww; update_events(c); }
        return;
      }
      fail(c, "tls", "handshake failed");
      return;
    }
  }
  if ((events & EPOLLOUT) && c->want_write) {
    c->want_write = false;
    if (!flush(c)) return;
    update_events(c);
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c);
}

bool start_conn(Conn* c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) { st.error("socket", strerror(errno)); c->step = Step::Done; return false; }
  ++live;
  ++st.started;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!source_addrs.empty()) {
#ifdef IP_BIND_ADDRESS_NO_PORT
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    const sockaddr_in& src = source_addrs[next_source++ % source_addrs.size()];
    if (bind(c->fd, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
      fail(c, "bind", strerror(errno));
      return false;
    }
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(uint16_t(opt.port));
  if (opt.per_user_host && !user_hosts.empty()) dst.sin_addr = user_hosts[c->user % user_hosts.size()];
  else inet_pton(AF_INET, opt.host.c_str(), &dst.sin_addr);
  c->in.clear();
  c->out.clear();
  c->literal_left = 0;
  c->want_write = false;
  c->step = Step::Connecting;
  c->t_start = now_s();
  c->t_deadline = c->t_start + opt.timeout;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u32 = c->id;
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  int r = connect(c->fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  if (r != 0 && errno != EINPROGRESS) { fail(c, "connect", strerror(errno)); return false; }
  return true;
}

void check_timeouts(double t) {
  for (Conn* c : conns) {
    if (c->step == Step::Done || c->step == Step::Held || c->step == Step::FetchReady) continue;
    if (t > c->t_deadline) {
      if (c->step == Step::WaitClose) close_conn(c);
      else fail(c, "timeout", "no answer in time (step " + std::to_string(int(c->step)) + ")");
    }
  }
}

void loop_once(int timeout_ms) {
  static epoll_event evs[1024];
  int n = epoll_wait(ep, evs, 1024, timeout_ms);
  for (int i = 0; i < n; ++i) on_event(conns[evs[i].data.u32], evs[i].events);
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = size_t(p / 100.0 * double(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

std::string result_json(const std::string& extra, double elapsed) {
  std::ostringstream o;
  o.setf(std::ios::fixed);
  o.precision(4);
  o << "{\"ok\":" << st.ok << ",\"errors\":" << st.errors << ",\"started\":" << st.started
    << ",\"elapsed\":" << elapsed << ",\"p50_ms\":" << pct(st.lat_ms, 50)
    << ",\"p99_ms\":" << pct(st.lat_ms, 99) << ",\"mean_ms\":"
    << (st.lat_ms.empty() ? 0.0 : [&] { double s = 0; for (double x : st.lat_ms) s += x; return s / double(st.lat_ms.size()); }())
    << ",\"bytes\":" << st.bytes << ",\"error_kinds\":{";
  bool first = true;
  for (auto& [k, v] : st.kinds) { o << (first ? "" : ",") << "\"" << json_escape(k) << "\":" << v; first = false; }
  o << "},\"error_samples\":[";
  for (size_t i = 0; i < st.samples.size(); ++i) o << (i ? "," : "") << "\"" << json_escape(st.samples[i]) << "\"";
  o << "]" << extra << "}";
  return o.str();
}

int run_login() {
  int C = std::max(1, opt.concurrency);
  for (int i = 0; i < C; ++i) { auto* c = new Conn; c->id = i; c->step = Step::Done; conns.push_back(c); }
  double t0 = now_s();
  double end = opt.duration > 0 ? t0 + opt.duration : 1e300;
  long limit = opt.count > 0 ? opt.count : (opt.duration > 0 ? 1L << 60 : 1000);
  next_user = size_t(opt.offset);
  double last_check = t0;
  for (;;) {
    double t = now_s();
    bool may_start = t < end && st.started < limit;
    for (Conn* c : conns) {
      if (c->step == Step::Done && may_start && st.started < limit) {
        c->user = next_user++;
        start_conn(c);
      }
    }
    if (live == 0 && !(t < end && st.started < limit)) break;
    loop_once(5);
    if (t - last_check > 0.2) { check_timeouts(t); last_check = t; }
  }
  double elapsed = now_s() - t0;
  std::ostringstream extra;
  extra.setf(std::ios::fixed);
  extra.precision(2);
  extra << ",\"rate\":" << double(st.ok) / elapsed;
  printf("%s\n", result_json(extra.str(), elapsed).c_str());
  return 0;
}

int run_idle() {
  int N = opt.count;
  for (int i = 0; i < N; ++i) { auto* c = new Conn; c->id = i; c->step = Step::Done; conns.push_back(c); }
  int C = std::max(1, opt.concurrency);
  double t0 = now_s();
  int next = 0;
  long in_flight_done = 0;
  double last_check = t0;
  for (;;) {
    long busy = live - held_count;
    while (busy < C && next < N) {
      Conn* c = conns[size_t(next)];
      c->user = size_t(opt.offset + next);
      ++next;
      start_conn(c);
      ++busy;
    }
    if (next >= N && busy == 0) break;
    loop_once(5);
    double t = now_s();
    if (t - last_check > 0.2) { check_timeouts(t); last_check = t; }
    (void)in_flight_done;
  }
  double elapsed = now_s() - t0;
  long held = 0;
  for (Conn* c : conns) held += c->step == Step::Held;
  std::ostringstream extra;
  extra << ",\"ready\":" << held;
  printf("%s\n", result_json(extra.str(), elapsed).c_str());
  fflush(stdout);
  // hold until stdin says so; keep reading sockets so nothing queues up
  pollfd pin{0, POLLIN, 0};
  for (;;) {
    loop_once(0);
    if (poll(&pin, 1, 50) > 0) break;
  }
  long closed = 0, dropped = 0;
  for (Conn* c : conns) {
    if (c->step == Step::Held) { close_conn(c); ++closed; }
    else if (c->step != Step::Done) { close_conn(c); }
  }
  (void)dropped;
  printf("{\"closed\":%ld}\n", closed);
  return 0;
}

int run_fetch() {
  int S = std::max(1, opt.streams);
  users = {{opt.user, opt.password}};
  for (int i = 0; i < S; ++i) { auto* c = new Conn; c->id = i; c->user = 0; conns.push_back(c); start_conn(c); }
  double t0 = now_s();
  for (;;) {
    long ready = 0, done = 0;
    for (Conn* c : conns) { ready += c->step == Step::FetchReady; done += c->step == Step::Done; }
    if (done) { printf("%s\n", result_json(",\"setup_failed\":true", now_s() - t0).c_str()); return 1; }
    if (ready == S) break;
    loop_once(5);
    check_timeouts(now_s());
  }
  double t1 = now_s();
  for (Conn* c : conns) {
    c->fetches_left = opt.fetches;
    c->step = Step::Fetching;
    c->t_start = now_s();
    c->t_deadline = c->t_start + opt.timeout * opt.fetches;
    send_line(c, "f FETCH 1 BODY.PEEK[]");
  }
  double t_end = 0;
  for (;;) {
    long fetching = 0;
    for (Conn* c : conns) fetching += c->step == Step::Fetching;
    if (fetching == 0) { if (t_end == 0) t_end = now_s(); if (live == 0) break; }
    loop_once(5);
    check_timeouts(now_s());
  }
  double elapsed = t_end - t1;
  std::ostringstream extra;
  extra.setf(std::ios::fixed);
  extra.precision(2);
  extra << ",\"mb_per_s\":" << double(st.bytes) / 1e6 / elapsed;
  printf("%s\n", result_json(extra.str(), elapsed).c_str());
  return 0;
}

void usage() {
  fprintf(stderr, "usage: loadgen login|idle|fetch --host H --port P [--users FILE] ...\n");
  exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage();
  opt.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string { if (i + 1 >= argc) usage(); return argv[++i]; };
    if (a == "--host") opt.host = val();
    else if (a == "--port") opt.port = atoi(val().c_str());
    else if (a == "--proto") opt.proto = val();
    else if (a == "--users") opt.users_file = val();
    else if (a == "--user") opt.user = val();
    else if (a == "--password") opt.password = val();
    else if (a == "--concurrency") opt.concurrency = atoi(val().c_str());
    else if (a == "--count") opt.count = atoi(val().c_str());
    else if (a == "--offset") opt.offset = atoi(val().c_str());
    else if (a == "--duration") opt.duration = atof(val().c_str());
    else if (a == "--timeout") opt.timeout = atof(val().c_str());
    else if (a == "--streams") opt.streams = atoi(val().c_str());
    else if (a == "--fetches") opt.fetches = atoi(val().c_str());
    else if (a == "--tls") opt.tls = true;
    else if (a == "--per-user-host") opt.per_user_host = true;
    else if (a == "--sources") {
      std::string s = val();
      size_t p = 0;
      while (p <= s.size()) {
        size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        if (q > p) opt.sources.push_back(s.substr(p, q - p));
        p = q + 1;
      }
    } else usage();
  }
  signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  for (auto& s : opt.sources) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    if (inet_pton(AF_INET, s.c_str(), &a.sin_addr) != 1) usage();
    source_addrs.push_back(a);
  }
  if (!opt.users_file.empty()) {
    std::ifstream f(opt.users_file);
    std::string line;
    while (std::getline(f, line)) {
      std::istringstream ls(line);
      std::string u, p, h;
      if (!(ls >> u >> p)) continue;
      users.emplace_back(u, p);
      if (ls >> h) { in_addr a{}; inet_pton(AF_INET, h.c_str(), &a); user_hosts.push_back(a); }
    }
    if (opt.per_user_host && user_hosts.size() != users.size()) { fprintf(stderr, "users file lacks hosts\n"); return 2; }
  }
  if (opt.tls) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (opt.mode == "login") { if (users.empty()) usage(); return run_login(); }
  if (opt.mode == "idle") { if (users.empty() || opt.count <= 0) usage(); return run_idle(); }
  if (opt.mode == "fetch") { if (opt.user.empty()) usage(); return run_fetch(); }
  usage();
}
