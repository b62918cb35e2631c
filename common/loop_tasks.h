// Runs functions on an event loop, posted from any thread. Other threads never touch a loop's
// objects directly; they post a task and the loop runs it (STYLE: "threads only post to the loop").
#pragma once

#include <functional>
#include <mutex>
#include <vector>

struct event_base;
struct event;

namespace basalt {

class LoopTasks {
 public:
  explicit LoopTasks(event_base* base);  // needs evthread_use_pthreads() before the base was made
  ~LoopTasks();
  LoopTasks(const LoopTasks&) = delete;
  LoopTasks& operator=(const LoopTasks&) = delete;

  void post(std::function<void()> task);

 private:
  static void on_ready(int, short, void* self);

  std::mutex mu_;
  std::vector<std::function<void()>> queue_;
  event* ready_ = nullptr;
};

}  // namespace basalt
