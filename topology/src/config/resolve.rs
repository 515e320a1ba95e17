//! Layers → [`StreamsConfig`]: classify every entry, check every value, then let precedence pick.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use super::catalog::{self, ControlledProp, JavaRule, Redundant};
use super::classify::{
    CLIENTS, CONSUMERS, Client, Name, PREFIXES, Scope, is_sensitive, lookup, secret_field, shown,
};
use super::define::{Alias, Fallback, PropertyValues, StreamsDef};
use super::librdkafka::{self, Applies, Kind};
use super::parse::{self, Parsed, Problem};
use super::streams::{self, STREAMS};
use super::suggest::nearest;
use super::{ConfigError, Layer, LayerSource, Origin, ProcessingGuarantee, StreamsConfig};

/// Freshet's defaults rank below every layer.
const DEFAULT_RANK: u8 = 0;

fn rank(source: LayerSource) -> u8 {
    match source {
        LayerSource::Config => 1,
        LayerSource::Spec => 2,
        LayerSource::Env => 3,
        LayerSource::Flag => 4,
    }
}

/// One value for one property, with what precedence needs to judge it.
#[derive(Clone, Debug)]
struct Candidate {
    rank: u8,
    specificity: u8,
    /// Position across all layers in the order given: within one layer, later wins.
    seq: usize,
    /// `None` for Freshet's defaults.
    origin: Option<Origin>,
    /// The key as written, prefix included, to tell two spellings from one repeated key.
    written: String,
    value: String,
}

impl Candidate {
    fn is_default(&self) -> bool {
        self.origin.is_none()
    }
}

/// The value precedence picks, or the two origins that disagree at the same level.
fn pick(candidates: &[Candidate]) -> Result<Option<&Candidate>, (Origin, Origin)> {
    let Some(top) = candidates.iter().map(|c| (c.rank, c.specificity)).max() else {
        return Ok(None);
    };
    // The last value of each spelling at the top level; a repeated key is an override.
    let mut last: Vec<&Candidate> = Vec::new();
    for candidate in candidates.iter().filter(|c| (c.rank, c.specificity) == top) {
        match last.iter_mut().find(|l| l.written == candidate.written) {
            Some(slot) if slot.seq < candidate.seq => *slot = candidate,
            Some(_) => {}
            None => last.push(candidate),
        }
    }
    let Some(winner) = last.iter().copied().max_by_key(|c| c.seq) else {
        return Ok(None);
    };
    if let Some(other) = last.iter().find(|c| c.value != winner.value)
        && let (Some(first), Some(second)) = (&other.origin, &winner.origin)
    {
        return Err((first.clone(), second.clone()));
    }
    Ok(Some(winner))
}

struct ControlledUse {
    prop: &'static ControlledProp,
    origin: Origin,
    value: String,
}

/// The state of one resolution; `streams.rs`'s generated `read_streams` reads the Streams
/// properties through [`Resolver::value`].
#[derive(Default)]
pub(crate) struct Resolver {
    seq: usize,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    /// Values of Streams properties, by current name.
    streams: HashMap<&'static str, Vec<Candidate>>,
    /// Properties with a value their check refused, which are then not also "missing".
    invalid_streams: HashSet<&'static str>,
    clients: BTreeMap<(Client, &'static str), Vec<Candidate>>,
    controlled: Vec<ControlledUse>,
}

pub(crate) fn resolve(layers: &[Layer]) -> Result<StreamsConfig, ConfigError> {
    let mut resolver = Resolver::default();
    for layer in layers {
        for (key, value) in &layer.entries {
            resolver.classify(layer.source, key, value);
        }
    }
    resolver.finish()
}

/// Every name a key could have meant, for suggestions: current names only, since suggesting a
/// deprecated one would only lead to a warning. Built once: a configuration with many typos
/// should not rebuild it per typo.
fn known_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(build_known_names)
}

