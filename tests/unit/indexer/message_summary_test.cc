// ENVELOPE / BODYSTRUCTURE / BODY rules of RFC 3501 §7.4.2 on hand-written messages.
// Expected strings were checked against Dovecot 2.3.19 (the shards Basalt takes over).
#include "indexer/message_summary.h"

#include <gtest/gtest.h>

#include <string>

#include "indexer/imap_quote.h"

namespace basalt::index {
namespace {

MessageSummary summarize(const std::string& raw) {
  auto s = summarize_message(raw);
  EXPECT_TRUE(s.ok());
  return s.ok() ? *s : MessageSummary{};
}

std::string envelope_of(const std::string& header) { return summarize(header + "\n").envelope; }

constexpr const char* kNoEnvelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";

TEST(ImapQuote, QuotedWhenLegalLiteralOtherwise) {
  std::string out;
  imap::append_string(out, "a \"b\" \\c");
  EXPECT_EQ(out, R"("a \"b\" \\c")");
  out.clear();
  imap::append_string(out, "caf\xe9");
  EXPECT_EQ(out, "{4}\r\ncaf\xe9");
  out.clear();
  imap::append_string(out, "a\r\nb");
  EXPECT_EQ(out, "{4}\r\na\r\nb");
  out.clear();
  imap::append_string(out, std::string("a\0b", 3));
  EXPECT_EQ(out, "{3}\r\na\x80" "b");
  out.clear();
  imap::append_nstring(out, std::nullopt);
  EXPECT_EQ(out, "NIL");
}

TEST(ImapQuote, ForHumansCollapsesWhiteSpaceAndUnfoldKeepsIt) {
  std::string out;
  imap::append_string_for_humans(out, "  hello\n\tworld  \n  again  ");
  EXPECT_EQ(out, "\"hello world again\"");
  EXPECT_EQ(imap::unfold("Mon, 1 Jan\n 2001"), "Mon, 1 Jan 2001");
  EXPECT_EQ(imap::unfold("<a@b>\n\t<c@d>"), "<a@b>\t<c@d>");
  EXPECT_EQ(imap::unfold("a\r\nb"), "a b");
}

TEST(Envelope, AllNilWithoutEnvelopeFields) {
  EXPECT_EQ(envelope_of("X-Other: 1\n"), kNoEnvelope);
  EXPECT_EQ(summarize("").envelope, kNoEnvelope);
}

TEST(Envelope, FieldOrderAndSenderReplyToDefaultToFrom) {
  EXPECT_EQ(envelope_of("Date: Mon, 1 Jan 2001 00:00:00 +0000\nSubject: Hi\nFrom: Joe <joe@example.com>\n"
                        "To: a@b\nCc: c@d\nBcc: e@f\nIn-Reply-To: <x@y>\nMessage-ID: <m@id>\n"),
            "(\"Mon, 1 Jan 2001 00:00:00 +0000\" \"Hi\" ((\"Joe\" NIL \"joe\" \"example.com\")) "
            "((\"Joe\" NIL \"joe\" \"example.com\")) ((\"Joe\" NIL \"joe\" \"example.com\")) "
            "((NIL NIL \"a\" \"b\")) ((NIL NIL \"c\" \"d\")) ((NIL NIL \"e\" \"f\")) \"<x@y>\" \"<m@id>\")");
  // An empty Sender: has no address, so From stands in (RFC 3501 §7.4.2).
  EXPECT_EQ(envelope_of("From: a@b\nSender:\nReply-To: r@s\n"),
            "(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"r\" \"s\")) NIL NIL NIL NIL NIL)");
}

TEST(Envelope, EmptyStringIsNotNil) {
  EXPECT_EQ(envelope_of("Subject:\nDate: \n"), "(\"\" \"\" NIL NIL NIL NIL NIL NIL NIL NIL)");
}

TEST(Envelope, EncodedWordsAndIdsStayRaw) {
  EXPECT_EQ(envelope_of("Subject: =?utf-8?q?caf=C3=A9?=\nFrom: =?utf-8?q?J=C3=B6?= <j@x>\n"
                        "Message-ID:   <spaces@x>  \n"),
            "(NIL \"=?utf-8?q?caf=C3=A9?=\" ((\"=?utf-8?q?J=C3=B6?=\" NIL \"j\" \"x\")) "
            "((\"=?utf-8?q?J=C3=B6?=\" NIL \"j\" \"x\")) ((\"=?utf-8?q?J=C3=B6?=\" NIL \"j\" \"x\")) "
            "NIL NIL NIL NIL \"<spaces@x>  \")");
}

TEST(Envelope, FoldedValuesAreUnfolded) {
  EXPECT_EQ(envelope_of("Date: Mon, 1 Jan\n 2001\nSubject: hello\n\tworld\nIn-Reply-To: <a@b>\n <c@d>\n"),
            "(\"Mon, 1 Jan 2001\" \"hello world\" NIL NIL NIL NIL NIL NIL \"<a@b> <c@d>\" NIL)");
}

TEST(Envelope, EightBitValuesAreLiterals) {
  EXPECT_EQ(envelope_of("Subject: caf\xe9\n"), "(NIL {4}\r\ncaf\xe9 NIL NIL NIL NIL NIL NIL NIL NIL)");
}

TEST(Envelope, LastStringFieldWinsAddressFieldsAddUp) {
  EXPECT_EQ(envelope_of("Subject: a\nSubject: b\nFrom: x@y\nFrom: z@w\n"),
            "(NIL \"b\" ((NIL NIL \"x\" \"y\")(NIL NIL \"z\" \"w\")) ((NIL NIL \"x\" \"y\")(NIL NIL \"z\" \"w\")) "
            "((NIL NIL \"x\" \"y\")(NIL NIL \"z\" \"w\")) NIL NIL NIL NIL NIL)");
}

std::string to_of(const std::string& value) {
  std::string env = envelope_of("To: " + value + "\n");
  // The To list is the sixth field: skip "(NIL NIL NIL NIL NIL ".
  return env.substr(21, env.size() - 21 - std::string(" NIL NIL NIL NIL)").size());
}

TEST(Address, GroupsUseNilMailboxMarkers) {
  EXPECT_EQ(to_of("grp: a@b, c@d;, empty:;"),
            "((NIL NIL \"grp\" NIL)(NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\")(NIL NIL NIL NIL)"
            "(NIL NIL \"empty\" NIL)(NIL NIL NIL NIL))");
  EXPECT_EQ(to_of("undisclosed-recipients:;"), "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))");
}

TEST(Address, RouteNameCommentAndQuoting) {
  EXPECT_EQ(to_of("<@r1,@r2:x@y>"), "((NIL \"@r1,@r2\" \"x\" \"y\"))");
  EXPECT_EQ(to_of("\"Joe  Q.  Public\" <joe@example.com>"), "((\"Joe Q. Public\" NIL \"joe\" \"example.com\"))");
  EXPECT_EQ(to_of("e@f (Comment Name)"), "((\"Comment Name\" NIL \"e\" \"f\"))");
  EXPECT_EQ(to_of("\"q\\\"x\" <z@w>"), "((\"q\\\"x\" NIL \"z\" \"w\"))");
  EXPECT_EQ(to_of("\"quoted@local\"@dom.ain"), "((NIL NIL \"quoted@local\" \"dom.ain\"))");
  EXPECT_EQ(to_of("a@[1.2.3.4]"), "((NIL NIL \"a\" \"[1.2.3.4]\"))");
  EXPECT_EQ(to_of("\"\" <x@y>"), "((NIL NIL \"x\" \"y\"))");
}

TEST(Address, BrokenAddressesGetPlaceholders) {
  EXPECT_EQ(to_of("broken"), "((NIL NIL \"broken\" \"MISSING_DOMAIN\"))");
  EXPECT_EQ(to_of("a@"), "((NIL NIL \"a\" \"MISSING_DOMAIN\"))");
  EXPECT_EQ(to_of("<>"), "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))");
  EXPECT_EQ(to_of("a b c"), "((\"a b c\" NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))");
  EXPECT_EQ(to_of(",a@b"), "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")(NIL NIL \"a\" \"b\"))");
  EXPECT_EQ(to_of("a.@b, a..b@c"), "((NIL NIL \"a.\" \"b\")(NIL NIL \"a..b\" \"c\"))");
}

TEST(Bodystructure, DefaultIsTextPlainUsAscii) {
  auto s = summarize("Subject: x\n\nhello\nworld\n");
  EXPECT_EQ(s.bodystructure, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2 NIL NIL NIL NIL)");
  EXPECT_EQ(s.body, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 14 2)");
}

TEST(Bodystructure, SizesCountBareLfAsCrlf) {
  auto lf = summarize("Subject: x\n\nab\ncd\n");
  auto crlf = summarize("Subject: x\r\n\r\nab\r\ncd\r\n");
  EXPECT_EQ(lf.size, crlf.size);
  EXPECT_EQ(lf.size, 22u);
  EXPECT_EQ(lf.raw_size, 18u);
  EXPECT_EQ(lf.bodystructure, crlf.bodystructure);
  EXPECT_EQ(lf.header, "Subject: x\r\n\r\n");
  EXPECT_EQ(crlf.header, "Subject: x\r\n\r\n");
}

TEST(Bodystructure, ParametersAndExtensionDataAsSent) {
  auto s = summarize(
      "MIME-Version: 1.0\nContent-Type: text/plain; charset=\"ISO-8859-1\"; Format=Flowed\n"
      "Content-Transfer-Encoding: quoted-printable\nContent-ID: <id>\nContent-Description: desc  ription\n"
      "Content-Disposition: attachment; filename*0*=us-ascii'en'a%20b; filename*1=c\n"
      "Content-Language: en, de\nContent-Location: http://x/\nContent-MD5: abc\n\nbody\n");
  EXPECT_EQ(s.bodystructure,
            "(\"text\" \"plain\" (\"charset\" \"ISO-8859-1\" \"Format\" \"Flowed\") \"<id>\" \"desc  ription\" "
            "\"quoted-printable\" 6 1 \"abc\" (\"attachment\" (\"filename*\" \"us-ascii'en'a%20bc\")) (\"en\" \"de\") "
            "\"http://x/\")");
}

TEST(Bodystructure, Rfc2231BrokenContinuationsStayApart) {
  auto s = summarize("Content-Type: text/plain; x*=utf-8''%41; y*0=a; y*2=c\n\n");
  EXPECT_EQ(s.body, "(\"text\" \"plain\" (\"x*\" \"utf-8''%41\" \"y*0\" \"a\" \"y*2\" \"c\" \"charset\" \"us-ascii\") "
                    "NIL NIL \"7bit\" 0 0)");
}

TEST(Bodystructure, ContentFieldsNeedMime) {
  // Content-Type alone makes a message MIME (as in Dovecot); other Content-* alone do not.
  EXPECT_EQ(summarize("Content-Type: text/html\n\nx\n").body,
            "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)");
  EXPECT_EQ(summarize("Content-Transfer-Encoding: base64\n\nx\n").body,
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)");
}

TEST(Bodystructure, LonePlainPartUsesCanonicalSpelling) {
  EXPECT_EQ(summarize("MIME-Version: 1.0\nContent-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
                      "Content-Transfer-Encoding: 7BIT\n\nx\n").body,
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)");
  EXPECT_EQ(summarize("Content-Transfer-Encoding: BASE64\nContent-Type: image/png\n\nAAAA\n").body,
            "(\"image\" \"png\" NIL NIL NIL \"BASE64\" 6)");
}

TEST(Bodystructure, BrokenContentType) {
  EXPECT_EQ(summarize("Content-Type: text\n\nx\n").body, "(\"text\" \"\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 1)");
  EXPECT_EQ(summarize("Content-Type: /plain\n\nx\n").body, "(\"\" \"\" NIL NIL NIL \"7bit\" 3)");
  EXPECT_EQ(summarize("Content-Type: foo/bar baz; a=b\n\nx\n").body, "(\"\" \"\" NIL NIL NIL \"7bit\" 3)");
}

const char* kMultipart =
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\npreamble\n--b\n\none\n"
    "--bxyz\nContent-Type: text/html\nContent-Disposition: inline\n\ntwo\n--b--\nepilogue\n";

TEST(Bodystructure, MultipartWithExtensionData) {
  auto s = summarize(kMultipart);
  EXPECT_EQ(s.bodystructure,
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL NIL NIL NIL)"
            "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0 NIL (\"inline\" NIL) NIL NIL) "
            "\"mixed\" (\"boundary\" \"b\") NIL NIL NIL)");
  EXPECT_EQ(s.body,
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0)"
            "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 3 0) \"mixed\")");
}

