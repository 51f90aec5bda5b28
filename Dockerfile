# syntax=docker/dockerfile:1
#
# doryd: one static Swift binary on a slim Debian base.
#
#   docker build -t doryd .
#   docker run --rm -p 8080:8080 --read-only -v dory-state:/var/lib/dory doryd
#   docker run --rm doryd state ls          # any doryd command: ENTRYPOINT is doryd
#
# The runtime image holds the stripped binary and the C libraries it links
# (libsystemd, zlib, libyaml, and libstdc++/libgcc_s, which a binary built with
# --static-swift-stdlib still loads; bookworm-slim already has those two).
# The Swift standard library, Dispatch and FoundationEssentials are linked statically.

ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --------------------------------------------------------------------------- build
FROM ${SWIFT_IMAGE} AS build

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libsystemd-dev zlib1g-dev libyaml-dev pkg-config binutils \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first, so a source change does not fetch them again. Package.resolved is
# not committed (see .gitignore) and is kept out of the context (.dockerignore), so the
# versions resolve from Package.swift here.
COPY Package.swift ./
RUN swift package resolve

# Tests/ too: SwiftPM checks that every declared target has its directory, even for
# `--product doryd`. Only the doryd product is built.
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product doryd \
 && install -D -m 0755 "$(swift build -c release --static-swift-stdlib --show-bin-path)/doryd" /out/doryd \
 && strip /out/doryd

# --------------------------------------------------------------------------- runtime
FROM ${RUNTIME_IMAGE}

# The state directory is the only path doryd writes (spec §6.2): owned by the
# non-root user, 0700, and declared a volume below so it outlives the container.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libsystemd0 zlib1g libyaml-0-2 libstdc++6 \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o 65532 -g 65532 -m 0700 /var/lib/dory

COPY --from=build /out/doryd /usr/local/bin/doryd
# Fails the build if a shared library the binary needs is missing here.
RUN doryd --help > /dev/null

# Nothing outside DORY_STATE_DIR is written, so `--read-only` (Kubernetes:
# readOnlyRootFilesystem: true) works with this volume mounted.
ENV DORY_STATE_DIR=/var/lib/dory
VOLUME ["/var/lib/dory"]
WORKDIR /var/lib/dory

# A numeric uid/gid (no passwd entry needed) so `runAsNonRoot` can verify it.
USER 65532:65532

# Probes, /metrics, /prestop and /state (DORY_HEALTH_PORT).
EXPOSE 8080

# SIGTERM starts the graceful shutdown that ends with a durable save (spec §5.2).
STOPSIGNAL SIGTERM

ENTRYPOINT ["doryd"]
CMD ["demo"]
