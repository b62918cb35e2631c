#include "directory/password.h"

#include <gtest/gtest.h>

namespace basalt::directory {
namespace {

// Vectors made by other implementations: slappasswd ({SSHA}), Python hashlib ({SSHA256},
// {SSHA512}), libxcrypt ({CRYPT}); all for the password "open sesame".
constexpr const char* kSecret = "open sesame";
constexpr const char* kVectors[] = {
    "{PLAIN}open sesame",
    "{SSHA}M4/akJiMf410Om7mopUsKbpWEczoWwpz",
    "{SSHA256}y6ZzTCyow+ebqqsnaiErFSXNhuo8UQzyq34PasY9Y70BAnNhbHRzYWx0/w==",
    "{SSHA512}y20lxUbGtNfJXLTHn9BIuItNNgmjKj3RAEk9/Cc2cLLK93gtykpzjL1I5Fcu5FMEyTk+zfx1qFtfpDq4jbAPbQECc2FsdHNhbHT/",
    "{CRYPT}$6$rounds=5000$abcdefgh12345678$XL03i6QGsQo2cdi9REkfULG6gopSGWpiu8YzJRWQg0mSPSA1EtTG8Sl26n3Zh23wXpnW47SsNtVL6RfGOZCVf1",
    "{CRYPT}$y$j9T$4V0pWmlWe222JBjSBrIv4.$jEKze81NqjNtTKp/IHMNkYY0cbhRMPErNvbo1neXwG9",
    "{CRYPT}$2b$04$WChNw0GBAU4s7fE1ZO60/O4fGE7DPqTmV5IWnHv18K3WhaSsnP9Yy",
};

TEST(Password, KnownVectorsVerify) {
  for (const char* vector : kVectors) {
    auto stored = parse_stored_password(vector);
    ASSERT_TRUE(stored) << vector << ": " << stored.error().message;
    EXPECT_TRUE(verify_password(*stored, kSecret)) << vector;
    EXPECT_FALSE(verify_password(*stored, "open sesamE")) << vector;
    EXPECT_FALSE(verify_password(*stored, "open sesame ")) << vector;
    EXPECT_FALSE(verify_password(*stored, "")) << vector;
    EXPECT_FALSE(verify_password(*stored, std::string("open sesame\0x", 13))) << vector;
  }
}

TEST(Password, SchemeNameIsCaseInsensitive) {
  auto stored = parse_stored_password("{ssha}M4/akJiMf410Om7mopUsKbpWEczoWwpz");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->scheme, PasswordScheme::kSsha);
  EXPECT_TRUE(verify_password(*stored, kSecret));
}

TEST(Password, RefusesValuesWithoutAKnownScheme) {
  EXPECT_FALSE(parse_stored_password("open sesame"));
  EXPECT_FALSE(parse_stored_password(""));
  EXPECT_FALSE(parse_stored_password("{MD5}abc"));
  EXPECT_FALSE(parse_stored_password("{SSHA"));
  EXPECT_FALSE(parse_stored_password("{PLAIN}"));
  EXPECT_FALSE(parse_stored_password("{SSHA}not base64!"));
  EXPECT_FALSE(parse_stored_password("{SSHA}AAAA"));  // shorter than a SHA-1 digest
  EXPECT_FALSE(parse_stored_password("{SSHA512}M4/akJiMf410Om7mopUsKbpWEczoWwpz"));  // too short
  EXPECT_FALSE(parse_stored_password("{CRYPT}"));
  EXPECT_FALSE(parse_stored_password("{CRYPT}$9$nonsense"));
}

TEST(Password, MakeStoredPasswordRoundTrips) {
  for (auto scheme : {PasswordScheme::kSsha, PasswordScheme::kSsha256, PasswordScheme::kSsha512, PasswordScheme::kPlain}) {
    auto text = make_stored_password(scheme, "pa55 word", "saltsalt");
    ASSERT_TRUE(text);
    auto stored = parse_stored_password(*text);
    ASSERT_TRUE(stored) << *text;
    EXPECT_TRUE(verify_password(*stored, "pa55 word"));
    EXPECT_FALSE(verify_password(*stored, "pa55 wore"));
  }
  EXPECT_FALSE(make_stored_password(PasswordScheme::kSsha, "x", ""));
  EXPECT_FALSE(make_stored_password(PasswordScheme::kCrypt, "x", "salt"));
}

TEST(Base64, RoundTripAndStrictness) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    auto decoded = base64_decode(base64_encode(s));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, s);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_FALSE(base64_decode("Zm8"));
  EXPECT_FALSE(base64_decode("Z==="));
  EXPECT_FALSE(base64_decode("Zm=8"));
  EXPECT_FALSE(base64_decode("Zm8=Zm8="));
  EXPECT_FALSE(base64_decode("Zm 8"));
}

}  // namespace
}  // namespace basalt::directory
