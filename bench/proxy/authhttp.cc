// The smallest fast auth_http service for nginx's mail proxy, for bench/proxy/run.py.
//
// nginx sends one HTTP/1.0 request per login (Auth-User, Auth-Pass URL-encoded,
// Auth-Protocol). Each of --threads threads accept()s on the shared socket and answers with
// two persistent LDAP connections of its own, like basalt-proxy does: a search (as the
// service account) for the user's entry by filter -> DN, mailHost, mailUserStatus; then a
// simple bind as that DN with the password on the bind connection. On success the reply
// routes nginx to the shard (Auth-Server = the mailHost IP, Auth-Port by protocol) and has it
// log in there as "user*master" with the master password (Dovecot master user login).
//
// Build: g++ -O2 -std=c++20 authhttp.cc -o authhttp -lldap -llber -lpthread
#include <arpa/inet.h>
#include <ldap.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string listen = "127.0.0.1", ldap_uri, bind_dn, bind_pw, base, master_user, master_pw;
  int port = 0, threads = 4, imap_port = 143, pop3_port = 110;
} opt;

std::string url_decode(const std::string& s) {
  std::string o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      o += char(strtol(s.substr(i + 1, 2).c_str(), nullptr, 16));
      i += 2;
    } else if (s[i] == '+') {
      o += ' ';
    } else {
      o += s[i];
    }
  }
  return o;
}

std::string filter_escape(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c == 0) {
      char b[4];
      snprintf(b, sizeof b, "\\%02x", c);
      o += b;
    } else {
      o += char(c);
    }
  }
  return o;
}

LDAP* ldap_open_bound(const std::string& dn, const std::string& pw) {
  LDAP* ld = nullptr;
  if (ldap_initialize(&ld, opt.ldap_uri.c_str()) != LDAP_SUCCESS) return nullptr;
  int v3 = LDAP_VERSION3;
  ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
  ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
  if (!dn.empty()) {
    berval cred{pw.size(), const_cast<char*>(pw.data())};
    if (ldap_sasl_bind_s(ld, dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr) != LDAP_SUCCESS) {
      ldap_unbind_ext_s(ld, nullptr, nullptr);
      return nullptr;
    }
  }
  return ld;
}

struct Worker {
  LDAP* search = nullptr;
  LDAP* bind = nullptr;

  enum Result { Ok, Invalid, TempFail };

