# hms-sync container image: build on Debian 12, run on bookworm-slim as a
# non-root user with only the runtime libraries.  The build step is
# scripts/build-release.sh, the same script CI runs, so CI proves it without
# Docker (scripts/check-deploy.sh checks that this file still calls it).
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libpq-dev librabbitmq-dev libjson-c-dev libinih-dev \
      libmicrohttpd-dev libsystemd-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY src src
COPY include include
COPY sql sql
COPY schemas schemas
COPY docs/hms-sync.1 docs/hms-sync.1
COPY scripts/build-release.sh scripts/build-release.sh
RUN scripts/build-release.sh --no-tests build /out

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpq5 librabbitmq4 libjson-c5 libinih1 libmicrohttpd12 libsystemd0 libssl3 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin hms-sync
COPY --from=build /out/ /
USER hms-sync
# Settings come from HMS_SYNC_* variables or a mounted config file.
ENTRYPOINT ["/usr/bin/hms-sync"]
CMD ["run"]
