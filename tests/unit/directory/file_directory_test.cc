#include "directory/file_directory.h"

#include <event2/thread.h>
#include <gtest/gtest.h>

#include <future>

#include "common/loop_tasks.h"
#include "common/thread_pool.h"

#include "test_util.h"

namespace basalt::directory {
namespace {

using testing::EventBase;
using testing::run_until;

constexpr const char* kUsers = R"(
[[user]]
name = "plain"
password = "{PLAIN}open sesame"
shard = "a"

[[user]]
name = "ssha"
password = "{SSHA}M4/akJiMf410Om7mopUsKbpWEczoWwpz"
shard = "b"
status = "active"

[[user]]
name = "ssha256"
password = "{SSHA256}y6ZzTCyow+ebqqsnaiErFSXNhuo8UQzyq34PasY9Y70BAnNhbHRzYWx0/w=="
shard = "a"

[[user]]
name = "ssha512"
password = "{SSHA512}y20lxUbGtNfJXLTHn9BIuItNNgmjKj3RAEk9/Cc2cLLK93gtykpzjL1I5Fcu5FMEyTk+zfx1qFtfpDq4jbAPbQECc2FsdHNhbHT/"
shard = "a"

[[user]]
name = "sha512crypt"
password = "{CRYPT}$6$rounds=5000$abcdefgh12345678$XL03i6QGsQo2cdi9REkfULG6gopSGWpiu8YzJRWQg0mSPSA1EtTG8Sl26n3Zh23wXpnW47SsNtVL6RfGOZCVf1"
shard = "a"

[[user]]
name = "yescrypt"
password = "{CRYPT}$y$j9T$4V0pWmlWe222JBjSBrIv4.$jEKze81NqjNtTKp/IHMNkYY0cbhRMPErNvbo1neXwG9"
shard = "a"

[[user]]
name = "gone"
password = "{PLAIN}open sesame"
shard = "a"
status = "Disabled"

[[user]]
name = "mover"
password = "{PLAIN}open sesame"
shard = "b"
status = "moving"
)";

class FileDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto table = UserTable::parse(toml::parse(kUsers), "users.toml");
    ASSERT_TRUE(table) << table.error().message;
    directory_ = std::make_unique<FileDirectory>(base_.get(), *table, StatusRules{});
  }

  AuthResult auth(std::string_view user, std::string_view secret) {
    std::optional<AuthResult> result;
    directory_->authenticate(user, secret, [&](AuthResult r) { result = std::move(r); });
    EXPECT_FALSE(result) << "callback ran synchronously";
    run_until(base_.get(), result);
    EXPECT_TRUE(result);
    return result.value_or(AuthResult{});
  }

  EventBase base_{event_base_new()};
  std::unique_ptr<FileDirectory> directory_;
};

TEST_F(FileDirectoryTest, EverySchemeVerifies) {
  for (const char* user : {"plain", "ssha", "ssha256", "ssha512", "sha512crypt", "yescrypt"}) {
    AuthResult r = auth(user, "open sesame");
    EXPECT_EQ(r.outcome, AuthOutcome::kOk) << user << ": " << r.detail;
    EXPECT_EQ(r.route.user, user);
    EXPECT_EQ(r.route.dn, "");
  }
  AuthResult r = auth("ssha", "open sesame");
  EXPECT_EQ(r.route.shard, "b");
  EXPECT_EQ(r.route.status, "active");
}

TEST_F(FileDirectoryTest, WrongPasswordForEveryScheme) {
  for (const char* user : {"plain", "ssha", "ssha256", "ssha512", "sha512crypt", "yescrypt"}) {
    AuthResult r = auth(user, "open sesamE");
    EXPECT_EQ(r.outcome, AuthOutcome::kBadCredentials) << user;
    EXPECT_EQ(r.route.shard, "") << "no route for a failed login";
  }
}

TEST_F(FileDirectoryTest, UnknownUserEmptyPasswordAndInvalidNames) {
  EXPECT_EQ(auth("nobody", "open sesame").outcome, AuthOutcome::kBadCredentials);
  EXPECT_EQ(auth("nobody", "open sesame").detail, "unknown user");
  EXPECT_EQ(auth("plain", "").outcome, AuthOutcome::kBadCredentials);
  EXPECT_EQ(auth("plain", "").detail, "empty password");
  EXPECT_EQ(auth("", "x").outcome, AuthOutcome::kBadCredentials);
  EXPECT_EQ(auth(std::string("pl\0ain", 6), "open sesame").outcome, AuthOutcome::kBadCredentials);
  EXPECT_EQ(auth("plain\r\n", "open sesame").outcome, AuthOutcome::kBadCredentials);
  EXPECT_EQ(auth(std::string(10 * 1024, 'a'), "open sesame").outcome, AuthOutcome::kBadCredentials);
  EXPECT_EQ(auth("*", "open sesame").outcome, AuthOutcome::kBadCredentials);
}

