# hms-sync container image: build on Debian 12, run on bookworm-slim as a
# non-root user with only the runtime libraries.  The build steps are the
# same cmake commands CI runs (.ci/run), so CI proves them without Docker.
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libpq-dev librabbitmq-dev libjson-c-dev libinih-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY src src
COPY sql sql
COPY schemas schemas
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHMS_BUILD_TESTS=OFF \
 && cmake --build build -j"$(nproc)" --target hms-sync \
 && install -D -m 755 build/hms-sync /out/usr/bin/hms-sync \
 && mkdir -p /out/usr/share/hms-sync && cp -r schemas /out/usr/share/hms-sync/

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpq5 librabbitmq4 libjson-c5 libinih1 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin hms-sync
COPY --from=build /out/ /
USER hms-sync
# Settings come from HMS_SYNC_* variables or a mounted config file.
ENTRYPOINT ["/usr/bin/hms-sync"]
CMD ["run"]
