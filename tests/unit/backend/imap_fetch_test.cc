#include "backend/imap_fetch.h"

#include <gtest/gtest.h>

#include <string>

#include "backend/mailbox_state.h"
#include "imap_test_args.h"

namespace basalt::store::imap {
namespace {

using basalt::imap::Arg;

// The FETCH attribute argument as the server's command parser delivers it.
Arg fetch_arg(const std::string& items) {
  std::vector<Arg> args = testing::server_args("1 " + items);
  EXPECT_EQ(args.size(), 2u) << items;
  return args.size() == 2 ? args[1] : Arg{};
}

FetchRequest parse(const std::string& items) {
  auto request = parse_fetch_items(fetch_arg(items));
  EXPECT_TRUE(request) << items << ": " << request.error().message;
  return request ? *request : FetchRequest{};
}

std::string parse_error(const std::string& items) {
  auto request = parse_fetch_items(fetch_arg(items));
  return request ? "ok" : request.error().message;
}

FetchItem simple(FetchAtt att) { return FetchItem{att, false, {}, std::nullopt}; }
FetchItem body(Section section, bool peek = false, std::optional<Partial> partial = std::nullopt) {
  return FetchItem{FetchAtt::kBodySection, peek, std::move(section), partial};
}

TEST(ImapFetchParseTest, SimpleAttributesAndMacros) {
  using enum FetchAtt;
  EXPECT_EQ(parse("FLAGS").items, (std::vector{simple(kFlags)}));
  EXPECT_EQ(parse("(uid Flags INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY RFC822 RFC822.HEADER RFC822.TEXT)").items,
            (std::vector{simple(kUid), simple(kFlags), simple(kInternalDate), simple(kRfc822Size), simple(kEnvelope),
                         simple(kBodyStructure), simple(kBody), simple(kRfc822), simple(kRfc822Header),
                         simple(kRfc822Text)}));
  EXPECT_EQ(parse("ALL").items, (std::vector{simple(kFlags), simple(kInternalDate), simple(kRfc822Size), simple(kEnvelope)}));
  EXPECT_EQ(parse("fast").items, (std::vector{simple(kFlags), simple(kInternalDate), simple(kRfc822Size)}));
  EXPECT_EQ(parse("FULL").items, (std::vector{simple(kFlags), simple(kInternalDate), simple(kRfc822Size),
                                              simple(kEnvelope), simple(kBody)}));
}

TEST(ImapFetchParseTest, Sections) {
  EXPECT_EQ(parse("BODY[]").items, (std::vector{body({})}));
  EXPECT_EQ(parse("body.peek[]").items, (std::vector{body({}, true)}));
  EXPECT_EQ(parse("BODY[HEADER]").items, (std::vector{body({{}, SectionText::kHeader, {}})}));
  EXPECT_EQ(parse("BODY[text]").items, (std::vector{body({{}, SectionText::kText, {}})}));
  EXPECT_EQ(parse("BODY[1]").items, (std::vector{body({{1}, SectionText::kNone, {}})}));
  EXPECT_EQ(parse("BODY[1.2.3]").items, (std::vector{body({{1, 2, 3}, SectionText::kNone, {}})}));
  EXPECT_EQ(parse("BODY[4.1.MIME]").items, (std::vector{body({{4, 1}, SectionText::kMime, {}})}));
  EXPECT_EQ(parse("BODY[3.HEADER]").items, (std::vector{body({{3}, SectionText::kHeader, {}})}));
  EXPECT_EQ(parse("BODY[3.TEXT]").items, (std::vector{body({{3}, SectionText::kText, {}})}));
  EXPECT_EQ(parse("BODY.PEEK[HEADER.FIELDS (From \"X-Y\" \"a]\")]<0.100>").items,
            (std::vector{body({{}, SectionText::kHeaderFields, {"From", "X-Y", "a]"}}, true, Partial{0, 100})}));
  EXPECT_EQ(parse("BODY[2.header.fields.not (To)]").items,
            (std::vector{body({{2}, SectionText::kHeaderFieldsNot, {"To"}})}));
  EXPECT_EQ(parse("BODY[HEADER.FIELDS (\"a\\\"b\" \"c\\\\\")]").items,
            (std::vector{body({{}, SectionText::kHeaderFields, {"a\"b", "c\\"}})}));
  EXPECT_EQ(parse("BODY[]<4294967295.4294967295>").items, (std::vector{body({}, false, Partial{4294967295u, 4294967295u})}));
  EXPECT_EQ(parse("BODY[]<007.1>").items, (std::vector{body({}, false, Partial{7, 1})}));
  EXPECT_EQ(parse("(UID BODY.PEEK[1]<5.10> BODY[TEXT])").items.size(), 3u);
}

TEST(ImapFetchParseTest, Errors) {
  for (const char* bad : {"()", "\"FLAGS\"", "(\"FLAGS\")", "(FLAGS (UID))", "(ALL)", "(FLAGS FAST)", "NIL", "{5+}\r\nFLAGS"}) {
    EXPECT_EQ(parse_error(bad), "invalid fetch attribute") << bad;
  }
  for (const char* bad : {"BINARY[]", "FLAG", "BODY.PEEK", "RFC822.PEEK", "BODYX[]", "(UID XYZ)"}) {
    EXPECT_EQ(parse_error(bad), "unknown fetch attribute") << bad;
  }
  for (const char* bad : {"BODY[MIME]", "BODY[0]", "BODY[1.0]", "BODY[01]", "BODY[1.]", "BODY[1..2]", "BODY[.1]",
                          "BODY[1HEADER]", "BODY[HEADERS]", "BODY[HEADER.FIELDS]", "BODY[HEADER.FIELDS ()]",
                          "BODY[HEADER.FIELDS From]", "BODY[HEADER.FIELDS  (From)]", "BODY[HEADER.FIELDS (From )]",
                          "BODY[HEADER.FIELDS (From)x]", "BODY[HEADER.FIELDS (\"\")]", "BODY[TEXT.MIME]",
                          "BODY[1.MIME.TEXT]", "BODY[4294967296]", "BODY[HEADER ]", "BODY[ HEADER]",
                          "BODY[HEADER.FIELDS (a(b)]", "BODY[HEADER.FIELDS.NOT]", "BODY[1.FOO]"}) {
    EXPECT_EQ(parse_error(bad), "invalid section") << bad;
  }
  for (const char* bad : {"BODY[]<>", "BODY[]<1>", "BODY[]<1.0>", "BODY[]<1.>", "BODY[]<.1>", "BODY[]<1.2>x",
                          "BODY[]<4294967296.1>", "BODY[]<1.4294967296>", "BODY[]x", "BODY[]<1.02>", "BODY[]<-1.2>",
                          "BODY[][]"}) {
    EXPECT_EQ(parse_error(bad), "invalid partial") << bad;
  }
}

TEST(ImapFetchParseTest, Predicates) {
  EXPECT_FALSE(needs_body(parse("(FLAGS UID ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE INTERNALDATE RFC822.HEADER)")));
  EXPECT_FALSE(needs_body(parse("(BODY.PEEK[HEADER] BODY[HEADER.FIELDS (A)] BODY[HEADER.FIELDS.NOT (A)])")));
  for (const char* item : {"BODY[]", "BODY.PEEK[TEXT]", "BODY[1]", "BODY[1.MIME]", "BODY[2.HEADER]",
                           "BODY[2.HEADER.FIELDS (A)]", "RFC822", "RFC822.TEXT", "BODY.PEEK[]<0.10>"}) {
    EXPECT_TRUE(needs_body(parse(item))) << item;
  }
  EXPECT_TRUE(sets_seen(parse("BODY[HEADER]")));
  EXPECT_TRUE(sets_seen(parse("(UID RFC822)")));
  EXPECT_TRUE(sets_seen(parse("RFC822.TEXT")));
  EXPECT_FALSE(sets_seen(parse("(BODY.PEEK[] RFC822.HEADER BODY FLAGS)")));
  EXPECT_TRUE(needs_summary(parse("ENVELOPE")));
  EXPECT_TRUE(needs_summary(parse("BODY.PEEK[HEADER.FIELDS (A)]")));
  EXPECT_TRUE(needs_summary(parse("RFC822.HEADER")));
  EXPECT_FALSE(needs_summary(parse("(FLAGS UID INTERNALDATE RFC822.SIZE BODY[] RFC822)")));
}

TEST(ImapFetchParseTest, EnsureUid) {
  FetchRequest r = parse("(FLAGS BODY[])");
  ensure_uid(r);
  EXPECT_EQ(r.items.front(), simple(FetchAtt::kUid));
  EXPECT_EQ(r.items.size(), 3u);
  ensure_uid(r);
  EXPECT_EQ(r.items.size(), 3u);
}

TEST(ImapFetchTest, FormatFlags) {
  std::vector<std::string> keywords = {"$Junk", "work"};
  EXPECT_EQ(format_flags(0, {}, false), "()");
  EXPECT_EQ(format_flags(kSystemFlagMask, {}, false), "(\\Seen \\Answered \\Flagged \\Deleted \\Draft)");
  EXPECT_EQ(format_flags(kFlagDraft | kFlagSeen, keywords, true), "(\\Seen \\Draft \\Recent $Junk work)");
  EXPECT_EQ(format_flags(0, keywords, false), "($Junk work)");
}

class ImapFetchRenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = index::summarize_message(raw_);
    ASSERT_TRUE(s);
    summary_ = std::move(*s);
    message_.uid = 5;
    message_.flags = kFlagSeen;
    message_.keywords = keywords_;
    message_.internal_date = {1700000000, 120};
    message_.size = summary_.size;
    message_.summary = &summary_;
  }
  std::string render(const std::string& items, bool with_raw = true) {
    FetchMessage m = message_;
    if (with_raw) m.raw = raw_;
    std::string out;
    auto r = render_fetch(parse(items), m, out);
    return r ? out : "error: " + r.error().message;
  }

