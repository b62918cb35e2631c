// ImapSession: logging in to the user's shard, then handing over to the relay.
#include <event2/buffer.h>
#include <strings.h>

#include "common/sasl.h"
#include "proxy/imap_session.h"
#include "proxy/reply_reader.h"
#include "proxy/worker.h"

namespace basalt::proxy {
namespace {

constexpr size_t kMaxBackendResponse = 64 * 1024;

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && strncasecmp(text.data(), prefix.data(), prefix.size()) == 0;
}

// "TAG OK text" → "OK", with the rest in `text`.
std::string_view status_of(std::string_view response, std::string_view tag, std::string_view& text) {
  if (response.size() <= tag.size() + 1 || response.substr(0, tag.size()) != tag || response[tag.size()] != ' ') {
    return {};
  }
  std::string_view rest = response.substr(tag.size() + 1);
  size_t space = rest.find(' ');
  text = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
  return rest.substr(0, space);
}

}  // namespace

void ImapSession::on_backend_connected() { step_ = BackendStep::kGreeting; }

void ImapSession::on_backend_input(evbuffer* input) {
  std::string response;
  while (logging_in_from(input)) {
    ReadStatus status = read_imap_response(input, kMaxBackendResponse, response);
    if (status == ReadStatus::kNeedMore) return;
    if (status == ReadStatus::kTooLong) {
      backend_login_failed(LoginFailure::kBackendRejected, "shard " + shard_->name + " sent an overlong response");
      return;
    }
    if (!on_backend_response(response)) return;
  }
}

// Returns false once the login is decided (success or failure).
bool ImapSession::on_backend_response(const std::string& response) {
  std::string_view text;
  auto fail = [this](const std::string& why) {
    backend_login_failed(LoginFailure::kBackendRejected, "shard " + shard_->name + ": " + why);
    return false;
  };
  if (starts_with_nocase(response, "* CAPABILITY ")) {
    (step_ == BackendStep::kAuthenticate || step_ == BackendStep::kPostCapability ? post_login_capabilities_
                                                                                     : backend_capabilities_) =
        response.substr(13);
    return true;
  }
  switch (step_) {
    case BackendStep::kGreeting:
      if (!starts_with_nocase(response, "* OK")) return fail("unexpected greeting");
      backend_capabilities_ = capability_code(response.size() > 5 ? std::string_view(response).substr(5) : "");
      if (backend_capabilities_.empty()) {
        step_ = BackendStep::kCapability;
        send_to_backend("C CAPABILITY\r\n");
      } else {
        send_backend_login();
      }
      return true;
    case BackendStep::kCapability: {
      std::string_view status = status_of(response, "C", text);
      if (status.empty()) return true;
      if (status != "OK") return fail("CAPABILITY failed");
      send_backend_login();
      return true;
    }
    case BackendStep::kAuthenticate: {
      if (response.starts_with("+")) {  // a shard without SASL-IR asks for the response now
        std::string line = plain_login_payload() + "\r\n";
        send_to_backend(line);
        sasl::wipe(line);
        return true;
      }
      std::string_view status = status_of(response, "L", text);
      if (status.empty()) return true;  // ID reply, untagged data
      if (status != "OK") return fail("login refused: " + std::string(text.substr(0, 200)));
      post_login_capabilities_ = capability_code(text);
      if (!post_login_capabilities_.empty()) {
        finish_backend_login();
        return false;
      }
      step_ = BackendStep::kPostCapability;
      send_to_backend("P CAPABILITY\r\n");
      return true;
    }
    case BackendStep::kPostCapability: {
      std::string_view status = status_of(response, "P", text);
      if (status.empty()) return true;
      finish_backend_login();
      return false;
    }
  }
  return true;
}

std::string ImapSession::id_command() const {
  std::string local_ip = local_.host();
  return "I ID (\"x-originating-ip\" \"" + origin_.ip + "\" \"x-originating-port\" \"" +
         std::to_string(origin_.port) + "\" \"x-connected-ip\" \"" + local_ip + "\" \"x-connected-port\" \"" +
         std::to_string(local_.port()) + "\" \"x-session-ext-id\" \"basalt-" + std::to_string(worker_.index()) + "-" +
         std::to_string(id()) + "\" \"x-proxy-ttl\" \"" + std::to_string(origin_.proxy_ttl) + "\")\r\n";
}

void ImapSession::send_backend_login() {
  step_ = BackendStep::kAuthenticate;
  if (!has_capability(backend_capabilities_, "AUTH=PLAIN")) {
    backend_login_failed(LoginFailure::kBackendRejected, "shard " + shard_->name + " does not offer AUTH=PLAIN");
    return;
  }
  std::string commands = has_capability(backend_capabilities_, "ID") ? id_command() : std::string();
  std::string payload = has_capability(backend_capabilities_, "SASL-IR") ? " " + plain_login_payload() : "";
  commands += "L AUTHENTICATE PLAIN" + payload + "\r\n";
  // One write, so the whole login reaches the shard in one segment (TCP_NODELAY is on).
  send_to_backend(commands);
  sasl::wipe(commands);
  sasl::wipe(payload);
}

std::string ImapSession::plain_login_payload() const {
  return shard_->login == ShardLogin::kMaster ? sasl::encode_plain(login_user(), shard_->master_user, shard_->master_password)
                                              : sasl::encode_plain("", user_, secret_);
}

void ImapSession::finish_backend_login() { backend_login_succeeded(); }

void ImapSession::send_login_ok() { send(tag_ + " OK [CAPABILITY " + post_login_capabilities_ + "] Logged in\r\n"); }

}  // namespace basalt::proxy
