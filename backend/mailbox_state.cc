#include "backend/mailbox_state.h"

#include <unistd.h>

#include <algorithm>

#include "common/blob_codec.h"
#include "common/log.h"

namespace basalt::store {
namespace {

// File: "BSMS" u16 version u16 reserved, then records:
//   u32 payload length | u8 type | payload | u64 XXH3-64 of (length, type, payload)
constexpr std::string_view kLogMagic = "BSMS";
constexpr uint16_t kLogVersion = 1;
constexpr size_t kFileHeaderSize = 8;
constexpr size_t kFrameHeader = 5;
constexpr size_t kFrameOverhead = kFrameHeader + 8;
// Snapshot records are cut at about this payload size (well under kMaxRecordPayload).
constexpr size_t kSnapshotChunk = 1u << 20;
// Bytes a snapshot spends on one message before its keywords, and on one expunge.
constexpr uint64_t kSnapshotMessageBase = 4 + 8 + 4 + 1 + 8 + 2;
constexpr uint64_t kSnapshotExpungeSize = 8 + 4;
constexpr uint64_t kEmptyLogSize = kFileHeaderSize + kFrameOverhead + 24;

enum class RecordType : uint8_t {
  kCreated = 1,
  kAppend = 2,
  kFlags = 3,
  kExpunge = 4,
  kSnapshotMessages = 5,
  kSnapshotExpunges = 6,
};
constexpr uint8_t kMaxRecordType = 6;

}  // namespace

struct MailboxState::Record {
  RecordType type = RecordType::kCreated;
  uint32_t uidvalidity = 0;  // kCreated
  uint32_t uidnext = 0;
  uint64_t highest_modseq = 0;
  uint64_t expunge_floor = 0;
  uint64_t modseq = 0;                 // kAppend, kFlags, kExpunge
  std::vector<MessageMeta> messages;   // kAppend, kFlags (uid, flags, keywords), kSnapshotMessages
  std::vector<ExpungeEntry> expunges;  // kExpunge (uid only), kSnapshotExpunges
};

namespace {

using Record = MailboxState::Record;

uint64_t keywords_size(const std::vector<std::string>& keywords) {
  uint64_t n = 0;
  for (const auto& k : keywords) n += 1 + k.size();
  return n;
}

uint64_t snapshot_size(const MessageMeta& m) { return kSnapshotMessageBase + keywords_size(m.keywords); }

// Flags within the mask; keywords valid (see the header), ascending and distinct.
Result<void> check_meta(uint8_t flags, const std::vector<std::string>& keywords) {
  if ((flags & ~kSystemFlagMask) != 0) return make_error("unknown system flag bits " + std::to_string(flags));
  if (keywords.size() > kMaxKeywordsPerMessage) return make_error("too many keywords");
  for (size_t i = 0; i < keywords.size(); ++i) {
    const auto& k = keywords[i];
    bool printable = std::all_of(k.begin(), k.end(), [](char c) { return c > 0x20 && c < 0x7f; });
    if (k.empty() || k.size() > kMaxKeywordBytes || !printable || k[0] == '\\') {
      return make_error("invalid keyword '" + log_safe(k) + "'");
    }
    if (i > 0 && keywords[i - 1] >= k) return make_error("keywords not sorted and distinct");
  }
  return {};
}

// Puts keywords in canonical order (sorted, no duplicates), then checks them.
Result<void> normalize(uint8_t flags, std::vector<std::string>& keywords) {
  std::sort(keywords.begin(), keywords.end());
  keywords.erase(std::unique(keywords.begin(), keywords.end()), keywords.end());
  return check_meta(flags, keywords);
}

// ---- encoding -------------------------------------------------------------------------------

size_t begin_frame(std::string& out, RecordType type) {
  size_t start = out.size();
  ByteWriter w(out);
  w.u32(0);  // patched by end_frame
  w.u8(static_cast<uint8_t>(type));
  return start;
}

void patch_u32(std::string& out, size_t pos, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[pos + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

void end_frame(std::string& out, size_t start) {
  patch_u32(out, start, static_cast<uint32_t>(out.size() - start - kFrameHeader));
  uint64_t sum = checksum64(std::string_view(out).substr(start));
  ByteWriter(out).u64(sum);
}

void put_keywords(ByteWriter& w, const std::vector<std::string>& keywords) {
  w.u16(static_cast<uint16_t>(keywords.size()));
  for (const auto& k : keywords) {
    w.u8(static_cast<uint8_t>(k.size()));
    w.bytes(k);
  }
}

void put_message(ByteWriter& w, RecordType type, const MessageMeta& m) {
  w.u32(m.uid);
  if (type != RecordType::kFlags) {
    w.i64(m.internal_date);
    w.u32(m.size);
  }
  w.u8(m.flags);
  if (type == RecordType::kSnapshotMessages) w.u64(m.modseq);
  put_keywords(w, m.keywords);
}

// One framed record.
std::string encode(const Record& r) {
  std::string out;
  size_t start = begin_frame(out, r.type);
  ByteWriter w(out);
  switch (r.type) {
    case RecordType::kCreated:
      w.u32(r.uidvalidity);
      w.u32(r.uidnext);
      w.u64(r.highest_modseq);
      w.u64(r.expunge_floor);
      break;
    case RecordType::kAppend:
    case RecordType::kFlags:
    case RecordType::kSnapshotMessages:
      if (r.type != RecordType::kSnapshotMessages) w.u64(r.modseq);
      w.u32(static_cast<uint32_t>(r.messages.size()));
      for (const auto& m : r.messages) put_message(w, r.type, m);
      break;
    case RecordType::kExpunge:
    case RecordType::kSnapshotExpunges:
      if (r.type == RecordType::kExpunge) w.u64(r.modseq);
      w.u32(static_cast<uint32_t>(r.expunges.size()));
      for (const auto& e : r.expunges) {
        if (r.type == RecordType::kSnapshotExpunges) w.u64(e.modseq);
        w.u32(e.uid);
      }
      break;
  }
  end_frame(out, start);
  return out;
}

// The whole log for `s`, minus the first `skip_expunges` expunges, with `floor` as the floor.
std::string encode_log(const StateSnapshot& s, size_t skip_expunges, uint64_t floor) {
  std::string out(kLogMagic);
  ByteWriter(out).u16(kLogVersion);
  ByteWriter(out).u16(0);
  Record created{RecordType::kCreated, s.uidvalidity, s.uidnext, s.highest_modseq, floor, 0, {}, {}};
  out += encode(created);
  for (size_t i = 0; i < s.messages.size();) {
    size_t start = begin_frame(out, RecordType::kSnapshotMessages);
    size_t count_pos = out.size(), count = 0;
    ByteWriter w(out);
    w.u32(0);
    for (; i < s.messages.size() && out.size() - start < kSnapshotChunk; ++i, ++count) {
      put_message(w, RecordType::kSnapshotMessages, s.messages[i]);
    }
    patch_u32(out, count_pos, static_cast<uint32_t>(count));
    end_frame(out, start);
  }
  for (size_t i = skip_expunges; i < s.expunges.size();) {
    size_t start = begin_frame(out, RecordType::kSnapshotExpunges);
    size_t count_pos = out.size(), count = 0;
    ByteWriter w(out);
    w.u32(0);
    for (; i < s.expunges.size() && out.size() - start < kSnapshotChunk; ++i, ++count) {
      w.u64(s.expunges[i].modseq);
      w.u32(s.expunges[i].uid);
    }
    patch_u32(out, count_pos, static_cast<uint32_t>(count));
    end_frame(out, start);
  }
  return out;
}

// ---- decoding -------------------------------------------------------------------------------

bool get_keywords(ByteReader& r, std::vector<std::string>& out) {
  uint16_t count = 0;
  if (!r.u16(count) || count > kMaxKeywordsPerMessage) return false;
  out.reserve(count);
  for (uint16_t i = 0; i < count; ++i) {
    uint8_t len = 0;
    std::string_view k;
    if (!r.u8(len) || !r.bytes(len, k)) return false;
    out.emplace_back(k);
  }
  return true;
}

// Structure only (uids and modseqs are check()'s business); keywords must be canonical.
bool get_message(ByteReader& r, RecordType type, MessageMeta& m) {
  if (!r.u32(m.uid)) return false;
  if (type != RecordType::kFlags && !(r.i64(m.internal_date) && r.u32(m.size))) return false;
  if (!r.u8(m.flags)) return false;
  if (type == RecordType::kSnapshotMessages && !r.u64(m.modseq)) return false;
  return get_keywords(r, m.keywords) && check_meta(m.flags, m.keywords).ok();
}

// Smallest encoding of one item, to bound counts before reserving.
size_t min_item_size(RecordType type) {
  switch (type) {
    case RecordType::kAppend: return 4 + 8 + 4 + 1 + 2;
    case RecordType::kFlags: return 4 + 1 + 2;
    case RecordType::kSnapshotMessages: return kSnapshotMessageBase;
    case RecordType::kExpunge: return 4;
    case RecordType::kSnapshotExpunges: return kSnapshotExpungeSize;
    case RecordType::kCreated: return 1;
  }
  return 1;
}

Result<Record> decode(RecordType type, std::string_view payload) {
  ByteReader r(payload);
  Record rec;
  rec.type = type;
  bool ok = true;
  uint32_t count = 0;
  if (type == RecordType::kCreated) {
    ok = r.u32(rec.uidvalidity) && r.u32(rec.uidnext) && r.u64(rec.highest_modseq) && r.u64(rec.expunge_floor);
  } else {
    bool has_modseq = type != RecordType::kSnapshotMessages && type != RecordType::kSnapshotExpunges;
    ok = (!has_modseq || r.u64(rec.modseq)) && r.u32(count) && count <= r.remaining() / min_item_size(type);
  }
  bool messages = type == RecordType::kAppend || type == RecordType::kFlags || type == RecordType::kSnapshotMessages;
  if (ok && messages) rec.messages.resize(count);
  if (ok && !messages) rec.expunges.resize(count);
  for (uint32_t i = 0; ok && i < count; ++i) {
    if (messages) {
      ok = get_message(r, type, rec.messages[i]);
    } else {
      ok = (type != RecordType::kSnapshotExpunges || r.u64(rec.expunges[i].modseq)) && r.u32(rec.expunges[i].uid);
    }
  }
  if (!ok) return make_error("malformed payload of record type " + std::to_string(static_cast<int>(type)));
  if (r.remaining() != 0) return make_error("trailing bytes in record type " + std::to_string(static_cast<int>(type)));
  return rec;
}

enum class FrameStatus { kOk, kInvalid };

struct Frame {
  FrameStatus status = FrameStatus::kInvalid;
  uint8_t type = 0;
  std::string_view payload;
  std::string why;
};

Frame read_frame(std::string_view log, size_t off) {
  Frame f;
  ByteReader r(log.substr(off));
  uint32_t len = 0;
  if (!r.u32(len) || !r.u8(f.type) || r.remaining() < 8) {
    f.why = "incomplete record header";
  } else if (len > kMaxRecordPayload) {
    f.why = "record length " + std::to_string(len) + " exceeds the limit";
  } else if (r.remaining() - 8 < len) {
    f.why = "record extends past the end of the file";
  } else {
    uint64_t sum = 0;
    (void)(r.bytes(len, f.payload) && r.u64(sum));
    if (sum != checksum64(log.substr(off, kFrameHeader + len))) {
      f.why = "record checksum mismatch";
    } else {
      f.status = FrameStatus::kOk;
    }
  }
  return f;
}

size_t frame_size(const Frame& f) { return kFrameOverhead + f.payload.size(); }

// A torn write only ever damages the last record. If any intact record follows a bad one,
// the damage is in the middle of the log: real corruption, never silently dropped.
bool intact_record_after(std::string_view log, size_t from) {
  for (size_t p = from; p + kFrameOverhead <= log.size(); ++p) {
    auto type = static_cast<uint8_t>(log[p + 4]);
    if (type == 0 || type > kMaxRecordType) continue;  // cheap filter before the checksum
    if (read_frame(log, p).status == FrameStatus::kOk) return true;
  }
  return false;
}

Result<void> check_file_header(std::string_view log) {
  ByteReader r(log);
  std::string_view magic;
  uint16_t version = 0, reserved = 0;
  if (!(r.bytes(4, magic) && r.u16(version) && r.u16(reserved))) return make_error("truncated file header");
  if (magic != kLogMagic) return make_error("bad magic (not a mailbox state log)");
  if (version != kLogVersion || reserved != 0) {
    return make_error("unsupported version " + std::to_string(version) + " (written by a newer Basalt?)");
  }
  return {};
}

std::string log_path(const std::string& dir) { return dir + "/" + std::string(MailboxState::kLogName); }

Result<void> check_new_modseq(uint64_t modseq, uint64_t highest) {
  if (modseq <= highest || modseq > kMaxModseq) {
    return make_error("modseq " + std::to_string(modseq) + " does not follow " + std::to_string(highest));
  }
  return {};
}

// Every UID in `uids` (ascending, distinct) is in `messages`.
template <class Range, class Uid>
Result<void> check_existing(const std::vector<MessageMeta>& messages, const Range& items, Uid uid_of) {
  auto it = messages.begin();
  uint32_t prev = 0;
  for (const auto& item : items) {
    uint32_t uid = uid_of(item);
    if (uid <= prev) return make_error("UIDs not ascending and distinct at " + std::to_string(uid));
    it = std::lower_bound(it, messages.end(), uid, [](const MessageMeta& m, uint32_t u) { return m.uid < u; });
    if (it == messages.end() || it->uid != uid) return make_error("no message with UID " + std::to_string(uid));
    prev = uid;
  }
  if (items.empty()) return make_error("empty batch");
  return {};
}

}  // namespace

// ---- replay ---------------------------------------------------------------------------------

Result<MailboxState> MailboxState::replay(std::string dir, std::string_view log, StateOptions options) {
  MailboxState st(std::move(dir), options);
  const std::string path = log_path(st.dir_);
  auto fail = [&](size_t off, const std::string& why) {
    return make_error("state " + path + ": " + why + (off ? " (record at offset " + std::to_string(off) + ")" : ""));
  };
  if (auto header = check_file_header(log); !header) return fail(0, header.error().message);
  size_t off = kFileHeaderSize;
  while (off < log.size()) {
    Frame f = read_frame(log, off);
    if (f.status == FrameStatus::kInvalid) {
      if (intact_record_after(log, off + 1)) return fail(off, f.why + ", and intact records follow: corrupt log");
      st.discarded_tail_ = log.size() - off;  // a torn last write: never acknowledged
      break;
    }
    if (f.type == 0 || f.type > kMaxRecordType) {
      return fail(off, "unsupported record type " + std::to_string(f.type) + " (written by a newer Basalt?)");
    }
    auto rec = decode(static_cast<RecordType>(f.type), f.payload);
    if (!rec) return fail(off, rec.error().message);
    if (auto ok = st.check(*rec); !ok) return fail(off, ok.error().message);
    st.apply(*rec);
    off += frame_size(f);
  }
  if (!st.created_) return fail(0, "no created record");
  st.log_bytes_ = off;
  return st;
}

Result<void> MailboxState::check(const Record& r) const {
  if (r.type != RecordType::kCreated && !created_) return make_error("record before the created record");
  bool snapshot = r.type == RecordType::kSnapshotMessages || r.type == RecordType::kSnapshotExpunges;
  if (snapshot && changes_seen_) return make_error("snapshot record after changes");
  switch (r.type) {
    case RecordType::kCreated:
      if (created_) return make_error("second created record");
      if (r.uidvalidity == 0 || r.uidnext == 0) return make_error("zero UIDVALIDITY or UIDNEXT");
      if (r.highest_modseq == 0 || r.highest_modseq > kMaxModseq || r.expunge_floor > r.highest_modseq) {
        return make_error("invalid HIGHESTMODSEQ or expunge floor");
      }
      return {};
    case RecordType::kSnapshotMessages: {
      uint32_t prev = s_.messages.empty() ? 0 : s_.messages.back().uid;
      for (const auto& m : r.messages) {
        if (m.uid <= prev || m.uid >= s_.uidnext) return make_error("snapshot UID " + std::to_string(m.uid) + " out of order");
        if (m.modseq == 0 || m.modseq > s_.highest_modseq) return make_error("snapshot modseq above HIGHESTMODSEQ");
        prev = m.uid;
      }
      return {};
    }
    case RecordType::kSnapshotExpunges: {
      uint64_t prev = s_.expunges.empty() ? 0 : s_.expunges.back().modseq;
      for (const auto& e : r.expunges) {
        if (e.modseq <= s_.expunge_floor || e.modseq < prev || e.modseq > s_.highest_modseq || e.uid == 0 ||
            e.uid >= s_.uidnext) {
          return make_error("invalid expunge history entry");
        }
        prev = e.modseq;
      }
      return {};
    }
    case RecordType::kAppend: {
      if (auto m = check_new_modseq(r.modseq, s_.highest_modseq); !m) return m;
      if (r.messages.empty()) return make_error("empty batch");
      uint32_t next = s_.uidnext;
      for (const auto& m : r.messages) {
        if (m.uid < next) {
          return make_error("UID " + std::to_string(m.uid) + " below UIDNEXT " + std::to_string(next) +
                            " (UIDs never go backwards)");
        }
        if (m.uid == UINT32_MAX) return make_error("UID space exhausted (a new UIDVALIDITY is needed)");
        next = m.uid + 1;
      }
      return {};
    }
    case RecordType::kFlags:
      if (auto m = check_new_modseq(r.modseq, s_.highest_modseq); !m) return m;
      return check_existing(s_.messages, r.messages, [](const MessageMeta& m) { return m.uid; });
    case RecordType::kExpunge:
      if (auto m = check_new_modseq(r.modseq, s_.highest_modseq); !m) return m;
      return check_existing(s_.messages, r.expunges, [](const ExpungeEntry& e) { return e.uid; });
  }
  return make_error("unknown record type");
}

void MailboxState::apply(const Record& r) {
  switch (r.type) {
    case RecordType::kCreated:
      s_ = StateSnapshot{r.uidvalidity, r.uidnext, r.highest_modseq, r.expunge_floor, {}, {}};
      created_ = true;
      live_bytes_ = kEmptyLogSize;
      return;
    case RecordType::kSnapshotMessages:
      for (const auto& m : r.messages) {
        live_bytes_ += snapshot_size(m);
        s_.messages.push_back(m);
      }
      return;
    case RecordType::kSnapshotExpunges:
      s_.expunges.insert(s_.expunges.end(), r.expunges.begin(), r.expunges.end());
      live_bytes_ += kSnapshotExpungeSize * r.expunges.size();
      return;
    case RecordType::kAppend:
      for (const auto& m : r.messages) {
        s_.messages.push_back(m);
        s_.messages.back().modseq = r.modseq;
        live_bytes_ += snapshot_size(m);
      }
      s_.uidnext = r.messages.back().uid + 1;
      break;
    case RecordType::kFlags: {
      auto it = s_.messages.begin();
      for (const auto& u : r.messages) {
        it = std::lower_bound(it, s_.messages.end(), u.uid, [](const MessageMeta& m, uint32_t x) { return m.uid < x; });
        live_bytes_ = live_bytes_ - keywords_size(it->keywords) + keywords_size(u.keywords);
        it->flags = u.flags;
        it->keywords = u.keywords;
        it->modseq = r.modseq;
      }
      break;
    }
    case RecordType::kExpunge: {
      // One pass: both lists are ascending by UID.
      auto gone = r.expunges.begin();
      auto keep = std::remove_if(s_.messages.begin(), s_.messages.end(), [&](const MessageMeta& m) {
        while (gone != r.expunges.end() && gone->uid < m.uid) ++gone;
        bool drop = gone != r.expunges.end() && gone->uid == m.uid;
        if (drop) live_bytes_ -= snapshot_size(m);
        return drop;
      });
      s_.messages.erase(keep, s_.messages.end());
      for (const auto& e : r.expunges) s_.expunges.push_back({r.modseq, e.uid});
      live_bytes_ += kSnapshotExpungeSize * r.expunges.size();
      break;
    }
  }
  s_.highest_modseq = r.modseq;
  changes_seen_ = true;
}

// ---- public ---------------------------------------------------------------------------------

Result<MailboxState> MailboxState::open(const std::string& dir, StateOptions options) {
  auto log = read_file(log_path(dir));
  if (!log) return make_error("state: " + log.error().message);
  auto st = replay(dir, *log, options);
  if (st && st->discarded_tail_ > 0) {
    logger("store")->warn("state {}: ignoring a torn last record ({} bytes; dropped at the next write)",
                          log_path(dir), st->discarded_tail_);
  }
  return st;
}

bool MailboxState::exists(const std::string& dir) { return ::access(log_path(dir).c_str(), F_OK) == 0; }

Result<MailboxState> MailboxState::create(const std::string& dir, uint32_t uidvalidity, StateOptions options) {
  StateSnapshot s;
  s.uidvalidity = uidvalidity;
  return write_new(dir, s, options);
}

Result<MailboxState> MailboxState::create_from(const std::string& dir, const StateSnapshot& snapshot,
                                               StateOptions options) {
  return write_new(dir, snapshot, options);
}

Result<MailboxState> MailboxState::write_new(const std::string& dir, const StateSnapshot& snapshot,
                                             StateOptions options) {
  if (exists(dir)) return make_error("state " + log_path(dir) + ": already exists");
  std::string bytes = encode_log(snapshot, 0, snapshot.expunge_floor);
  // Validate exactly as a later open will: never write a log that would not replay.
  auto st = replay(dir, bytes, options);
  if (!st) return make_error("invalid mailbox state: " + st.error().message);
  if (auto written = write_file_atomically(dir, kLogName, bytes, options.fsync); !written) return written.error();
  return st;
}

const MessageMeta* MailboxState::find(uint32_t uid) const {
  auto i = index_of(uid);
  return i ? &s_.messages[*i] : nullptr;
}

std::optional<size_t> MailboxState::index_of(uint32_t uid) const {
  auto it = std::lower_bound(s_.messages.begin(), s_.messages.end(), uid,
                             [](const MessageMeta& m, uint32_t u) { return m.uid < u; });
  if (it == s_.messages.end() || it->uid != uid) return std::nullopt;
  return static_cast<size_t>(it - s_.messages.begin());
}

std::vector<uint32_t> MailboxState::expunged_since(uint64_t modseq) const {
  auto it = std::upper_bound(s_.expunges.begin(), s_.expunges.end(), modseq,
                             [](uint64_t m, const ExpungeEntry& e) { return m < e.modseq; });
  std::vector<uint32_t> uids;
  for (; it != s_.expunges.end(); ++it) uids.push_back(it->uid);
  std::sort(uids.begin(), uids.end());
  uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
  return uids;
}

Result<uint64_t> MailboxState::append(std::span<const NewMessage> messages) {
  if (messages.empty()) return s_.highest_modseq;
  Record r;
  r.type = RecordType::kAppend;
  r.modseq = s_.highest_modseq + 1;
  for (const auto& n : messages) {
    MessageMeta m{n.uid, n.internal_date, n.size, n.flags, n.keywords, 0};
    if (auto ok = normalize(m.flags, m.keywords); !ok) return make_error("UID " + std::to_string(n.uid) + ": " + ok.error().message);
    r.messages.push_back(std::move(m));
  }
  return commit(r);
}

Result<uint64_t> MailboxState::set_flags(std::span<const FlagUpdate> updates) {
  if (updates.empty()) return s_.highest_modseq;
  Record r;
  r.type = RecordType::kFlags;
  r.modseq = s_.highest_modseq + 1;
  for (const auto& u : updates) {
    MessageMeta m{u.uid, 0, 0, u.flags, u.keywords, 0};
    if (auto ok = normalize(m.flags, m.keywords); !ok) return make_error("UID " + std::to_string(u.uid) + ": " + ok.error().message);
    r.messages.push_back(std::move(m));
  }
  std::sort(r.messages.begin(), r.messages.end(), [](const auto& a, const auto& b) { return a.uid < b.uid; });
  return commit(r);
}

Result<uint64_t> MailboxState::expunge(std::span<const uint32_t> uids) {
  if (uids.empty()) return s_.highest_modseq;
  Record r;
  r.type = RecordType::kExpunge;
  r.modseq = s_.highest_modseq + 1;
  for (uint32_t uid : uids) r.expunges.push_back({0, uid});
  std::sort(r.expunges.begin(), r.expunges.end(), [](const auto& a, const auto& b) { return a.uid < b.uid; });
  return commit(r);
}

Result<uint64_t> MailboxState::commit(const Record& r) {
  if (auto ok = check(r); !ok) return make_error("state " + log_path(dir_) + ": " + ok.error().message);
  std::string bytes = encode(r);
  if (bytes.size() - kFrameOverhead > kMaxRecordPayload) {
    return make_error("state " + log_path(dir_) + ": batch of " + std::to_string(bytes.size() - kFrameOverhead) +
                          " bytes exceeds the record limit of " + std::to_string(kMaxRecordPayload),
                      kStateRecordTooLarge);
  }
  if (!writer_) {
    auto opened = AppendFile::open(log_path(dir_), options_.fsync);
    if (!opened) return opened.error();
    if (opened->size() < log_bytes_) return make_error("state " + log_path(dir_) + ": shrank since it was read");
    if (opened->size() > log_bytes_) {
      // The torn tail replay ignored; cut it so the new record follows the last good one.
      uint64_t torn = opened->size() - log_bytes_;
      if (auto cut = opened->truncate(log_bytes_); !cut) return cut.error();
      logger("store")->info("state {}: dropped a torn tail of {} bytes", log_path(dir_), torn);
      discarded_tail_ = 0;
    }
    writer_.emplace(std::move(*opened));
  }
  if (auto written = writer_->append(bytes); !written) return written.error();
  log_bytes_ += bytes.size();
  apply(r);
  maybe_compact();
  return s_.highest_modseq;
}

Result<void> MailboxState::compact() {
  size_t skip = 0;
  uint64_t floor = s_.expunge_floor;
  if (s_.expunges.size() > options_.max_expunge_history) {
    skip = s_.expunges.size() - options_.max_expunge_history;
    floor = s_.expunges[skip - 1].modseq;
    // Entries sharing the floor's modseq go too: the history must be complete above the floor.
    while (skip < s_.expunges.size() && s_.expunges[skip].modseq == floor) ++skip;
  }
  std::string bytes = encode_log(s_, skip, floor);
  if (auto written = write_file_atomically(dir_, kLogName, bytes, options_.fsync); !written) return written.error();
  writer_.reset();  // it points at the old, now unlinked, inode
  s_.expunges.erase(s_.expunges.begin(), s_.expunges.begin() + static_cast<std::ptrdiff_t>(skip));
  s_.expunge_floor = floor;
  live_bytes_ -= kSnapshotExpungeSize * skip;
  log_bytes_ = bytes.size();
  discarded_tail_ = 0;
  return {};
}

void MailboxState::maybe_compact() {
  if (options_.compact_factor == 0 || log_bytes_ < options_.compact_min_bytes || log_bytes_ < next_compact_try_) return;
  if (log_bytes_ / options_.compact_factor <= live_bytes_) return;
  if (auto done = compact(); !done) {
    // The write itself succeeded; compaction is retried after the log has grown further.
    next_compact_try_ = log_bytes_ * 2;
    logger("store")->warn("state {}: compaction failed: {}", log_path(dir_), done.error().message);
  }
}

}  // namespace basalt::store
