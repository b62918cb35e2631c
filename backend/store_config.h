// basalt-store configuration (conf/basalt-store.toml): parsed once at startup into an
// immutable struct. Unknown keys are errors, so a typo never falls back to a default.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "common/net.h"
#include "common/result.h"
#include "directory/directory_config.h"

namespace basalt::store {

struct StoreConfig {
  std::string log_level = "info";
  std::string shard_name;          // required: users whose shard equals this are ours
  std::string spool_root;          // required, must be an initialized spool (see --init-spool)
  std::string index_root;          // required: local disk, holds the LMDB header cache
  std::string users_file;          // required: [[user]] name/password/shard/status
  std::string lmtp_listen_text = "127.0.0.1:24";
  SocketAddress lmtp_listen;
  size_t max_message_size = 50u << 20;
  unsigned delivery_threads = 2;   // pool threads doing disk work
  unsigned max_connections = 200;
  unsigned lmtp_timeout_s = 300;   // idle / per-command timeout
  bool fsync = true;               // false only for tests
  directory::StatusRules status;   // status values meaning moving / disabled
  std::shared_ptr<const directory::UserTable> users;
};

Result<StoreConfig> load_store_config(const std::string& path);

}  // namespace basalt::store
