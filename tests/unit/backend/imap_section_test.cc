#include "backend/imap_section.h"

#include <gtest/gtest.h>

#include <string>

namespace basalt::store::imap {
namespace {

using namespace std::string_literals;

// RFC 3501 §6.4.5's example layout, smaller: 1 text, 2 message/rfc822 holding a multipart,
// 3 a multipart holding an image.
const std::string kNested =
    "From: a@example.com\r\n"
    "Subject: test\r\n"
    "  folded\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--outer\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "part one\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: inner\r\n"
    "Content-Type: multipart/alternative; boundary=\"inner\"\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "inner plain\r\n"
    "--inner\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<p>inner html</p>\r\n"
    "--inner--\r\n"
    "--outer\r\n"
    "Content-Type: multipart/mixed; boundary=\"nested\"\r\n"
    "\r\n"
    "--nested\r\n"
    "Content-Type: image/gif\r\n"
    "\r\n"
    "R0lGOD==\r\n"
    "--nested--\r\n"
    "--outer--\r\n"
    "epilogue\r\n";

std::optional<std::string> get(const std::string& raw, std::vector<uint32_t> part, SectionText text = SectionText::kNone,
                                std::vector<std::string> fields = {}) {
  return extract_section(raw, Section{std::move(part), text, std::move(fields)});
}

TEST(ImapSectionTest, PartsOfANestedMessage) {
  EXPECT_EQ(get(kNested, {}), kNested);
  EXPECT_EQ(get(kNested, {1}), "part one");
  EXPECT_EQ(get(kNested, {1}, SectionText::kMime), "Content-Type: text/plain\r\n\r\n");
  const std::string inner =
      "Subject: inner\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n--inner\r\n"
      "Content-Type: text/plain\r\n\r\ninner plain\r\n--inner\r\nContent-Type: text/html\r\n\r\n"
      "<p>inner html</p>\r\n--inner--\r\n";  // the parser's part sizes (Dovecot's): an empty
  // epilogue's line end stays with the closed multipart, as BODYSTRUCTURE counts it
  EXPECT_EQ(get(kNested, {2}), inner);
  EXPECT_EQ(get(kNested, {2}, SectionText::kMime), "Content-Type: message/rfc822\r\n\r\n");
  EXPECT_EQ(get(kNested, {2}, SectionText::kHeader),
            "Subject: inner\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n");
  EXPECT_EQ(get(kNested, {2}, SectionText::kHeaderFields, {"subject"}), "Subject: inner\r\n\r\n");
  EXPECT_EQ(get(kNested, {2}, SectionText::kText), inner.substr(inner.find("--inner\r\n")));
  EXPECT_EQ(get(kNested, {2, 1}), "inner plain");
  EXPECT_EQ(get(kNested, {2, 2}), "<p>inner html</p>");
  EXPECT_EQ(get(kNested, {2, 2}, SectionText::kMime), "Content-Type: text/html\r\n\r\n");
  EXPECT_EQ(get(kNested, {3, 1}), "R0lGOD==");
  EXPECT_EQ(get(kNested, {3, 1}, SectionText::kMime), "Content-Type: image/gif\r\n\r\n");
  EXPECT_EQ(get(kNested, {3}), "--nested\r\nContent-Type: image/gif\r\n\r\nR0lGOD==\r\n--nested--\r\n");
}

TEST(ImapSectionTest, MissingPartsAreNullopt) {
  EXPECT_EQ(get(kNested, {4}), std::nullopt);
  EXPECT_EQ(get(kNested, {2, 3}), std::nullopt);
  EXPECT_EQ(get(kNested, {1, 2}), std::nullopt);                       // a leaf has only part 1
  EXPECT_EQ(get(kNested, {1, 1, 1}), std::nullopt);                    // and nothing below it
  EXPECT_EQ(get(kNested, {3, 2}), std::nullopt);
  EXPECT_EQ(get(kNested, {1}, SectionText::kHeader), std::nullopt);    // HEADER of a non-message part
  EXPECT_EQ(get(kNested, {3}, SectionText::kText), std::nullopt);
  EXPECT_EQ(get(kNested, {1}, SectionText::kHeaderFields, {"X"}), std::nullopt);
  EXPECT_EQ(get(kNested, {4}, SectionText::kMime), std::nullopt);
}

TEST(ImapSectionTest, PartOneOfALeafIsTheLeaf) {
  // Dovecot's walk (checked against it on the corpus): "1.1" of a leaf part 1 is part 1.
  EXPECT_EQ(get(kNested, {1, 1}), "part one");
  EXPECT_EQ(get(kNested, {2, 1, 1}), "inner plain");
  EXPECT_EQ(get(kNested, {3, 1, 1}), "R0lGOD==");
}

TEST(ImapSectionTest, LineEndsBeforeBoundariesCountAsDovecotCountsThem) {
  // An empty body right before a boundary: the blank line's line end belongs to the boundary.
  const std::string empty_body =
      "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: image/gif\n\n--b\nX: 1\n\n\n--b--\n";
  EXPECT_EQ(get(empty_body, {1}, SectionText::kMime), "Content-Type: image/gif\r\n");
  EXPECT_EQ(get(empty_body, {1}), "");
  EXPECT_EQ(get(empty_body, {2}, SectionText::kMime), "X: 1\r\n\r\n");  // one more blank line: kept
  // A header cut short by the boundary keeps its line end, also in the enclosing multipart.
  const std::string cut =
      "Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=b\n\n"
      "--b\nX: 1\n\nbody\n--b\ncut\n--a--\n";
  EXPECT_EQ(get(cut, {1, 2}, SectionText::kMime), "cut\r\n");
  EXPECT_EQ(get(cut, {1}), "--b\r\nX: 1\r\n\r\nbody\r\n--b\r\ncut\r\n");
  // The header of an enclosed message right before a boundary.
  const std::string enclosed =
      "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: s\n\n--b--\n";
  EXPECT_EQ(get(enclosed, {1}, SectionText::kHeader), "Subject: s\r\n");
}

TEST(ImapSectionTest, TopLevelHeaderAndText) {
  EXPECT_EQ(get(kNested, {}, SectionText::kHeader), kNested.substr(0, kNested.find("\r\n\r\n") + 4));
  EXPECT_EQ(get(kNested, {}, SectionText::kText), kNested.substr(kNested.find("\r\n\r\n") + 4));
  EXPECT_EQ(get(kNested, {}, SectionText::kHeaderFields, {"SUBJECT", "from"}),
            "From: a@example.com\r\nSubject: test\r\n  folded\r\n\r\n");
  EXPECT_EQ(get(kNested, {}, SectionText::kHeaderFieldsNot, {"Content-Type", "mime-version", "From"}),
            "Subject: test\r\n  folded\r\n\r\n");
}

TEST(ImapSectionTest, SinglePartMessageWithBareLfs) {
  const std::string raw = "Subject: x\nFrom: y\n\nhello\nworld\n";
  EXPECT_EQ(get(raw, {}), "Subject: x\r\nFrom: y\r\n\r\nhello\r\nworld\r\n");
  EXPECT_EQ(get(raw, {1}), "hello\r\nworld\r\n");  // part 1 of a non-multipart message is its body
  EXPECT_EQ(get(raw, {1}, SectionText::kMime), "Subject: x\r\nFrom: y\r\n\r\n");
  EXPECT_EQ(get(raw, {}, SectionText::kText), "hello\r\nworld\r\n");
  EXPECT_EQ(get(raw, {}, SectionText::kHeaderFields, {"from"}), "From: y\r\n\r\n");
  EXPECT_EQ(get(raw, {2}), std::nullopt);
  EXPECT_EQ(get(raw, {1, 1}), std::nullopt);
  EXPECT_EQ(get(raw, {1}, SectionText::kHeader), std::nullopt);
}

TEST(ImapSectionTest, TopLevelMessageRfc822) {
  const std::string raw =
      "MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\nSubject: enc\r\n\r\nenc body\r\n";
  EXPECT_EQ(get(raw, {1}), "Subject: enc\r\n\r\nenc body\r\n");
  EXPECT_EQ(get(raw, {1}, SectionText::kHeader), "Subject: enc\r\n\r\n");
  EXPECT_EQ(get(raw, {1}, SectionText::kText), "enc body\r\n");
  EXPECT_EQ(get(raw, {1, 1}), "enc body\r\n");  // part 1 of the enclosed (single-part) message
  EXPECT_EQ(get(raw, {1, 2}), std::nullopt);
}

TEST(ImapSectionTest, HeaderOnlyMessageAndEmptyMessage) {
  EXPECT_EQ(get("Subject: x\r\n", {}, SectionText::kHeader), "Subject: x\r\n");
  EXPECT_EQ(get("Subject: x\r\n", {}, SectionText::kText), "");
  EXPECT_EQ(get("Subject: x", {}, SectionText::kHeaderFields, {"subject"}), "Subject: x\r\n\r\n");
  EXPECT_EQ(get("", {}), "");
  EXPECT_EQ(get("", {1}), "");
}

TEST(ImapSectionTest, NulBecomes0x80) {
  EXPECT_EQ(imap_text("a\0b\nc\r\n"s), "a\x80" "b\r\nc\r\n");
  EXPECT_EQ(get("S: x\r\n\r\na\0b"s, {1}), "a\x80" "b");
}

TEST(ImapSectionTest, FilterHeaderFields) {
  const std::string header = "Subject: a\r\n b\r\n\tc\r\nX-Y: 1\r\nTo: z\r\nnot a field\r\n  cont\r\nSubject : again\r\n\r\nBody: no\r\n";
  EXPECT_EQ(filter_header_fields(header, {"subject", "to"}, false),
            "Subject: a\r\n b\r\n\tc\r\nTo: z\r\nSubject : again\r\n\r\n");
  // A line without a colon is named by the whole line, so .NOT keeps it (as Dovecot).
  EXPECT_EQ(filter_header_fields(header, {"subject", "to"}, true), "X-Y: 1\r\nnot a field\r\n  cont\r\n\r\n");
  EXPECT_EQ(filter_header_fields(header, {"body"}, false), "\r\n");  // stops at the blank line
  EXPECT_EQ(filter_header_fields(header, {"x-y"}, false), "X-Y: 1\r\n\r\n");
  EXPECT_EQ(filter_header_fields(" lead\r\nA: 1\r\n", {"a"}, true), "");  // no blank line: none added for .NOT
  EXPECT_EQ(filter_header_fields("A: 1\r\nB: 2\r\n", {"a"}, true), "B: 2\r\n");
  EXPECT_EQ(filter_header_fields("A: 1\r\nB: 2\r\n\r\n", {"a"}, true), "B: 2\r\n\r\n");
  EXPECT_EQ(filter_header_fields("A: 1\nB: 2\n", {"b"}, false), "B: 2\r\n\r\n");
  EXPECT_EQ(filter_header_fields("", {"a"}, false), "\r\n");
  EXPECT_EQ(filter_header_fields("Sub: 1\r\nSubject: 2\r\n", {"sub"}, false), "Sub: 1\r\n\r\n");  // whole names
}

TEST(ImapSectionTest, Labels) {
  EXPECT_EQ(section_label({}), "");
  EXPECT_EQ(section_label({{1, 2, 3}, SectionText::kNone, {}}), "1.2.3");
  EXPECT_EQ(section_label({{}, SectionText::kHeader, {}}), "HEADER");
  EXPECT_EQ(section_label({{}, SectionText::kText, {}}), "TEXT");
  EXPECT_EQ(section_label({{4, 1}, SectionText::kMime, {}}), "4.1.MIME");
  EXPECT_EQ(section_label({{2}, SectionText::kHeader, {}}), "2.HEADER");
  EXPECT_EQ(section_label({{}, SectionText::kHeaderFields, {"From", "x-y"}}), "HEADER.FIELDS (FROM X-Y)");
  EXPECT_EQ(section_label({{3}, SectionText::kHeaderFieldsNot, {"a b", "c\"d", "e]"}}),
            R"(3.HEADER.FIELDS.NOT ("A B" "C\"D" "E]"))");
}

}  // namespace
}  // namespace basalt::store::imap
