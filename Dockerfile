# syntax=docker/dockerfile:1
# pidfd_exporter: multi-stage build, Debian bookworm builder → bookworm-slim runtime.
#
# Build:  docker build -t pidfd_exporter:dev --build-arg REVISION=$(git rev-parse --short=12 HEAD) .
# Run:    docker run -d --pid=host -p 9721:9721 pidfd_exporter:dev
#         (--pid=host is required: pidfd_open() resolves PIDs in the caller's PID namespace.
#          Privileges and what they add: docs/deployment.md.)
# Check without a Docker engine (buildah + debootstrap): scripts/container-check.sh

ARG DEBIAN_RELEASE=bookworm

############################ build stage ############################
FROM debian:${DEBIAN_RELEASE} AS build
ARG DEBIAN_FRONTEND=noninteractive
# The -dev packages of scripts/install-deps.sh, without the end-to-end tools
# (Prometheus server, curl): only the unit tests run here.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      g++ cmake ninja-build make pkg-config \
      prometheus-cpp-dev libcivetweb-dev civetweb libyaml-cpp-dev libre2-dev libcli11-dev \
      zlib1g-dev libcrypt-dev libssl-dev \
      libgtest-dev libgmock-dev libbenchmark-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# .git is not in the build context (.dockerignore): the revision comes in as a build arg.
ARG REVISION=unknown
# RelWithDebInfo (-O2) like `make`; --strip drops the debug info. (-O3, the Release type,
# trips GCC 12's -Wrestrict false positive on std::string concatenation under -Werror.)
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
      -DPIDFD_EXPORTER_REVISION="${REVISION}" \
 && cmake --build /build --target pidfd_exporter unit_tests \
 && ctest --test-dir /build -L unit --output-on-failure \
 && DESTDIR=/out cmake --install /build --strip \
 && /out/usr/bin/pidfd_exporter --version \
 && /out/usr/bin/pidfd_exporter --config.check --config.file=/out/etc/pidfd_exporter/config.yml \
 && rm -rf /out/usr/lib/systemd /out/etc/default

############################ runtime stage ##########################
FROM debian:${DEBIAN_RELEASE}-slim
ARG DEBIAN_FRONTEND=noninteractive
# Exactly the shared libraries the binary links (ldd); libc6, libstdc++6 and libgcc-s1 are
# already in the base image. tests/e2e/packaging_test.sh checks this list against ldd.
# libssl3: CivetWeb's TLS through the shims of cmake/tls_shim.cmake.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libprometheus-cpp-core1.0 libcivetweb1 libyaml-cpp0.7 libre2-9 zlib1g libcrypt1 libssl3 \
 && rm -rf /var/lib/apt/lists/*

# What `cmake --install` put in place (cmake/install.cmake), less the systemd unit and
# /etc/default: /usr/bin/pidfd_exporter, its private libraries (TLS shims) under
# /usr/lib/<triplet>/pidfd_exporter, /etc/pidfd_exporter/config.yml, /usr/share/pidfd_exporter.
COPY --from=build /out/ /

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="pidfd_exporter" \
      org.opencontainers.image.description="Prometheus exporter for process exits, reap latency and zombies (pidfd based)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/debian:${DEBIAN_RELEASE}-slim"

EXPOSE 9721
# Non-root by default: with --pid=host this already watches every host process, counts
# exits, reap latency and zombies, and (kernel >= 6.15) reads exit codes after the reap.
# Exit codes on older kernels and exe matching for other users' processes need
# `--user 0 --cap-drop=ALL --cap-add=SYS_PTRACE`; the proc connector needs --network=host.
USER 65534:65534
# No curl in slim: bash's /dev/tcp asks /-/healthy. Adjust the port if you change
# --web.listen-address.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9721 && printf 'GET /-/healthy HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/bin/pidfd_exporter"]
CMD ["--config.file=/etc/pidfd_exporter/config.yml"]
