# The two front doors (README): `make run` and `make test`. Both install what is missing
# (scripts/install-deps.sh), configure and build with CMake, then run.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
CONFIG ?= config/pidfd_exporter.yml
LISTEN ?= :9721
JOBS ?= $(shell nproc)

.PHONY: all deps configure build run test check-config container-check sanitizers fuzz bench format clean

all: build

deps:
	@scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	$(BUILD_DIR)/pidfd_exporter --config.file=$(CONFIG) --web.listen-address=$(LISTEN)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 300 -j $(JOBS)

check-config: build
	@for f in config/*.yml config/examples/*.yml; do $(BUILD_DIR)/pidfd_exporter --config.check --config.file=$$f || exit 1; done

# A real image build from the Dockerfile without a Docker engine (buildah + debootstrap),
# run with the host PID namespace and scraped through promtool; needs root and Debian's mirror.
container-check:
	scripts/container-check.sh .

# The whole test suite under ASan+UBSan and TSan (scripts/sanitizers.sh asan|tsan).
sanitizers: deps
	scripts/sanitizers.sh

# Every fuzzer for FUZZ_SECONDS each (clang libFuzzer).
FUZZ_SECONDS ?= 30
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

# Benchmarks (bench/run_all.sh --quick for a smoke run); results go to BENCHMARKS.md.
bench: build
	bench/run_all.sh

format:
	clang-format -i exporter/*.h exporter/*.cc tests/*/*.cc tests/*/*.h bench/*.cc 2>/dev/null || true

clean:
	rm -rf $(BUILD_DIR)
