// Delivers authentication results from the event loop, never from inside the call that
// produced them, and never after the owner is destroyed.
#pragma once

#include <event2/event.h>

#include <deque>
#include <memory>
#include <utility>

#include "common/handles.h"
#include "directory/directory.h"

namespace basalt::directory {

class CompletionQueue {
 public:
  explicit CompletionQueue(event_base* base);
  ~CompletionQueue();
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  // Queues `done(result)` to run from the loop (in posting order).
  void post(AuthCallback done, AuthResult result);
  size_t size() const { return items_.size(); }

 private:
  static void on_event(evutil_socket_t, short, void* arg);
  void run();

  std::deque<std::pair<AuthCallback, AuthResult>> items_;
  CHandle<event, event_free> event_;
  // Callbacks may destroy the owner (and this queue); run() checks this after each one.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace basalt::directory