  std::string raw_ =
      "From: Alice <a@example.com>\r\nSubject: hi\r\n there\r\nTo: b@example.com\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n";
  std::vector<std::string> keywords_ = {"$Label1"};
  index::MessageSummary summary_;
  FetchMessage message_;
};

TEST_F(ImapFetchRenderTest, MetadataItems) {
  EXPECT_EQ(render("(UID FLAGS INTERNALDATE RFC822.SIZE)", false),
            "UID 5 FLAGS (\\Seen $Label1) INTERNALDATE \"15-Nov-2023 00:13:20 +0200\" RFC822.SIZE " +
                std::to_string(raw_.size()));
  EXPECT_EQ(render("(ENVELOPE BODYSTRUCTURE BODY)", false),
            "ENVELOPE " + summary_.envelope + " BODYSTRUCTURE " + summary_.bodystructure + " BODY " + summary_.body);
}

TEST_F(ImapFetchRenderTest, HeaderItemsFromTheSummaryAlone) {
  std::string header = raw_.substr(0, raw_.find("\r\n\r\n") + 4);
  EXPECT_EQ(render("BODY.PEEK[HEADER]", false), "BODY[HEADER] {" + std::to_string(header.size()) + "}\r\n" + header);
  EXPECT_EQ(render("RFC822.HEADER", false), "RFC822.HEADER {" + std::to_string(header.size()) + "}\r\n" + header);
  EXPECT_EQ(render("BODY.PEEK[HEADER.FIELDS (subject from)]", false),
            "BODY[HEADER.FIELDS (SUBJECT FROM)] {52}\r\nFrom: Alice <a@example.com>\r\nSubject: hi\r\n there\r\n\r\n");
  EXPECT_EQ(render("BODY[HEADER.FIELDS.NOT (subject from to mime-version content-type)]", false),
            "BODY[HEADER.FIELDS.NOT (SUBJECT FROM TO MIME-VERSION CONTENT-TYPE)] {2}\r\n\r\n");
  EXPECT_EQ(render("BODY.PEEK[HEADER]<0.4>", false), "BODY[HEADER]<0> {4}\r\nFrom");
}

