// TlsContext: certificate rotation on real files. A new certificate is loaded once it has
// stayed unchanged for one more look; a broken file keeps the previous context, counts one
// failure and is not retried until it changes again.
#include "tls_context.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace pidfd_exporter {
namespace {

// Writes a self-signed EC P-256 certificate for `common_name` and its key to the paths
// given, each through a temporary file and a rename, as certificate tools do.
void WriteCertificate(const std::string& common_name, const std::string& cert_path,
                      const std::string& key_path) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  ASSERT_NE(key, nullptr);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  ASSERT_GT(X509_sign(cert.get(), key.get(), EVP_sha256()), 0);
  FILE* cert_file = std::fopen((cert_path + ".new").c_str(), "w");
  ASSERT_NE(cert_file, nullptr);
  PEM_write_X509(cert_file, cert.get());
  std::fclose(cert_file);
  FILE* key_file = std::fopen((key_path + ".new").c_str(), "w");
  ASSERT_NE(key_file, nullptr);
  PEM_write_PrivateKey(key_file, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(key_file);
  std::filesystem::rename(cert_path + ".new", cert_path);
  std::filesystem::rename(key_path + ".new", key_path);
}

std::string ServedCommonName(const TlsContext& tls) {
  X509* cert = SSL_CTX_get0_certificate(tls.Current());
  if (cert == nullptr) return "";
  char text[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, text, sizeof text);
  return text;
}

class TlsContextTest : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/tls_context_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    directory_ = pattern;
    options_.cert_file = directory_ + "/server.crt";
    options_.key_file = directory_ + "/server.key";
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  std::string directory_;
  TlsOptions options_;
};

TEST_F(TlsContextTest, NewCertificateIsLoadedOnceItStaysUnchanged) {
  WriteCertificate("first", options_.cert_file, options_.key_file);
  std::string error;
  std::unique_ptr<TlsContext> tls = TlsContext::Create(options_, &error);
  ASSERT_NE(tls, nullptr) << error;
  EXPECT_EQ(ServedCommonName(*tls), "first");
  tls->ReloadIfChanged();  // nothing changed
  EXPECT_EQ(tls->reloads(), 0u);

  WriteCertificate("second", options_.cert_file, options_.key_file);
  tls->ReloadIfChanged();  // sees the change: waits for the writer to finish
  EXPECT_EQ(ServedCommonName(*tls), "first");
  tls->ReloadIfChanged();  // unchanged since: loads
  EXPECT_EQ(ServedCommonName(*tls), "second");
  EXPECT_EQ(tls->reloads(), 1u);
  EXPECT_EQ(tls->failures(), 0u);
  tls->ReloadIfChanged();
  EXPECT_EQ(tls->reloads(), 1u);
}

TEST_F(TlsContextTest, BrokenFileKeepsThePreviousCertificateAndCountsOnce) {
  WriteCertificate("first", options_.cert_file, options_.key_file);
  std::string error;
  std::unique_ptr<TlsContext> tls = TlsContext::Create(options_, &error);
  ASSERT_NE(tls, nullptr) << error;
  std::ofstream(options_.cert_file + ".new") << "not a certificate\n";
  std::filesystem::rename(options_.cert_file + ".new", options_.cert_file);
  for (int look = 0; look < 4; ++look) tls->ReloadIfChanged();
  EXPECT_EQ(tls->failures(), 1u);  // not retried while the file stays the same
  EXPECT_EQ(tls->reloads(), 0u);
  EXPECT_FALSE(tls->last_reload_successful());
  EXPECT_EQ(ServedCommonName(*tls), "first");

  // A certificate whose key is another one's: also refused.
  const std::string other_key = directory_ + "/other.key";
  WriteCertificate("mismatched", directory_ + "/other.crt", other_key);
  std::filesystem::copy_file(directory_ + "/other.crt", options_.cert_file,
                             std::filesystem::copy_options::overwrite_existing);
  tls->ReloadIfChanged();
  tls->ReloadIfChanged();
  EXPECT_EQ(tls->failures(), 2u);
  EXPECT_EQ(ServedCommonName(*tls), "first");

  WriteCertificate("third", options_.cert_file, options_.key_file);
  tls->ReloadIfChanged();
  tls->ReloadIfChanged();
  EXPECT_EQ(ServedCommonName(*tls), "third");
  EXPECT_EQ(tls->reloads(), 1u);
  EXPECT_TRUE(tls->last_reload_successful());
}

TEST_F(TlsContextTest, CreateFailsNamingTheFile) {
  std::string error;
  EXPECT_EQ(TlsContext::Create(options_, &error), nullptr);
  EXPECT_NE(error.find("tls: cert_file " + options_.cert_file), std::string::npos) << error;
}

}  // namespace
}  // namespace pidfd_exporter