TEST(Bodystructure, PartOffsetsExcludeTheCrlfBeforeBoundaries) {
  std::string raw = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b--\r\n";
  EnvelopeBuilder env;
  MimePart root = parse_mime_structure(raw, env);
  ASSERT_EQ(root.children.size(), 1u);
  const MimePart& part = root.children[0];
  EXPECT_EQ(raw.substr(part.body_begin, part.body_end - part.body_begin), "one");
  EXPECT_EQ(root.body_end, raw.size());
}

TEST(Bodystructure, MultipartWithoutBoundaryGetsEmptyPart) {
  EXPECT_EQ(summarize("MIME-Version: 1.0\nContent-Type: multipart/mixed\n\nno boundary\n").body,
            "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\")");
}

TEST(Bodystructure, MessageRfc822CarriesEnvelopeBodyAndLines) {
  auto s = summarize("MIME-Version: 1.0\nContent-Type: Message/RFC822\n\nSubject: inner\nFrom: a@b\n\nbody\n");
  EXPECT_EQ(s.body,
            "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 35 (NIL \"inner\" ((NIL NIL \"a\" \"b\")) "
            "((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) NIL NIL NIL NIL NIL) "
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1) 4)");
}

TEST(Bodystructure, DigestChildrenDefaultToMessageRfc822) {
  auto s = summarize("MIME-Version: 1.0\nContent-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: c\n\nhi\n"
                     "--d\nContent-Type: text/plain\n\nplain\n--d--\n");
  EXPECT_EQ(s.body,
            "((\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 16 (NIL \"c\" NIL NIL NIL NIL NIL NIL NIL NIL) "
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 2 0) 2)"
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 0) \"digest\")");
}