TEST_F(ImapFetchRenderTest, BodySections) {
  EXPECT_EQ(render("BODY[1]"), "BODY[1] {5}\r\nhello");
  EXPECT_EQ(render("BODY.PEEK[1.MIME]"), "BODY[1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n");
  EXPECT_EQ(render("BODY[2]"), "BODY[2] \"\"");  // no such part: "", as Dovecot
  EXPECT_EQ(render("BODY[1.HEADER]"), "BODY[1.HEADER] \"\"");
  EXPECT_EQ(render("BODY[]"), "BODY[] {" + std::to_string(raw_.size()) + "}\r\n" + raw_);
  EXPECT_EQ(render("RFC822"), "RFC822 {" + std::to_string(raw_.size()) + "}\r\n" + raw_);
  std::string text = raw_.substr(raw_.find("\r\n\r\n") + 4);
  EXPECT_EQ(render("RFC822.TEXT"), "RFC822.TEXT {" + std::to_string(text.size()) + "}\r\n" + text);
  EXPECT_EQ(render("BODY[TEXT]"), "BODY[TEXT] {" + std::to_string(text.size()) + "}\r\n" + text);
}

TEST_F(ImapFetchRenderTest, Partials) {
  EXPECT_EQ(render("BODY[1]<1.3>"), "BODY[1]<1> {3}\r\nell");
  EXPECT_EQ(render("BODY[1]<0.100>"), "BODY[1]<0> {5}\r\nhello");  // truncated, still labelled <0>
  EXPECT_EQ(render("BODY[1]<4.100>"), "BODY[1]<4> {1}\r\no");
  EXPECT_EQ(render("BODY[1]<5.1>"), "BODY[1]<5> \"\"");  // origin at the end
  EXPECT_EQ(render("BODY[1]<4294967295.1>"), "BODY[1]<4294967295> \"\"");
  EXPECT_EQ(render("BODY[9]<0.1>"), "BODY[9]<0> \"\"");
}

