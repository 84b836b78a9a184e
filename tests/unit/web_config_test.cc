#include "web_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace pidfd_exporter {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

// bcrypt (cost 5) of "correct horse", in the $2y$ spelling htpasswd uses.
constexpr char kHash[] = "$2y$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2";

// A directory with the files a web config names; the loader only checks they are readable.
class WebConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/web_config_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    for (const char* name : {"server.crt", "server.key", "ca.crt"}) std::ofstream(dir_ / name) << "PEM\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // The config file name: relative paths in it resolve against dir_.
  std::string File() const { return (dir_ / "web.yml").string(); }

  // Every error as "web.yml:line:col: message" (the directory stripped), in order.
  std::vector<std::string> Errors(const std::string& text) const {
    const WebConfigResult result = ParseWebConfig(text, File());
    std::vector<std::string> errors;
    for (const ConfigError& error : result.errors) {
      std::string line = error.ToString();
      const std::string prefix = dir_.string() + "/";
      for (size_t at; (at = line.find(prefix)) != std::string::npos;) line.erase(at, prefix.size());
      errors.push_back(line);
    }
    EXPECT_EQ(result.config.has_value(), errors.empty());
    return errors;
  }

  WebConfig Parsed(const std::string& text) const {
    WebConfigResult result = ParseWebConfig(text, File());
    for (const ConfigError& error : result.errors) ADD_FAILURE() << error.ToString();
    return result.config.value_or(WebConfig{});
  }

  std::filesystem::path dir_;
};

// --- Valid files ---------------------------------------------------------------------------

TEST_F(WebConfigTest, FullFileParsesWithPathsRelativeToTheConfigFile) {
  const WebConfig config = Parsed(std::string(R"(
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS13
  max_version: TLS13
  prefer_server_cipher_suites: true
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000; includeSubDomains
basic_auth_users:
  prometheus: )") + kHash + R"(
  alice: '$2b$10$ABCDEFGHIJKLMNOPQRSTUuKc95hIE.CdSSKhiXXieUyyQFdVSdFW.'
)");
  ASSERT_TRUE(config.tls.has_value());
  EXPECT_EQ(config.tls->cert_file, (dir_ / "server.crt").string());
  EXPECT_EQ(config.tls->key_file, (dir_ / "server.key").string());
  EXPECT_EQ(config.tls->client_ca_file, (dir_ / "ca.crt").string());
  EXPECT_EQ(config.tls->client_auth_type, ClientAuthType::kRequireAndVerifyClientCert);
  EXPECT_EQ(config.tls->min_version, TlsVersion::kTls13);
  EXPECT_EQ(config.tls->max_version, TlsVersion::kTls13);
  EXPECT_THAT(config.response_headers,
              ElementsAre(Pair("X-Frame-Options", "deny"),
                          Pair("Strict-Transport-Security", "max-age=31536000; includeSubDomains")));
  EXPECT_THAT(config.basic_auth_users,
              ElementsAre(Pair("alice", "$2b$10$ABCDEFGHIJKLMNOPQRSTUuKc95hIE.CdSSKhiXXieUyyQFdVSdFW."),
                          Pair("prometheus", kHash)));
  EXPECT_THAT(config.warnings, IsEmpty());
}

TEST_F(WebConfigTest, TlsDefaultsAreTls12ToTls13WithoutClientCertificates) {
  const WebConfig config = Parsed("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
  ASSERT_TRUE(config.tls.has_value());
  EXPECT_EQ(config.tls->client_auth_type, ClientAuthType::kNoClientCert);
  EXPECT_EQ(config.tls->min_version, TlsVersion::kTls12);
  EXPECT_EQ(config.tls->max_version, TlsVersion::kTls13);
  EXPECT_EQ(config.tls->client_ca_file, "");
}

TEST_F(WebConfigTest, AbsolutePathsAreKept) {
  const std::string cert = (dir_ / "server.crt").string();
  const WebConfig config = Parsed("tls_server_config:\n  cert_file: " + cert + "\n  key_file: server.key\n");
  ASSERT_TRUE(config.tls.has_value());
  EXPECT_EQ(config.tls->cert_file, cert);
}

TEST_F(WebConfigTest, EmptyFileAndEmptySectionsMeanPlainHttpWithoutAuth) {
  for (const std::string text :
       {"", "# nothing\n", "tls_server_config:\nbasic_auth_users:\nhttp_server_config:\n"}) {
    const WebConfig config = Parsed(text);
    EXPECT_FALSE(config.tls.has_value()) << text;
    EXPECT_THAT(config.basic_auth_users, IsEmpty()) << text;
  }
}

TEST_F(WebConfigTest, AuthWithoutTls) {
  const WebConfig config = Parsed(std::string("basic_auth_users:\n  prometheus: ") + kHash + "\n");
  EXPECT_FALSE(config.tls.has_value());
  EXPECT_THAT(config.basic_auth_users, ElementsAre(Pair("prometheus", kHash)));
}

TEST_F(WebConfigTest, Http2TrueIsAcceptedWithAWarning) {
  const WebConfig config = Parsed("http_server_config:\n  http2: true\n");
  ASSERT_THAT(config.warnings, ElementsAre(HasSubstr("web.yml:2:3: http_server_config.http2: ignored")));
}

TEST_F(WebConfigTest, TlsSectionWithoutCertificateServesPlainHttpWithAWarning) {
  const WebConfig config = Parsed("tls_server_config:\n  min_version: TLS13\n");
  EXPECT_FALSE(config.tls.has_value());
  EXPECT_THAT(config.warnings, ElementsAre(HasSubstr("web.yml:1:1: tls_server_config: no cert_file")));
}

TEST_F(WebConfigTest, LoadWebConfigReadsTheFile) {
  std::ofstream(File()) << "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
  const WebConfigResult result = LoadWebConfig(File());
  ASSERT_THAT(result.errors, IsEmpty());
  ASSERT_TRUE(result.config->tls.has_value());
  EXPECT_EQ(result.config->source, File());
}

TEST_F(WebConfigTest, LoadWebConfigNamesAMissingFile) {
  const WebConfigResult result = LoadWebConfig((dir_ / "nope.yml").string());
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].ToString(),
            (dir_ / "nope.yml").string() + ": cannot open: No such file or directory");
}

