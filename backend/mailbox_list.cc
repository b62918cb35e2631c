#include "backend/mailbox_list.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "common/blob_codec.h"
#include "common/log.h"

namespace basalt::store {
namespace {

// "BSML" u16 version u16 reserved | u64 next_id | u32 next_uidvalidity
// | u32 count, count x (u64 id, u32 uidvalidity, u16 name length, name)
// | u32 count, count x (u16 name length, name) | u64 XXH3-64 of everything before it
constexpr std::string_view kMagic = "BSML";
constexpr uint16_t kVersion = 1;
constexpr std::string_view kFileName = "mailboxes";

Result<void> check_name(std::string_view name) {
  if (name.empty()) return make_error("empty mailbox name");
  if (name.size() > kMaxMailboxNameBytes) return make_error("mailbox name too long");
  if (name.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos) {
    return make_error("mailbox name contains NUL, CR or LF");
  }
  return {};
}

bool is_inbox(std::string_view name) {
  return name.size() == 5 && std::equal(name.begin(), name.end(), "INBOX", [](char a, char b) {
           return (a >= 'a' && a <= 'z' ? a - 32 : a) == b;
         });
}

std::string file_path(const std::string& dir) { return dir + "/" + std::string(kFileName); }

template <class T, class Key>
auto find_sorted(T& entries, std::string_view name, Key key) {
  auto it = std::lower_bound(entries.begin(), entries.end(), name,
                             [&](const auto& e, std::string_view n) { return key(e) < n; });
  return (it != entries.end() && key(*it) == name) ? it : entries.end();
}

}  // namespace

std::string MailboxList::canonical_name(std::string_view name) {
  return is_inbox(name) ? std::string(kInbox) : std::string(name);
}

Result<MailboxList> MailboxList::open(std::string user_dir, MailboxListOptions options) {
  MailboxList list(std::move(user_dir), std::move(options));
  if (!list.options_.now) {
    list.options_.now = [] {
      return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
  }
  const std::string path = file_path(list.dir_);
  auto bytes = read_file(path, 64u << 20);
  if (!bytes) {
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return list;  // a new user
    return make_error("mailbox list: " + bytes.error().message);
  }
  auto data = decode(*bytes);
  if (!data) return make_error("mailbox list " + path + ": " + data.error().message);
  list.d_ = std::move(*data);
  return list;
}

std::string MailboxList::encode(const Data& d) {
  std::string out(kMagic);
  ByteWriter w(out);
  w.u16(kVersion);
  w.u16(0);
  w.u64(d.next_id);
  w.u32(d.next_uidvalidity);
  w.u32(static_cast<uint32_t>(d.mailboxes.size()));
  for (const auto& e : d.mailboxes) {
    w.u64(to_u64(e.id));
    w.u32(e.uidvalidity);
    w.u16(static_cast<uint16_t>(e.name.size()));
    w.bytes(e.name);
  }
  w.u32(static_cast<uint32_t>(d.subscriptions.size()));
  for (const auto& s : d.subscriptions) {
    w.u16(static_cast<uint16_t>(s.size()));
    w.bytes(s);
  }
  w.u64(checksum64(out));
  return out;
}

Result<MailboxList::Data> MailboxList::decode(std::string_view bytes) {
  if (bytes.size() < 8 + 8) return make_error("truncated");
  ByteReader tail(bytes.substr(bytes.size() - 8));
  uint64_t sum = 0;
  (void)tail.u64(sum);
  ByteReader r(bytes.substr(0, bytes.size() - 8));
  std::string_view magic;
  uint16_t version = 0, reserved = 0;
  (void)(r.bytes(4, magic) && r.u16(version) && r.u16(reserved));
  if (magic != kMagic) return make_error("bad magic");
  if (version != kVersion || reserved != 0) return make_error("unsupported version " + std::to_string(version));
  if (sum != checksum64(bytes.substr(0, bytes.size() - 8))) return make_error("checksum mismatch");
  Data d;
  uint32_t count = 0;
  bool ok = r.u64(d.next_id) && r.u32(d.next_uidvalidity) && r.u32(count) && count <= r.remaining() / 14;
  for (uint32_t i = 0; ok && i < count; ++i) {
    uint64_t id = 0;
    uint16_t len = 0;
    std::string_view name;
    Entry e;
    ok = r.u64(id) && r.u32(e.uidvalidity) && r.u16(len) && r.bytes(len, name);
    e.id = MailboxId{id};
    e.name = std::string(name);
    ok = ok && check_name(e.name) && id != 0 && id < d.next_id && e.uidvalidity != 0 &&
         e.uidvalidity < d.next_uidvalidity && (d.mailboxes.empty() || d.mailboxes.back().name < e.name) &&
         canonical_name(e.name) == e.name;
    if (ok) d.mailboxes.push_back(std::move(e));
  }
  ok = ok && r.u32(count) && count <= r.remaining() / 2;
  for (uint32_t i = 0; ok && i < count; ++i) {
    uint16_t len = 0;
    std::string_view name;
    ok = r.u16(len) && r.bytes(len, name) && check_name(name) &&
         (d.subscriptions.empty() || d.subscriptions.back() < name);
    if (ok) d.subscriptions.emplace_back(name);
  }
  if (!ok || r.remaining() != 0) return make_error("malformed entries");
  std::vector<uint64_t> ids;
  for (const auto& e : d.mailboxes) ids.push_back(to_u64(e.id));
  std::sort(ids.begin(), ids.end());
  if (std::adjacent_find(ids.begin(), ids.end()) != ids.end()) return make_error("duplicate mailbox id");
  return d;
}

Result<void> MailboxList::save(Data next) {
  if (auto made = create_directories(dir_, options_.fsync); !made) return made;
  if (auto written = write_file_atomically(dir_, kFileName, encode(next), options_.fsync); !written) {
    return written.error();
  }
  d_ = std::move(next);
  return {};
}

Result<uint32_t> MailboxList::allocate_uidvalidity(Data& d) const {
  // At least "now", so a lost list file cannot make an old UIDVALIDITY come back.
  int64_t now = std::clamp<int64_t>(options_.now(), 1, UINT32_MAX - 1);
  uint32_t v = std::max(d.next_uidvalidity, static_cast<uint32_t>(now));
  if (v == UINT32_MAX) return make_error("UIDVALIDITY space exhausted");
  d.next_uidvalidity = v + 1;
  return v;
}

Result<MailboxList::Entry> MailboxList::add(Data& d, const std::string& name, uint32_t uidvalidity) const {
  if (auto ok = check_name(name); !ok) return ok.error();
  if (find_sorted(d.mailboxes, name, [](const Entry& e) -> const std::string& { return e.name; }) != d.mailboxes.end()) {
    return make_error("mailbox already exists: " + log_safe(name));
  }
  if (uidvalidity == 0) {
    auto v = allocate_uidvalidity(d);
    if (!v) return v.error();
    uidvalidity = *v;
  } else if (uidvalidity == UINT32_MAX) {
    return make_error("UIDVALIDITY out of range");
  } else {
    d.next_uidvalidity = std::max(d.next_uidvalidity, uidvalidity + 1);
  }
  Entry e{name, MailboxId{d.next_id++}, uidvalidity};
  auto at = std::lower_bound(d.mailboxes.begin(), d.mailboxes.end(), name,
                             [](const Entry& x, const std::string& n) { return x.name < n; });
  d.mailboxes.insert(at, e);
  return e;
}

MailboxInfo MailboxList::info(const Entry& e) const { return {e.name, e.id, e.uidvalidity, subscribed(e.name)}; }

std::vector<MailboxInfo> MailboxList::list() const {
  std::vector<MailboxInfo> out;
  out.reserve(d_.mailboxes.size());
  for (const auto& e : d_.mailboxes) out.push_back(info(e));
  return out;
}

std::optional<MailboxInfo> MailboxList::find(std::string_view name) const {
  const std::string canonical = canonical_name(name);
  auto it = find_sorted(d_.mailboxes, canonical, [](const Entry& e) -> const std::string& { return e.name; });
  if (it == d_.mailboxes.end()) return std::nullopt;
  return info(*it);
}

bool MailboxList::subscribed(std::string_view name) const {
  const std::string canonical = canonical_name(name);
  return find_sorted(d_.subscriptions, canonical, [](const std::string& s) -> const std::string& { return s; }) !=
         d_.subscriptions.end();
}

Result<MailboxInfo> MailboxList::create(std::string_view name) { return create_with_uidvalidity(name, 0); }

Result<MailboxInfo> MailboxList::create_with_uidvalidity(std::string_view name, uint32_t uidvalidity) {
  Data next = d_;
  auto e = add(next, canonical_name(name), uidvalidity);
  if (!e) return e.error();
  if (auto saved = save(std::move(next)); !saved) return saved.error();
  return info(*e);
}

Result<MailboxInfo> MailboxList::remove(std::string_view name) {
  const std::string canonical = canonical_name(name);
  Data next = d_;
  auto it = find_sorted(next.mailboxes, canonical, [](const Entry& e) -> const std::string& { return e.name; });
  if (it == next.mailboxes.end()) return make_error("no such mailbox: " + log_safe(name));
  MailboxInfo removed = info(*it);
  next.mailboxes.erase(it);
  if (auto saved = save(std::move(next)); !saved) return saved.error();
  return removed;
}

Result<RenameResult> MailboxList::rename(std::string_view from_name, std::string_view to_name, char delimiter) {
  const std::string from = canonical_name(from_name), to = canonical_name(to_name);
  if (auto ok = check_name(to); !ok) return ok.error();
  if (to == kInbox) return make_error("cannot rename to INBOX");
  if (to == from) return make_error("mailbox already exists: " + log_safe(to));
  const bool inbox = from == kInbox;
  const std::string prefix = delimiter && !inbox ? from + delimiter : std::string();
  if (!prefix.empty() && to.compare(0, prefix.size(), prefix) == 0) {
    return make_error("cannot rename a mailbox into its own hierarchy");
  }
  Data next = d_;
  RenameResult result;
  std::vector<Entry> kept, moved;
  for (auto& e : next.mailboxes) {
    bool hit = e.name == from || (!prefix.empty() && e.name.compare(0, prefix.size(), prefix) == 0);
    (hit ? moved : kept).push_back(std::move(e));
  }
  if (std::none_of(moved.begin(), moved.end(), [&](const Entry& e) { return e.name == from; })) {
    return make_error("no such mailbox: " + log_safe(from_name));
  }
  for (auto& e : moved) {
    std::string renamed = to + e.name.substr(from.size());
    if (auto ok = check_name(renamed); !ok) return ok.error();
    result.renamed.emplace_back(e.name, renamed);
    e.name = std::move(renamed);
  }
  next.mailboxes = std::move(kept);
  for (auto& e : moved) {
    auto at = std::lower_bound(next.mailboxes.begin(), next.mailboxes.end(), e.name,
                               [](const Entry& x, const std::string& n) { return x.name < n; });
    if (at != next.mailboxes.end() && at->name == e.name) return make_error("mailbox already exists: " + log_safe(e.name));
    next.mailboxes.insert(at, std::move(e));
  }
  if (inbox) {
    auto fresh = add(next, std::string(kInbox), 0);
    if (!fresh) return fresh.error();
    result.new_inbox = MailboxInfo{fresh->name, fresh->id, fresh->uidvalidity, subscribed(kInbox)};
  }
  if (auto saved = save(std::move(next)); !saved) return saved.error();
  return result;
}

Result<void> MailboxList::subscribe(std::string_view name) {
  const std::string canonical = canonical_name(name);
  if (auto ok = check_name(canonical); !ok) return ok;
  if (subscribed(canonical)) return {};
  Data next = d_;
  next.subscriptions.insert(std::lower_bound(next.subscriptions.begin(), next.subscriptions.end(), canonical),
                            canonical);
  return save(std::move(next));
}

Result<void> MailboxList::unsubscribe(std::string_view name) {
  const std::string canonical = canonical_name(name);
  if (!subscribed(canonical)) return {};
  Data next = d_;
  next.subscriptions.erase(std::lower_bound(next.subscriptions.begin(), next.subscriptions.end(), canonical));
  return save(std::move(next));
}

}  // namespace basalt::store
