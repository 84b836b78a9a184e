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
# The packages of scripts/install-deps.sh's groups deb (build + CPack's tools) and unit
# (GoogleTest): only the unit tests run here, no end-to-end tools. Copied alone first so
# that this layer stays cached until the package lists change.
COPY scripts/install-deps.sh /usr/local/sbin/install-deps.sh
RUN install-deps.sh deb unit && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# .git is not in the build context (.dockerignore): the revision comes in as a build arg.
ARG REVISION=unknown
# Release with the compiler's defaults (no -Werror), like `make deb`; the unit tests run on
# these very objects; cpack makes the same Debian package as `make deb` (stripped).
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
      -DPIDFD_EXPORTER_BUILD_BENCHMARKS=OFF -DPIDFD_EXPORTER_REVISION="${REVISION}" \
 && cmake --build /build --target pidfd_exporter unit_tests \
 && ctest --test-dir /build -L unit --output-on-failure \
 && cd /build && cpack -G DEB -B /out \
 && dpkg-deb --field /out/pidfd_exporter_*.deb Package Version Depends

############################ runtime stage ##########################
FROM debian:${DEBIAN_RELEASE}-slim
ARG DEBIAN_FRONTEND=noninteractive
# The Debian package of the build stage: apt resolves its Depends (the shared libraries the
# binary links, computed by dpkg-shlibdeps). It puts /usr/bin/pidfd_exporter, its TLS shims,
# /etc/pidfd_exporter/config.yml and /usr/share/pidfd_exporter in place; its systemd unit
# and /etc/default file are unused here (postinst starts nothing without systemd).
COPY --from=build /out/pidfd_exporter_*.deb /tmp/
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends /tmp/pidfd_exporter_*.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/pidfd_exporter_*.deb \
 && /usr/bin/pidfd_exporter --version \
 && /usr/bin/pidfd_exporter --config.check --config.file=/etc/pidfd_exporter/config.yml

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