TEST(Bodystructure, HeaderCutByBoundary) {
  auto s = summarize("MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b\"\n\n"
                     "--b\nContent-Type: text/plain\n--b\nContent-Type: text/plain\n\nx\n--b--");
  EXPECT_EQ(s.body, "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
                    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0) \"alternative\")");
}

TEST(Summary, HeaderIsWhatBodyHeaderReturns) {
  auto s = summarize("Subject: x\nFrom: a@b\n\nbody\n");
  EXPECT_EQ(s.header, "Subject: x\r\nFrom: a@b\r\n\r\n");
  EXPECT_EQ(summarize("Subject: x").header, "Subject: x");
  EXPECT_EQ(summarize("\nbody only\n").header, "\r\n");
}

std::string nested(int depth) {
  std::string raw = "Content-Type: multipart/mixed; boundary=b0\n\n";
  for (int i = 1; i < depth; ++i) {
    raw += "--b" + std::to_string(i - 1) + "\nContent-Type: multipart/mixed; boundary=b" + std::to_string(i) + "\n\n";
  }
  return raw + "--b" + std::to_string(depth - 1) + "\n\nleaf\n";
}

bool balanced(const std::string& s) {
  // Parentheses outside quoted strings and literals must balance.
  int depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '"') {
      for (++i; i < s.size() && s[i] != '"'; ++i) i += s[i] == '\\';
    } else if (s[i] == '{') {
      size_t close = s.find("}\r\n", i);
      if (close == std::string::npos) return false;
      i = close + 2 + std::stoul(s.substr(i + 1, close - i - 1));
    } else if (s[i] == '(') {
      ++depth;
    } else if (s[i] == ')' && --depth < 0) {
      return false;
    }
  }
  return depth == 0;
}

TEST(Summary, DeepNestingIsBounded) {
  for (int depth : {5, 99, 100, 101, 2000}) {
    auto s = summarize(nested(depth));
    EXPECT_TRUE(balanced(s.bodystructure)) << depth;
    EXPECT_TRUE(balanced(s.body)) << depth;
  }
  SummaryLimits limits;
  limits.max_depth = 3;  // root, child, grandchild; the grandchild is not split
  auto s = summarize_message(nested(10), limits);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->body,
            "((((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) \"mixed\") \"mixed\") \"mixed\")");
}

TEST(Summary, EveryPrefixOfAMessageIsSafe) {
  std::string raw = std::string(kMultipart) + "\n--b\nContent-Type: message/rfc822\n\nFrom: \"x\n(y\n\n";
  for (size_t n = 0; n <= raw.size(); ++n) {
    auto s = summarize(raw.substr(0, n));
    EXPECT_TRUE(balanced(s.envelope)) << n;
    EXPECT_TRUE(balanced(s.bodystructure)) << n;
  }
}

}  // namespace
}  // namespace basalt::index
