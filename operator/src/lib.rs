//! The Freshet operator: reconciles StreamsApp resources into StatefulSets of the engine.
//!
//! - [`controller`] — the reconciler (kube-rs `Controller`, finalizer, status by server-side
//!   apply, Events);
//! - [`context`] — what reconciles share: clients, metrics, per-app memory; the error;
//! - [`deletion`] — deleting an app with `cleanupPolicy: Delete`: instances stopped, then the
//!   application reset;
//! - [`kafka`] — the topology compiled by the engine's compiler, partition counts, internal
//!   topics, lag and the application reset;
//! - [`policy`] — where the operator may connect, which images it runs, what its clients may
//!   read;
//! - [`render`] — the ConfigMap, Service, StatefulSet and PodDisruptionBudget of an app;
//! - [`resources`] — the engine container's default CPU and memory;
//! - [`render_cli`] — `freshet-operator render`: those objects for a manifest, without a
//!   cluster;
//! - [`secrets`] — the Secrets `spec.kafka` names: read for the admin client, digested into
//!   the pod template;
//! - [`status`] — conditions;
//! - [`group`] — the app's group: tasks per pod (streams groups), and the members of pods a
//!   scale-down removed (streams and classic groups);
//! - [`classic_group`] — a classic group's members, and their removal;
//! - [`suspend`] — `spec.suspend`: the instances stopped, state and offsets kept;
//! - [`upgrade`] — the state layout a StatefulSet runs with, and the changes of it held back;
//! - [`reset`] — the `freshet.dev/reset` annotation: stop, reset, start again;
//! - [`tenancy`] — one owner per applicationId, no id overrides, only objects it made;
//! - [`scaling`] — how many instances an app asks for and can use;
//! - [`leader`] — leader election on a Lease;
//! - [`metrics`] — Prometheus metrics and the HTTP endpoints.
#![warn(missing_docs)]

pub mod autoscale;
pub mod classic_group;
pub mod context;
pub mod controller;
pub mod deletion;
pub mod group;
pub mod kafka;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod render;
pub mod render_cli;
pub mod reset;
pub mod resources;
pub mod scaling;
pub mod secrets;
pub mod status;
pub mod suspend;
pub mod tenancy;
pub mod upgrade;

/// A short, stable digest of `text` (FNV-1a, 64 bits, hex): config hashes and state signatures
/// must not change between operator versions, which rules out `std`'s hasher.
pub fn digest(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
