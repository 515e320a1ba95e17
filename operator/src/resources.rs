//! The engine container's CPU and memory when `spec.resources` does not say: derived from what
//! the app's configuration makes the engine hold, so a scheduler places it where it fits and a
//! namespace with a ResourceQuota admits it.
//!
//! Memory is the RocksDB budget (the block cache every store of the process shares, which the
//! memtables are charged to), the record cache (`statestore.cache.max.bytes`), a share per stream
//! thread (its consumer's and producer's librdkafka buffers and the restore consumer) and the
//! process's own (runtime, HTTP endpoints, the global consumer). The limit leaves as much again
//! for RocksDB's work outside the cache (compactions, iterators, index blocks) before the kernel
//! kills the instance. CPU is a quarter core per stream thread requested, one core per thread at
//! most: a stream thread processes on one core, and RocksDB's background work and librdkafka's
//! threads take the rest.
//!
//! `spec.resources` wins per resource: an app that sets `cpu` (as request or limit) gets exactly
//! its own `cpu` settings, and the same for `memory`; the other keeps these defaults.

use std::collections::BTreeMap;

use freshet_crds::StreamsAppSpec;
use freshet_spec::config::StreamsConfig;
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

const MIB: u64 = 1024 * 1024;
/// The process's own memory, beyond the caches and threads.
pub const BASE_MEMORY_MIB: u64 = 128;
/// Memory per stream thread: its clients' buffers.
pub const THREAD_MEMORY_MIB: u64 = 48;
/// CPU requested per stream thread, in millicores.
pub const THREAD_CPU_REQUEST_MILLIS: u64 = 250;
/// CPU limit per stream thread, in millicores.
pub const THREAD_CPU_LIMIT_MILLIS: u64 = 1000;
/// The RocksDB block cache and record cache when the configuration does not resolve (Freshet's
/// defaults: 64 MiB and 10 MiB).
const DEFAULT_CACHES: u64 = 74 * MIB;

/// The default requests and limits for an engine with `config`.
pub fn defaults(config: Option<&StreamsConfig>) -> ResourceRequirements {
    let (threads, caches) = match config {
        Some(c) => (
            (c.num_stream_threads as u64).max(1),
            c.rocksdb_block_cache_bytes
                .saturating_add(c.cache_max_bytes),
        ),
        None => (1, DEFAULT_CACHES),
    };
    let memory_mib = BASE_MEMORY_MIB + THREAD_MEMORY_MIB * threads + caches.div_ceil(MIB);
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), cpu(THREAD_CPU_REQUEST_MILLIS * threads)),
            ("memory".to_owned(), memory(memory_mib)),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".to_owned(), cpu(THREAD_CPU_LIMIT_MILLIS * threads)),
            ("memory".to_owned(), memory(2 * memory_mib)),
        ])),
        ..Default::default()
    }
}

/// A CPU quantity as the apiserver writes it back (`1`, not `1000m`), so what the operator
/// applies and what `freshet-operator render` prints read the same as the live object.
fn cpu(millis: u64) -> Quantity {
    Quantity(if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    })
}

/// A memory quantity in its canonical form (`1Gi`, not `1024Mi`).
fn memory(mib: u64) -> Quantity {
    Quantity(if mib.is_multiple_of(1024) {
        format!("{}Gi", mib / 1024)
    } else {
        format!("{mib}Mi")
    })
}

/// The engine container's resources: `spec.resources` per resource, the [`defaults`] for the
/// resources it does not name.
pub fn engine_resources(spec: &StreamsAppSpec) -> ResourceRequirements {
    // The same resolution the reconciler's plan made, without the pods' environment (which the
    // operator does not see).
    // Sizes need no credentials: placeholders stand in for the Secrets spec.kafka names.
    let config = freshet_spec::resolve_config(
        spec,
        Vec::new(),
        Vec::new(),
        &freshet_spec::secrets::Placeholders,
    )
    .ok();
    let mut out = defaults(config.as_ref());
    let Some(own) = spec.resources.clone() else {
        return out;
    };
    let names = |m: &Option<BTreeMap<String, Quantity>>| -> Vec<String> {
        m.iter().flat_map(|m| m.keys().cloned()).collect()
    };
    let mut named = names(&own.requests);
    named.extend(names(&own.limits));
    for (mine, theirs) in [
        (&mut out.requests, &own.requests),
        (&mut out.limits, &own.limits),
    ] {
        let map = mine.get_or_insert_with(BTreeMap::new);
        map.retain(|k, _| !named.contains(k));
        map.extend(theirs.clone().unwrap_or_default());
        if map.is_empty() {
            *mine = None;
        }
    }
    out.claims = own.claims;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> StreamsAppSpec {
        serde_yaml_ng::from_str(&format!(
            r#"
applicationId: a
bootstrapServers: k:9092
{extra}
topology:
  streams: [{{ name: s, topic: t }}]
  pipelines: [{{ name: p, from: s, steps: [{{ to: {{ topic: o }} }}] }}]
"#
        ))
        .expect("spec")
    }

    fn get(r: &ResourceRequirements, limits: bool, name: &str) -> Option<String> {
        let m = if limits { &r.limits } else { &r.requests };
        m.as_ref()?.get(name).map(|q| q.0.clone())
    }

    #[test]
    fn the_defaults_grow_with_the_threads_and_the_rocksdb_budget() {
        let one = engine_resources(&spec(""));
        // 128 + 48 + 64 (block cache) + 10 (record cache).
        assert_eq!(get(&one, false, "memory").as_deref(), Some("250Mi"));
        assert_eq!(get(&one, true, "memory").as_deref(), Some("500Mi"));
        assert_eq!(get(&one, false, "cpu").as_deref(), Some("250m"));
        assert_eq!(get(&one, true, "cpu").as_deref(), Some("1"));
        let big = engine_resources(&spec(
            "numStreamThreads: 4\nconfig: { freshet.rocksdb.block.cache.bytes: \"536870912\" }",
        ));
        // 128 + 4 × 48 + 512 + 10.
        assert_eq!(get(&big, false, "memory").as_deref(), Some("842Mi"));
        assert_eq!(get(&big, false, "cpu").as_deref(), Some("1"));
        assert_eq!(get(&big, true, "cpu").as_deref(), Some("4"));
    }

    #[test]
    fn spec_resources_win_per_resource() {
        let r = engine_resources(&spec("resources: { requests: { memory: 2Gi } }"));
        assert_eq!(get(&r, false, "memory").as_deref(), Some("2Gi"));
        assert_eq!(
            get(&r, true, "memory"),
            None,
            "no default limit below the app's own request"
        );
        assert_eq!(get(&r, false, "cpu").as_deref(), Some("250m"));
        assert_eq!(get(&r, true, "cpu").as_deref(), Some("1"));
        let r = engine_resources(&spec("resources: { limits: { cpu: 250m } }"));
        assert_eq!(get(&r, true, "cpu").as_deref(), Some("250m"));
        assert_eq!(get(&r, false, "cpu"), None, "Kubernetes takes the limit");
        assert_eq!(get(&r, false, "memory").as_deref(), Some("250Mi"));
    }
}
