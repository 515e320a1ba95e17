//! A client of Kafka's streams groups (KIP-1071, Apache Kafka 4.2+), which librdkafka does not
//! speak: a member sends its topology in `StreamsGroupHeartbeat` and the broker assigns it tasks.
//!
//! By role: [`messages`] is the codec of the streams-group requests, generated from the JSON
//! schemas in the kafka-clients jar (`scripts/gen-streams-group-messages.py`) onto the
//! `kafka-protocol` crate's encoders; [`connection`] frames requests over one broker
//! connection; [`coordinator`] finds the group's coordinator; [`heartbeat`] is one member's
//! state (member id, epoch, owned tasks) and its heartbeats; [`offsets`] commits offsets as that
//! member; [`describe`] reads a group as the broker describes it; [`removal`] removes members
//! that will not come back; [`security`] and [`sasl`]
//! secure the connections as the app's other clients are (TLS, SASL); [`support`] asks the
//! brokers whether they run streams groups at all.

#![warn(missing_docs)]

pub mod connection;
pub mod coordinator;
pub mod describe;
pub mod error;
pub mod heartbeat;
pub mod messages;
pub mod offsets;
pub mod removal;
pub mod sasl;
pub mod security;
pub mod support;
pub mod wire;

pub use connection::{Connection, GroupError};
pub use heartbeat::{Assignment, Member, MemberConfig, TaskId, TaskOffsets};
pub use kafka_protocol::protocol::StrBytes;
pub use security::{Security, SecurityError, Settings};
