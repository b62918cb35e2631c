// Crash tests with real kills: a child process writes in a loop and reports each operation
// over a pipe before starting it ("I ...") and after it was acknowledged ("A"). The parent
// SIGKILLs it at a random moment, reopens everything, and checks that every acknowledged
// operation is there, that the one in flight is either wholly there or wholly absent, and
// that everything replays cleanly.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "backend/mailbox_list.h"
#include "backend/mailbox_state.h"
#include "backend/spool.h"
#include "test_util.h"

namespace basalt::store {
namespace {

constexpr int kIterations = 20;
constexpr MailboxId kBox{1};
constexpr uint32_t kUidValidity = 777;

std::string body(uint32_t uid) {
  std::string b = "Subject: crash test " + std::to_string(uid) + "\r\n\r\n";
  b.append(200 + uid % 3000, static_cast<char>('a' + uid % 26));
  return b;
}

// One pipe line per write(2): atomic, so the parent never sees half a line.
void report(int fd, const std::string& line) {
  std::string l = line + "\n";
  if (::write(fd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) ::_exit(3);
}

[[noreturn]] void fail(int fd, const std::string& why) {
  report(fd, "X " + why);
  ::_exit(2);
}

struct Op {
  std::string kind;  // "append", "flags", "expunge"
  uint32_t uid = 0;
  int flags = 0;
};

// The child: stores messages and changes the state until it is killed.
[[noreturn]] void state_writer(const std::string& root, const std::string& mdir, unsigned seed, int fd) {
  auto spool = Spool::open(root);
  StateOptions o;
  o.compact_factor = 2;         // compactions happen often, so kills land in them too
  o.compact_min_bytes = 2048;
  auto st = MailboxState::open(mdir, o);
  if (!spool || !st) fail(fd, "open failed");
  std::mt19937 rng(seed);
  for (int i = 0; i < 100000; ++i) {
    const auto& msgs = st->messages();
    unsigned dice = rng() % 100;
    Op op;
    if (msgs.empty() || dice < 55) {
      op = {"append", st->uidnext(), 0};
    } else {
      op = {dice < 85 ? "flags" : "expunge", msgs[rng() % msgs.size()].uid, static_cast<int>(rng() % 32)};
    }
    report(fd, "I " + op.kind + " " + std::to_string(op.uid) + " " + std::to_string(op.flags));
    if (op.kind == "append") {
      // The blob first: a state record must never point at a blob that is not durable.
      if (!(*spool)->store_message("user", kBox, kUidValidity, op.uid, body(op.uid))) fail(fd, "store");
      if (!st->append(std::vector<NewMessage>{{op.uid, 1700000000, static_cast<uint32_t>(body(op.uid).size()), 0, {}}})) fail(fd, "append");
    } else if (op.kind == "flags") {
      if (!st->set_flags(std::vector<FlagUpdate>{{op.uid, static_cast<uint8_t>(op.flags), {"k" + std::to_string(op.flags)}}})) fail(fd, "flags");
    } else {
      const uint32_t uids[] = {op.uid};
      if (!st->expunge(uids)) fail(fd, "expunge");
      if (!(*spool)->remove_message("user", kBox, kUidValidity, op.uid)) fail(fd, "remove");
    }
    report(fd, "A");
  }
  ::_exit(0);
}

// Forks `child(fd)`, lets it acknowledge `acks` operations, kills it `delay` later (so the
// kill lands at a random point inside an operation whatever the disk's speed), and returns
// the lines it reported.
std::vector<std::string> run_and_kill(const std::function<void(int)>& child, int acks, std::chrono::microseconds delay) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    child(fds[1]);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::count(out.begin(), out.end(), 'A') < acks && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;  // the child is gone (it failed; the lines say why)
    out.append(buf, static_cast<size_t>(n));
  }
  std::this_thread::sleep_for(delay);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  EXPECT_TRUE(WIFSIGNALED(status)) << "child ended on its own: " << (lines.empty() ? "" : lines.back());
  return lines;
}

// Splits a child's report into acknowledged operations and the one in flight (if any).
template <class OpT>
void split(const std::vector<std::string>& lines, std::vector<OpT>& acked, std::optional<OpT>& pending,
           const std::function<OpT(std::istringstream&)>& parse) {
  pending.reset();
  for (const auto& line : lines) {
    ASSERT_NE(line[0], 'X') << line;
    if (line == "A") {
      ASSERT_TRUE(pending);
      acked.push_back(*pending);
      pending.reset();
    } else {
      std::istringstream in(line.substr(2));
      pending = parse(in);
    }
  }
}

using Model = std::map<uint32_t, int>;  // uid -> flags

void apply_op(Model& m, const Op& op) {
  if (op.kind == "append") m[op.uid] = 0;
  if (op.kind == "flags") m[op.uid] = op.flags;
  if (op.kind == "expunge") m.erase(op.uid);
}

TEST(CrashTest, KilledWriterLosesNoAcknowledgedMessageOrChange) {
  TempDir dir;
  ASSERT_TRUE(Spool::initialize(dir.path()));
  auto opened = Spool::open(dir.path());
  ASSERT_TRUE(opened);
  auto spool = std::move(*opened);
  const std::string mdir = *spool->create_mailbox_dir("user", kBox);
  ASSERT_TRUE(MailboxState::create(mdir, kUidValidity));
  Model model;
  uint64_t applied_ops = 0, acked_total = 0;
  std::mt19937 rng(20240601);
  for (int iter = 0; iter < kIterations; ++iter) {
    const int acks = static_cast<int>(rng() % 40);  // 0: killed while opening or in the first operation
    const auto delay = std::chrono::microseconds(rng() % 3000);
    auto lines = run_and_kill([&](int fd) { state_writer(dir.path(), mdir, rng(), fd); }, acks, delay);
    std::vector<Op> acked;
    std::optional<Op> pending;
    split<Op>(lines, acked, pending, [](std::istringstream& in) {
      Op op;
      in >> op.kind >> op.uid >> op.flags;
      return op;
    });
    for (const auto& op : acked) apply_op(model, op);
    applied_ops += acked.size();
    acked_total += acked.size();

    StateOptions quiet;
    quiet.compact_factor = 0;
    auto st = MailboxState::open(mdir, quiet);
    ASSERT_TRUE(st) << "iteration " << iter << ": " << st.error().message;
    Model actual;
    for (const auto& m : st->messages()) actual[m.uid] = m.flags;
    // Every operation is one record with one new modseq, so HIGHESTMODSEQ tells whether the
    // operation in flight reached the disk before the kill.
    if (pending && st->highest_modseq() == 2 + applied_ops) {
      apply_op(model, *pending);
      ++applied_ops;
    }
    ASSERT_EQ(st->highest_modseq(), 1 + applied_ops) << "iteration " << iter;
    ASSERT_EQ(actual, model) << "iteration " << iter << " (" << acked.size() << " acknowledged)";
    for (const auto& m : st->messages()) {
      auto got = spool->read_message("user", kBox, kUidValidity, m.uid);
      ASSERT_TRUE(got) << "iteration " << iter << ": " << got.error().message;
      ASSERT_EQ(*got, body(m.uid));
    }
  }
  RecordProperty("acknowledged_operations", std::to_string(acked_total));
  // Temp files are what kills during a blob write or a compaction leave; purge removes them.
  size_t temps = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(mdir)) temps += is_temp_name(e.path().filename().string());
  RecordProperty("temp_files_left_by_kills", std::to_string(temps));
  ASSERT_TRUE(spool->purge_user("user", std::chrono::seconds(0)));
  for (const auto& e : std::filesystem::recursive_directory_iterator(mdir)) EXPECT_FALSE(is_temp_name(e.path().filename().string()));
  EXPECT_GE(acked_total, 200u) << "the writer barely ran; the test proves little";
  EXPECT_EQ(spool->stats().corrupt_blobs, 0u);
}