// --- Errors, each with its position -----------------------------------------------------------

TEST_F(WebConfigTest, SyntaxErrorHasItsPosition) {
  EXPECT_THAT(Errors("basic_auth_users: [x\n"), ElementsAre("web.yml:2:1: end of sequence flow not found"));
}

TEST_F(WebConfigTest, OneDocumentOnly) {
  EXPECT_THAT(Errors("basic_auth_users: {}\n---\nbasic_auth_users: {}\n"),
              ElementsAre("web.yml:2:1: only one YAML document is allowed; remove the second \"---\""));
  // yaml-cpp 0.7's LoadAll would loop forever on this (see fuzz_regression_test.cc).
  EXPECT_THAT(Errors(",\n"), ElementsAre("web.yml:1:1: unexpected \",\" outside of a list or mapping"));
}

TEST_F(WebConfigTest, RootMustBeAMapping) {
  EXPECT_THAT(Errors("- a\n"),
              ElementsAre(HasSubstr("web.yml:1:1: expected a mapping with tls_server_config")));
}

TEST_F(WebConfigTest, UnknownKeysAreErrorsAtEveryLevel) {
  EXPECT_THAT(
      Errors("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  ciphers: [a]\n"
             "http_server_config:\n  compress: true\n"
             "tls_config: {}\n"),
      ElementsAre(HasSubstr("web.yml:4:3: tls_server_config: unknown key \"ciphers\" (allowed: cert_file,"),
                  "web.yml:6:3: http_server_config: unknown key \"compress\" (allowed: headers, http2)",
                  "web.yml:7:1: web config: unknown key \"tls_config\" (allowed: tls_server_config, "
                  "http_server_config, basic_auth_users)"));
}

TEST_F(WebConfigTest, DuplicateKeyIsAnError) {
  EXPECT_THAT(Errors(std::string("basic_auth_users:\n  a: ") + kHash + "\n  a: " + kHash + "\n"),
              ElementsAre("web.yml:3:3: basic_auth_users: duplicate key \"a\" (first at line 2)"));
}

TEST_F(WebConfigTest, UnreadableFilesAreNamed) {
  EXPECT_THAT(
      Errors("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n"
             "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: /nonexistent/ca.crt\n"),
      ElementsAre("web.yml:2:14: tls_server_config.cert_file: cannot read \"missing.crt\": "
                  "No such file or directory",
                  "web.yml:5:19: tls_server_config.client_ca_file: cannot read \"/nonexistent/ca.crt\": "
                  "No such file or directory"));
}

TEST_F(WebConfigTest, ADirectoryIsNotACertificate) {
  std::filesystem::create_directory(dir_ / "certs");
  EXPECT_THAT(
      Errors("tls_server_config:\n  cert_file: certs\n  key_file: server.key\n"),
      ElementsAre("web.yml:2:14: tls_server_config.cert_file: cannot read \"certs\": Is a directory"));
}

