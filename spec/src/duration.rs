//! Durations in manifests: the one parser of `freshet-topology`, shared with the engine's
//! configuration and the CRD's schema.

pub use freshet_topology::duration::{DurationError, EXPECTED, PATTERN, parse, parse_millis};
