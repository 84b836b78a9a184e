# Install rules for `cmake --install` (included at the end of the root CMakeLists.txt, after
# the pidfd_exporter target exists). Layout with the usual prefix /usr:
#
#   /usr/bin/pidfd_exporter
#   /etc/pidfd_exporter/config.yml              the default config, only if none is there yet
#   /etc/default/pidfd_exporter                 PIDFD_EXPORTER_OPTS for the unit, only if absent
#   /usr/lib/systemd/system/pidfd_exporter.service   ExecStart points at the installed binary
#   /usr/share/pidfd_exporter/                  dashboards/ as in the source tree (Grafana JSON,
#                                               provisioning, rules/*.yml), without tests/tools
#   /usr/share/pidfd_exporter/config.default.yml    the pristine default config, always
#   /usr/share/doc/pidfd_exporter/              README.md, BENCHMARKS.md and docs/*.md
#
# Configuration files go under PIDFD_EXPORTER_SYSCONFDIR, an ABSOLUTE path (default /etc)
# whatever the prefix: the binary reads /etc/pidfd_exporter/config.yml when --config.file is
# not given, and the unit reads /etc/default/pidfd_exporter, so /usr/local/etc would not be
# read. DESTDIR is still honoured (DESTDIR=/tmp/x → /tmp/x/etc/...). For an unprivileged
# install into a home prefix, set -DPIDFD_EXPORTER_SYSCONFDIR=<prefix>/etc and pass
# --config.file. Existing config files are never overwritten (an admin's edits survive a
# reinstall); the fresh default is always at share/pidfd_exporter/config.default.yml.

include(GNUInstallDirs)

set(PIDFD_EXPORTER_SYSCONFDIR "/etc" CACHE PATH
    "Absolute directory for pidfd_exporter/config.yml and default/pidfd_exporter")
set(PIDFD_EXPORTER_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
    "systemd system unit directory, relative to the install prefix (or absolute)")

# Shared libraries of the project (the TLS shims) are installed by cmake/tls_shim.cmake.
install(TARGETS pidfd_exporter RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Config files: installed by file(INSTALL) (which honours DESTDIR and records the install
# manifest) only when the target does not exist yet.
set(_pidfd_exporter_confdir "${PIDFD_EXPORTER_SYSCONFDIR}/pidfd_exporter")
set(_pidfd_exporter_defaultdir "${PIDFD_EXPORTER_SYSCONFDIR}/default")
install(CODE "
  foreach(_pair
      \"${CMAKE_SOURCE_DIR}/config/pidfd_exporter.yml|${_pidfd_exporter_confdir}|config.yml\"
      \"${CMAKE_SOURCE_DIR}/deploy/pidfd_exporter.default|${_pidfd_exporter_defaultdir}|pidfd_exporter\")
    string(REPLACE \"|\" \";\" _parts \"\${_pair}\")
    list(GET _parts 0 _src)
    list(GET _parts 1 _dir)
    list(GET _parts 2 _name)
    if(NOT EXISTS \"\${_src}\")
      continue()
    endif()
    if(EXISTS \"\$ENV{DESTDIR}\${_dir}/\${_name}\")
      message(STATUS \"Keeping existing: \$ENV{DESTDIR}\${_dir}/\${_name}\")
    else()
      file(INSTALL DESTINATION \"\${_dir}\" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
           RENAME \"\${_name}\" FILES \"\${_src}\")
    endif()
  endforeach()
")
install(FILES config/pidfd_exporter.yml DESTINATION ${CMAKE_INSTALL_DATADIR}/pidfd_exporter
        RENAME config.default.yml)

# The systemd unit names /usr/bin/pidfd_exporter; the installed copy names the binary
# where this install puts it (evaluated at install time, so `cmake --install --prefix` works).
if(EXISTS ${CMAKE_SOURCE_DIR}/deploy/pidfd_exporter.service)
  set(_pidfd_exporter_unit ${CMAKE_BINARY_DIR}/install/pidfd_exporter.service)
  install(CODE "
    if(IS_ABSOLUTE \"${CMAKE_INSTALL_BINDIR}\")
      set(_bindir \"${CMAKE_INSTALL_BINDIR}\")
    else()
      set(_bindir \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
    endif()
    file(READ \"${CMAKE_SOURCE_DIR}/deploy/pidfd_exporter.service\" _unit)
    string(REPLACE \"/usr/bin/pidfd_exporter\" \"\${_bindir}/pidfd_exporter\" _unit \"\${_unit}\")
    string(REPLACE \"/etc/default/pidfd_exporter\" \"${_pidfd_exporter_defaultdir}/pidfd_exporter\" _unit \"\${_unit}\")
    file(WRITE \"${_pidfd_exporter_unit}\" \"\${_unit}\")
  ")
  install(FILES ${_pidfd_exporter_unit} DESTINATION ${PIDFD_EXPORTER_SYSTEMD_UNIT_DIR})
endif()

# dashboards/ keeps its layout under share/pidfd_exporter (rules end up in
# share/pidfd_exporter/rules/); test files and helper scripts stay behind.
if(IS_DIRECTORY ${CMAKE_SOURCE_DIR}/dashboards)
  install(DIRECTORY ${CMAKE_SOURCE_DIR}/dashboards/ DESTINATION ${CMAKE_INSTALL_DATADIR}/pidfd_exporter
          FILES_MATCHING
            PATTERN "*.json" PATTERN "*.yml" PATTERN "*.yaml" PATTERN "*.md"
            PATTERN "tests" EXCLUDE PATTERN "tools" EXCLUDE PATTERN "*.test.yml" EXCLUDE
            PATTERN "*_test.yml" EXCLUDE PATTERN "node_modules" EXCLUDE)
endif()

# Documentation: what an operator reads after installing the package.
file(GLOB _pidfd_exporter_docs ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${CMAKE_SOURCE_DIR}/BENCHMARKS.md ${_pidfd_exporter_docs}
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
