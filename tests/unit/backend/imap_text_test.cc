#include "backend/imap_text.h"

#include <gtest/gtest.h>

namespace basalt::store::imap {
namespace {

TEST(ImapTextTest, DecodesHeaderValues) {
  EXPECT_EQ(decode_header_value("plain"), "plain");
  EXPECT_EQ(decode_header_value("=?UTF-8?B?w6TDtsO8?="), "\xc3\xa4\xc3\xb6\xc3\xbc");
  EXPECT_EQ(decode_header_value("=?iso-8859-1?Q?Gr=FC=DFe?= aus"), "Gr\xc3\xbc\xc3\x9f" "e aus");
  EXPECT_EQ(decode_header_value("a\r\n b"), "a b");
  EXPECT_EQ(decode_header_value("=?bogus"), "=?bogus");
}

TEST(ImapTextTest, FoldsCase) {
  EXPECT_EQ(fold_case("HeLLo"), "hello");
  EXPECT_EQ(fold_case("\xc3\x84\xc3\x96"), "\xc3\xa4\xc3\xb6");  // ÄÖ -> äö
  EXPECT_EQ(fold_case("Stra\xc3\x9f" "E"), "strasse");            // ß folds to ss
  EXPECT_EQ(fold_case("AB\xff"), "ab\xff");                        // not UTF-8: ASCII only
  EXPECT_EQ(fold_case(""), "");
}

TEST(ImapTextTest, HeaderValues) {
  std::string header = "Subject: one\r\n two\r\nTo: x\r\nsubject:three\r\n\r\nSubject: body\r\n";
  EXPECT_EQ(header_values(header, "SUBJECT"), (std::vector<std::string>{"one two", "three"}));
  EXPECT_EQ(header_values(header, "cc"), std::vector<std::string>{});
  EXPECT_EQ(header_values("X:\r\n", "x"), std::vector<std::string>{""});
}

TEST(ImapTextTest, SentDay) {
  EXPECT_EQ(sent_day("Tue, 14 Nov 2023 23:30:00 -0500"), 19675);  // its own zone's day, not UTC's
  EXPECT_EQ(sent_day("15 Nov 2023 00:10:00 +0200"), 19676);
  EXPECT_EQ(sent_day("garbage"), std::nullopt);
  EXPECT_EQ(sent_day(""), std::nullopt);
}

TEST(ImapTextTest, DecodedBodyText) {
  std::string raw =
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
      "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8gV29ybGQ=\r\n"
      "--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
      "Gr=FC=DFe\r\n"
      "--b\r\nContent-Type: application/octet-stream\r\n\r\nSECRETATTACHMENT\r\n"
      "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner text\r\n"
      "--b--\r\n";
  std::string text = decoded_body_text(raw);
  EXPECT_NE(text.find("Hello World"), std::string::npos) << text;
  EXPECT_NE(text.find("Gr\xc3\xbc\xc3\x9f" "e"), std::string::npos) << text;
  EXPECT_NE(text.find("inner text"), std::string::npos) << text;
  EXPECT_EQ(text.find("SECRETATTACHMENT"), std::string::npos) << text;
  EXPECT_EQ(decoded_body_text("Subject: x\n\nplain body\n"), "plain body\n");
  EXPECT_EQ(decoded_body_text(""), "");
}

}  // namespace
}  // namespace basalt::store::imap
