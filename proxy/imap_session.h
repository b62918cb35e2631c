// IMAP front door: the pre-auth dialogue (RFC 3501, SASL-IR, LITERAL+, ID, STARTTLS) and the
// login to the user's shard.
#pragma once

#include <string>

#include "common/imap_parser.h"
#include "proxy/sasl_exchange.h"
#include "proxy/session.h"

namespace basalt::proxy {

class ImapSession final : public Session {
 public:
  ImapSession(Worker& worker, uint64_t id, Protocol protocol, evutil_socket_t fd, const SocketAddress& peer,
              const SocketAddress& local);

 private:
  enum class BackendStep { kGreeting, kCapability, kAuthenticate, kPostCapability };

  // ---- pre-auth (imap_session.cc)
  void send_greeting() override;
  void send_bye(const std::string& text) override;
  void on_client_input(evbuffer* input) override;
  void send_login_failure(LoginFailure failure, const std::string& detail) override;
  const char* protocol_name() const override { return "imap"; }

  std::string capabilities() const;
  void handle_command(imap::Command command, evbuffer* input);
  void handle_parse_error(const imap::ParseError& error);
  void bad_command(const std::string& tag, const std::string& text);
  void cmd_id(const imap::Command& command);
  void cmd_starttls(const imap::Command& command, evbuffer* input);
  void cmd_login(imap::Command& command);
  void cmd_authenticate(imap::Command& command);
  void on_sasl_step(SaslExchange::Step step);

  // ---- backend login (imap_backend.cc)
  void on_backend_connected() override;
  void on_backend_input(evbuffer* input) override;
  void send_login_ok() override;
  bool on_backend_response(const std::string& response);
  void send_backend_login();
  void finish_backend_login();
  std::string id_command() const;
  std::string plain_login_payload() const;  // base64 SASL PLAIN for the shard (master or passthrough)

  imap::CommandParser parser_;
  imap::LineReader sasl_reader_;
  SaslExchange sasl_;
  std::string tag_;  // tag of the login command in progress
  BackendStep step_ = BackendStep::kGreeting;
  std::string backend_capabilities_;
  std::string post_login_capabilities_;
};

}  // namespace basalt::proxy
