#include "backend/imap_mailbox_names.h"

#include <gtest/gtest.h>

#include <string>

namespace basalt::store::imap {
namespace {

std::string validation(std::string_view name) {
  auto r = validate_mailbox_name(name);
  return r ? "ok" : r.error().message;
}

TEST(ImapMailboxNamesTest, Inbox) {
  for (auto [name, expected] : std::vector<std::pair<std::string, std::string>>{
           {"inbox", "INBOX"}, {"InBoX", "INBOX"}, {"INBOX", "INBOX"}, {"inbox/sub", "inbox/sub"}, {"inboxes", "inboxes"}}) {
    EXPECT_EQ(normalize_inbox(name), expected) << name;
  }
}

TEST(ImapMailboxNamesTest, ValidNames) {
  for (const char* name : {"INBOX", "Sent", "a/b/c", "with space", "&-", "Caf&AOk-", "&AOQ-&-x", "&ZeVnLIqe-",
                           "~user", "#news.x", "a&-b", "&2D3eAA-", "[Gmail]/Sent Mail", "quote\"back\\slash"}) {
    EXPECT_EQ(validation(name), "ok") << name;
  }
  EXPECT_EQ(validation(std::string(1024, 'a')), "ok");
}

TEST(ImapMailboxNamesTest, InvalidNames) {
  for (auto [name, expected] : std::vector<std::pair<std::string, std::string>>{
           {"", "empty mailbox name"},
           {std::string(1025, 'a'), "mailbox name too long"},
           {"a\tb", "invalid character in mailbox name"},
           {"a\x7f", "invalid character in mailbox name"},
           {"caf\xc3\xa9", "invalid character in mailbox name"},
           {std::string("a\0b", 3), "invalid character in mailbox name"},
           {"a*", "invalid character in mailbox name"},
           {"a%b", "invalid character in mailbox name"},
           {"/a", "invalid hierarchy in mailbox name"},
           {"a/", "invalid hierarchy in mailbox name"},
           {"a//b", "invalid hierarchy in mailbox name"},
           {"/", "invalid hierarchy in mailbox name"},
           {"&", "invalid modified UTF-7 in mailbox name"},
           {"a&AOk", "invalid modified UTF-7 in mailbox name"},        // unterminated
           {"&AGE-", "invalid modified UTF-7 in mailbox name"},        // "a" encoded
           {"&ACA-", "invalid modified UTF-7 in mailbox name"},        // space encoded
           {"&AAE-", "invalid modified UTF-7 in mailbox name"},        // a control character
           {"&AOk!-", "invalid modified UTF-7 in mailbox name"},       // bad base64 byte
           {"&AOk/-", "invalid modified UTF-7 in mailbox name"},       // "/" is not modified base64
           {"&AOl-", "invalid modified UTF-7 in mailbox name"},        // non-zero padding bits
           {"&AO-", "invalid modified UTF-7 in mailbox name"},         // 12 bits: no whole unit
           {"&AOkA-", "invalid modified UTF-7 in mailbox name"},       // 6 bits left over
           {"&2D0-", "invalid modified UTF-7 in mailbox name"},        // lone high surrogate
           {"&3gA-", "invalid modified UTF-7 in mailbox name"},        // lone low surrogate
           {"&AOk-&AOk-", "invalid modified UTF-7 in mailbox name"},   // two adjacent runs
           {"&AOk=-", "invalid modified UTF-7 in mailbox name"},       // padding
       }) {
    EXPECT_EQ(validation(name), expected) << name;
  }
}

TEST(ImapMailboxNamesTest, ModifiedUtf7) {
  EXPECT_EQ(mutf7_to_utf8("Caf&AOk-"), "Caf\xc3\xa9");
  EXPECT_EQ(mutf7_to_utf8("&-"), "&");
  EXPECT_EQ(mutf7_to_utf8("~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e");  // RFC 3501 §5.1.3
  EXPECT_EQ(mutf7_to_utf8("&2D3eAA-"), "\xf0\x9f\x98\x80");  // U+1F600, a surrogate pair
  EXPECT_EQ(utf8_to_mutf7("Caf\xc3\xa9"), "Caf&AOk-");
  EXPECT_EQ(utf8_to_mutf7("a&b"), "a&-b");
  EXPECT_EQ(utf8_to_mutf7("\xe5\x8f\xb0\xe5\x8c\x97"), "&U,BTFw-");
  EXPECT_EQ(utf8_to_mutf7("\xf0\x9f\x98\x80 x"), "&2D3eAA- x");
  EXPECT_EQ(utf8_to_mutf7("\xff"), "&,,0-");  // invalid UTF-8 becomes U+FFFD
  for (std::string s : {"", "plain", "\xc3\xa4\xc3\xb6\xc3\xbc/\xe6\x97\xa5 & more", "\xf0\x9f\x98\x80\xc3\xa9"}) {
    EXPECT_EQ(mutf7_to_utf8(utf8_to_mutf7(s)), s) << s;
  }
}

TEST(ImapMailboxNamesTest, JoinReferenceAndPattern) {
  EXPECT_EQ(join_list_pattern("", "*"), "*");
  EXPECT_EQ(join_list_pattern("a/", "b%"), "a/b%");
  EXPECT_EQ(join_list_pattern("a/", "/b"), "a/b");
  EXPECT_EQ(join_list_pattern("a", "/b"), "a/b");
  EXPECT_EQ(join_list_pattern("#news.", "comp.mail.*"), "#news.comp.mail.*");
  EXPECT_EQ(join_list_pattern("a", ""), "a");
}

TEST(ImapMailboxNamesTest, ListMatch) {
  struct Case {
    std::string pattern;
    std::string name;
    bool match;
  };
  for (const Case& c : std::vector<Case>{
           {"*", "INBOX", true},           {"*", "a/b/c", true},         {"%", "a", true},
           {"%", "a/b", false},            {"a/%", "a/b", true},         {"a/%", "a/b/c", false},
           {"a/*", "a/b/c", true},         {"a/*", "a", false},          {"a*", "a", true},
           {"a%", "ab", true},             {"%/%", "a/b", true},         {"%/%", "a/b/c", false},
           {"*/c", "a/b/c", true},         {"%/c", "a/b/c", false},      {"a", "a", true},
           {"a", "A", false},              {"a", "ab", false},           {"", "", true},
           {"", "a", false},               {"inbox", "INBOX", true},     {"InBox/%", "INBOX/x", true},
           {"inbox*", "INBOX", true},      {"inbox*", "INBOXES", false}, {"inbox/x", "INBOX/X", false},
           {"Sent", "sent", false},        {"%a%", "bab", true},         {"*a*a*a*a*a*b", std::string(60, 'a'), false},
           {"foo/%", "foo/bar", true},     {"foo/%", "foo", false},      {"%", "", true},
       }) {
    EXPECT_EQ(list_match(c.pattern, c.name), c.match) << c.pattern << " vs " << c.name;
  }
}

TEST(ImapMailboxNamesTest, QuotingForResponses) {
  std::string out;
  append_mailbox_name(out, "INBOX");
  EXPECT_EQ(out, "\"INBOX\"");
  out.clear();
  append_mailbox_name(out, "a\"b\\c");
  EXPECT_EQ(out, R"("a\"b\\c")");
  out.clear();
  append_mailbox_name(out, "caf\xc3\xa9");
  EXPECT_EQ(out, "{5}\r\ncaf\xc3\xa9");
}

}  // namespace
}  // namespace basalt::store::imap
