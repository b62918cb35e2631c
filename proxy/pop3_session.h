// POP3 front door: the AUTHORIZATION state (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH) and the
// login to the user's shard.
#pragma once

#include <string>

#include "common/imap_parser.h"
#include "common/pop3_parser.h"
#include "proxy/sasl_exchange.h"
#include "proxy/session.h"

namespace basalt::proxy {

class Pop3Session final : public Session {
 public:
  Pop3Session(Worker& worker, uint64_t id, Protocol protocol, evutil_socket_t fd, const SocketAddress& peer,
              const SocketAddress& local);

 private:
  enum class BackendStep { kGreeting, kXclient, kAuth };

  void send_greeting() override;
  void send_bye(const std::string& text) override;
  void on_client_input(evbuffer* input) override;
  void send_login_failure(LoginFailure failure, const std::string& detail) override;
  const char* protocol_name() const override { return "pop3"; }

  void handle_command(pop3::Command command, evbuffer* input);
  void bad_command(const std::string& text);
  void cmd_capa();
  void cmd_stls(evbuffer* input);
  void cmd_user(pop3::Command& command);
  void cmd_pass(pop3::Command& command);
  void cmd_auth(pop3::Command& command);
  void on_sasl_step(SaslExchange::Step step);

  void on_backend_connected() override;
  void on_backend_input(evbuffer* input) override;
  void send_login_ok() override;
  bool on_backend_line(const std::string& line);
  void send_backend_auth(std::string commands);

  pop3::CommandParser parser_;
  imap::LineReader sasl_reader_;
  SaslExchange sasl_;
  std::string pending_user_;  // from USER
  BackendStep step_ = BackendStep::kGreeting;
};

}  // namespace basalt::proxy
