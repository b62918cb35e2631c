#include "directory/directory.h"

#include "directory/directory_config.h"
#include "directory/file_directory.h"
#include "directory/ldap_directory.h"

namespace basalt::directory {

const char* to_string(AuthOutcome outcome) {
  switch (outcome) {
    case AuthOutcome::kOk: return "ok";
    case AuthOutcome::kBadCredentials: return "bad_credentials";
    case AuthOutcome::kDisabled: return "disabled";
    case AuthOutcome::kMoving: return "moving";
    case AuthOutcome::kUnavailable: return "unavailable";
  }
  return "?";
}

std::unique_ptr<Directory> make_directory(const DirectoryConfig& config, event_base* base,
                                          std::optional<Offload> offload) {
  switch (config.backend) {
    case DirectoryBackend::kLdap: return std::make_unique<LdapDirectory>(base, config);
    case DirectoryBackend::kFile: return std::make_unique<FileDirectory>(base, config.users, config.status, std::move(offload));
  }
  return nullptr;
}

}  // namespace basalt::directory