fn build_known_names() -> Vec<String> {
    let client_names: Vec<&str> = catalog::JAVA
        .iter()
        .map(|p| p.name)
        .chain(
            librdkafka::PROPERTIES
                .iter()
                .filter(|p| p.kind != Kind::Api && !p.deprecated)
                .map(|p| p.name),
        )
        .collect();
    let mut names: Vec<String> = STREAMS
        .iter()
        .flat_map(|def| {
            std::iter::once(def.name)
                .chain(def.aliases.iter().filter(|a| !a.deprecated).map(|a| a.name))
        })
        .map(str::to_owned)
        .chain(
            catalog::IGNORED_STREAMS
                .iter()
                .map(|(n, _)| (*n).to_owned()),
        )
        .chain(catalog::CONTROLLED.iter().map(|p| p.name.to_owned()))
        .chain(client_names.iter().map(|n| (*n).to_owned()))
        .collect();
    for (prefix, _, _) in PREFIXES {
        names.extend(client_names.iter().map(|n| format!("{prefix}{n}")));
    }
    names
}

impl Resolver {
    fn next_seq(&mut self) -> usize {
        self.seq += 1;
        self.seq
    }

    fn warn(&mut self, warning: String) {
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    fn problem(&mut self, origin: &Origin, value: &str, problem: Problem) {
        let key = origin.key.clone();
        let value = shown(&key, value);
        self.errors.push(match problem {
            Problem::Invalid(reason) => ConfigError::InvalidValue {
                key,
                value,
                origin: origin.clone(),
                reason,
            },
            Problem::NotSupported(reason) => ConfigError::NotSupported {
                key,
                value,
                origin: origin.clone(),
                reason,
            },
        });
    }

    fn refuse(&mut self, origin: &Origin, value: &str, reason: impl Into<String>) {
        self.errors.push(ConfigError::Refused {
            key: origin.key.clone(),
            value: shown(&origin.key, value),
            origin: origin.clone(),
            reason: reason.into(),
        });
    }

    fn classify(&mut self, source: LayerSource, key: &str, value: &str) {
        let origin = Origin {
            source,
            key: key.to_owned(),
        };
        // `config` is stored in plain text in the StreamsApp and its ConfigMap, readable by
        // whoever may read the app: a secret there is refused whatever its name or value, and
        // the message names where it goes instead (never the value).
        if source == LayerSource::Config && is_sensitive(key) {
            self.errors.push(ConfigError::SecretInConfig {
                key: key.to_owned(),
                instead: secret_field(key),
            });
            return;
        }
        if let Some((prefix, scope, specificity)) = PREFIXES
            .iter()
            .find(|(prefix, _, _)| key.starts_with(prefix))
        {
            let name = &key[prefix.len()..];
            self.classify_prefixed(&origin, prefix, *scope, *specificity, name, value);
        } else {
            match lookup(key) {
                Some(Name::Streams(def, alias)) => self.streams_value(def, alias, &origin, value),
                Some(Name::Controlled(prop)) => self.controlled.push(ControlledUse {
                    prop,
                    origin,
                    value: value.to_owned(),
                }),
                Some(Name::IgnoredStreams(reason)) => {
                    self.warn(format!("{} is ignored: {reason}", origin.subject()));
                }
                Some(Name::Java(_) | Name::Librdkafka(_)) | None => {
                    self.client_property(&origin, "", Scope::All, 0, key, value);
                }
            }
        }
    }

    fn classify_prefixed(
        &mut self,
        origin: &Origin,
        prefix: &str,
        scope: Scope,
        specificity: u8,
        name: &str,
        value: &str,
    ) {
        let not_client = || {
            format!(
                "{name} is a Kafka Streams property, not a client property: remove the `{prefix}` prefix"
            )
        };
        match lookup(name) {
            Some(Name::Streams(def, _)) => {
                let reason = def.prefixed.map_or_else(not_client, str::to_owned);
                self.refuse(origin, value, reason);
            }
            Some(Name::Controlled(prop)) => self.controlled.push(ControlledUse {
                prop,
                origin: origin.clone(),
                value: value.to_owned(),
            }),
            Some(Name::IgnoredStreams(_)) => self.refuse(origin, value, not_client()),
            Some(Name::Java(_) | Name::Librdkafka(_)) | None => {
                self.client_property(origin, prefix, scope, specificity, name, value);
            }
        }
    }

    fn streams_value(
        &mut self,
        def: &'static StreamsDef,
        alias: Option<&Alias>,
        origin: &Origin,
        value: &str,
    ) {
        if let Err(problem) = (def.check)(value) {
            self.invalid_streams.insert(def.name);
            self.problem(origin, value, problem);
            return;
        }
        if alias.is_some_and(|a| a.deprecated) {
            self.warn(format!(
                "{} is deprecated: use {}",
                origin.subject(),
                def.name
            ));
        }
        let seq = self.next_seq();
        self.streams.entry(def.name).or_default().push(Candidate {
            rank: rank(origin.source),
            specificity: u8::from(alias.is_none()),
            seq,
            origin: Some(origin.clone()),
            written: origin.key.clone(),
            value: value.to_owned(),
        });
    }

    /// A client property without its prefix (`prefix` is kept for messages): a Java client
    /// property, a librdkafka property, or unknown.
    fn client_property(
        &mut self,
        origin: &Origin,
        prefix: &str,
        scope: Scope,
        specificity: u8,
        name: &str,
        value: &str,
    ) {
        let found = lookup(name);
        if let Some(Name::Java(&catalog::JavaProp { applies, rule, .. })) = found {
            let translated = match rule {
                JavaRule::Rename(target) => Ok(vec![(target, value.to_owned())]),
                JavaRule::BufferMemory => parse::buffer_memory_kbytes(value)
                    .map(|v| vec![("queue.buffering.max.kbytes", v)]),
                JavaRule::SocketBuffer(target) => {
                    parse::socket_buffer(value).map(|v| vec![(target, v)])
                }
                JavaRule::Jaas => parse::jaas(value).map(|(user, password)| {
                    vec![("sasl.username", user), ("sasl.password", password)]
                }),
                JavaRule::KeystoreType => parse::keystore_type(value).map(|()| Vec::new()),
                JavaRule::Ignore(reason) => {
                    self.warn(format!("{} is ignored: {reason}", origin.subject()));
                    Ok(Vec::new())
                }
                JavaRule::Refuse(reason) => {
                    self.refuse(origin, value, reason);
                    Ok(Vec::new())
                }
            };
            match translated {
                Ok(entries) => {
                    for (target, value) in entries {
                        self.emit(origin, scope, specificity, target, applies, &value);
                    }
                }
                Err(problem) => self.problem(origin, value, problem),
            }
        } else if let Some(Name::Librdkafka(prop)) = found {
            if prop.kind == Kind::Api {
                self.refuse(
                    origin,
                    value,
                    format!("{name} is a callback or pointer that only librdkafka's C API can set"),
                );
                return;
            }
            if prop.deprecated {
                self.warn(format!(
                    "{} is deprecated in librdkafka {}",
                    origin.subject(),
                    librdkafka::LIBRDKAFKA_VERSION
                ));
            }
            let target = prop.alias_of.and_then(librdkafka::lookup).unwrap_or(prop);
            self.emit(
                origin,
                scope,
                specificity,
                target.name,
                target.applies,
                value,
            );
        } else {
            self.unknown(origin, prefix, name);
        }
    }

    fn unknown(&mut self, origin: &Origin, prefix: &str, name: &str) {
        let names = known_names();
        let suggestion = if prefix.is_empty() {
            nearest(name, names.iter().map(String::as_str)).map(str::to_owned)
        } else {
            nearest(
                &format!("{prefix}{name}"),
                names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| n.starts_with(prefix)),
            )
            .map(str::to_owned)
        };
        self.errors.push(ConfigError::UnknownProperty {
            key: origin.key.clone(),
            origin: origin.clone(),
            suggestion,
        });
    }

