# Freshet: `make demo` (the main job) and `make test` (every test) work on a fresh machine.
# Downloads and builds are cached in $(FRESHET_CACHE), outside the clone; runtime state in .freshet/.
SHELL := /bin/bash
export FRESHET_CACHE ?= $(HOME)/.cache/freshet
export CARGO_TARGET_DIR ?= $(FRESHET_CACHE)/target

.PHONY: help deps build images push node-check kafka-up kafka-down registry-up registry-down cluster-up cluster-down k8s-binaries up down demo test soak chaos bench bench-quick lint fmt crdgen clean

help:
	@echo "make demo          bring everything up and show it working (the main job)"
	@echo "make test          every test against a real Kafka broker and a real kube-apiserver"
	@echo "make soak          the long crash tests (1M records, 20+ SIGKILLs, per guarantee) and a scale-out over 1 GB of state (needs only Kafka)"
	@echo "make chaos         the long fault tests: brokers stopped, killed and frozen for 70 s, 30 kills of 3 instances, the operator's faults"
	@echo "make deps          install the Debian packages the build needs (only the missing ones)"
	@echo "make kafka-up      start Apache Kafka on 127.0.0.1:\$${FRESHET_KAFKA_PORT:-9092}   (make kafka-down stops it)"
	@echo "FRESHET_KAFKA_BROKERS=3 make kafka-up   ... three brokers (replication 3, min.insync.replicas 2) for fault drills:"
	@echo "                   scripts/kafka.sh stop|kill|freeze|thaw|start N, scripts/kafka.sh leader TOPIC PARTITION"
	@echo "make registry-up   start a schema registry with Confluent's API (Apicurio 3.3.3) at 127.0.0.1:\$${FRESHET_REGISTRY_PORT:-8081}/apis/ccompat/v7   (make registry-down stops it)"
	@echo "make cluster-up    start etcd, kube-apiserver, kube-controller-manager, and a node   (make cluster-down stops them)"
	@echo "                   the pods run on a real node (kubelet + containerd in a network namespace, make node-check) where"
	@echo "                   this machine can run one, else on the test node with a warning (FRESHET_NODE=kubelet|test forces one)"
	@echo "make bench         Freshet vs Java Kafka Streams vs a raw pipe: ratio table and chart (release build)"
	@echo "make bench-quick   the benchmark's smoke check: every contender produces every result"
	@echo "make lint          cargo fmt --check and clippy -D warnings"
	@echo "make images        ghcr.io/freshet/{engine,operator}:<appVersion> in root's podman store, checked in containers"
	@echo "make images push IMAGE_REGISTRY=ghcr.io/you   ... and pushed there (podman login first)"

deps:
	@scripts/deps.sh

build: deps
	cargo build --workspace --all-targets

kafka-up:
	@scripts/kafka.sh up

kafka-down:
	@scripts/kafka.sh down

registry-up:
	@scripts/registry.sh up

registry-down:
	@scripts/registry.sh down

# Release binaries built on the host, a Debian 12 base built here (no registry needed), podman.
images: deps
	@scripts/images.sh build
	@scripts/images.sh check

push:
	@scripts/images.sh push

# The real node's checks: a restricted pod with a state volume, logs, exec, Services (needs the cluster up with its real node).
node-check:
	@scripts/node.sh check

k8s-binaries:
	@scripts/build-k8s.sh all

cluster-up:
	@scripts/cluster.sh up

cluster-down:
	@scripts/cluster.sh down

up: kafka-up cluster-up
down: cluster-down kafka-down

demo: deps
	@scripts/demo.sh

test: deps
	@scripts/test.sh

soak: deps
	@scripts/soak.sh

chaos: deps
	@scripts/chaos.sh

bench: deps
	@bench/run.sh full

bench-quick: deps
	@bench/run.sh quick

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	scripts/module-cycles.py

fmt:
	cargo fmt --all

crdgen:
	cargo run -q -p freshet-crds --bin crdgen > charts/freshet/crds/streamsapps.yaml

clean: down
	rm -rf .freshet