struct ListOp {
  std::string kind;  // "create", "rename", "delete"
  std::string a, b;
};

[[noreturn]] void list_writer(const std::string& user_dir, unsigned seed, int fd) {
  auto list = MailboxList::open(user_dir);
  if (!list) fail(fd, "open: " + list.error().message);
  std::mt19937 rng(seed);
  for (int i = 0; i < 100000; ++i) {
    auto boxes = list->list();
    ListOp op;
    if (boxes.size() < 3 || rng() % 3 == 0) {
      op = {"create", "box" + std::to_string(rng() % 1000000), ""};
      if (list->find(op.a)) continue;
    } else {
      const std::string& from = boxes[rng() % boxes.size()].name;
      op = rng() % 2 ? ListOp{"rename", from, "r" + std::to_string(rng() % 1000000)} : ListOp{"delete", from, ""};
      if (op.kind == "rename" && list->find(op.b)) continue;
    }
    report(fd, "I " + op.kind + " " + op.a + " " + (op.b.empty() ? "-" : op.b));
    bool ok = op.kind == "create" ? list->create(op.a).ok()
              : op.kind == "rename" ? list->rename(op.a, op.b, '/').ok()
                                    : list->remove(op.a).ok();
    if (!ok) fail(fd, op.kind + " failed");
    report(fd, "A");
  }
  ::_exit(0);
}

TEST(CrashTest, KilledMailboxListWriterLosesNoAcknowledgedChange) {
  TempDir dir;
  const std::string user_dir = dir.sub("users/00/u");
  std::set<std::string> model;
  std::mt19937 rng(4711);
  uint32_t last_uidvalidity = 0;
  for (int iter = 0; iter < kIterations; ++iter) {
    const int acks = static_cast<int>(rng() % 30);
    auto lines = run_and_kill([&](int fd) { list_writer(user_dir, rng(), fd); }, acks,
                              std::chrono::microseconds(rng() % 3000));
    std::vector<ListOp> acked;
    std::optional<ListOp> pending;
    split<ListOp>(lines, acked, pending, [](std::istringstream& in) {
      ListOp op;
      in >> op.kind >> op.a >> op.b;
      return op;
    });
    auto apply_list = [&](const ListOp& op) {
      if (op.kind == "create") model.insert(op.a);
      if (op.kind == "delete") model.erase(op.a);
      if (op.kind == "rename") {
        model.erase(op.a);
        model.insert(op.b);
      }
    };
    for (const auto& op : acked) apply_list(op);
    auto list = MailboxList::open(user_dir);
    ASSERT_TRUE(list) << "iteration " << iter << ": " << list.error().message;
    std::set<std::string> actual;
    for (const auto& m : list->list()) actual.insert(m.name);
    if (pending && actual != model) apply_list(*pending);
    ASSERT_EQ(actual, model) << "iteration " << iter;
    EXPECT_GE(list->next_uidvalidity(), last_uidvalidity) << "UIDVALIDITY counter went backwards";
    last_uidvalidity = list->next_uidvalidity();
  }
}

}  // namespace
}  // namespace basalt::store