    /// Records a librdkafka property (canonical name, translated value) for the clients in scope.
    fn emit(
        &mut self,
        origin: &Origin,
        scope: Scope,
        specificity: u8,
        target: &'static str,
        applies: Applies,
        value: &str,
    ) {
        let checked =
            parse::java_value(target, value).and_then(|v| match librdkafka::lookup(target) {
                Some(prop) => parse::librdkafka_value(target, prop.kind, &v),
                None => Ok(v),
            });
        let value = match checked {
            Ok(v) => v,
            Err(problem) => {
                self.problem(origin, value, problem);
                return;
            }
        };
        let clients: Vec<Client> = match scope {
            Scope::All => CLIENTS
                .into_iter()
                .filter(|c| c.takes_unprefixed(applies))
                .collect(),
            Scope::Consumers => CONSUMERS.into_iter().filter(|c| c.reads(applies)).collect(),
            Scope::Only(client) => [client].into_iter().filter(|c| c.reads(applies)).collect(),
        };
        if clients.is_empty() {
            let kind = match applies {
                Applies::Consumer => "consumer",
                Applies::Producer => "producer",
                Applies::Both => "client",
            };
            let addressed = match scope {
                Scope::Only(client) => client.describe(),
                Scope::Consumers | Scope::All => "consumers",
            };
            self.warn(format!(
                "{} is ignored: {target} is a {kind} property, which the {addressed} cannot use",
                origin.subject()
            ));
            return;
        }
        let seq = self.next_seq();
        for client in clients {
            self.clients
                .entry((client, target))
                .or_default()
                .push(Candidate {
                    rank: rank(origin.source),
                    specificity,
                    seq,
                    origin: Some(origin.clone()),
                    written: origin.key.clone(),
                    value: value.clone(),
                });
        }
    }

