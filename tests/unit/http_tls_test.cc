// HttpServer with TlsOptions in-process: a real handshake against CivetWeb 1.15 through
// the OpenSSL shim (exporter/tls_shim/), client certificates, versions, start-up errors,
// and configured response headers. Certificates are made here with the OpenSSL API.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "http_server.h"
#include "unique_fd.h"

namespace pidfd_exporter {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertFree {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct ContextFree {
  void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

// An EC P-256 certificate for `common_name`, signed by (issuer, issuer_key), or self-signed.
Cert MakeCert(const std::string& common_name, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
              const std::string& san) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer != nullptr ? issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) {
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
    X509_add_ext(cert.get(), extension, -1);
    X509_EXTENSION_free(extension);
  };
  add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  if (ca) add(NID_key_usage, "critical,keyCertSign,cRLSign");
  if (!san.empty()) add(NID_subject_alt_name, san);
  X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return cert;
}

// The certificates of one test run, as PEM files in a temporary directory.
class TlsFiles {
 public:
  TlsFiles() {
    char pattern[] = "/tmp/http_tls_test.XXXXXX";
    dir_ = mkdtemp(pattern);
    ca_key_.reset(EVP_EC_gen("P-256"));
    ca_ = MakeCert("test CA", ca_key_.get(), nullptr, nullptr, true, "");
    server_key_.reset(EVP_EC_gen("P-256"));
    Cert server = MakeCert("127.0.0.1", server_key_.get(), ca_.get(), ca_key_.get(), false, "IP:127.0.0.1");
    client_key_.reset(EVP_EC_gen("P-256"));
    client_ = MakeCert("client", client_key_.get(), ca_.get(), ca_key_.get(), false, "");
    WriteCert("ca.crt", ca_.get());
    WriteCert("server.crt", server.get());
    WriteKey("server.key", server_key_.get());
    WriteKey("client.key", client_key_.get());  // also: a key that matches no server cert
  }
  ~TlsFiles() { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }
  X509* ca() const { return ca_.get(); }
  X509* client() const { return client_.get(); }
  EVP_PKEY* client_key() const { return client_key_.get(); }

 private:
  void WriteCert(const std::string& name, X509* cert) {
    FILE* file = fopen(Path(name).c_str(), "w");
    PEM_write_X509(file, cert);
    fclose(file);
  }
  void WriteKey(const std::string& name, EVP_PKEY* key) {
    FILE* file = fopen(Path(name).c_str(), "w");
    PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr);
    fclose(file);
  }

  std::filesystem::path dir_;
  Key ca_key_, server_key_, client_key_;
  Cert ca_, client_;
};

struct ClientOptions {
  bool send_client_cert = false;
  int max_version = 0;  // 0: OpenSSL's default
};

// One HTTPS request "GET path" to 127.0.0.1:port trusting only the test CA; the raw
// response, or "" when the connection or the handshake failed.
std::string HttpsGet(const TlsFiles& files, int port, const std::string& path,
                     const ClientOptions& options = {}) {
  std::unique_ptr<SSL_CTX, ContextFree> context(SSL_CTX_new(TLS_client_method()));
  X509_STORE_add_cert(SSL_CTX_get_cert_store(context.get()), files.ca());
  SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER, nullptr);
  if (options.max_version != 0) SSL_CTX_set_max_proto_version(context.get(), options.max_version);
  if (options.send_client_cert) {
    SSL_CTX_use_certificate(context.get(), files.client());
    SSL_CTX_use_PrivateKey(context.get(), files.client_key());
  }
  UniqueFd socket_fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval timeout{5, 0};
  setsockopt(socket_fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(socket_fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return "";
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(context.get()));
  SSL_set_fd(ssl.get(), socket_fd.get());
  SSL_set1_host(ssl.get(), "127.0.0.1");
  if (SSL_connect(ssl.get()) != 1) {
    ERR_clear_error();
    return "";
  }
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (SSL_write(ssl.get(), request.data(), static_cast<int>(request.size())) <= 0) {
    ERR_clear_error();
    return "";
  }
  std::string response;
  char buffer[4096];
  int count;
  while ((count = SSL_read(ssl.get(), buffer, sizeof buffer)) > 0)
    response.append(buffer, static_cast<size_t>(count));
  ERR_clear_error();
  return response;
}

int PortOf(const std::string& address) {
  return std::stoi(address.substr(address.rfind(':') + 1));
}

struct Started {
  std::unique_ptr<HttpServer> server;
  int port = 0;
};

Started StartTls(const TlsOptions& tls, std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpServerOptions options;
  options.listen_addresses = {"127.0.0.1:0"};
  options.worker_threads = 4;
  options.http_metrics = false;
  options.tls = tls;
  options.response_headers = std::move(headers);
  HttpHandlers handlers;
  handlers.render_metrics = [] { return std::string("up 1\n"); };
  std::string error;
  Started started;
  started.server = HttpServer::Start(options, std::move(handlers), &error);
  EXPECT_NE(started.server, nullptr) << error;
  if (started.server) started.port = PortOf(started.server->ListeningAddresses().at(0));
  return started;
}

