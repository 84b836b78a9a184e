// TlsContext: the server's OpenSSL context built from TlsOptions (certificate chain, key,
// client CAs, versions) and re-built when those files change, so that certificates rotate
// without a restart (exporter-toolkit does the same). A new file that cannot be loaded
// keeps the context that works, is logged once and counted. Owned by the HTTP gate
// (http_gate.h): Create() on any thread, everything else on the gate thread only; the
// counters may be read from any thread.
#pragma once

#include <openssl/ssl.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http_server.h"

namespace pidfd_exporter {

struct SslContextFree {
  void operator()(SSL_CTX* context) const { SSL_CTX_free(context); }
};
using SslContextPointer = std::unique_ptr<SSL_CTX, SslContextFree>;

// Builds a server context from `options`; nullptr and *error naming the file that could
// not be loaded ("tls: cert_file /etc/x.pem: ...").
SslContextPointer BuildServerSslContext(const TlsOptions& options, std::string* error);

class TlsContext {
 public:
  static std::unique_ptr<TlsContext> Create(const TlsOptions& options, std::string* error);

  // The context new handshakes use. SSL_new() takes its own reference, so connections
  // keep working on an old context after a rotation.
  SSL_CTX* Current() const { return current_.get(); }

  // Re-reads the files when their identity (inode, size, times) changed and has stayed the
  // same since the previous call, so that a rotation writing the certificate and then the
  // key is loaded once, complete. Call about once a second.
  void ReloadIfChanged();

  uint64_t reloads() const { return reloads_.load(std::memory_order_relaxed); }
  // False from a failed reload until the next successful one: the served certificate is
  // not the one on disk.
  bool last_reload_successful() const { return last_reload_successful_.load(std::memory_order_relaxed); }
  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }

 private:
  struct FileIdentity {
    bool exists = false;
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    timespec modified{};
    timespec changed{};
    bool operator==(const FileIdentity& other) const;
  };
  explicit TlsContext(TlsOptions options) : options_(std::move(options)) {}
  std::vector<FileIdentity> Identify() const;

  const TlsOptions options_;
  SslContextPointer current_;
  std::vector<FileIdentity> loaded_;               // the files as they were when current_ was built
  std::optional<std::vector<FileIdentity>> seen_;  // what the previous call saw, if different
  std::vector<FileIdentity> failed_;  // the last files that failed: not retried until they change
  std::atomic<uint64_t> reloads_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<bool> last_reload_successful_{true};
};

}  // namespace pidfd_exporter
