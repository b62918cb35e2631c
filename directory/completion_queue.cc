#include "directory/completion_queue.h"

#include <cassert>

namespace basalt::directory {

CompletionQueue::CompletionQueue(event_base* base)
    : event_(event_new(base, -1, 0, &CompletionQueue::on_event, this)) {
  assert(event_);
}

CompletionQueue::~CompletionQueue() { *alive_ = false; }

void CompletionQueue::post(AuthCallback done, AuthResult result) {
  items_.emplace_back(std::move(done), std::move(result));
  // An active event runs on the next loop iteration; activating twice is harmless.
  event_active(event_.get(), EV_TIMEOUT, 0);
}

void CompletionQueue::on_event(evutil_socket_t, short, void* arg) {
  static_cast<CompletionQueue*>(arg)->run();
}

void CompletionQueue::run() {
  auto alive = alive_;
  // Only the items present now: results posted by these callbacks wait for the next round,
  // so a callback that keeps re-posting cannot starve the loop.
  for (size_t n = items_.size(); n > 0 && !items_.empty(); --n) {
    auto [done, result] = std::move(items_.front());
    items_.pop_front();
    if (done) done(std::move(result));
    if (!*alive) return;  // the owner was destroyed by the callback: touch nothing
  }
}

}  // namespace basalt::directory
