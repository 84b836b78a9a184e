# The Debian package (`make deb`, or `cpack -G DEB` in any configured build directory):
# what cmake/install.cmake installs, laid out for /usr, plus Debian's control files.
#
#   /usr/bin/pidfd_exporter                        and its TLS shims (cmake/tls_shim.cmake)
#   /etc/pidfd_exporter/config.yml                 conffile: dpkg keeps an admin's edits
#   /etc/default/pidfd_exporter                    conffile: PIDFD_EXPORTER_OPTS for the unit
#   /usr/lib/systemd/system/pidfd_exporter.service the hardened unit, enabled by postinst
#   /usr/share/pidfd_exporter/                     dashboards, rules, config.default.yml
#   /usr/share/doc/pidfd_exporter/                 README and docs/
#
# Maintainer scripts (deploy/debian/): postinst enables the unit through deb-systemd-helper
# and starts it where systemd runs; prerm stops it; postrm masks it on remove and forgets
# it on purge (debhelper's dh_installsystemd does the same). No system user: the unit runs
# with DynamicUser=yes. Depends: computed by dpkg-shlibdeps from the binary and its shims.

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pidfd_exporter)
set(CPACK_PACKAGE_VENDOR "pidfd_exporter")
set(CPACK_PACKAGE_CONTACT "pidfd_exporter maintainers <pidfd-exporter@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Prometheus exporter for process exits, reap latency and zombies (pidfd based)")
set(CPACK_PACKAGE_DESCRIPTION
    "pidfd_exporter watches processes through pidfds, the proc connector and taskstats, and
exports to Prometheus when they exit (with exit code or signal), how long their parents
take to reap them, and which zombies are waiting. The package installs a hardened systemd
unit, enabled on installation, that serves /metrics on port 9721.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})

# Absolute destinations (/etc) are installed below DESTDIR: without it CPack would write the
# config files into the build machine's /etc instead of the package.
set(CPACK_SET_DESTDIR ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # pidfd_exporter_<version>-<release>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The TLS shims (private libraries whose SONAMEs are libssl.so and libcrypto.so) are found
# by dpkg-shlibdeps through the binary's RUNPATH ($ORIGIN) inside the package, so Depends
# names libssl3, never libssl-dev; tests/e2e/packaging_test.sh checks that.
# systemd is not a dependency: the binary runs without it (containers); the maintainer
# scripts use deb-systemd-helper only when it is there.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "prometheus")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/deploy/debian/conffiles
    ${CMAKE_SOURCE_DIR}/deploy/debian/postinst
    ${CMAKE_SOURCE_DIR}/deploy/debian/prerm
    ${CMAKE_SOURCE_DIR}/deploy/debian/postrm)
# Maintainer scripts 0755, conffiles 0644, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
