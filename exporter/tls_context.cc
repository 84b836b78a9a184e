// TlsContext: see tls_context.h. The SSL_CTX is the exporter's own (TLS_server_method);
// CivetWeb never sees TLS since the gate (http_gate.cc) terminates it.
#include "tls_context.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <utility>

#include "log.h"

namespace pidfd_exporter {
namespace {

// OpenSSL's queued errors as one line ("...: no such file; ..."), emptying the queue.
std::string OpenSslErrors() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof buffer);
    if (!text.empty()) text += "; ";
    text += buffer;
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

int ToOpenSslVersion(TlsVersion version) {
  return version == TlsVersion::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

std::string LoadCertificateAndKey(SSL_CTX* context, const TlsOptions& options) {
  // The chain variant also sends the intermediates that follow the leaf in cert_file.
  if (SSL_CTX_use_certificate_chain_file(context, options.cert_file.c_str()) != 1) {
    return "tls: cert_file " + options.cert_file + ": " + OpenSslErrors();
  }
  if (SSL_CTX_use_PrivateKey_file(context, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return "tls: key_file " + options.key_file + " does not match cert_file " + options.cert_file;
    }
    return "tls: key_file " + options.key_file + ": " + OpenSslErrors();
  }
  if (SSL_CTX_check_private_key(context) != 1) {
    return "tls: key_file " + options.key_file + " does not match cert_file " + options.cert_file + ": " +
           OpenSslErrors();
  }
  return "";
}

std::string ConfigureClientVerification(SSL_CTX* context, const TlsOptions& options) {
  if (options.client_auth_type == ClientAuthType::kNoClientCert) {
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);
    return "";
  }
  if (SSL_CTX_load_verify_locations(context, options.client_ca_file.c_str(), nullptr) != 1) {
    return "tls: client_ca_file " + options.client_ca_file + ": " + OpenSslErrors();
  }
  // The CA names go into the CertificateRequest so that clients pick the right certificate.
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca_file.c_str());
  if (names == nullptr) {
    return "tls: client_ca_file " + options.client_ca_file + ": no certificate found: " + OpenSslErrors();
  }
  SSL_CTX_set_client_CA_list(context, names);  // takes ownership
  int mode = SSL_VERIFY_PEER;
  if (options.client_auth_type == ClientAuthType::kRequireAndVerifyClientCert) {
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  SSL_CTX_set_verify(context, mode, nullptr);
  return "";
}

}  // namespace

SslContextPointer BuildServerSslContext(const TlsOptions& options, std::string* error) {
  ERR_clear_error();
  SslContextPointer context(SSL_CTX_new(TLS_server_method()));
  if (!context) {
    *error = "tls: cannot create a context: " + OpenSslErrors();
    return nullptr;
  }
  SSL_CTX_set_options(context.get(),
                      SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // The gate writes from buffers that may move between partial writes; an idle connection
  // (a stalled client) gives its 16 KiB record buffers back.
  SSL_CTX_set_mode(context.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                      SSL_MODE_RELEASE_BUFFERS);
  *error = LoadCertificateAndKey(context.get(), options);
  if (!error->empty()) return nullptr;
  if (SSL_CTX_set_min_proto_version(context.get(), ToOpenSslVersion(options.min_version)) != 1 ||
      SSL_CTX_set_max_proto_version(context.get(), ToOpenSslVersion(options.max_version)) != 1) {
    *error = "tls: cannot set the TLS versions: " + OpenSslErrors();
    return nullptr;
  }
  // Resumed sessions skip certificate verification; OpenSSL refuses to resume with client
  // verification unless the context names itself.
  static constexpr unsigned char kSessionContext[] = "pidfd_exporter";
  SSL_CTX_set_session_id_context(context.get(), kSessionContext, sizeof kSessionContext - 1);
  *error = ConfigureClientVerification(context.get(), options);
  if (!error->empty()) return nullptr;
  return context;
}

bool TlsContext::FileIdentity::operator==(const FileIdentity& other) const {
  return exists == other.exists && device == other.device && inode == other.inode && size == other.size &&
         modified.tv_sec == other.modified.tv_sec && modified.tv_nsec == other.modified.tv_nsec &&
         changed.tv_sec == other.changed.tv_sec && changed.tv_nsec == other.changed.tv_nsec;
}

std::vector<TlsContext::FileIdentity> TlsContext::Identify() const {
  std::vector<FileIdentity> identities;
  for (const std::string* path : {&options_.cert_file, &options_.key_file, &options_.client_ca_file}) {
    FileIdentity identity;
    struct stat status {};
    // stat() follows symbolic links: a Kubernetes secret swaps a "..data" link.
    if (!path->empty() && ::stat(path->c_str(), &status) == 0) {
      identity.exists = true;
      identity.device = status.st_dev;
      identity.inode = status.st_ino;
      identity.size = status.st_size;
      identity.modified = status.st_mtim;
      identity.changed = status.st_ctim;
    }
    identities.push_back(identity);
  }
  return identities;
}

std::unique_ptr<TlsContext> TlsContext::Create(const TlsOptions& options, std::string* error) {
  std::unique_ptr<TlsContext> tls(new TlsContext(options));
  tls->loaded_ = tls->Identify();
  tls->current_ = BuildServerSslContext(options, error);
  if (!tls->current_) return nullptr;
  return tls;
}

void TlsContext::ReloadIfChanged() {
  std::vector<FileIdentity> now = Identify();
  if (now == loaded_ || now == failed_) {
    seen_.reset();
    return;
  }
  if (!seen_ || !(*seen_ == now)) {
    seen_ = std::move(now);  // changed since the last look: wait until the writer is done
    return;
  }
  seen_.reset();
  std::string error;
  SslContextPointer next = BuildServerSslContext(options_, &error);
  if (!next) {
    failed_ = std::move(now);
    failures_.fetch_add(1, std::memory_order_relaxed);
    last_reload_successful_.store(false, std::memory_order_relaxed);
    LogError("TLS certificate reload failed; keeping the previous certificate", {{"err", error}});
    return;
  }
  current_ = std::move(next);
  loaded_ = std::move(now);
  failed_.clear();
  reloads_.fetch_add(1, std::memory_order_relaxed);
  last_reload_successful_.store(true, std::memory_order_relaxed);
  LogInfo("TLS certificate reloaded", {{"cert_file", options_.cert_file}});
}

}  // namespace pidfd_exporter