TEST_F(WebConfigTest, CertificateAndKeyAreBothRequired) {
  EXPECT_THAT(Errors("tls_server_config:\n  cert_file: server.crt\n"),
              ElementsAre("web.yml:1:1: tls_server_config: missing key_file"));
  EXPECT_THAT(Errors("tls_server_config:\n  key_file: server.key\n"),
              ElementsAre("web.yml:1:1: tls_server_config: missing cert_file"));
}

TEST_F(WebConfigTest, EmptyValuesAreErrorsAtTheKey) {
  EXPECT_THAT(Errors("tls_server_config:\n  cert_file:\n  key_file: ''\n"),
              ElementsAre("web.yml:2:3: tls_server_config.cert_file: must not be empty",
                          "web.yml:3:13: tls_server_config.key_file: must not be empty"));
}

TEST_F(WebConfigTest, ClientAuthTypesThatSkipVerificationAreRefused) {
  for (const std::string type : {"RequestClientCert", "RequireAnyClientCert", "RequireClientCert"}) {
    EXPECT_THAT(
        Errors("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: " +
               type + "\n  client_ca_file: ca.crt\n"),
        ElementsAre(HasSubstr("web.yml:4:21: tls_server_config.client_auth_type: \"" + type +
                              "\" is not supported by pidfd_exporter: it accepts client certificates "
                              "without verifying them")))
        << type;
  }
  EXPECT_THAT(Errors("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                     "  client_auth_type: Sometimes\n"),
              ElementsAre("web.yml:4:21: tls_server_config.client_auth_type: expected NoClientCert, "
                          "VerifyClientCertIfGiven or RequireAndVerifyClientCert, got \"Sometimes\""));
}

TEST_F(WebConfigTest, ClientCaAndClientAuthTypeGoTogether) {
  EXPECT_THAT(
      Errors(
          "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_ca_file: ca.crt\n"),
      ElementsAre(
          HasSubstr("web.yml:4:3: tls_server_config.client_ca_file: set without a client_auth_type")));
  EXPECT_THAT(Errors("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                     "  client_auth_type: NoClientCert\n  client_ca_file: ca.crt\n"),
              ElementsAre(HasSubstr("web.yml:5:3: tls_server_config.client_ca_file: set without")));
  EXPECT_THAT(
      Errors("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
             "  client_auth_type: VerifyClientCertIfGiven\n"),
      ElementsAre(HasSubstr("web.yml:4:3: tls_server_config.client_auth_type: needs client_ca_file")));
}

TEST_F(WebConfigTest, TlsVersions) {
  const std::string base = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
  EXPECT_THAT(
      Errors(base + "  min_version: TLS11\n"),
      ElementsAre(HasSubstr("web.yml:4:16: tls_server_config.min_version: \"TLS11\" is not supported")));
  EXPECT_THAT(
      Errors(base + "  max_version: TLS1.3\n"),
      ElementsAre("web.yml:4:16: tls_server_config.max_version: expected TLS12 or TLS13, got \"TLS1.3\""));
  EXPECT_THAT(Errors(base + "  min_version: TLS13\n  max_version: TLS12\n"),
              ElementsAre("web.yml:5:3: tls_server_config.max_version: must not be below min_version"));
}

TEST_F(WebConfigTest, ToolkitSettingsThatCannotBeHonouredAreRefusedNotIgnored) {
  const std::string base = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
  EXPECT_THAT(Errors(base + "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"),
              ElementsAre(HasSubstr("web.yml:4:3: tls_server_config: \"cipher_suites\" is not supported by "
                                    "pidfd_exporter")));
  EXPECT_THAT(
      Errors(base + "  curve_preferences: [X25519]\n"),
      ElementsAre(HasSubstr("web.yml:4:3: tls_server_config: \"curve_preferences\" is not supported")));
  EXPECT_THAT(
      Errors(base + "  client_allowed_sans: [a]\n"),
      ElementsAre(HasSubstr("web.yml:4:3: tls_server_config: \"client_allowed_sans\" is not supported")));
  EXPECT_THAT(
      Errors("tls_server_config:\n  cert: PEM\n  key: PEM\n"),
      ElementsAre(HasSubstr("web.yml:2:3: tls_server_config: \"cert\" is not supported by pidfd_exporter: "
                            "put the PEM text in a file and use cert_file"),
                  HasSubstr("web.yml:3:3: tls_server_config: \"key\" is not supported")));
  EXPECT_THAT(
      Errors("rate_limit:\n  interval: 1s\n  burst: 20\n"),
      ElementsAre(HasSubstr("web.yml:1:1: web config: \"rate_limit\" is not supported by pidfd_exporter")));
}

TEST_F(WebConfigTest, OnlyToolkitHeadersWithToolkitValues) {
  EXPECT_THAT(
      Errors("http_server_config:\n  headers:\n    Server: nginx\n"),
      ElementsAre(HasSubstr("web.yml:3:5: http_server_config.headers: HTTP header \"Server\" can not be "
                            "configured (allowed: Content-Security-Policy,")));
  EXPECT_THAT(Errors("http_server_config:\n  headers:\n    X-Frame-Options: allow\n"),
              ElementsAre("web.yml:3:22: http_server_config.headers.X-Frame-Options: expected \"deny\" or "
                          "\"sameorigin\", got \"allow\""));
  EXPECT_THAT(
      Errors("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n"),
      ElementsAre(HasSubstr("web.yml:3:29: http_server_config.headers.X-Content-Type-Options: expected "
                            "\"nosniff\"")));
  EXPECT_THAT(
      Errors("http_server_config:\n  headers:\n    X-XSS-Protection: \"1\\r\\nSet-Cookie: a=b\"\n"),
      ElementsAre("web.yml:3:23: http_server_config.headers.X-XSS-Protection: must be a single line"));
  EXPECT_THAT(Errors("http_server_config:\n  http2: maybe\n"),
              ElementsAre("web.yml:2:10: http_server_config.http2: expected true or false, got \"maybe\""));
}

TEST_F(WebConfigTest, UserHashesMustBeBcrypt) {
  EXPECT_THAT(Errors("basic_auth_users:\n  alice: secret\n  bob: $1$abc$def\n"),
              ElementsAre(HasSubstr("web.yml:2:10: basic_auth_users.alice: not a bcrypt hash"),
                          HasSubstr("web.yml:3:8: basic_auth_users.bob: not a bcrypt hash")));
  EXPECT_THAT(Errors("basic_auth_users:\n  alice: [a]\n"),
              ElementsAre("web.yml:2:10: basic_auth_users.alice: expected a string, got a list"));
  EXPECT_THAT(Errors(std::string("basic_auth_users:\n  'a:b': ") + kHash + "\n"),
              ElementsAre("web.yml:2:3: basic_auth_users: user name \"a:b\" must not contain \":\""));
  EXPECT_THAT(Errors("basic_auth_users: [alice]\n"),
              ElementsAre("web.yml:1:19: basic_auth_users: expected a mapping, got a list"));
}

TEST_F(WebConfigTest, EveryErrorOfAFileIsReportedInOneRound) {
  EXPECT_THAT(Errors("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n"
                     "basic_auth_users:\n  alice: x\nextra: 1\n"),
              ElementsAre(HasSubstr("web.yml:2:14:"), HasSubstr("web.yml:5:10:"), HasSubstr("web.yml:6:1:")));
}

// --- bcrypt hash syntax -------------------------------------------------------------------------

TEST(IsBcryptHashTest, AcceptsTheThreeBcryptPrefixes) {
  EXPECT_TRUE(IsBcryptHash(kHash));
  EXPECT_TRUE(IsBcryptHash("$2b$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2"));
  EXPECT_TRUE(IsBcryptHash("$2a$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2"));
  EXPECT_TRUE(IsBcryptHash("$2y$31$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2"));
}

TEST(IsBcryptHashTest, RefusesOtherSchemesAndMalformedHashes) {
  EXPECT_FALSE(IsBcryptHash(""));
  EXPECT_FALSE(IsBcryptHash("correct horse"));
  EXPECT_FALSE(IsBcryptHash("$2x$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2"));   // prefix
  EXPECT_FALSE(IsBcryptHash("$2$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2X"));   // old $2$
  EXPECT_FALSE(IsBcryptHash("$2y$03$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2"));   // cost < 4
  EXPECT_FALSE(IsBcryptHash("$2y$32$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2"));   // cost > 31
  EXPECT_FALSE(IsBcryptHash("$2y$1a$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2"));   // cost digits
  EXPECT_FALSE(IsBcryptHash("$2y$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy"));    // short
  EXPECT_FALSE(IsBcryptHash("$2y$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy22"));  // long
  EXPECT_FALSE(IsBcryptHash(
      "$2y$05$abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs+NLUTJO3lOy2"));  // '+' is not bcrypt base64
  EXPECT_FALSE(
      IsBcryptHash("$2y$05abcdefghijklmnopqrstuuHNbAKRhpaujgo33bRWs.NLUTJO3lOy2$"));  // '$' misplaced
  EXPECT_FALSE(IsBcryptHash("$5$rounds=1000$saltsalt$hashhashhashhashhashhashhashhashhashhashhashh"));
}

}  // namespace
}  // namespace pidfd_exporter
