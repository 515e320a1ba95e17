# Images of the engine and the operator. The chart's default images are these names, tagged with its
# appVersion: ghcr.io/freshet/engine:<appVersion> and ghcr.io/freshet/operator:<appVersion>.
#
# With a registry (Docker Hub reachable), the multi-stage build compiles inside a Rust builder image:
#
#   docker build --target engine   -t ghcr.io/freshet/engine:0.1.0 .
#   docker build --target operator -t ghcr.io/freshet/operator:0.1.0 .
#
# Without one, `make images` (scripts/images.sh) builds the binaries with cargo on the host, a Debian 12
# base with debootstrap, and selects the stages that use them:
#
#   podman build --target engine --build-arg BINARIES=host --build-arg RUNTIME=runtime-local \
#     -t ghcr.io/freshet/engine:0.1.0 .freshet/images      # a context holding bin/freshet-{engine,operator}
#
# Both paths give the same image: Debian 12, the binary as entrypoint, user 65532, no shell needed.

# Where the binaries come from: `build` (compiled in this build) or `host` (bin/ of the build context).
ARG BINARIES=build
# The runtime stage: `runtime-slim` (debian:bookworm-slim from a registry) or `runtime-local`
# (LOCAL_BASE, a Debian 12 base already holding the packages and the user, made by make images).
ARG RUNTIME=runtime-slim
ARG LOCAL_BASE=localhost/freshet/debian-runtime:12

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
    cargo build --release --locked --bin freshet-engine --bin freshet-operator \
    && mkdir -p /out \
    && strip --strip-debug -o /out/freshet-engine target/release/freshet-engine \
    && strip --strip-debug -o /out/freshet-operator target/release/freshet-operator

FROM scratch AS host
COPY bin/freshet-engine bin/freshet-operator /out/

FROM debian:bookworm-slim AS runtime-slim
# Keep in step with BASE_PACKAGES in scripts/images.sh (the runtime libraries beyond the base).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 libcurl4 tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 65532 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin freshet \
    && install -d -o 65532 -g 65532 /var/lib/freshet

FROM ${LOCAL_BASE} AS runtime-local

FROM ${BINARIES} AS binaries

FROM ${RUNTIME} AS runtime
USER 65532:65532

FROM runtime AS engine
COPY --from=binaries /out/freshet-engine /usr/local/bin/freshet-engine
# The StatefulSet mounts the state volume at /var/lib/freshet/state and the manifest at
# /etc/freshet. No VOLUME: containerd would give the container an anonymous writable volume at
# it, beyond the pod's volumes and its read-only root filesystem (tests/tests/restricted_pods.rs).
EXPOSE 8080
# tini is PID 1: the kernel drops a signal PID 1 has no handler for, so a pod deleted while the
# engine starts would otherwise run on until SIGKILL. tini forwards SIGTERM to the engine, which
# dies of it before its own handler is installed and closes cleanly after.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/freshet-engine"]
CMD ["run", "-f", "/etc/freshet/app.yaml"]

FROM runtime AS operator
COPY --from=binaries /out/freshet-operator /usr/local/bin/freshet-operator
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/freshet-operator"]
