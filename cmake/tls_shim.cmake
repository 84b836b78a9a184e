# TLS for CivetWeb 1.15 on OpenSSL 3 (why: the comments below and README, "Authentication and TLS").
#
# Debian 12's CivetWeb loads OpenSSL with dlopen("libssl.so") / dlopen("libcrypto.so") and
# looks up OpenSSL 1.1 names; SSL_get_peer_certificate no longer exists in OpenSSL 3, and
# the first handshake crashes. Two tiny shared objects whose SONAMEs are exactly
# "libssl.so" and "libcrypto.so" (exporter/tls_shim/) are dependencies of every binary
# that links pidfd_exporter_core, so they are loaded at start-up; glibc then answers
# CivetWeb's dlopen() with them (it matches loaded objects by SONAME), and dlsym() through
# them reaches the real libssl.so.3 / libcrypto.so.3.
#
# The files must be *named* libssl.so and libcrypto.so too: the dynamic loader looks a
# DT_NEEDED entry up by that name, so they live in a private directory that the binaries'
# RUNPATH lists before the system directories (which may hold libssl-dev's symlinks).
include(GNUInstallDirs)
find_package(OpenSSL 3 REQUIRED)

set(PIDFD_EXPORTER_TLS_SHIM_BUILD_DIR ${CMAKE_BINARY_DIR}/tls_shim)
# Where `cmake --install` puts the shims: private, so they never shadow the system's libssl.so.
set(PIDFD_EXPORTER_TLS_SHIM_INSTALL_DIR ${CMAKE_INSTALL_LIBDIR}/pidfd_exporter)

foreach(library ssl crypto)
  set(target pidfd_exporter_lib${library}_shim)
  if(library STREQUAL "ssl")
    set(openssl_target OpenSSL::SSL)
  else()
    set(openssl_target OpenSSL::Crypto)
  endif()
  add_library(${target} SHARED ${CMAKE_SOURCE_DIR}/exporter/tls_shim/lib${library}_shim.cc)
  # No VERSION/SOVERSION: the file is lib${library}.so and so is its SONAME.
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME ${library}
    NO_SONAME OFF
    LIBRARY_OUTPUT_DIRECTORY ${PIDFD_EXPORTER_TLS_SHIM_BUILD_DIR}
    CXX_VISIBILITY_PRESET hidden)
  target_link_options(${target} PRIVATE LINKER:--no-as-needed)
  target_link_libraries(${target} PRIVATE ${openssl_target} pidfd_exporter_warnings)
endforeach()

# http_server.cc configures CivetWeb's SSL_CTX itself (certificate, key, client CAs,
# versions), so the core links OpenSSL; the shims ride along to every consumer.
target_link_libraries(pidfd_exporter_core PUBLIC OpenSSL::SSL OpenSSL::Crypto
                      pidfd_exporter_libssl_shim pidfd_exporter_libcrypto_shim)
# Nothing calls into the shims: keep them even where the linker defaults to --as-needed.
target_link_options(pidfd_exporter_core INTERFACE LINKER:--no-as-needed)

set_target_properties(pidfd_exporter PROPERTIES
  INSTALL_RPATH "$ORIGIN/../${PIDFD_EXPORTER_TLS_SHIM_INSTALL_DIR}")
install(TARGETS pidfd_exporter_libssl_shim pidfd_exporter_libcrypto_shim
        LIBRARY DESTINATION ${PIDFD_EXPORTER_TLS_SHIM_INSTALL_DIR})
