// Helpers shared by the proxy (basalt_proxy) unit tests.
#pragma once

#include <chrono>
#include <functional>

namespace basalt::proxy::testing {

// A steady clock the test moves by hand: pass fn() where a component takes its Clock.
struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  std::function<std::chrono::steady_clock::time_point()> fn() {
    return [this] { return now; };
  }
};

}  // namespace basalt::proxy::testing
