#include "proxy/sasl_exchange.h"

#include <strings.h>

#include <optional>

#include "common/sasl.h"

namespace basalt::proxy {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

SaslExchange::~SaslExchange() {
  sasl::wipe(user_);
  sasl::wipe(secret_);
}

const char* SaslExchange::error_text(Step step) {
  switch (step) {
    case Step::kCanceled: return "Authentication canceled.";
    case Step::kBadBase64: return "Invalid base64 data in SASL response.";
    case Step::kMalformed: return "Malformed PLAIN response.";
    case Step::kChallenge:
    case Step::kDone:
    case Step::kAuthzRefused: return "";
  }
  return "";
}

void SaslExchange::cancel() {
  state_ = State::kIdle;
  sasl::wipe(user_);
  sasl::wipe(secret_);
}

bool SaslExchange::supports(std::string_view mechanism) {
  return iequals(mechanism, "PLAIN") || iequals(mechanism, "LOGIN");
}

const char* SaslExchange::challenge() const {
  switch (state_) {
    case State::kLoginUser: return "VXNlcm5hbWU6";      // "Username:"
    case State::kLoginPassword: return "UGFzc3dvcmQ6";  // "Password:"
    case State::kIdle:
    case State::kPlain: return "";
  }
  return "";
}

SaslExchange::Step SaslExchange::start(std::string_view mechanism, std::string* initial) {
  state_ = iequals(mechanism, "PLAIN") ? State::kPlain : State::kLoginUser;
  if (!initial) return Step::kChallenge;
  return respond(*initial);
}

SaslExchange::Step SaslExchange::respond(std::string& line) {
  State state = state_;
  state_ = State::kIdle;
  if (line == "*") return Step::kCanceled;
  auto decoded = line == "=" ? std::optional<std::string>("") : sasl::base64_decode(line);
  sasl::wipe(line);
  if (!decoded) return Step::kBadBase64;
  switch (state) {
    case State::kPlain: {
      Step step = finish_plain(*decoded);
      sasl::wipe(*decoded);
      return step;
    }
    case State::kLoginUser:
      user_ = std::move(*decoded);
      state_ = State::kLoginPassword;
      return Step::kChallenge;
    case State::kLoginPassword:
      secret_ = std::move(*decoded);
      return Step::kDone;
    case State::kIdle:
      break;
  }
  return Step::kCanceled;
}

SaslExchange::Step SaslExchange::finish_plain(const std::string& message) {
  auto credentials = sasl::decode_plain(message);
  if (!credentials) return Step::kMalformed;
  if (!credentials->authzid.empty() && credentials->authzid != credentials->authcid) {
    sasl::wipe(credentials->password);
    return Step::kAuthzRefused;
  }
  user_ = std::move(credentials->authcid);
  secret_ = std::move(credentials->password);
  return Step::kDone;
}

}  // namespace basalt::proxy