  // search: DN, mailHost, mailUserStatus of the user
  Result lookup(const std::string& user, std::string* dn, std::string* host, std::string* status, bool retry = true) {
    if (!search) search = ldap_open_bound(opt.bind_dn, opt.bind_pw);
    if (!search) return TempFail;
    std::string filter = "(&(objectClass=inetOrgPerson)(uid=" + filter_escape(user) + "))";
    char* attrs[] = {const_cast<char*>("mailHost"), const_cast<char*>("mailUserStatus"), nullptr};
    timeval tv{3, 0};
    LDAPMessage* res = nullptr;
    int rc = ldap_search_ext_s(search, opt.base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(), attrs, 0,
                               nullptr, nullptr, &tv, 2, &res);
    if (rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT || rc == LDAP_CONNECT_ERROR) {
      if (res) ldap_msgfree(res);
      ldap_unbind_ext_s(search, nullptr, nullptr);
      search = nullptr;
      return retry ? lookup(user, dn, host, status, false) : TempFail;
    }
    if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) { if (res) ldap_msgfree(res); return TempFail; }
    if (ldap_count_entries(search, res) != 1) { ldap_msgfree(res); return Invalid; }
    LDAPMessage* e = ldap_first_entry(search, res);
    char* d = ldap_get_dn(search, e);
    *dn = d ? d : "";
    if (d) ldap_memfree(d);
    auto first = [&](const char* a) -> std::string {
      berval** v = ldap_get_values_len(search, e, a);
      std::string s;
      if (v && v[0]) s.assign(v[0]->bv_val, v[0]->bv_len);
      if (v) ldap_value_free_len(v);
      return s;
    };
    *host = first("mailHost");
    *status = first("mailUserStatus");
    ldap_msgfree(res);
    return Ok;
  }

  Result verify(const std::string& dn, const std::string& pw, bool retry = true) {
    if (pw.empty()) return Invalid;  // an empty password would be an anonymous bind
    if (!bind) bind = ldap_open_bound("", "");
    if (!bind) return TempFail;
    berval cred{pw.size(), const_cast<char*>(pw.data())};
    int rc = ldap_sasl_bind_s(bind, dn.c_str(), LDAP_SASL_SIMPLE, &cred, nullptr, nullptr, nullptr);
    if (rc == LDAP_SUCCESS) return Ok;
    if (rc == LDAP_INVALID_CREDENTIALS) return Invalid;
    ldap_unbind_ext_s(bind, nullptr, nullptr);
    bind = nullptr;
    return retry ? verify(dn, pw, false) : TempFail;
  }

  std::string answer(const std::string& request) {
    std::string user, pass, proto;
    size_t pos = request.find("\r\n");
    while (pos != std::string::npos && pos + 2 < request.size()) {
      size_t e = request.find("\r\n", pos + 2);
      if (e == std::string::npos || e == pos + 2) break;
      std::string line = request.substr(pos + 2, e - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        std::string value = line.substr(v);
        if (strcasecmp(name.c_str(), "Auth-User") == 0) user = url_decode(value);
        else if (strcasecmp(name.c_str(), "Auth-Pass") == 0) pass = url_decode(value);
        else if (strcasecmp(name.c_str(), "Auth-Protocol") == 0) proto = value;
      }
      pos = e;
    }
    std::string dn, host, status;
    Result r = user.empty() || user.size() > 256 ? Invalid : lookup(user, &dn, &host, &status);
    if (r == Ok) r = verify(dn, pass);
    if (r == Ok && !status.empty() && status != "active") r = TempFail;
    if (r == Ok && host.empty()) r = TempFail;
    if (r == Invalid)
      return "HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\nAuth-Wait: 1\r\n\r\n";
    if (r == TempFail)
      return "HTTP/1.0 200 OK\r\nAuth-Status: Temporary server problem, try again later\r\n"
             "Auth-Error-Code: 451 4.3.0\r\nAuth-Wait: 1\r\n\r\n";
    int port = proto == "pop3" ? opt.pop3_port : opt.imap_port;
    return "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: " + host + "\r\nAuth-Port: " +
           std::to_string(port) + "\r\nAuth-User: " + user + "*" + opt.master_user +
           "\r\nAuth-Pass: " + opt.master_pw + "\r\n\r\n";
  }

  void run(int lfd) {
    search = ldap_open_bound(opt.bind_dn, opt.bind_pw);
    bind = ldap_open_bound("", "");
    std::string req;
    char buf[4096];
    for (;;) {
      int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) { if (errno == EINTR) continue; perror("accept"); continue; }
      req.clear();
      bool complete = false;
      while (req.size() < 65536) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, size_t(n));
        if (req.find("\r\n\r\n") != std::string::npos) { complete = true; break; }
      }
      if (complete) {
        std::string out = answer(req);
        size_t off = 0;
        while (off < out.size()) {
          ssize_t n = send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
          if (n <= 0) break;
          off += size_t(n);
        }
      }
      close(fd);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) { fprintf(stderr, "missing value for %s\n", a.c_str()); exit(2); }
      return argv[++i];
    };
    if (a == "--listen") opt.listen = val();
    else if (a == "--port") opt.port = atoi(val().c_str());
    else if (a == "--threads") opt.threads = atoi(val().c_str());
    else if (a == "--ldap-uri") opt.ldap_uri = val();
    else if (a == "--bind-dn") opt.bind_dn = val();
    else if (a == "--bind-password") opt.bind_pw = val();
    else if (a == "--base") opt.base = val();
    else if (a == "--master-user") opt.master_user = val();
    else if (a == "--master-password") opt.master_pw = val();
    else if (a == "--imap-port") opt.imap_port = atoi(val().c_str());
    else if (a == "--pop3-port") opt.pop3_port = atoi(val().c_str());
    else { fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(uint16_t(opt.port));
  inet_pton(AF_INET, opt.listen.c_str(), &sa.sin_addr);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(lfd, 1024) != 0) {
    perror("bind/listen");
    return 1;
  }
  std::vector<std::thread> threads;
  std::vector<Worker> workers(size_t(std::max(1, opt.threads)));
  for (auto& w : workers) threads.emplace_back([&w, lfd] { w.run(lfd); });
  for (auto& t : threads) t.join();
}
