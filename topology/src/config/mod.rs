//! The engine's configuration, resolved from the names Kafka Streams users already know.
//!
//! A Kafka Streams application is configured with one property map holding Streams properties and
//! Java client properties side by side; Freshet accepts the same map so that such a configuration
//! runs unchanged, and also librdkafka's own names, since librdkafka is the client underneath.
//!
//! # Layers and precedence
//!
//! Values come in [`Layer`]s, highest precedence first: command-line flags, `FRESHET_*`
//! environment variables ([`layers_from_env`]), the manifest's spec fields ([`SpecFields`]), and
//! its free-form `config` map. A value in a higher layer wins over any value in a lower one, even
//! a more specific one: an operator overriding `session.timeout.ms` through the environment means
//! it for every client, whatever the manifest says per client. Within one layer, Kafka Streams'
//! rules apply: `main.consumer.`/`restore.consumer.`/`global.consumer.` beat `consumer.`, which
//! (like `producer.` and `admin.`) beats the unprefixed name; a current name beats a deprecated
//! one; and otherwise the later entry wins. Two different spellings of one librdkafka property
//! (`linger.ms` and `queue.buffering.max.ms`) with different values at the same level are refused,
//! as neither is more clearly meant.
//!
//! # Names
//!
//! A key is, in this order: a Kafka Streams property Freshet understands (typed into
//! [`StreamsConfig`]); a client property that Freshet controls (refused unless it asks for what
//! Freshet does anyway, see below); a Kafka Streams property Freshet ignores (accepted with a
//! warning); a Java client property (translated to librdkafka's name and unit); or a librdkafka
//! property (passed through, aliases folded into the name they alias). Anything else is refused,
//! naming its layer and the nearest known name. Client properties may carry Kafka Streams'
//! prefixes to reach one client only; unprefixed, a client property reaches every client of the
//! kind librdkafka documents it for (consumers, producers, or all).
//!
//! # Where each name is defined
//!
//! Every property is declared once, with everything about it, as Kafka's `ConfigDef` does:
//! - a Kafka Streams or Freshet property Freshet reads: one declaration in `streams.rs` (name,
//!   older spellings, parser, default, documentation, whether the value is secret) that
//!   generates its [`StreamsConfig`] field, the table the resolver looks it up in and the code
//!   that fills the field (`define.rs` holds the macro); the manifest's spec fields that are
//!   properties are declared there too, once each ([`SpecFields`]);
//! - a Kafka Streams property Freshet ignores, a client property Freshet controls, a Java client
//!   property: one row in `catalog.rs`, with its reason or translation;
//! - a librdkafka property: one row of `librdkafka_table.rs`, generated from the linked library
//!   by `tests/tests/config_librdkafka.rs`, which fails when the library and the table differ.
//!
//! [`classify`] says what Freshet makes of any name, from the same lookup the resolver uses; a
//! test holds every name of Kafka's own `StreamsConfig`, `ConsumerConfig`, `ProducerConfig` and
//! `AdminClientConfig` to it. [`is_sensitive`] says whether a value is a secret, as the
//! declarations (librdkafka's own `_RK_SENSITIVE` flag for its properties) say; such values are
//! never shown in errors, warnings or `Debug` output.
//!
//! # What Freshet controls
//!
//! Refused whatever the layer, because Kafka Streams' semantics depend on them; each is accepted
//! (and dropped, with a warning) when it asks for exactly what Freshet sets:
//! - `group.id`: it is `application.id` (accepted when equal to it);
//! - `enable.auto.commit` (and librdkafka's legacy `auto.commit.enable`): offsets are committed
//!   by Freshet after processing (accepted: `false`);
//! - `enable.auto.offset.store` and `enable.partition.eof`: the stream thread commits explicit
//!   offsets and tracks partition ends itself (accepted: `false`);
//! - `transactional.id`: derived per stream thread under `exactly_once_v2` (never accepted);
//! - `partitioner`, Java's `partitioner.class` and `partitioner.ignore.keys`: always
//!   `murmur2_random`, Java's default, so keys land where Java clients put them (accepted:
//!   `murmur2_random`, `false`);
//! - `partition.assignment.strategy`, `group.remote.assignor`: always the range assignor, which
//!   keeps co-partitioned partitions together (accepted: `range`);
//! - `group.protocol.type` (accepted: `consumer`);
//! - `transaction.two.phase.commit.enable`: stream threads commit their own transactions
//!   (accepted: `false`).
//!
//! Refused only under `exactly_once_v2`, where Kafka Streams forces them: `isolation.level`
//! other than `read_committed`, `enable.idempotence=false`, `acks` other than all,
//! `max.in.flight.requests.per.connection` above 5, and `message.timeout.ms`/`socket.timeout.ms`
//! beyond `transaction.timeout.ms`, which librdkafka would refuse later with no layer to name.
//! Refused under `group.protocol=consumer`: `session.timeout.ms` and `heartbeat.interval.ms`,
//! which the broker owns there.
//!
//! # Kafka Streams' client defaults
//!
//! Where Kafka Streams (or the Java client under it) defaults differently from librdkafka, the
//! client lists start from Kafka Streams' value, lowest in precedence: the main consumer's
//! `auto.offset.reset=earliest`; consumers' `isolation.level` (`read_uncommitted` under
//! at-least-once as the Java consumer, `read_committed` under exactly-once); the producer's
//! `linger.ms=100` (as `queue.buffering.max.ms`); under exactly-once `transaction.timeout.ms=10000`
//! and `enable.idempotence=true`; under at-least-once `enable.idempotence=true` unless `acks`,
//! `max.in.flight.requests.per.connection` or `retries` conflict with it, as the Java producer.
//!
//! Values the runtime sets per client (`bootstrap.servers`, `group.id`, `client.id`,
//! `group.instance.id`, `group.protocol`, `partitioner`, `partition.assignment.strategy` or
//! `group.remote.assignor`, `transactional.id`, `enable.auto.commit`,
//! `enable.auto.offset.store`, `enable.partition.eof`) are not in the lists. The lists use
//! librdkafka's canonical names (`queue.buffering.max.ms`, not its alias `linger.ms`), and the
//! runtime must not set an alias of a listed name: librdkafka applies whichever is set last.

