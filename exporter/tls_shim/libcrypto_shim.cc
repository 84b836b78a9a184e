// The libcrypto.so that CivetWeb 1.15 finds: a shared object whose SONAME is
// "libcrypto.so", linked against the real libcrypto.so.3, with no code of its own.
//
// Why: CivetWeb calls dlopen("libcrypto.so") before it loads libssl.so. That unversioned
// name is only a symlink shipped by libssl-dev; a runtime image without -dev packages has
// only libcrypto.so.3 and CivetWeb's TLS set-up would fail. Loaded as the exporter's
// dependency, this object answers that dlopen() by its SONAME, and dlsym() on it finds
// every function in its dependency libcrypto.so.3.
#include <openssl/crypto.h>

// A symbol of our own so that the object is never empty and shows up in `nm -D`.
extern "C" __attribute__((visibility("default"))) unsigned long pidfd_exporter_libcrypto_shim_version() {
  return OpenSSL_version_num();
}