    fn client_default(&mut self, client: Client, name: &'static str, value: &str) {
        let seq = self.next_seq();
        self.clients
            .entry((client, name))
            .or_default()
            .push(Candidate {
                rank: DEFAULT_RANK,
                specificity: 0,
                seq,
                origin: None,
                written: name.to_owned(),
                value: value.to_owned(),
            });
    }

    fn winner(&mut self, name: &'static str) -> Option<Candidate> {
        let candidates = self.streams.get(name)?;
        match pick(candidates) {
            Ok(winner) => winner.cloned(),
            Err((first, second)) => {
                self.errors.push(ConfigError::Conflict {
                    property: name.to_owned(),
                    client: "application".to_owned(),
                    first,
                    second,
                });
                None
            }
        }
    }

    /// The processing guarantee as it will be resolved, for the defaults that depend on it;
    /// problems with it are reported when its field is read.
    fn peek_guarantee(&self) -> ProcessingGuarantee {
        self.streams
            .get("processing.guarantee")
            .and_then(|candidates| pick(candidates).ok().flatten())
            .and_then(|winner| parse::processing_guarantee(&winner.value).ok())
            .unwrap_or_default()
    }

    fn finish(mut self) -> Result<StreamsConfig, ConfigError> {
        let guarantee = self.peek_guarantee();
        let mut config = streams::read_streams(&mut self, guarantee);
        let eos = config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
        let group_protocol = config.group_protocol;
        let application_id = config.application_id.clone();
        self.check_controlled(Some(application_id.as_str()));
        self.client_defaults(eos);
        let mut lists = self.pick_clients();
        if eos {
            self.check_exactly_once(&lists);
        } else {
            idempotence_default(&mut lists);
        }
        // Under `auto` (the default) they are kept: set, they make `auto` choose classic, where
        // they mean what the user meant (runtime::streams_group::decide_auto).
        if matches!(
            group_protocol,
            super::GroupProtocol::Consumer | super::GroupProtocol::Streams
        ) {
            self.check_consumer_protocol(&lists, group_protocol);
        }
        if group_protocol == super::GroupProtocol::Streams {
            self.check_streams_group_security(&lists, group_protocol);
        }
        if config.num_standby_replicas > 0 {
            self.check_standby_replicas(group_protocol);
        }

        if !self.errors.is_empty() {
            return Err(if self.errors.len() == 1 {
                self.errors.remove(0)
            } else {
                ConfigError::Several(self.errors)
            });
        }
        let mut list = |client: Client| -> Vec<(String, String)> {
            lists
                .remove(&client)
                .unwrap_or_default()
                .into_iter()
                .map(|(name, c)| (name.to_owned(), c.value))
                .collect()
        };
        config.consumer = list(Client::MainConsumer);
        config.restore_consumer = list(Client::RestoreConsumer);
        config.global_consumer = list(Client::GlobalConsumer);
        config.producer = list(Client::Producer);
        config.admin = list(Client::Admin);
        config.warnings = self.warnings;
        Ok(config)
    }

