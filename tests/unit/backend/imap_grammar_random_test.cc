// Random inputs through the store's IMAP grammar modules: whatever the bytes, every call
// returns (a value or an error), never crashes, and sections stay within the message. Run
// under ASan+UBSan this is the cheap stand-in for a fuzz target.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "backend/imap_fetch.h"
#include "backend/imap_mailbox_names.h"
#include "backend/imap_search.h"
#include "backend/imap_section.h"
#include "backend/imap_sequence.h"
#include "imap_test_args.h"

namespace basalt::store::imap {
namespace {

std::string soup(std::mt19937& rng, const std::vector<std::string>& tokens, size_t max_tokens) {
  std::string out;
  size_t n = std::uniform_int_distribution<size_t>(0, max_tokens)(rng);
  for (size_t i = 0; i < n; ++i) out += tokens[std::uniform_int_distribution<size_t>(0, tokens.size() - 1)(rng)];
  return out;
}

TEST(ImapGrammarRandomTest, FetchAndSearchArguments) {
  const std::vector<std::string> tokens = {
      " ", "(", ")", "BODY", "BODY.PEEK", "[", "]", "<", ">", ".", "0", "1", "2", "4294967296", "HEADER",
      ".FIELDS", ".NOT", "TEXT", "MIME", "\"", "\"a\"", "FLAGS", "UID", "ALL", "OR", "NOT", "FROM", "x", "*",
      ":", ",", "SINCE", "1-Jan-2020", "LARGER", "HEADER", "CHARSET", "UTF-8", "KEYWORD", "\\Seen", "NIL"};
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::vector<basalt::imap::Arg> args = testing::server_args(soup(rng, tokens, 12));
    for (const auto& arg : args) {
      auto request = parse_fetch_items(arg);
      if (request) (void)needs_body(*request);
    }
    auto key = parse_search(args);
    if (key) {
      SearchMessage m;
      m.header = "Subject: x\r\n\r\n";
      m.load_raw = []() -> Result<std::string> { return std::string("Subject: x\r\n\r\nbody"); };
      (void)match(*key, m);
    }
  }
}

TEST(ImapGrammarRandomTest, SetsAndNames) {
  const std::vector<std::string> tokens = {"0", "1", "9", "*", ":", ",", "4294967295", "&", "-", "A", "+", "/",
                                           "%", "a", "AOk", "2D3", "eAA", " ", "\x80", "INBOX"};
  std::mt19937 rng(11);
  const std::vector<uint32_t> uids = {2, 3, 10, 4000000000u};
  for (int i = 0; i < 20000; ++i) {
    std::string text = soup(rng, tokens, 10);
    if (auto set = parse_sequence_set(text)) {
      auto positions = resolve_uids(*set, uids);
      EXPECT_TRUE(std::is_sorted(positions.begin(), positions.end()));
      for (uint32_t p : positions) EXPECT_LT(p, uids.size());
      (void)resolve_seqnums(*set, 5);
    }
    (void)validate_mailbox_name(text);
    if (auto utf8 = mutf7_to_utf8(text)) {
      EXPECT_EQ(utf8_to_mutf7(*utf8), text) << text;  // only canonical forms decode
    }
    (void)list_match(text, soup(rng, tokens, 10));
  }
}

TEST(ImapGrammarRandomTest, SectionsOfRandomMessages) {
  const std::vector<std::string> tokens = {
      "\r\n", "\n", "Content-Type: multipart/mixed; boundary=b\r\n", "Content-Type: message/rfc822\r\n",
      "MIME-Version: 1.0\r\n", "--b\r\n", "--b--\r\n", "--b", "X: 1\r\n", " folded\r\n", "text", "\r\n\r\n"};
  std::mt19937 rng(13);
  for (int i = 0; i < 3000; ++i) {
    std::string raw = soup(rng, tokens, 16);
    for (std::vector<uint32_t> part : {std::vector<uint32_t>{}, {1}, {2}, {1, 1}, {1, 2}, {2, 1, 1}}) {
      for (SectionText text : {SectionText::kNone, SectionText::kHeader, SectionText::kText, SectionText::kMime,
                               SectionText::kHeaderFieldsNot}) {
        auto data = extract_section(raw, Section{part, text, {"x"}});
        // As sent: every LF is CRLF now, so never more than twice the raw bytes.
        if (data) {
          EXPECT_LE(data->size(), 2 * raw.size() + 2);
        }
      }
    }
  }
}

}  // namespace
}  // namespace basalt::store::imap
