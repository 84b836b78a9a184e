# The eBPF program of exporter/final_runtime_probe.h (exporter/bpf/final_runtime.bpf.c): compiled
# by clang for the bpf target with BTF (-g; libbpf relocates its field offsets against the running
# kernel), then written into a C++ array that the exporter links, so the binary carries it and
# nothing is installed beside it. An array rather than .incbin: ccache hashes the array's text,
# and would not see a changed object behind .incbin.
find_program(PIDFD_EXPORTER_BPF_CLANG NAMES clang clang-14 REQUIRED)
# 1.0+: functions return NULL and set errno on failure (older ones return error-encoded pointers).
pkg_check_modules(LIBBPF REQUIRED IMPORTED_TARGET libbpf>=1.0)
# <asm/types.h> of the host's architecture, which <linux/types.h> includes.
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch OUTPUT_VARIABLE bpf_multiarch
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
set(bpf_source ${CMAKE_SOURCE_DIR}/exporter/bpf/final_runtime.bpf.c)
set(bpf_object ${CMAKE_BINARY_DIR}/generated/final_runtime.bpf.o)
set(bpf_array ${CMAKE_BINARY_DIR}/generated/final_runtime_object.cc)
add_custom_command(
  OUTPUT ${bpf_object}
  COMMAND ${PIDFD_EXPORTER_BPF_CLANG} -g -O2 -target bpf -Wall -Werror -I/usr/include/${bpf_multiarch}
          -I${CMAKE_SOURCE_DIR}/exporter/bpf -c ${bpf_source} -o ${bpf_object}
  DEPENDS ${bpf_source} ${CMAKE_SOURCE_DIR}/exporter/bpf/final_runtime_record.h
  COMMENT "Compiling the eBPF program final_runtime.bpf.c")
add_custom_command(
  OUTPUT ${bpf_array}
  COMMAND ${CMAKE_COMMAND} -DINPUT=${bpf_object} -DOUTPUT=${bpf_array} -DNAME=kFinalRuntimeBpfObject
          -P ${CMAKE_SOURCE_DIR}/cmake/embed_bytes.cmake
  DEPENDS ${bpf_object} ${CMAKE_SOURCE_DIR}/cmake/embed_bytes.cmake)
target_sources(pidfd_exporter_core PRIVATE ${bpf_array})
target_link_libraries(pidfd_exporter_core PUBLIC PkgConfig::LIBBPF)
