// The server side of SASL PLAIN (RFC 4616) and LOGIN, shared by IMAP AUTHENTICATE and POP3 AUTH:
// the protocols differ only in how each step is framed on the wire.
#pragma once

#include <string>
#include <string_view>

namespace basalt::proxy {

class SaslExchange {
 public:
  enum class Step {
    kChallenge,      // send "+ " + challenge() and feed the client's next line to respond()
    kDone,           // take_user() / take_secret() hold the credentials
    kCanceled,       // the client answered "*"
    kBadBase64,      // a response was not valid base64
    kMalformed,      // PLAIN message without its NUL separators or user
    kAuthzRefused,   // PLAIN authzid names someone other than the authenticating user
  };

  ~SaslExchange();

  static bool supports(std::string_view mechanism);  // PLAIN, LOGIN (any case)

  // `initial`: the initial response (SASL-IR, POP3 AUTH's second argument), "=" for an empty one,
  // nullptr for none. Responses are wiped in the caller's buffer once decoded.
  Step start(std::string_view mechanism, std::string* initial);
  Step respond(std::string& line);

  // The client-facing text for kCanceled, kBadBase64 and kMalformed ("" for the others).
  static const char* error_text(Step step);

  bool active() const { return state_ != State::kIdle; }
  void cancel();
  const char* challenge() const;
  std::string take_user() { return std::move(user_); }
  std::string& secret() { return secret_; }  // Session::authenticate() copies and wipes it

 private:
  enum class State { kIdle, kPlain, kLoginUser, kLoginPassword };
  Step finish_plain(const std::string& message);

  State state_ = State::kIdle;
  std::string user_;
  std::string secret_;
};

}  // namespace basalt::proxy
