//! The Freshet operator: reconciles StreamsApp resources into StatefulSets of the engine.

pub mod scaling;