TEST_F(FileDirectoryTest, DisabledAndMovingNeedTheRightPassword) {
  AuthResult gone = auth("gone", "open sesame");
  EXPECT_EQ(gone.outcome, AuthOutcome::kDisabled);
  EXPECT_EQ(gone.route.status, "Disabled");
  AuthResult mover = auth("mover", "open sesame");
  EXPECT_EQ(mover.outcome, AuthOutcome::kMoving);
  EXPECT_EQ(mover.route.shard, "b");
  EXPECT_EQ(auth("gone", "wrong").outcome, AuthOutcome::kBadCredentials);
  EXPECT_EQ(auth("mover", "wrong").outcome, AuthOutcome::kBadCredentials);
}

TEST_F(FileDirectoryTest, CallbacksRunInOrderFromTheLoop) {
  std::vector<std::string> order;
  for (const char* user : {"plain", "nobody", "ssha"}) {
    directory_->authenticate(user, "open sesame", [&order, user](AuthResult) { order.push_back(user); });
  }
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(directory_->pending(), 3u);
  testing::run_for(base_.get(), std::chrono::milliseconds(20));
  EXPECT_EQ(order, (std::vector<std::string>{"plain", "nobody", "ssha"}));
  EXPECT_EQ(directory_->pending(), 0u);
}

TEST_F(FileDirectoryTest, NoCallbackAfterDestruction) {
  bool called = false;
  directory_->authenticate("plain", "open sesame", [&](AuthResult) { called = true; });
  directory_.reset();
  testing::run_for(base_.get(), std::chrono::milliseconds(20));
  EXPECT_FALSE(called);
}

TEST_F(FileDirectoryTest, CallbackMayDestroyTheDirectory) {
  int calls = 0;
  directory_->authenticate("plain", "open sesame", [&](AuthResult) {
    ++calls;
    directory_.reset();
  });
  directory_->authenticate("ssha", "open sesame", [&](AuthResult) { ++calls; });
  testing::run_for(base_.get(), std::chrono::milliseconds(20));
  EXPECT_EQ(calls, 1);
}

// With a pool, {CRYPT} checks run there (a blocked pool holds exactly those results back) and
// the cheap schemes stay on the loop; results still arrive from the loop, and never after the
// directory is gone.
class OffloadedFileDirectoryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { evthread_use_pthreads(); }  // LoopTasks needs it before the base
  void SetUp() override {
    auto table = UserTable::parse(toml::parse(kUsers), "users.toml");
    ASSERT_TRUE(table) << table.error().message;
    tasks_ = std::make_unique<LoopTasks>(base_.get());
    directory_ = std::make_unique<FileDirectory>(
        base_.get(), *table, StatusRules{}, Offload{pool_, [this](std::function<void()> t) { tasks_->post(std::move(t)); }});
    ASSERT_TRUE(pool_.post([gate = gate_.get_future().share()] { gate.wait(); }));  // holds the only pool thread
  }
  void TearDown() override { open_gate(); }
  void open_gate() {
    if (!opened_) gate_.set_value();
    opened_ = true;
  }

  EventBase base_{event_base_new()};
  std::unique_ptr<LoopTasks> tasks_;
  ThreadPool pool_{1};
  std::promise<void> gate_;
  bool opened_ = false;
  std::unique_ptr<FileDirectory> directory_;
};

TEST_F(OffloadedFileDirectoryTest, CryptChecksRunOnThePool) {
  std::optional<AuthResult> crypt_ok, crypt_wrong, plain;
  directory_->authenticate("sha512crypt", "open sesame", [&](AuthResult r) { crypt_ok = std::move(r); });
  directory_->authenticate("yescrypt", "open sesamE", [&](AuthResult r) { crypt_wrong = std::move(r); });
  directory_->authenticate("plain", "open sesame", [&](AuthResult r) { plain = std::move(r); });
  EXPECT_EQ(directory_->pending(), 3u);
  run_until(base_.get(), plain);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->outcome, AuthOutcome::kOk);
  testing::run_for(base_.get(), std::chrono::milliseconds(50));
  EXPECT_FALSE(crypt_ok || crypt_wrong) << "a crypt check ran without the pool";
  EXPECT_EQ(directory_->pending(), 2u);  // a reload keeps this directory until they are done
  open_gate();
  run_until(base_.get(), crypt_ok);
  run_until(base_.get(), crypt_wrong);
  ASSERT_TRUE(crypt_ok && crypt_wrong);
  EXPECT_EQ(crypt_ok->outcome, AuthOutcome::kOk) << crypt_ok->detail;
  EXPECT_EQ(crypt_ok->route.shard, "a");
  EXPECT_EQ(crypt_wrong->outcome, AuthOutcome::kBadCredentials);
  EXPECT_EQ(crypt_wrong->detail, "wrong password");
  EXPECT_EQ(directory_->pending(), 0u);
}