    fn check_controlled(&mut self, application_id: Option<&str>) {
        for used in std::mem::take(&mut self.controlled) {
            let value = used.value.trim();
            let redundant = match used.prop.redundant {
                Redundant::ApplicationId => application_id == Some(value),
                Redundant::Values(values) => values.iter().any(|r| r.eq_ignore_ascii_case(value)),
            };
            if redundant {
                self.warn(format!(
                    "{} = `{value}` is dropped: Freshet sets it itself",
                    used.origin.subject()
                ));
            } else {
                self.refuse(&used.origin, &used.value, used.prop.reason);
            }
        }
    }

    /// Kafka Streams' defaults where they differ from librdkafka's (see the module documentation).
    fn client_defaults(&mut self, eos: bool) {
        self.client_default(Client::MainConsumer, "auto.offset.reset", "earliest");
        // librdkafka waits fetch.queue.backoff.ms (1 s) before fetching a partition whose local
        // queue passed queued.min.messages; a stream thread drains that queue in milliseconds,
        // so the default stalls it (measured: 1M records in 7.8 s with it, 3.4 s at 10 ms).
        for consumer in CONSUMERS {
            self.client_default(consumer, "fetch.queue.backoff.ms", "10");
        }
        let isolation = if eos {
            "read_committed"
        } else {
            "read_uncommitted"
        };
        for consumer in CONSUMERS {
            self.client_default(consumer, "isolation.level", isolation);
        }
        self.client_default(Client::Producer, "queue.buffering.max.ms", "100");
        if eos {
            self.client_default(Client::Producer, "transaction.timeout.ms", "10000");
            self.client_default(Client::Producer, "enable.idempotence", "true");
        }
    }

    fn pick_clients(&mut self) -> Lists {
        let mut lists = Lists::new();
        let mut conflicts = Vec::new();
        for ((client, name), candidates) in &self.clients {
            match pick(candidates) {
                Ok(Some(winner)) => {
                    lists
                        .entry(*client)
                        .or_default()
                        .insert(name, winner.clone());
                }
                Ok(None) => {}
                Err((first, second)) => conflicts.push(ConfigError::Conflict {
                    property: (*name).to_owned(),
                    client: client.describe().to_owned(),
                    first,
                    second,
                }),
            }
        }
        // One conflict per pair of spellings, not one per client they reach.
        for conflict in conflicts {
            let duplicate = self.errors.iter().any(|e| match (e, &conflict) {
                (
                    ConfigError::Conflict {
                        property: p1,
                        first: f1,
                        second: s1,
                        ..
                    },
                    ConfigError::Conflict {
                        property: p2,
                        first: f2,
                        second: s2,
                        ..
                    },
                ) => p1 == p2 && f1 == f2 && s1 == s2,
                _ => false,
            });
            if !duplicate {
                self.errors.push(conflict);
            }
        }
        lists
    }

