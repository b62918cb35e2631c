// unique_ptr aliases for C handles: one template, one line per handle type.
#pragma once

#include <memory>

struct event_base;
struct event;
struct bufferevent;
struct evconnlistener;
struct ssl_ctx_st;
struct ssl_st;

namespace basalt {

template <auto Free>
struct CFree {
  template <class T>
  void operator()(T* p) const noexcept {
    if (p) Free(p);
  }
};

template <class T, auto Free>
using CHandle = std::unique_ptr<T, CFree<Free>>;

}  // namespace basalt
