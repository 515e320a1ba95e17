//! The `StreamsApp` custom resource (`freshet.dev/v1alpha1`): what a platform team applies with
//! `kubectl`, and the very document `freshet-engine run -f` reads on a laptop.
//!
//! The Rust types are the source of truth: the CRD YAML in `charts/freshet/crds/` is generated
//! from them by the `crdgen` binary and checked in.
#![warn(missing_docs)]

mod app;
pub mod duration;
pub mod kafka;
pub mod registry;
pub mod steps;
pub mod topology;

pub use app::{
    AutoscalingSpec, AutoscalingStatus, CleanupPolicy, PodSettings, PodTasks, ProcessingGuarantee,
    ResetStatus, StorageSpec, StreamsApp, StreamsAppSpec, StreamsAppStatus,
};
pub use duration::Duration;
pub use kafka::KafkaSpec;
pub use registry::SchemaRegistrySpec;
pub use steps::StepOp;
pub use topology::{
    GlobalTableSource, Pipeline, STEP_LEVELS, Step, StreamSource, TableSource, TopologySpec,
};

/// API group of every Freshet resource.
pub const GROUP: &str = "freshet.dev";