    /// What Kafka Streams forces under exactly_once_v2, refused when written otherwise rather
    /// than silently overridden, since the writer evidently expected something else.
    fn check_exactly_once(&mut self, lists: &Lists) {
        const FIX: &str = "remove it, or set processing.guarantee=at_least_once";
        for consumer in CONSUMERS {
            if let Some(c) = user_set(lists, consumer, "isolation.level")
                && c.value != "read_committed"
            {
                self.refuse_candidate(
                    c,
                    &format!("exactly_once_v2 reads only committed records, as Kafka Streams forces; {FIX}"),
                );
            }
        }
        let producer = Client::Producer;
        if let Some(c) = user_set(lists, producer, "enable.idempotence")
            && c.value == "false"
        {
            self.refuse_candidate(
                c,
                &format!("exactly_once_v2 needs the idempotent producer; {FIX}"),
            );
        }
        if let Some(c) = user_set(lists, producer, "request.required.acks")
            && c.value != "-1"
            && c.value != "all"
        {
            self.refuse_candidate(c, &format!("exactly_once_v2 needs acks=all; {FIX}"));
        }
        if let Some(c) = user_set(lists, producer, "max.in.flight.requests.per.connection")
            && c.value.parse::<i64>().is_ok_and(|n| n > 5)
        {
            self.refuse_candidate(
                c,
                &format!("it cannot exceed 5 when exactly-once processing is enabled (Kafka Streams' rule, and librdkafka's for idempotence); {FIX}"),
            );
        }
        if let Some(c) = user_set(lists, producer, "message.send.max.retries")
            && c.value == "0"
        {
            self.refuse_candidate(
                c,
                &format!("exactly_once_v2 needs the producer to retry (retries > 0); {FIX}"),
            );
        }
        let transaction_timeout = lists
            .get(&producer)
            .and_then(|l| l.get("transaction.timeout.ms"))
            .and_then(|c| c.value.parse::<i64>().ok())
            .unwrap_or(10_000);
        if let Some(c) = user_set(lists, producer, "message.timeout.ms")
            && c.value
                .parse::<i64>()
                .is_ok_and(|ms| ms == 0 || ms > transaction_timeout)
        {
            self.invalid_candidate(
                c,
                &format!(
                    "under exactly_once_v2 it may not exceed transaction.timeout.ms ({transaction_timeout} ms), or librdkafka refuses the producer; remove it (it then follows transaction.timeout.ms) or raise transaction.timeout.ms"
                ),
            );
        }
        if let Some(c) = user_set(lists, producer, "socket.timeout.ms")
            && c.value
                .parse::<i64>()
                .is_ok_and(|ms| ms > transaction_timeout - 100)
        {
            self.invalid_candidate(
                c,
                &format!(
                    "under exactly_once_v2 it must be at least 100 ms below transaction.timeout.ms ({transaction_timeout} ms), or librdkafka refuses the producer"
                ),
            );
        }
    }

    fn check_consumer_protocol(&mut self, lists: &Lists, protocol: super::GroupProtocol) {
        let (written, group) = match protocol {
            super::GroupProtocol::Streams => ("streams", "streams"),
            _ => ("consumer", "consumer"),
        };
        for (name, broker) in [
            (
                "session.timeout.ms",
                format!("group.{group}.session.timeout.ms"),
            ),
            (
                "heartbeat.interval.ms",
                format!("group.{group}.heartbeat.interval.ms"),
            ),
        ] {
            if let Some(c) = user_set(lists, Client::MainConsumer, name) {
                self.refuse_candidate(
                    c,
                    &format!(
                        "with group.protocol={written} the broker decides it ({broker}); remove it, or use group.protocol=classic"
                    ),
                );
            }
        }
    }

    /// `num.standby.replicas` above 0: under `streams` the group's configuration decides it and
    /// the client's is ignored with a warning, as Kafka Streams does
    /// (`StreamsConfig.verifyStreamsProtocolCompatibility`); elsewhere it is refused, since
    /// librdkafka's assignors cannot place standbys (and `auto` may choose classic).
    fn check_standby_replicas(&mut self, protocol: super::GroupProtocol) {
        let Some(winner) = self
            .streams
            .get("num.standby.replicas")
            .and_then(|candidates| pick(candidates).ok().flatten())
            .cloned()
        else {
            return;
        };
        let Some(origin) = winner.origin else {
            return;
        };
        let reason = match protocol {
            super::GroupProtocol::Streams => {
                self.warn(format!(
                    "{} is ignored: under group.protocol=streams the group's streams.num.standby.replicas (default: the brokers' group.streams.num.standby.replicas) decides the standby replicas, as in Kafka Streams; set it with kafka-configs --alter --entity-type groups --entity-name <application.id> --add-config streams.num.standby.replicas=N",
                    origin.subject()
                ));
                return;
            }
            super::GroupProtocol::Auto => {
                "standby replicas need the streams group protocol, and group.protocol=auto may choose classic, whose assignor cannot give placement; set group.protocol=streams (and the group's streams.num.standby.replicas), or remove num.standby.replicas"
            }
            _ => {
                "standby replicas need placement knowledge the consumer group's assignor cannot give; use group.protocol=streams (the group's streams.num.standby.replicas decides them there), or remove num.standby.replicas or set it to 0"
            }
        };
        self.problem(
            &origin,
            &winner.value,
            Problem::NotSupported(reason.to_owned()),
        );
    }