mod catalog;
mod classify;
mod define;
mod env;
mod librdkafka;
mod parse;
mod resolve;
mod streams;
mod suggest;
#[cfg(test)]
mod tests;

use std::fmt;

pub use classify::{Classification, Client, classify, is_sensitive};
pub use env::{CONFIG_PREFIX, env_warnings, layers_from_env};
pub use streams::{SpecFields, StreamsConfig};

/// Where a layer's values were written. Ordered by precedence, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerSource {
    /// The manifest's `spec.config` map.
    Config,
    /// The manifest's spec fields (`applicationId`, `numStreamThreads`, ...).
    Spec,
    /// `FRESHET_*` environment variables.
    Env,
    /// Command-line flags.
    Flag,
}

/// One source of configuration, as (property, value) in Kafka Streams naming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// Which layer this is; decides precedence when two layers set the same property.
    pub source: LayerSource,
    /// The (property, value) pairs in the order they were written; keys in Kafka Streams naming,
    /// possibly with a client prefix (`producer.`, `main.consumer.`, ...).
    pub entries: Vec<(String, String)>,
}

impl Layer {
    /// Builds a layer from any pairs, e.g. a manifest's `config` map.
    pub fn new<K, V>(source: LayerSource, entries: impl IntoIterator<Item = (K, V)>) -> Layer
    where
        K: Into<String>,
        V: Into<String>,
    {
        Layer {
            source,
            entries: entries
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

/// Where one value was written, for messages: the flag, the environment variable, the spec field
/// or the `config` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The layer the value came from.
    pub source: LayerSource,
    /// The key as written in its layer (in Kafka Streams naming).
    pub key: String,
}

impl Origin {
    /// The property and where it was written, for warnings, without saying the key twice where
    /// the origin already shows it.
    pub(crate) fn subject(&self) -> String {
        match self.source {
            LayerSource::Config => self.to_string(),
            LayerSource::Env | LayerSource::Spec | LayerSource::Flag => {
                format!("{} ({self})", self.key)
            }
        }
    }

    /// How `key` is written in this origin's layer, so that a suggestion can be pasted back.
    fn spelling(source: LayerSource, key: &str) -> String {
        match source {
            LayerSource::Flag => format!("`{key}`"),
            LayerSource::Env => format!("`{key}` ({})", env::variable_for(key)),
            LayerSource::Spec => match streams::spec_field(key) {
                Some(field) => format!("`{key}` (spec.{field})"),
                None => format!("`{key}`"),
            },
            LayerSource::Config => format!("spec.config[\"{key}\"]"),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        match self.source {
            LayerSource::Flag => f.write_str("a command-line flag"),
            LayerSource::Env => {
                write!(f, "environment variable {}", env::variable_for(key))
            }
            LayerSource::Spec => match streams::spec_field(key) {
                Some(field) => write!(f, "spec.{field}"),
                None => write!(f, "spec ({key})"),
            },
            LayerSource::Config => write!(f, "spec.config[\"{key}\"]"),
        }
    }
}

fn unknown_message(key: &str, origin: &Origin, suggestion: &Option<String>) -> String {
    let mut message = format!("unknown property `{key}` in {origin}");
    match suggestion {
        Some(near) => {
            message.push_str("; did you mean ");
            message.push_str(&Origin::spelling(origin.source, near));
            message.push('?');
        }
        None => message.push_str(
            "; expected a Kafka Streams property, a Java client property or a librdkafka property",
        ),
    }
    message
}

fn several_message(errors: &[ConfigError]) -> String {
    let mut message = format!("{} configuration problems:", errors.len());
    for error in errors {
        message.push_str("\n  - ");
        message.push_str(&error.to_string());
    }
    message
}

/// A configuration that cannot run. Every variant names the property, the layer it came from and
/// what to do; values of secret properties are shown as `<redacted>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key that is neither a Kafka Streams property, a Java client property nor a librdkafka
    /// property (typically a typo).
    #[error("{}", unknown_message(.key, .origin, .suggestion))]
    UnknownProperty {
        /// The key as written.
        key: String,
        /// Where it was written.
        origin: Origin,
        /// The nearest known name, if one is close.
        suggestion: Option<String>,
    },
    /// A known property whose value does not parse (wrong type, out of range, an unknown enum
    /// value, a value Kafka Streams 4 removed).
    #[error("invalid value `{value}` for {key} in {origin}: {reason}")]
    InvalidValue {
        /// The property as written.
        key: String,
        /// The value as written, or `<redacted>` for a secret property.
        value: String,
        /// Where it was written.
        origin: Origin,
        /// What was expected instead.
        reason: String,
    },
    /// A property that may not be set where it was: one Freshet sets itself, a Kafka Streams
    /// property given with a client prefix, or a librdkafka callback only the C API can set.
    #[error("{key}={value} in {origin} is refused: {reason}")]
    Refused {
        /// The property as written.
        key: String,
        /// The value as written, or `<redacted>` for a secret property.
        value: String,
        /// Where it was written.
        origin: Origin,
        /// Why it is refused and what to do instead.
        reason: String,
    },
    /// A valid Kafka Streams value that Freshet cannot honour yet (it would silently behave
    /// differently, so it is an error rather than a warning).
    #[error("{key}={value} in {origin} is not supported yet: {reason}")]
    NotSupported {
        /// The property as written.
        key: String,
        /// The value as written, or `<redacted>` for a secret property.
        value: String,
        /// Where it was written.
        origin: Origin,
        /// What is missing and what to use instead.
        reason: String,
    },
    /// A secret (`sasl.password`, `ssl.key.password`, `sasl.jaas.config`, ...: a property
    /// declared sensitive) written in the manifest's `config` map, which is stored in plain text
    /// in the StreamsApp and its ConfigMap. The value is never part of the error.
    #[error(
        "spec.config[\"{key}\"] is refused: it holds a secret, and spec.config is stored in plain text in the StreamsApp and its ConfigMap; {instead}"
    )]
    SecretInConfig {
        /// The property as written.
        key: String,
        /// Where the secret goes instead (the `spec.kafka` field, or an environment variable
        /// from a Secret).
        instead: String,
    },
    /// A required property (such as `application.id` or `bootstrap.servers`) that no layer sets.
    #[error("{key} is required: {fix}")]
    Missing {
        /// The missing property.
        key: String,
        /// How to set it (which spec field, flag or environment variable).
        fix: String,
    },
    #[error(
        "{} and {} both set `{property}` for the {client}, to different values: keep one",
        .first.subject(),
        .second.subject()
    )]
    /// Two layers of the same precedence set one client property to different values, so neither
    /// can win.
    Conflict {
        /// The client property, in librdkafka naming.
        property: String,
        /// The client it applies to (`application` for a Kafka Streams property, else the producer,
        /// main consumer, restore consumer, admin client...).
        client: String,
        /// Where the first value was written.
        first: Origin,
        /// Where the conflicting value was written.
        second: Origin,
    },
    /// Security settings of the main consumer that the streams-group client (which makes the
    /// group's connections under group.protocol=streams) cannot honour: refused rather than
    /// connecting otherwise than the rest of the app.
    #[error("group.protocol={protocol}: {reason}")]
    StreamsGroupSecurity {
        /// `streams` or `auto`.
        protocol: &'static str,
        /// What is unsupported or missing, and the fix.
        reason: String,
    },
    /// Every problem found, when there is more than one: resolution reports all of them at once
    /// rather than the first.
    #[error("{}", several_message(.0))]
    Several(Vec<ConfigError>),
}

