//! What Freshet makes of a property name, decided in one place for the resolver and for
//! [`classify`], the public answer that the classification test holds every name of Kafka's own
//! `StreamsConfig`, `ConsumerConfig`, `ProducerConfig` and `AdminClientConfig` to.

use super::catalog::{self, ControlledProp, JavaProp, JavaRule};
use super::define::{Alias, StreamsDef};
use super::librdkafka::{self, Applies, Kind, RdProp};
use super::streams;

/// A librdkafka client a stream thread may create; Kafka Streams' prefixes address them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Client {
    /// A stream thread's consumer of its input topics (`main.consumer.`).
    MainConsumer,
    /// The consumer that restores stores from their changelogs (`restore.consumer.`).
    RestoreConsumer,
    /// The consumer that reads global tables (`global.consumer.`).
    GlobalConsumer,
    /// The producer of sinks, repartition and changelog topics (`producer.`).
    Producer,
    /// The admin client that creates internal topics (`admin.`).
    Admin,
}

pub(crate) const CLIENTS: [Client; 5] = [
    Client::MainConsumer,
    Client::RestoreConsumer,
    Client::GlobalConsumer,
    Client::Producer,
    Client::Admin,
];

pub(crate) const CONSUMERS: [Client; 3] = [
    Client::MainConsumer,
    Client::RestoreConsumer,
    Client::GlobalConsumer,
];

impl Client {
    pub(crate) fn is_consumer(self) -> bool {
        CONSUMERS.contains(&self)
    }

    /// How messages name the client.
    pub fn describe(self) -> &'static str {
        match self {
            Client::MainConsumer => "main consumer",
            Client::RestoreConsumer => "restore consumer",
            Client::GlobalConsumer => "global consumer",
            Client::Producer => "producer",
            Client::Admin => "admin client",
        }
    }

    /// Whether an unprefixed property of this kind reaches the client. The admin client gets only
    /// the properties common to all clients, as in Kafka Streams, where it gets only the
    /// properties the Java admin client defines.
    pub(crate) fn takes_unprefixed(self, applies: Applies) -> bool {
        match applies {
            Applies::Both => true,
            Applies::Consumer => self.is_consumer(),
            Applies::Producer => self == Client::Producer,
        }
    }

    /// Whether a property of this kind means anything to the client when addressed to it by
    /// prefix. The admin client is a producer handle in librdkafka, so it reads both kinds.
    pub(crate) fn reads(self, applies: Applies) -> bool {
        self == Client::Admin || self.takes_unprefixed(applies)
    }
}