    /// The streams-group members connect with the main consumer's security settings through
    /// Freshet's own client: what it cannot do (Kerberos, PKCS#12, OIDC...) is refused here,
    /// never a connection made otherwise than librdkafka's.
    fn check_streams_group_security(&mut self, lists: &Lists, protocol: super::GroupProtocol) {
        let props = lists
            .get(&Client::MainConsumer)
            .into_iter()
            .flatten()
            .map(|(k, c)| (*k, c.value.as_str()));
        if let Err(e) = freshet_streams_group::Settings::from_properties(props) {
            self.errors.push(ConfigError::StreamsGroupSecurity {
                protocol: protocol.as_str(),
                reason: e.to_string(),
            });
        }
    }

    fn refuse_candidate(&mut self, candidate: &Candidate, reason: &str) {
        if let Some(origin) = &candidate.origin {
            self.refuse(origin, &candidate.value, reason);
        }
    }

    fn invalid_candidate(&mut self, candidate: &Candidate, reason: &str) {
        if let Some(origin) = &candidate.origin {
            self.problem(
                origin,
                &candidate.value,
                Problem::Invalid(reason.to_owned()),
            );
        }
    }
}

type Lists = BTreeMap<Client, BTreeMap<&'static str, Candidate>>;

/// The winner for `name` if the user wrote it (not one of Freshet's defaults).
fn user_set<'a>(lists: &'a Lists, client: Client, name: &str) -> Option<&'a Candidate> {
    lists
        .get(&client)
        .and_then(|l| l.get(name))
        .filter(|c| !c.is_default())
}

/// The Java producer is idempotent by default unless the configuration conflicts with it; Kafka
/// Streams under at-least-once inherits that, so Freshet does too (librdkafka defaults to off).
fn idempotence_default(lists: &mut Lists) {
    let producer = lists.entry(Client::Producer).or_default();
    if producer.contains_key("enable.idempotence") {
        return;
    }
    let acks_ok = producer
        .get("request.required.acks")
        .is_none_or(|c| c.value == "-1" || c.value == "all");
    let in_flight_ok = producer
        .get("max.in.flight.requests.per.connection")
        .is_none_or(|c| c.value.parse::<i64>().is_ok_and(|n| n <= 5));
    let retries_ok = producer
        .get("message.send.max.retries")
        .is_none_or(|c| c.value.parse::<i64>().is_ok_and(|n| n > 0));
    if acks_ok && in_flight_ok && retries_ok {
        producer.insert(
            "enable.idempotence",
            Candidate {
                rank: DEFAULT_RANK,
                specificity: 0,
                seq: 0,
                origin: None,
                written: "enable.idempotence".into(),
                value: "true".into(),
            },
        );
    }
}

impl PropertyValues for Resolver {
    /// The value of the Streams property `name`: the winner parsed, else its fallback. Values
    /// that its check refused never become candidates, so a winner that fails here means the
    /// check and the parser disagree: it is reported rather than silently replaced by the
    /// default. A missing required property is reported, and the field gets a placeholder that
    /// never escapes, since the resolution then fails.
    fn value<T: Default>(
        &mut self,
        name: &'static str,
        parse: impl Fn(&str) -> Parsed<T>,
        fallback: Fallback<T>,
        guarantee: ProcessingGuarantee,
    ) -> T {
        let present = self.streams.get(name).is_some_and(|c| !c.is_empty());
        if !present {
            return match fallback {
                Fallback::Of(default) => default(guarantee),
                Fallback::Required(fix) => {
                    if !self.invalid_streams.contains(name) {
                        self.errors.push(ConfigError::Missing {
                            key: name.to_owned(),
                            fix: fix.to_owned(),
                        });
                    }
                    T::default()
                }
            };
        }
        let Some(winner) = self.winner(name) else {
            return T::default();
        };
        match parse(&winner.value) {
            Ok(value) => value,
            Err(problem) => {
                if let Some(origin) = &winner.origin {
                    self.problem(origin, &winner.value, problem);
                }
                T::default()
            }
        }
    }
}
