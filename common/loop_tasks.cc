#include "common/loop_tasks.h"

#include <event2/event.h>

namespace basalt {

LoopTasks::LoopTasks(event_base* base) : ready_(event_new(base, -1, 0, on_ready, this)) {}

LoopTasks::~LoopTasks() {
  if (ready_) event_free(ready_);
}

void LoopTasks::post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(task));
  }
  event_active(ready_, EV_TIMEOUT, 0);
}

void LoopTasks::on_ready(int, short, void* self) {
  auto* tasks = static_cast<LoopTasks*>(self);
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lock(tasks->mu_);
    batch.swap(tasks->queue_);
  }
  for (auto& task : batch) task();
}

}  // namespace basalt