TEST_F(OffloadedFileDirectoryTest, NoCallbackWhenDestroyedWhileThePoolChecks) {
  bool called = false;
  directory_->authenticate("sha512crypt", "open sesame", [&](AuthResult) { called = true; });
  directory_.reset();
  open_gate();
  testing::run_for(base_.get(), std::chrono::milliseconds(100));
  EXPECT_FALSE(called);
}

void expect_load_error(const std::string& text, const std::string& needle) {
  auto table = UserTable::parse(toml::parse(text), "users.toml");
  ASSERT_FALSE(table) << text;
  EXPECT_NE(table.error().message.find(needle), std::string::npos) << table.error().message;
}

TEST(UserTable, LoadErrorsNameFileAndEntry) {
  const std::string ok = "[[user]]\nname = \"a\"\npassword = \"{PLAIN}x\"\nshard = \"s\"\n";
  expect_load_error(ok + "[[user]]\nname = \"b\"\npassword = \"x\"\nshard = \"s\"\n",
                    "users.toml: user[1] (line 5): password: password has no {SCHEME} prefix");
  expect_load_error(ok + "[[user]]\nname = \"b\"\npassword = \"{MD5}x\"\nshard = \"s\"\n", "user[1]");
  expect_load_error(ok + ok, "user[1] (line 5): duplicate user 'a'");
  expect_load_error("[[user]]\npassword = \"{PLAIN}x\"\nshard = \"s\"\n", "user[0] (line 1): missing or non-string 'name'");
  expect_load_error("[[user]]\nname = \"a\"\npassword = \"{PLAIN}x\"\n", "missing or non-string 'shard'");
  expect_load_error("[[user]]\nname = \"a\"\nshard = \"s\"\n", "missing or non-string 'password'");
  expect_load_error(ok + "[[user]]\nname = \"b\"\npassword = \"{PLAIN}x\"\nshard = \"s\"\nstatus = 1\n", "'status' must be a string");
  expect_load_error(ok + "[[user]]\nname = \"b\"\npasswd = \"{PLAIN}x\"\n", "unknown key 'passwd'");
  expect_load_error("[[user]]\nname = \"a\\nb\"\npassword = \"{PLAIN}x\"\nshard = \"s\"\n", "name: control byte");
  expect_load_error("user = 1\n", "'user' must be an array of tables");
  expect_load_error("[users]\n", "unknown top-level key 'users'");
}

TEST(UserTable, QuotaKeysAreOptionalNonNegativeIntegers) {
  auto table = UserTable::parse(toml::parse("[[user]]\nname = \"a\"\npassword = \"{PLAIN}x\"\nshard = \"s\"\n"
                                            "quota_bytes = 1000\nquota_messages = 0\n"
                                            "[[user]]\nname = \"b\"\npassword = \"{PLAIN}x\"\nshard = \"s\"\n"),
                                "users.toml");
  ASSERT_TRUE(table) << table.error().message;
  const FileUser* a = (*table)->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->quota_bytes, std::optional<uint64_t>(1000));
  EXPECT_EQ(a->quota_messages, std::optional<uint64_t>(0));  // 0: unlimited for this user
  const FileUser* b = (*table)->find("b");
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(b->quota_bytes);  // unset: the store's default applies
  EXPECT_FALSE(b->quota_messages);
  const std::string ok = "[[user]]\nname = \"a\"\npassword = \"{PLAIN}x\"\nshard = \"s\"\n";
  expect_load_error(ok + "[[user]]\nname = \"b\"\npassword = \"{PLAIN}x\"\nshard = \"s\"\nquota_bytes = \"1G\"\n",
                    "users.toml: user[1] (line 5): 'quota_bytes' must be a non-negative integer");
  expect_load_error(ok + "quota_bytes = -1\n", "user[0] (line 1): 'quota_bytes' must be a non-negative integer");
  expect_load_error(ok + "quota_messages = 1.5\n", "user[0] (line 1): 'quota_messages' must be a non-negative integer");
  expect_load_error(ok + "quota_messages = true\n", "'quota_messages' must be a non-negative integer");
  expect_load_error(ok + "quota = 5\n", "unknown key 'quota'");
}

TEST(UserTable, MissingFileAndSyntaxErrors) {
  testing::TempDir dir;
  auto missing = UserTable::load(dir.path() + "/nope.toml");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("nope.toml"), std::string::npos);
  std::string path = dir.write("broken.toml", "[[user]\nname = \n");
  auto broken = UserTable::load(path);
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("broken.toml:1"), std::string::npos) << broken.error().message;
}

TEST(UserTable, EmptyFileIsAnEmptyDirectory) {
  auto table = UserTable::parse(toml::table{}, "users.toml");
  ASSERT_TRUE(table);
  EXPECT_EQ((*table)->size(), 0u);
}

}  // namespace
}  // namespace basalt::directory
