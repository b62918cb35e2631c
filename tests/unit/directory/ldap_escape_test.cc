#include "directory/ldap_escape.h"

#include <gtest/gtest.h>

#include <string>

namespace basalt::directory {
namespace {

using namespace std::string_literals;

TEST(EscapeFilterValue, EverySpecialCharacter) {
  EXPECT_EQ(escape_filter_value("*"), "\\2a");
  EXPECT_EQ(escape_filter_value("("), "\\28");
  EXPECT_EQ(escape_filter_value(")"), "\\29");
  EXPECT_EQ(escape_filter_value("\\"), "\\5c");
  EXPECT_EQ(escape_filter_value("\0"s), "\\00");
}

TEST(EscapeFilterValue, PlainTextUnchanged) {
  EXPECT_EQ(escape_filter_value("alice.smith-2@example.org"), "alice.smith-2@example.org");
  EXPECT_EQ(escape_filter_value("a b=c&d|e!f~g<h>i"), "a b=c&d|e!f~g<h>i");
  EXPECT_EQ(escape_filter_value(""), "");
}

TEST(EscapeFilterValue, ControlAndEightBitBytes) {
  EXPECT_EQ(escape_filter_value("\x01\x1f\x7f"), "\\01\\1f\\7f");
  EXPECT_EQ(escape_filter_value("\r\n\t"), "\\0d\\0a\\09");
  EXPECT_EQ(escape_filter_value("\xc3\xa9"), "\\c3\\a9");  // é in UTF-8
  EXPECT_EQ(escape_filter_value("\xff\x80"), "\\ff\\80");
}

TEST(EscapeFilterValue, InjectionStrings) {
  EXPECT_EQ(escape_filter_value("*"), "\\2a");
  EXPECT_EQ(escape_filter_value(")(uid=*"), "\\29\\28uid=\\2a");
  EXPECT_EQ(escape_filter_value("*)(|(uid=*"), "\\2a\\29\\28|\\28uid=\\2a");
  EXPECT_EQ(escape_filter_value("admin)(&)"), "admin\\29\\28&\\29");
  EXPECT_EQ(escape_filter_value("\\2a"), "\\5c2a");  // an escape sequence is escaped again
}

TEST(EscapeFilterValue, EveryByteValue) {
  for (int c = 0; c < 256; ++c) {
    std::string in(1, static_cast<char>(c));
    std::string out = escape_filter_value(in);
    bool plain = c >= 0x20 && c < 0x7f && c != '*' && c != '(' && c != ')' && c != '\\';
    if (plain) {
      EXPECT_EQ(out, in) << c;
    } else {
      ASSERT_EQ(out.size(), 3u) << c;
      EXPECT_EQ(out[0], '\\');
      EXPECT_EQ(std::stoi(out.substr(1), nullptr, 16), c);
    }
  }
}

TEST(EscapeFilterValue, LargeInput) {
  std::string in(10 * 1024, '*');
  EXPECT_EQ(escape_filter_value(in).size(), in.size() * 3);
}

TEST(EscapeDnValue, Rfc4514Specials) {
  EXPECT_EQ(escape_dn_value("a,b+c\"d\\e<f>g;h=i"), "a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h\\=i");
  EXPECT_EQ(escape_dn_value(" lead"), "\\ lead");
  EXPECT_EQ(escape_dn_value("trail "), "trail\\ ");
  EXPECT_EQ(escape_dn_value("#hash"), "\\#hash");
  EXPECT_EQ(escape_dn_value("in#side mid"), "in#side mid");
  EXPECT_EQ(escape_dn_value("nul\0x"s), "nul\\00x");
  EXPECT_EQ(escape_dn_value("\xc3\xa9t\xc3\xa9"), "\xc3\xa9t\xc3\xa9");  // UTF-8 stays as is
}

TEST(ValidateUserName, AcceptsOrdinaryNames) {
  EXPECT_TRUE(validate_user_name("alice"));
  EXPECT_TRUE(validate_user_name("alice@example.org"));
  EXPECT_TRUE(validate_user_name("J\xc3\xb6rg"));          // Jörg
  EXPECT_TRUE(validate_user_name("\xf0\x9f\x98\x80"));      // 4-byte UTF-8
  EXPECT_TRUE(validate_user_name("*"));                    // escaped later, never refused
  EXPECT_TRUE(validate_user_name(std::string(kMaxUserNameLength, 'a')));
}

TEST(ValidateUserName, RefusesBadNames) {
  EXPECT_FALSE(validate_user_name(""));
  EXPECT_FALSE(validate_user_name(std::string(kMaxUserNameLength + 1, 'a')));
  EXPECT_FALSE(validate_user_name(std::string(10 * 1024, 'a')));
  EXPECT_FALSE(validate_user_name("ali\0ce"s));
  EXPECT_FALSE(validate_user_name("alice\r\n"));
  EXPECT_FALSE(validate_user_name("alice\n"));
  EXPECT_FALSE(validate_user_name("al\tice"));
  EXPECT_FALSE(validate_user_name("al\x7f"));
  EXPECT_FALSE(validate_user_name("\xff"));              // not UTF-8
  EXPECT_FALSE(validate_user_name("\xc3"));              // truncated sequence
  EXPECT_FALSE(validate_user_name("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(validate_user_name("\xed\xa0\x80"));      // UTF-16 surrogate
  EXPECT_FALSE(validate_user_name("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST(FilterTemplate, Validation) {
  EXPECT_TRUE(validate_filter_template("(uid=%u)"));
  EXPECT_TRUE(validate_filter_template("(&(objectClass=inetOrgPerson)(|(uid=%u)(mail=%u)))"));
  EXPECT_TRUE(validate_filter_template("(&(uid=%u)(description=100%%))"));
  EXPECT_FALSE(validate_filter_template(""));
  EXPECT_FALSE(validate_filter_template("uid=%u"));
  EXPECT_FALSE(validate_filter_template("(uid=alice)"));
  EXPECT_FALSE(validate_filter_template("(uid=%s)"));
  EXPECT_FALSE(validate_filter_template("(uid=%u%)"));
  EXPECT_FALSE(validate_filter_template("((uid=%u)"));
  EXPECT_FALSE(validate_filter_template("(uid=%u))"));
  EXPECT_FALSE(validate_filter_template("(uid=%u)(mail=%u)"));
}

TEST(RenderFilter, SubstitutesEscapedUser) {
  EXPECT_EQ(*render_filter("(uid=%u)", "alice"), "(uid=alice)");
  EXPECT_EQ(*render_filter("(|(uid=%u)(mail=%u))", "a*"), "(|(uid=a\\2a)(mail=a\\2a))");
  EXPECT_EQ(*render_filter("(&(uid=%u)(x=50%%))", "bob"), "(&(uid=bob)(x=50%))");
  EXPECT_EQ(*render_filter("(uid=%u)", "%u"), "(uid=%u)");  // the value is not re-expanded
}

TEST(RenderFilter, InjectionNeverChangesTheFilterStructure) {
  for (const char* attack : {"*", ")(uid=*", "*)(|(uid=*", "\\", "alice)(|(objectClass=*)", "*))%00"}) {
    auto filter = render_filter("(&(objectClass=inetOrgPerson)(uid=%u))", attack);
    ASSERT_TRUE(filter) << attack;
    std::string inner = filter->substr(std::string("(&(objectClass=inetOrgPerson)(uid=").size());
    inner.resize(inner.size() - 2);
    EXPECT_EQ(inner.find_first_of("()*"), std::string::npos) << *filter;
  }
}

TEST(RenderFilter, RefusesInvalidUsers) {
  EXPECT_FALSE(render_filter("(uid=%u)", ""));
  EXPECT_FALSE(render_filter("(uid=%u)", "a\0b"s));
  EXPECT_FALSE(render_filter("(uid=%u)", "a\r\nb"));
  EXPECT_FALSE(render_filter("(uid=%u)", std::string(10 * 1024, 'x')));
  EXPECT_FALSE(render_filter("(uid=%x)", "alice"));
}

}  // namespace
}  // namespace basalt::directory