/// `processing.guarantee`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ProcessingGuarantee {
    /// `at_least_once` (the default): after a failure, records since the last commit are processed
    /// again.
    #[default]
    AtLeastOnce,
    /// `exactly_once_v2`: each stream thread writes output, changelogs and offsets in one Kafka
    /// transaction (Kafka Streams 4 removed the older `exactly_once` and `exactly_once_beta`).
    ExactlyOnceV2,
}

impl ProcessingGuarantee {
    /// The value as written in `processing.guarantee`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessingGuarantee::AtLeastOnce => "at_least_once",
            ProcessingGuarantee::ExactlyOnceV2 => "exactly_once_v2",
        }
    }
}

impl fmt::Display for ProcessingGuarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What Kafka Streams' exception handlers answer, reduced to the two built-in behaviours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ErrorHandler {
    /// Stop processing, naming the record (Kafka Streams' default).
    #[default]
    Fail,
    /// Log the record and go on; with a dead-letter topic it is also written there.
    LogAndContinue,
}

impl ErrorHandler {
    /// The value as Freshet spells it in configuration and messages (`fail`, `log-and-continue`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorHandler::Fail => "fail",
            ErrorHandler::LogAndContinue => "log-and-continue",
        }
    }
}

/// `group.protocol`: how the main consumer joins the group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GroupProtocol {
    /// The classic protocol with librdkafka's range assignor (Kafka Streams' default); a
    /// restarted static member takes its place at once.
    Classic,
    /// KIP-848, with the broker's range assignor.
    Consumer,
    /// Kafka Streams' own group protocol (KIP-1071, brokers 4.2+): each stream thread is a
    /// member of a streams group that sends its topology and is assigned tasks by the broker,
    /// through Freshet's client (`freshet-streams-group`); partitions are fetched by assignment.
    Streams,
    /// `streams` where the brokers run streams groups (their ApiVersions list
    /// StreamsGroupHeartbeat) and the streams-group client can connect as configured, else
    /// `classic`; decided when the application starts, and logged. The default.
    #[default]
    Auto,
}

