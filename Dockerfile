# Images of the engine and the operator, for real clusters' pipelines (no Docker engine runs on
# the development machine; the tests run the same binaries as local processes).
#
#   docker build --target engine   -t ghcr.io/freshet/engine:0.1.0 .
#   docker build --target operator -t ghcr.io/freshet/operator:0.1.0 .
#
# The chart's default images are these names, tagged with its appVersion.

FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        cmake libclang-dev libcurl4-openssl-dev libssl-dev libsasl2-dev zlib1g-dev libzstd-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the target dir (RocksDB and librdkafka compile for
# minutes) between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p freshet-engine -p freshet-operator --bins \
    && mkdir -p /out && cp target/release/freshet-engine target/release/freshet-operator /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends \
        ca-certificates libcurl4 libssl3 libsasl2-2 zlib1g libzstd1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin freshet
USER 65532:65532

FROM runtime AS engine
COPY --from=build /out/freshet-engine /usr/local/bin/freshet-engine
# The StatefulSet mounts the state volume here and the manifest at /etc/freshet.
VOLUME ["/var/lib/freshet"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/freshet-engine"]
CMD ["run", "-f", "/etc/freshet/app.yaml"]

FROM runtime AS operator
COPY --from=build /out/freshet-operator /usr/local/bin/freshet-operator
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/freshet-operator"]
