#include "backend/spool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "common/blob_codec.h"
#include "common/log.h"

namespace basalt::store {
namespace {

constexpr std::string_view kMarkerContent = "basalt-spool 1\n";
constexpr std::string_view kTrashPrefix = ".trash.";
constexpr std::string_view kBlobSuffix = ".msg";
constexpr uint32_t kCorruptLogBurst = 20;
constexpr char kHex[] = "0123456789ABCDEF";

bool safe_user_byte(unsigned char c, size_t pos) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  if (c == '.') return pos != 0;  // never ".", "..", or a hidden name
  return c == '_' || c == '@' || c == '+' || c == '-';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower-case hex is not canonical: one user, one directory name
}

// Strict decimal: digits only, no leading zero, no overflow, > 0.
template <class T>
std::optional<T> parse_positive(std::string_view text) {
  T value{};
  if (text.empty() || text[0] == '0') return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

enum class EntryKind { kDirectory, kFile };

// Names in `dir` of the given kind, skipping dot-names. A missing `dir` lists as empty.
Result<std::vector<std::string>> list_dir(const std::string& dir, EntryKind kind) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) {
    if (errno == ENOENT) return names;
    return io_error("open directory", dir, errno);
  }
  errno = 0;
  while (dirent* e = ::readdir(d.get())) {
    if (e->d_name[0] == '.') continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {  // some file systems (older NFS, XFS) do not fill d_type
      struct stat st {};
      if (::fstatat(::dirfd(d.get()), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      is_dir = S_ISDIR(st.st_mode);
    }
    if (is_dir == (kind == EntryKind::kDirectory)) names.emplace_back(e->d_name);
  }
  if (errno != 0) return io_error("read directory", dir, errno);
  std::sort(names.begin(), names.end());
  return names;
}

std::string blob_name(uint32_t uid) { return std::to_string(uid) + std::string(kBlobSuffix); }

std::string describe(std::string_view user, MailboxId mailbox, uint32_t uidvalidity, uint32_t uid) {
  return "user=" + log_safe(user) + " mailbox=" + std::to_string(to_u64(mailbox)) +
         " uidvalidity=" + std::to_string(uidvalidity) + " uid=" + std::to_string(uid);
}

}  // namespace

Result<std::string> escape_user(std::string_view user) {
  if (user.empty()) return make_error("empty user name");
  std::string out;
  out.reserve(user.size());
  for (size_t i = 0; i < user.size(); ++i) {
    auto c = static_cast<unsigned char>(user[i]);
    if (safe_user_byte(c, i)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (out.size() > kMaxEscapedUserBytes) {
    return make_error("user name too long for the spool (" + std::to_string(out.size()) + " bytes escaped, limit " +
                      std::to_string(kMaxEscapedUserBytes) + "): " + log_safe(user));
  }
  return out;
}

std::optional<std::string> unescape_user(std::string_view escaped) {
  if (escaped.empty() || escaped.size() > kMaxEscapedUserBytes) return std::nullopt;
  std::string out;
  for (size_t i = 0; i < escaped.size(); ++i) {
    auto c = static_cast<unsigned char>(escaped[i]);
    if (c != '%') {
      if (!safe_user_byte(c, out.size())) return std::nullopt;
      out.push_back(static_cast<char>(c));
      continue;
    }
    if (i + 2 >= escaped.size()) return std::nullopt;
    int hi = hex_value(escaped[i + 1]), lo = hex_value(escaped[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    auto b = static_cast<unsigned char>(hi * 16 + lo);
    if (safe_user_byte(b, out.size())) return std::nullopt;  // escaping a safe byte is not canonical
    out.push_back(static_cast<char>(b));
    i += 2;
  }
  return out;
}

std::string user_hash_dir(std::string_view user) {
  auto top = static_cast<unsigned>(checksum64(user) >> 56);
  static constexpr char kLowerHex[] = "0123456789abcdef";
  return {kLowerHex[top >> 4], kLowerHex[top & 15]};
}

Result<void> Spool::initialize(const std::string& root, Fsync fsync) {
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0) return io_error("spool root", root, errno);
  if (!S_ISDIR(st.st_mode)) return io_error("spool root", root, ENOTDIR);
  if (auto made = create_directories(root + "/users", fsync); !made) return made;
  return write_file_atomically(root, kMarkerName, kMarkerContent, fsync);
}

Result<std::unique_ptr<Spool>> Spool::open(const std::string& root, SpoolOptions options) {
  auto marker = read_file(root + "/" + std::string(kMarkerName), 4096);
  if (!marker) return make_error("not a Basalt spool (is it mounted?): " + marker.error().message);
  if (*marker != kMarkerContent) {
    return make_error("unsupported spool marker in " + root + ": " + log_safe(*marker));
  }
  return std::unique_ptr<Spool>(new Spool(root, options));
}

Result<std::string> Spool::user_dir(std::string_view user) const {
  auto escaped = escape_user(user);
  if (!escaped) return escaped.error();
  return root_ + "/users/" + user_hash_dir(user) + "/" + *escaped;
}

Result<std::string> Spool::mailbox_dir(std::string_view user, MailboxId mailbox) const {
  if (to_u64(mailbox) == 0) return make_error("mailbox id 0 is invalid");
  auto dir = user_dir(user);
  if (!dir) return dir;
  return *dir + "/m/" + std::to_string(to_u64(mailbox));
}

std::string Spool::message_path(const std::string& mailbox_dir, uint32_t uidvalidity, uint32_t uid) const {
  return mailbox_dir + "/" + std::to_string(uidvalidity) + "/" + blob_name(uid);
}

Result<std::string> Spool::create_mailbox_dir(std::string_view user, MailboxId mailbox) const {
  auto dir = mailbox_dir(user, mailbox);
  if (!dir) return dir;
  if (auto made = create_directories(*dir, options_.fsync); !made) return made.error();
  return dir;
}

Result<void> Spool::store_message(std::string_view user, MailboxId mailbox, uint32_t uidvalidity, uint32_t uid,
                                  std::string_view raw) const {
  if (uid == 0 || uidvalidity == 0) return make_error("uid and uidvalidity must be nonzero");
  if (raw.size() > kMaxBlobRawSize) {
    return make_error("message of " + std::to_string(raw.size()) + " bytes exceeds the spool limit");
  }
  auto mdir = mailbox_dir(user, mailbox);
  if (!mdir) return mdir.error();
  const std::string dir = *mdir + "/" + std::to_string(uidvalidity);
  // Plain mkdir, not mkdir -p: a delivery racing remove_mailbox must fail, not resurrect it.
  if (::mkdir(dir.c_str(), kDirMode) == 0) {
    if (options_.fsync == Fsync::kOn) {
      if (auto synced = fsync_directory(*mdir); !synced) return synced;
    }
  } else if (errno == ENOENT) {
    return make_error("mailbox directory missing (mailbox removed or never created): " + describe(user, mailbox, uidvalidity, uid));
  } else if (errno != EEXIST) {
    return io_error("create directory", dir, errno);
  }
  return write_file_atomically(dir, blob_name(uid), encode_blob(raw), options_.fsync);
}

Result<std::string> Spool::read_message(std::string_view user, MailboxId mailbox, uint32_t uidvalidity,
                                        uint32_t uid) const {
  auto mdir = mailbox_dir(user, mailbox);
  if (!mdir) return mdir.error();
  const std::string path = message_path(*mdir, uidvalidity, uid);
  uint64_t got = 0;
  auto blob = read_file(path, kBlobHeaderSize + uint64_t{kMaxBlobRawSize} + kMaxBlobRawSize / 16 + 67, &got);
  bytes_read_.fetch_add(got, std::memory_order_relaxed);
  if (!blob) {
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
      return make_error("message not found: " + describe(user, mailbox, uidvalidity, uid));
    }
    return blob.error();
  }
  auto raw = decode_blob(*blob);
  if (!raw) {
    corrupt_blobs_.fetch_add(1, std::memory_order_relaxed);
    log_corrupt(user, mailbox, uidvalidity, uid, raw.error().message);
    return make_error("corrupt message " + describe(user, mailbox, uidvalidity, uid) + ": " + raw.error().message);
  }
  messages_read_.fetch_add(1, std::memory_order_relaxed);
  return raw;
}

Result<void> Spool::remove_message(std::string_view user, MailboxId mailbox, uint32_t uidvalidity,
                                   uint32_t uid) const {
  auto mdir = mailbox_dir(user, mailbox);
  if (!mdir) return mdir.error();
  auto removed = remove_file(*mdir + "/" + std::to_string(uidvalidity), blob_name(uid), options_.fsync);
  if (!removed) return removed.error();
  return {};
}

Result<void> Spool::remove_mailbox(std::string_view user, MailboxId mailbox) const {
  auto mdir = mailbox_dir(user, mailbox);
  if (!mdir) return mdir.error();
  const std::string parent = mdir->substr(0, mdir->rfind('/'));
  const std::string trash = parent + "/" + std::string(kTrashPrefix) + std::to_string(to_u64(mailbox)) + "." +
                            std::to_string(::getpid()) + "." +
                            std::to_string(trash_counter_.fetch_add(1, std::memory_order_relaxed));
  if (::rename(mdir->c_str(), trash.c_str()) != 0) {
    if (errno == ENOENT) return {};
    return io_error("rename mailbox directory", *mdir, errno);
  }
  if (options_.fsync == Fsync::kOn) {
    if (auto synced = fsync_directory(parent); !synced) return synced;
  }
  // The mailbox is gone as far as anyone can see; a failed cleanup is purge_user()'s job.
  if (auto removed = remove_tree(trash); !removed) {
    logger("store")->warn("remove mailbox: {} (left for purge)", removed.error().message);
  }
  return {};
}

Result<size_t> Spool::purge_user(std::string_view user, std::chrono::seconds min_temp_age) const {
  auto udir = user_dir(user);
  if (!udir) return udir.error();
  struct stat st {};
  if (::stat(udir->c_str(), &st) != 0) return errno == ENOENT ? Result<size_t>(0) : io_error("stat", *udir, errno);
  auto temps = remove_stale_temp_files(*udir, min_temp_age);
  if (!temps) return temps.error();
  size_t removed = *temps;
  const std::string mroot = *udir + "/m";
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(mroot.c_str()), ::closedir);
  if (d) {
    while (dirent* e = ::readdir(d.get())) {
      std::string_view name(e->d_name);
      if (name.substr(0, kTrashPrefix.size()) != kTrashPrefix) continue;
      if (auto gone = remove_tree(mroot + "/" + std::string(name)); !gone) return gone.error();
      ++removed;
    }
  }
  auto mailboxes = list_mailboxes(user);
  if (!mailboxes) return mailboxes.error();
  for (MailboxId id : *mailboxes) {
    const std::string mdir = mroot + "/" + std::to_string(to_u64(id));
    auto uvs = list_dir(mdir, EntryKind::kDirectory);
    if (!uvs) return uvs.error();
    uvs->push_back("");  // the mailbox directory itself
    for (const auto& uv : *uvs) {
      auto n = remove_stale_temp_files(uv.empty() ? mdir : mdir + "/" + uv, min_temp_age);
      if (!n) return n.error();
      removed += *n;
    }
  }
  return removed;
}

Result<std::vector<std::string>> Spool::list_users() const {
  std::vector<std::string> users;
  auto buckets = list_dir(root_ + "/users", EntryKind::kDirectory);
  if (!buckets) return buckets.error();
  for (const auto& bucket : *buckets) {
    auto names = list_dir(root_ + "/users/" + bucket, EntryKind::kDirectory);
    if (!names) return names.error();
    for (const auto& name : *names) {
      auto user = unescape_user(name);
      if (!user || user_hash_dir(*user) != bucket) {
        logger("store")->warn("spool: skipping foreign directory users/{}/{}", bucket, log_safe(name));
        continue;
      }
      users.push_back(std::move(*user));
    }
  }
  std::sort(users.begin(), users.end());
  return users;
}

Result<std::vector<MailboxId>> Spool::list_mailboxes(std::string_view user) const {
  auto udir = user_dir(user);
  if (!udir) return udir.error();
  auto names = list_dir(*udir + "/m", EntryKind::kDirectory);
  if (!names) return names.error();
  std::vector<MailboxId> ids;
  for (const auto& name : *names) {
    if (auto id = parse_positive<uint64_t>(name)) ids.push_back(MailboxId{*id});
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

Result<std::vector<uint32_t>> Spool::list_uidvalidities(std::string_view user, MailboxId mailbox) const {
  auto mdir = mailbox_dir(user, mailbox);
  if (!mdir) return mdir.error();
  auto names = list_dir(*mdir, EntryKind::kDirectory);
  if (!names) return names.error();
  std::vector<uint32_t> out;
  for (const auto& name : *names) {
    if (auto v = parse_positive<uint32_t>(name)) out.push_back(*v);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<uint32_t>> Spool::list_uids(std::string_view user, MailboxId mailbox, uint32_t uidvalidity) const {
  auto mdir = mailbox_dir(user, mailbox);
  if (!mdir) return mdir.error();
  auto names = list_dir(*mdir + "/" + std::to_string(uidvalidity), EntryKind::kFile);
  if (!names) return names.error();
  std::vector<uint32_t> out;
  for (std::string_view name : *names) {
    if (name.size() <= kBlobSuffix.size() || name.substr(name.size() - kBlobSuffix.size()) != kBlobSuffix) continue;
    if (auto uid = parse_positive<uint32_t>(name.substr(0, name.size() - kBlobSuffix.size()))) out.push_back(*uid);
  }
  std::sort(out.begin(), out.end());
  return out;
}

SpoolStats Spool::stats() const {
  return {bytes_read_.load(std::memory_order_relaxed), messages_read_.load(std::memory_order_relaxed),
          corrupt_blobs_.load(std::memory_order_relaxed)};
}

void Spool::log_corrupt(std::string_view user, MailboxId mailbox, uint32_t uidvalidity, uint32_t uid,
                        const std::string& why) const {
  std::lock_guard lock(log_mu_);
  auto now = std::chrono::steady_clock::now();
  if (now - log_window_ >= std::chrono::minutes(1)) {
    if (log_count_ > kCorruptLogBurst) {
      logger("store")->error("corrupt blob: {} more not logged", log_count_ - kCorruptLogBurst);
    }
    log_window_ = now;
    log_count_ = 0;
  }
  if (++log_count_ <= kCorruptLogBurst) {
    logger("store")->error("corrupt blob: {} error=\"{}\"", describe(user, mailbox, uidvalidity, uid), why);
  }
}

}  // namespace basalt::store