impl GroupProtocol {
    /// The value as written in `group.protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
            GroupProtocol::Streams => "streams",
            GroupProtocol::Auto => "auto",
        }
    }
}

/// `metrics.recording.level`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MetricsRecordingLevel {
    /// `INFO` (the default): the metrics Kafka Streams records at info level.
    #[default]
    Info,
    /// `DEBUG`: also the per-task, per-processor and per-store metrics.
    Debug,
    /// `TRACE`: every metric Kafka Streams records, the most detailed level.
    Trace,
}

impl StreamsConfig {
    /// Resolves layers into one configuration, or every problem found in them.
    pub fn resolve(layers: &[Layer]) -> Result<StreamsConfig, ConfigError> {
        resolve::resolve(layers)
    }
}

/// What `Debug` output and errors show instead of a sensitive value.
pub(crate) const REDACTED: &str = "<redacted>";

/// A client property list whose sensitive values `Debug` hides.
pub(crate) struct Props<'a>(pub(crate) &'a [(String, String)]);

impl fmt::Debug for Props<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, classify::shown(k, v))))
            .finish()
    }
}

/// The base of the static member ids of this instance: `group.instance.id` if configured, else
/// the pod's name, which a StatefulSet keeps stable across restarts — so a restarted pod takes
/// its old place in the group without a rebalance. `None` (a local run) means dynamic membership.
pub fn instance_base(config: &StreamsConfig, pod_name: Option<&str>) -> Option<String> {
    config.group_instance_id.clone().or_else(|| {
        pod_name
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
    })
}

/// A stream thread's `group.instance.id`: `<base>-<thread index>`, as Kafka Streams derives it
/// (Kafka Streams numbers threads from 1), so each thread's consumer is its own static member.
pub fn thread_instance_id(base: &str, thread_index: usize) -> String {
    format!("{base}-{thread_index}")
}

/// A stream thread's `transactional.id` under exactly_once_v2: `<application.id>-<instance>-<thread
/// index>` (threads numbered from 1). It must be the same after a restart of the same instance:
/// the restarted producer's `init_transactions` then aborts the transaction the dead one left
/// open at once, instead of leaving read_committed readers stalled for `transaction.timeout.ms`.
pub fn transactional_id(application_id: &str, instance: &str, thread_index: usize) -> String {
    format!("{application_id}-{instance}-{thread_index}")
}