TEST_F(ImapFetchRenderTest, OrderAndSeenFlags) {
  message_.flags_changed = true;
  EXPECT_EQ(render("(UID BODY[1])"), "UID 5 BODY[1] {5}\r\nhello FLAGS (\\Seen $Label1)");
  EXPECT_EQ(render("(FLAGS BODY[1])"), "FLAGS (\\Seen $Label1) BODY[1] {5}\r\nhello");
  message_.recent = true;
  EXPECT_EQ(render("FLAGS", false), "FLAGS (\\Seen \\Recent $Label1)");
}

TEST_F(ImapFetchRenderTest, MissingInputsAreErrors) {
  EXPECT_EQ(render("BODY[]", false), "error: fetch needs the message body");
  EXPECT_EQ(render("RFC822", false), "error: fetch needs the message body");
  message_.summary = nullptr;
  EXPECT_EQ(render("ENVELOPE", false), "error: fetch needs the message summary");
  EXPECT_EQ(render("BODY[HEADER]", false), "error: fetch needs the message summary or body");
  // Without a summary the header sections come from the raw message.
  EXPECT_EQ(render("BODY.PEEK[HEADER.FIELDS (To)]"), "BODY[HEADER.FIELDS (TO)] {21}\r\nTo: b@example.com\r\n\r\n");
}

TEST_F(ImapFetchRenderTest, AppendsToExistingOutput) {
  FetchMessage m = message_;
  std::string out = "* 1 FETCH (";
  ASSERT_TRUE(render_fetch(parse("(UID FLAGS)"), m, out));
  EXPECT_EQ(out, "* 1 FETCH (UID 5 FLAGS (\\Seen $Label1)");
}

}  // namespace
}  // namespace basalt::store::imap
