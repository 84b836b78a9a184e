// The libssl.so that CivetWeb 1.15 finds: a shared object whose SONAME is "libssl.so",
// linked against the real libssl.so.3. Loaded at program start (the exporter lists it as
// a dependency); never called by the exporter's own code.
//
// Why: Debian 12's CivetWeb resolves OpenSSL at run time with dlopen("libssl.so") and
// dlsym() of OpenSSL 1.1 names. OpenSSL 3 no longer exports SSL_get_peer_certificate (it
// is a macro for SSL_get1_peer_certificate now), so CivetWeb's table holds NULL there and
// the first TLS handshake jumps to address 0. glibc's dlopen() returns an already-loaded
// object whose SONAME equals the requested name, so CivetWeb gets this object; dlsym()
// on it also searches its dependencies, where every other libssl function lives.
#include <openssl/ssl.h>

// The OpenSSL 3 header turns the name into a macro; without this the definition below
// would export SSL_get1_peer_certificate again instead of the missing name.
#undef SSL_get_peer_certificate

extern "C" __attribute__((visibility("default"))) X509* SSL_get_peer_certificate(const SSL* ssl) {
  // Same reference counting as OpenSSL 1.1's function: the caller frees the certificate.
  return SSL_get1_peer_certificate(ssl);
}
