// The byte relay of a logged-in session whose client and shard connections are both plain TCP:
// raw sockets and events, no bufferevents. Each read goes into the worker's scratch buffer and
// is written to the other socket at once; only what that socket does not take is kept (a heap
// block of exactly that size, freed once written) and the source is not read again until then.
// So a slow reader costs at most one read's worth per direction, and an idle session holds no
// buffer at all.
//
// A fast sender is read in large pieces: once a direction has moved kBulkBytes within
// kBulkWindow, SO_RCVLOWAT on its source socket makes it readable only when that much is queued
// (one wake-up per 64 KiB instead of per 4 KiB segment, for us and for the reader we write to);
// a short timer picks up the tail and ends bulk mode when the burst is over.
//
// A TLS client (the shard plain) is relayed the same way: the relay reads and writes the
// client's SSL itself (handshake done by the session). Its records go to a per-worker memory
// sink and leave in one send() per read, so what waits for a slow client is ciphertext.
#pragma once

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>

struct evbuffer;


namespace basalt::proxy {

class Relay {
 public:
  enum class Side { kClient, kBackend };

  // What the relay reports. on_relay_closed may destroy the Relay: the relay returns at once.
  class Owner {
   public:
    virtual void on_relayed(Side from, size_t bytes) = 0;
    virtual void on_relay_client_eof() = 0;  // the client half-closed; the shard still answers
    virtual void on_relay_closed(Side side, const std::string& why) = 0;  // EOF or error on `side`
    virtual void on_relay_client_flushed() = 0;  // after quiesce(): the client has taken what was pending

   protected:
    ~Owner() = default;
  };

  // Takes over both sockets; closes the shard's on destruction (the client's stays the owner's).
  // With `client_tls`, the client side goes through that SSL (the owner keeps it; the relay
  // swaps its write BIO for a sink into `tls_sink`, a buffer of the loop's, empty between calls).
  Relay(event_base* base, std::span<char> scratch, size_t max_read, Owner& owner, evutil_socket_t client_fd,
        evutil_socket_t backend_fd, SSL* client_tls = nullptr, std::string* tls_sink = nullptr);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Starts relaying; `to_client` and `to_backend` hold what the login left queued each way (they
  // are drained). With `client_eof`, the client has already half-closed.
  void start(evbuffer* to_client, evbuffer* to_backend, bool client_eof);
  // Moves what is still queued for the client into `out` (before a goodbye). Plain clients only:
  // for a TLS client it is ciphertext (see quiesce()).
  void take_client_pending(evbuffer* out);
  // Nothing waits for the client.
  bool client_flushed() const { return !down_.pending; }
  // Reads nothing more from either side; once what waits for the client has been sent, the
  // owner hears on_relay_client_flushed().
  void quiesce();

 private:
  // One direction: bytes read from `from` are written to `to`.
  struct Flow {
    Relay* relay = nullptr;
    Side source = Side::kClient;
    evutil_socket_t from = -1, to = -1;
    event readable{};  // on `from`, added while we may read
    event writable{};  // on `to`, added while `pending` waits
    std::unique_ptr<char[]> pending;
    size_t pending_begin = 0, pending_end = 0;
    bool eof = false;   // `from` has half-closed
    bool bulk = false;  // SO_RCVLOWAT raised on `from`
    size_t window_bytes = 0;
    std::chrono::steady_clock::time_point window_start;
  };

  static void on_readable(evutil_socket_t, short, void* flow);
  static void on_writable(evutil_socket_t, short, void* flow);
  static void on_tail(evutil_socket_t, short, void* relay);
  static void on_tls_more(evutil_socket_t, short, void* relay);

  void setup_flow(Flow& flow, Side source, evutil_socket_t from, evutil_socket_t to);
  bool read_some(Flow& flow);
  bool read_tls(Flow& flow);
  bool encrypts(const Flow& flow) const { return tls_ != nullptr && &flow == &down_; }
  bool encrypt(const char* data, size_t size);
  void emit_tls();
  void send_or_keep(Flow& flow, const char* data, size_t size);
  void resume_reading(Flow& flow);
  void read_decrypted_later();
  bool forward(Flow& flow, const char* data, size_t size);
  bool flush_pending(Flow& flow);
  void keep(Flow& flow, const char* data, size_t size);
  void queue(Flow& flow, evbuffer* data);
  bool source_ended(Flow& flow);
  void note_burst(Flow& flow, size_t bytes);
  void set_bulk(Flow& flow, bool bulk);
  bool closed(Side side, const std::string& why);

  Owner& owner_;
  std::span<char> scratch_;
  const size_t max_read_;
  Flow up_, down_;  // client -> shard, shard -> client
  event tail_{};
  evutil_socket_t backend_fd_;
  SSL* tls_ = nullptr;
  std::string* sink_ = nullptr;
  event tls_more_{};  // TLS client: reads what the SSL decrypted beyond a full scratch buffer
  bool quiet_ = false;  // quiesce() was called
};

}  // namespace basalt::proxy