TEST(HttpTlsTest, ServesHttpsAndSurvivesManyHandshakes) {
  TlsFiles files;
  TlsOptions tls;
  tls.cert_file = files.Path("server.crt");
  tls.key_file = files.Path("server.key");
  Started started = StartTls(tls);
  ASSERT_NE(started.server, nullptr);
  // CivetWeb 1.15 crashed on the first handshake without the shim; the tenth proves it stays up.
  for (int i = 0; i < 10; ++i) {
    const std::string response = HttpsGet(files, started.port, "/metrics");
    ASSERT_THAT(response, StartsWith("HTTP/1.0 200")) << "request " << i;
    EXPECT_THAT(response, HasSubstr("\r\n\r\nup 1\n"));
  }
}

TEST(HttpTlsTest, RequireAndVerifyClientCertNeedsACertificateFromTheClientCa) {
  TlsFiles files;
  TlsOptions tls;
  tls.cert_file = files.Path("server.crt");
  tls.key_file = files.Path("server.key");
  tls.client_ca_file = files.Path("ca.crt");
  tls.client_auth_type = ClientAuthType::kRequireAndVerifyClientCert;
  Started started = StartTls(tls);
  ASSERT_NE(started.server, nullptr);
  EXPECT_THAT(HttpsGet(files, started.port, "/-/healthy", {.send_client_cert = true}),
              StartsWith("HTTP/1.0 200"));
  // TLS 1.3 reports the refusal only after the client's handshake is done: no response either way.
  EXPECT_EQ(HttpsGet(files, started.port, "/-/healthy", {.send_client_cert = false}), "");
  EXPECT_EQ(
      HttpsGet(files, started.port, "/-/healthy", {.send_client_cert = false, .max_version = TLS1_2_VERSION}),
      "");
}

TEST(HttpTlsTest, MinVersionTls13RefusesTls12) {
  TlsFiles files;
  TlsOptions tls;
  tls.cert_file = files.Path("server.crt");
  tls.key_file = files.Path("server.key");
  tls.min_version = TlsVersion::kTls13;
  Started started = StartTls(tls);
  ASSERT_NE(started.server, nullptr);
  EXPECT_EQ(HttpsGet(files, started.port, "/-/healthy", {.max_version = TLS1_2_VERSION}), "");
  EXPECT_THAT(HttpsGet(files, started.port, "/-/healthy"), StartsWith("HTTP/1.0 200"));
}

TEST(HttpTlsTest, ConfiguredHeadersReplaceBuiltInOnes) {
  TlsFiles files;
  TlsOptions tls;
  tls.cert_file = files.Path("server.crt");
  tls.key_file = files.Path("server.key");
  Started started = StartTls(tls, {{"X-Content-Type-Options", "nosniff"},
                                   {"Content-Security-Policy", "default-src 'self'"},
                                   {"Strict-Transport-Security", "max-age=60"}});
  ASSERT_NE(started.server, nullptr);
  const std::string page = HttpsGet(files, started.port, "/");
  EXPECT_THAT(page, HasSubstr("\r\nContent-Security-Policy: default-src 'self'\r\n"));
  EXPECT_THAT(page, Not(HasSubstr("frame-ancestors")));
  EXPECT_THAT(page, HasSubstr("\r\nStrict-Transport-Security: max-age=60\r\n"));
  const std::string missing = HttpsGet(files, started.port, "/nope");
  EXPECT_THAT(missing, StartsWith("HTTP/1.0 404"));
  EXPECT_THAT(missing, HasSubstr("\r\nStrict-Transport-Security: max-age=60\r\n"));
  // Exactly once, although both the server and the config set it.
  const size_t first = missing.find("X-Content-Type-Options");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(missing.find("X-Content-Type-Options", first + 1), std::string::npos);
}

TEST(HttpTlsTest, StartFailsNamingTheFileThatCannotBeLoaded) {
  TlsFiles files;
  HttpServerOptions options;
  options.listen_addresses = {"127.0.0.1:0"};
  TlsOptions tls;
  tls.cert_file = files.Path("server.crt");
  tls.key_file = files.Path("client.key");
  options.tls = tls;
  std::string error;
  EXPECT_EQ(HttpServer::Start(options, HttpHandlers{}, &error), nullptr);
  EXPECT_EQ(error, "tls: key_file " + files.Path("client.key") + " does not match cert_file " +
                       files.Path("server.crt"));

  options.tls->key_file = files.Path("server.key");
  options.tls->cert_file = files.Path("server.key");  // a key is not a certificate
  EXPECT_EQ(HttpServer::Start(options, HttpHandlers{}, &error), nullptr);
  EXPECT_THAT(error, StartsWith("tls: cert_file " + files.Path("server.key") + ": "));

  options.tls->cert_file = files.Path("server.crt");
  options.tls->client_auth_type = ClientAuthType::kRequireAndVerifyClientCert;
  options.tls->client_ca_file = files.Path("server.key");  // no certificate in it
  EXPECT_EQ(HttpServer::Start(options, HttpHandlers{}, &error), nullptr);
  EXPECT_THAT(error, StartsWith("tls: client_ca_file " + files.Path("server.key") + ": "));
}

}  // namespace
}  // namespace pidfd_exporter
