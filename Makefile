# The two front doors (README): `make run` and `make test`.
#   make run    installs what building and running need (scripts/install-deps.sh build),
#               builds only the exporter and serves the default config.
#   make test   installs the rest (scripts/install-deps.sh test), builds every target with
#               warnings as errors, then runs every test.
#   make deb    builds the Debian package (CPack) in its own Release build directory.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
CONFIG ?= config/pidfd_exporter.yml
LISTEN ?= :9721
JOBS ?= $(shell nproc)

# (test-vm: see test)
.PHONY: test-vm all deps test-deps configure-exporter configure build run test deb check-config container-check sanitizers fuzz bench format clean

all: build

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

# A fresh build directory gets no test or benchmark targets, so neither GoogleTest nor
# Google Benchmark is needed, and warnings stay warnings (PIDFD_EXPORTER_WERROR defaults
# to OFF). One that `make test` configured is kept as it is: its objects serve both.
configure-exporter: deps
	@[ -f $(BUILD_DIR)/CMakeCache.txt ] || cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DPIDFD_EXPORTER_BUILD_TESTS=OFF -DPIDFD_EXPORTER_BUILD_BENCHMARKS=OFF >/dev/null

# Everything, warnings as errors: the developer and CI path.
configure: test-deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DPIDFD_EXPORTER_BUILD_TESTS=ON -DPIDFD_EXPORTER_BUILD_BENCHMARKS=ON -DPIDFD_EXPORTER_WERROR=ON >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: configure-exporter
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target pidfd_exporter
	$(BUILD_DIR)/pidfd_exporter --config.file=$(CONFIG) --web.listen-address=$(LISTEN)

# Every test, the Debian 12 VM boot (label vm_boot, ~35 s) included. `make test-vm` runs the
# two old-kernel tests alone.
test: build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 300 -j $(JOBS)

test-vm: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L vm

# pidfd_exporter_<version>-1_<arch>.deb in build/deb/: the CMake preset "deb" (Release with
# the compiler's defaults, no -Werror, installed to /usr; docs/deployment.md).
deb:
	@scripts/install-deps.sh deb
	@cmake --preset deb >/dev/null
	@cmake --build --preset deb -j $(JOBS)
	@cpack --preset deb

check-config: configure-exporter
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target pidfd_exporter
	@for f in config/*.yml config/examples/*.yml; do $(BUILD_DIR)/pidfd_exporter --config.check --config.file=$$f || exit 1; done

# A real image build from the Dockerfile without a Docker engine (buildah + debootstrap),
# run with the host PID namespace and scraped through promtool; needs root and Debian's mirror.
container-check:
	scripts/container-check.sh .

# The whole test suite under ASan+UBSan and TSan (scripts/sanitizers.sh asan|tsan).
sanitizers:
	scripts/sanitizers.sh

# Every fuzzer for FUZZ_SECONDS each (clang libFuzzer).
FUZZ_SECONDS ?= 30
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Benchmarks (bench/run_all.sh --quick for a smoke run); results go to BENCHMARKS.md.
bench: build
	bench/run_all.sh

format:
	clang-format -i exporter/*.h exporter/*.cc tests/*/*.cc tests/*/*.h bench/*.cc 2>/dev/null || true

clean:
	rm -rf $(BUILD_DIR)