/// What a name is, in the order the resolver tries: a Streams property Freshet reads, a client
/// property Freshet controls, a Kafka Streams property Freshet ignores, a Java client property,
/// a librdkafka property.
#[derive(Clone, Copy)]
pub(crate) enum Name {
    Streams(&'static StreamsDef, Option<&'static Alias>),
    Controlled(&'static ControlledProp),
    IgnoredStreams(&'static str),
    Java(&'static JavaProp),
    Librdkafka(&'static RdProp),
}

/// What `name` (without a client prefix) is, or `None` for an unknown name.
pub(crate) fn lookup(name: &str) -> Option<Name> {
    if let Some((def, alias)) = streams::streams_property(name) {
        Some(Name::Streams(def, alias))
    } else if let Some(prop) = catalog::controlled(name) {
        Some(Name::Controlled(prop))
    } else if let Some(reason) = catalog::ignored_streams(name) {
        Some(Name::IgnoredStreams(reason))
    } else if let Some(prop) = catalog::java(name) {
        Some(Name::Java(prop))
    } else {
        librdkafka::lookup(name).map(Name::Librdkafka)
    }
}

/// How Freshet treats a property name (written without a client prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classification {
    /// A Kafka Streams (or Freshet) property that fills a [`StreamsConfig`](super::StreamsConfig)
    /// field.
    Streams {
        /// The current name (`name` may be an older spelling of it).
        property: &'static str,
        /// The field it fills.
        field: &'static str,
    },
    /// A client property, passed to librdkafka under these names (translated where Java's name
    /// or unit differs).
    Client {
        /// librdkafka's canonical names (aliases folded).
        librdkafka: Vec<&'static str>,
        /// The clients an unprefixed setting reaches.
        clients: Vec<Client>,
    },
    /// Set by Freshet itself because Kafka Streams' semantics depend on it: refused, unless the
    /// value asks for what Freshet does anyway.
    Controlled {
        /// Why the user may not choose.
        reason: &'static str,
    },
    /// Accepted with a warning that it has no effect.
    Ignored {
        /// Why it has no effect, as the warning says.
        reason: &'static str,
    },
    /// Refused whatever the value.
    Refused {
        /// Why, and what to do instead.
        reason: &'static str,
    },
    /// Not a name Freshet knows: refused, with the nearest known name.
    Unknown,
}

const API_ONLY: &str = "a callback or pointer that only librdkafka's C API can set";
const KEYSTORE_TYPE: &str = "checked only: librdkafka reads PKCS#12 keystores (ssl.keystore.location) and PEM keys (ssl.keystore.key); JKS is refused";

fn reached(applies: Applies) -> Vec<Client> {
    CLIENTS
        .into_iter()
        .filter(|c| c.takes_unprefixed(applies))
        .collect()
}

/// How Freshet treats the property `name`, written without a client prefix.
pub fn classify(name: &str) -> Classification {
    match lookup(name) {
        Some(Name::Streams(def, _)) => Classification::Streams {
            property: def.name,
            field: def.field,
        },
        Some(Name::Controlled(prop)) => Classification::Controlled {
            reason: prop.reason,
        },
        Some(Name::IgnoredStreams(reason)) => Classification::Ignored { reason },
        Some(Name::Java(prop)) => {
            let librdkafka = match prop.rule {
                JavaRule::Rename(target) | JavaRule::SocketBuffer(target) => vec![target],
                JavaRule::BufferMemory => vec!["queue.buffering.max.kbytes"],
                JavaRule::Jaas => vec!["sasl.username", "sasl.password"],
                JavaRule::KeystoreType => {
                    return Classification::Ignored {
                        reason: KEYSTORE_TYPE,
                    };
                }
                JavaRule::Ignore(reason) => return Classification::Ignored { reason },
                JavaRule::Refuse(reason) => return Classification::Refused { reason },
            };
            Classification::Client {
                librdkafka,
                clients: reached(prop.applies),
            }
        }
        Some(Name::Librdkafka(prop)) if prop.kind == Kind::Api => {
            Classification::Refused { reason: API_ONLY }
        }
        Some(Name::Librdkafka(prop)) => {
            let target = prop.alias_of.and_then(librdkafka::lookup).unwrap_or(prop);
            Classification::Client {
                librdkafka: vec![target.name],
                clients: reached(target.applies),
            }
        }
        None => Classification::Unknown,
    }
}

/// Whether the value of `key` (as written, client prefix included) is a secret, as the
/// property's declaration says (librdkafka's own flag for its properties): such values are never
/// shown in errors, warnings or `Debug` output. A name nobody declares is judged by how it looks.
pub fn is_sensitive(key: &str) -> bool {
    match lookup(without_prefix(key)) {
        Some(Name::Streams(def, _)) => def.sensitive,
        Some(Name::Java(prop)) => prop.sensitive,
        Some(Name::Librdkafka(prop)) => {
            prop.sensitive
                || prop
                    .alias_of
                    .and_then(librdkafka::lookup)
                    .is_some_and(|t| t.sensitive)
        }
        Some(Name::Controlled(_) | Name::IgnoredStreams(_)) => false,
        None => looks_secret(key),
    }
}

/// Where the secret of `key` (a sensitive property, as written) belongs instead of `spec.config`:
/// the `spec.kafka` field that takes it from a Kubernetes Secret (a file or an environment
/// variable when the engine runs locally), or for a secret `spec.kafka` has no field for, an
/// environment variable set from a Secret.
pub(crate) fn secret_field(key: &str) -> String {
    let name = without_prefix(key);
    let field = if key == "basic.auth.user.info" {
        Some("spec.schemaRegistry.basicAuth (the schema registry's user and password)")
    } else if name.starts_with("sasl.oauthbearer.") {
        Some("spec.kafka.authentication.clientSecret (OAuth client credentials)")
    } else if name.starts_with("sasl.") {
        Some("spec.kafka.authentication.passwordSecret (with spec.kafka.authentication.username)")
    } else if name.starts_with("ssl.truststore.") {
        Some(
            "spec.kafka.tls.trustedCertificates (PEM certificates; librdkafka reads no trust store)",
        )
    } else if name.starts_with("ssl") {
        Some("spec.kafka.authentication.certificateAndKey (type: tls)")
    } else {
        None
    };
    let env = format!(
        "an environment variable {} set from a Secret in spec.pod.env",
        super::env::variable_for(key)
    );
    match field {
        Some(field) => format!("put it in a Secret named by {field}, or in {env}"),
        None => format!("put it in {env}"),
    }
}

/// Which clients a prefixed property is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scope {
    All,
    Consumers,
    Only(Client),
}

/// Kafka Streams' client prefixes with their specificity; longer prefixes first, since
/// `main.consumer.` also ends in `consumer.`.
pub(super) const PREFIXES: &[(&str, Scope, u8)] = &[
    ("main.consumer.", Scope::Only(Client::MainConsumer), 2),
    ("restore.consumer.", Scope::Only(Client::RestoreConsumer), 2),
    ("global.consumer.", Scope::Only(Client::GlobalConsumer), 2),
    ("consumer.", Scope::Consumers, 1),
    ("producer.", Scope::Only(Client::Producer), 1),
    ("admin.", Scope::Only(Client::Admin), 1),
];

/// `key` without the Kafka Streams client prefix it starts with, if any.
pub(crate) fn without_prefix(key: &str) -> &str {
    PREFIXES
        .iter()
        .find_map(|(prefix, _, _)| key.strip_prefix(prefix))
        .unwrap_or(key)
}

/// Whether a name looks like a secret's (`password`, `secret`, keys...): the safety net for names
/// no declaration knows, and what the tests hold every declaration's `sensitive` flag to.
pub(crate) fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "private.key",
        "key.pem",
        "ssl.keystore.key",
        "oauthbearer.config",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// The value as errors and `Debug` output may show it.
pub(crate) fn shown(key: &str, value: &str) -> String {
    if is_sensitive(key) {
        super::REDACTED.into()
    } else {
        value.to_owned()
    }
}
