//! Compiles a manifest's topology into a [`Topology`] through the DSL, with CEL expressions
//! compiled once and every error naming its pipeline, step and position.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cel::Value;
use serde_json::Value as Json;

use crate::values::map_field;
use position::Position;
use registry::Bind;

mod joins;
mod position;
mod registry;
mod sources;
mod stateful;
use crate::dsl::{Consumed, KStream, Produced, RecordInfo, Repartitioned, StreamsBuilder};
use crate::expr::{Bindings, Expr, ExprEnv, Var};
use crate::processor::ProcessError;
use crate::serdes::Serde;
use crate::topology::{Topology, TopologyError};
use freshet_crds::{STEP_LEVELS, Step, StepOp, TopologySpec};

/// A problem in a manifest, at a place a user can find.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct SpecError {
    /// e.g. `pipeline 'by-region', step 2 (split), branch 'eu', when`
    pub place: String,
    /// What is wrong there, and how to fix it when that is known.
    pub message: String,
}

/// All the problems found; compilation goes on past the first so `validate` lists them together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct SpecErrors(pub Vec<SpecError>);

/// Default serdes, from `defaultKeySerde`/`defaultValueSerde` or config.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// `default.key.serde` by name (`string`, `json`, `long`, ...).
    pub key_serde: String,
    /// `default.value.serde` by name.
    pub value_serde: String,
    /// The schema registry of `avro` serdes (`schema.registry.url`), `None` when not configured.
    pub registry: Option<Arc<crate::registry::RegistryClient>>,
    /// `application.id`: names the changelog topics, and so the subjects of stores whose values
    /// go through the registry (`<application.id>-<store>-changelog-value`).
    pub application_id: String,
}

impl Defaults {
    /// The defaults `config` gives: its default serdes and its schema registry.
    pub fn from_config(config: &crate::config::StreamsConfig) -> Defaults {
        Defaults {
            key_serde: config.default_key_serde.clone(),
            value_serde: config.default_value_serde.clone(),
            registry: crate::registry::RegistrySettings::from_config(config)
                .map(|s| Arc::new(crate::registry::RegistryClient::new(s))),
            application_id: config.application_id.clone(),
        }
    }
}

const STREAM_VARS: &[Var] = &[
    Var::Key,
    Var::Value,
    Var::Timestamp,
    Var::Headers,
    Var::Topic,
    Var::Partition,
    Var::Offset,
];

const STATELESS_STEPS: &[&str] = &[
    "filter",
    "filterNot",
    "map",
    "mapValues",
    "flatMap",
    "flatMapValues",
    "selectKey",
    "peek",
    "split",
    "merge",
    "repartition",
    "to",
];

/// Steps that group, window, aggregate or work on tables.
const STATEFUL_STEPS: &[&str] = &[
    "join",
    "leftJoin",
    "outerJoin",
    "cogroup",
    "groupBy",
    "groupByKey",
    "windowedBy",
    "count",
    "reduce",
    "aggregate",
    "suppress",
    "toTable",
    "toStream",
];

/// Steps of the manifest syntax this engine version does not run yet.
const LATER_STEPS: &[&str] = &["process"];

pub(super) type Stream = KStream<Value, Value>;

thread_local! {
    // The root CEL context is built once per stream thread; records get cheap inner scopes.
    static ENV: ExprEnv = ExprEnv::new();
}

pub(super) fn bindings<'a>(
    info: &'a RecordInfo<'a>,
    key: &'a Value,
    value: &'a Value,
) -> Bindings<'a> {
    Bindings {
        key: Some(key),
        value: Some(value),
        timestamp: Some(info.timestamp),
        headers: Some(info.headers.0.as_slice()),
        topic: info.meta.map(|m| m.topic.as_str()),
        partition: info.meta.map(|m| m.partition),
        offset: info.meta.map(|m| m.offset),
        ..Bindings::default()
    }
}

pub(super) struct Compiler {
    pub builder: StreamsBuilder,
    pub defaults: Defaults,
    pub errors: Vec<SpecError>,
    /// The fields the last `mapValues` of the pipeline being compiled writes (a map literal's
    /// keys) and its place, while the steps after it keep the value's shape; checked against an
    /// avro `to` step's schema.
    pub value_fields: Option<(Vec<String>, String)>,
}

/// A compiled expression with the place it came from, for runtime errors.
#[derive(Clone)]
pub(super) struct PlacedExpr {
    pub expr: Arc<Expr>,
    pub place: Arc<str>,
}

impl PlacedExpr {
    /// Evaluates with any bindings (aggregators bind `agg`, mergers `left` and `right`).
    pub fn eval_with(&self, bindings: &Bindings) -> Result<Value, ProcessError> {
        ENV.with(|env| self.expr.eval(env, bindings))
            .map_err(|e| ProcessError::new(format!("{}: {e}", self.place)))
    }

    pub fn eval(&self, info: &RecordInfo, k: &Value, v: &Value) -> Result<Value, ProcessError> {
        ENV.with(|env| self.expr.eval(env, &bindings(info, k, v)))
            .map_err(|e| ProcessError::new(format!("{}: {e}", self.place)))
    }

    pub fn eval_bool(&self, info: &RecordInfo, k: &Value, v: &Value) -> Result<bool, ProcessError> {
        ENV.with(|env| self.expr.eval_bool(env, &bindings(info, k, v)))
            .map_err(|e| ProcessError::new(format!("{}: {e}", self.place)))
    }
}

fn as_str<'a>(v: &'a Json, field: &str, place: &str) -> Result<&'a str, SpecError> {
    v.get(field)
        .and_then(Json::as_str)
        .ok_or_else(|| SpecError {
            place: place.to_owned(),
            message: format!("'{field}' must be a string"),
        })
}

fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::levenshtein(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn key_value_pair(v: &Value, place: &str) -> Result<(Value, Value), ProcessError> {
    match (map_field(v, "key"), map_field(v, "value")) {
        (Some(k), Some(val)) => Ok((k.clone(), val.clone())),
        _ => Err(ProcessError::new(format!(
            "{place}: must return a map {{'key': ..., 'value': ...}}, got {v:?}"
        ))),
    }
}

fn list_items(v: Value, place: &str) -> Result<Vec<Value>, ProcessError> {
    match v {
        Value::List(items) => Ok(items.iter().cloned().collect()),
        other => Err(ProcessError::new(format!(
            "{place}: must return a list, got {other:?}"
        ))),
    }
}

impl Compiler {
    /// Reports the first field of `v` that is not one of `known`.
    pub(super) fn check_fields(&mut self, v: &Json, known: &[&str], place: &str) {
        let unknown = v
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .find(|k| !known.contains(&k.as_str()));
        if let Some(unknown) = unknown {
            self.error(
                place,
                format!("unknown field '{unknown}' (known: {})", known.join(", ")),
            );
        }
    }

    pub(super) fn error(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.errors.push(SpecError {
            place: place.into(),
            message: message.into(),
        });
    }

    /// Reports a schema-registry serde where only topics can have one (stores, tables' changelogs).
    pub(super) fn topic_only(&mut self, kind: &crate::serdes::SerdeKind, place: &str) {
        if kind.is_registry() {
            self.error(place, crate::registry::UNBOUND);
        }
    }

    pub(super) fn expr(&mut self, source: &Json, place: &str) -> Option<PlacedExpr> {
        self.expr_with(source, place, STREAM_VARS)
    }

    /// An expression over `vars` (a step's own variables: `agg`, `left`, `right`, ...);
    /// `None`, reported at `place`, when it is not a string or does not compile.
    pub(super) fn expr_with(
        &mut self,
        source: &Json,
        place: &str,
        vars: &[Var],
    ) -> Option<PlacedExpr> {
        let Some(text) = source.as_str() else {
            self.error(place, "expected a CEL expression (a string)");
            return None;
        };
        match Expr::compile(text, vars) {
            Ok(expr) => Some(PlacedExpr {
                expr: Arc::new(expr),
                place: Arc::from(place),
            }),
            Err(e) => {
                self.error(place, format!("{e} in `{text}`"));
                None
            }
        }
    }

    /// Applies `steps` from `start`; returns where the pipeline ends, or `None` when it ended in
    /// a sink.
    fn steps(
        &mut self,
        start: Position,
        steps: &[Json],
        place: &str,
        named: &HashMap<String, Position>,
    ) -> Option<Position> {
        let mut pos = start;
        let mut ended = false;
        self.value_fields = None;
        for (i, step) in steps.iter().enumerate() {
            let n = i + 1;
            let Some(obj) = step.as_object() else {
                self.error(
                    format!("{place}, step {n}"),
                    "a step is a map such as `filter: \"<expression>\"`",
                );
                continue;
            };
            let step_name = obj.get("name").and_then(Json::as_str).map(str::to_owned);
            let ops: Vec<&String> = obj.keys().filter(|k| *k != "name").collect();
            let op = match ops.as_slice() {
                [op] => op.as_str(),
                [] => {
                    self.error(format!("{place}, step {n}"), "the step names no operation");
                    continue;
                }
                many => {
                    self.error(
                        format!("{place}, step {n}"),
                        format!(
                            "one operation per step, found {}",
                            many.iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    continue;
                }
            };
            let at = format!("{place}, step {n} ({op})");
            if ended {
                self.error(
                    &at,
                    "unreachable: the previous step wrote to a topic and ended the pipeline",
                );
                continue;
            }
            let arg = &obj[op];
            let named_ref = step_name.as_deref();
            if STATEFUL_STEPS.contains(&op)
                || (!matches!(pos, Position::Stream(_)) && !LATER_STEPS.contains(&op))
            {
                let default_name = format!("{}-{n}", place_pipeline(place));
                if let Some(next) =
                    self.stateful_step(pos.clone(), op, arg, (named_ref, &default_name), &at, named)
                {
                    pos = next;
                }
                continue;
            }
            let Position::Stream(stream) = pos.clone() else {
                self.error(&at, format!("'{op}' cannot follow {}", pos.describe()));
                continue;
            };
            if !matches!(op, "filter" | "filterNot" | "peek" | "to" | "repartition") {
                self.value_fields = None;
            }
            let stream = match op {
                "filter" | "filterNot" => {
                    let Some(e) = self.expr(arg, &at) else {
                        continue;
                    };
                    let f = move |info: &RecordInfo, k: &Value, v: &Value| e.eval_bool(info, k, v);
                    if op == "filter" {
                        stream.try_filter(named_ref, f)
                    } else {
                        stream.try_filter_not(named_ref, f)
                    }
                }
                "mapValues" => {
                    let Some(e) = self.expr(arg, &at) else {
                        continue;
                    };
                    self.value_fields = e.expr.literal_map_keys().map(|keys| (keys, at.clone()));
                    stream.try_map_values(named_ref, move |info, k, v| e.eval(info, k, v))
                }
                "map" => {
                    let Some(e) = self.expr(arg, &at) else {
                        continue;
                    };
                    stream.try_map(named_ref, move |info, k, v| {
                        let out = e.eval(info, k, v)?;
                        key_value_pair(&out, &e.place)
                    })
                }
                "selectKey" => {
                    let Some(e) = self.expr(arg, &at) else {
                        continue;
                    };
                    stream.try_select_key(named_ref, move |info, k, v| e.eval(info, k, v))
                }
                "flatMap" => {
                    let Some(e) = self.expr(arg, &at) else {
                        continue;
                    };
                    stream.try_flat_map(named_ref, move |info, k, v| {
                        list_items(e.eval(info, k, v)?, &e.place)?
                            .iter()
                            .map(|item| key_value_pair(item, &e.place))
                            .collect()
                    })
                }
                "flatMapValues" => {
                    let Some(e) = self.expr(arg, &at) else {
                        continue;
                    };
                    stream.try_flat_map_values(named_ref, move |info, k, v| {
                        list_items(e.eval(info, k, v)?, &e.place)
                    })
                }
                "peek" => {
                    let Some(e) = self.expr(arg, &at) else {
                        continue;
                    };
                    stream.try_peek(named_ref, move |info, k, v| {
                        let shown = e.eval(info, k, v)?;
                        tracing::info!(target: "freshet::peek", place = %e.place, value = ?shown);
                        Ok(())
                    })
                }
                "merge" => {
                    let others: Vec<&str> = match arg {
                        Json::Array(items) if items.iter().all(Json::is_string) => {
                            items.iter().filter_map(Json::as_str).collect()
                        }
                        Json::String(s) => vec![s.as_str()],
                        _ => {
                            self.error(&at, "expected a list of stream or pipeline names");
                            continue;
                        }
                    };
                    let mut merged = stream;
                    for other in others {
                        match named.get(other) {
                            Some(Position::Stream(o)) => merged = merged.merge_named(o, named_ref),
                            Some(p) => self.error(&at, format!("'{other}' is {}; only streams merge", p.describe())),
                            None => self.error(&at, format!("'{other}' is neither a declared stream nor a pipeline that ends without a sink")),
                        }
                    }
                    merged
                }
                "repartition" => {
                    let name = arg
                        .get("name")
                        .and_then(Json::as_str)
                        .map(str::to_owned)
                        .or(step_name.clone())
                        .unwrap_or_else(|| format!("{}-{n}", place_pipeline(place)));
                    let partitions = arg
                        .get("partitions")
                        .and_then(Json::as_i64)
                        .map(|p| p as i32);
                    if partitions.is_some_and(|p| p < 1) {
                        self.error(&at, "partitions must be at least 1");
                    }
                    // Registry serdes name their subjects after the topic, as for a `to` step.
                    let topic = format!("{}-{name}-repartition", self.defaults.application_id);
                    let (ks, vs) = self.sink_serdes(arg, Some(&topic), &at);
                    self.check_repartition_fields(arg, &at);
                    stream.repartition(Repartitioned {
                        name: Some(name),
                        partitions,
                        produced: Produced::with(ks.clone(), vs.clone()),
                        consumed: Consumed::with(ks, vs),
                    })
                }
                "to" => {
                    ended = true;
                    self.sink(&stream, arg, named_ref, &at);
                    continue;
                }
                "split" => {
                    ended = true;
                    self.split(&stream, arg, step_name.as_deref(), place, &at, named);
                    continue;
                }
                later if LATER_STEPS.contains(&later) => {
                    self.error(
                        &at,
                        format!("'{later}' is not supported by this engine version yet"),
                    );
                    continue;
                }
                unknown => {
                    let all = STATELESS_STEPS
                        .iter()
                        .chain(STATEFUL_STEPS)
                        .chain(LATER_STEPS)
                        .copied();
                    let hint = closest(unknown, all)
                        .map(|c| format!(": did you mean '{c}'?"))
                        .unwrap_or_default();
                    self.error(&at, format!("unknown step '{unknown}'{hint}"));
                    continue;
                }
            };
            pos = Position::Stream(stream);
        }
        (!ended).then_some(pos)
    }

    /// The key and value serdes of a step writing `topic` (a `to` step's, a repartition
    /// topic), with the schemas `arg` gives.
    fn sink_serdes(
        &mut self,
        arg: &Json,
        topic: Option<&str>,
        at: &str,
    ) -> (Arc<dyn Serde<Value>>, Arc<dyn Serde<Value>>) {
        let key = self.serde(
            arg.get("keySerde").and_then(Json::as_str),
            &self.defaults.key_serde.clone(),
            at,
            Bind::of(arg, topic, true),
        );
        let value = self.serde(
            arg.get("valueSerde").and_then(Json::as_str),
            &self.defaults.value_serde.clone(),
            at,
            Bind::of(arg, topic, false),
        );
        (key, value)
    }

    fn sink(&mut self, stream: &Stream, arg: &Json, named: Option<&str>, at: &str) {
        self.check_fields(
            arg,
            &[
                "topic",
                "topicExpr",
                "keySerde",
                "valueSerde",
                "keySchema",
                "valueSchema",
                "keyMessage",
                "valueMessage",
            ],
            at,
        );
        let topic = arg.get("topic").and_then(Json::as_str);
        let (key, value) = self.sink_serdes(arg, topic, at);
        self.check_output_fields(arg, at);
        let mut produced = Produced::with(key, value);
        if let Some(n) = named {
            produced = produced.named(n);
        }
        match (arg.get("topic"), arg.get("topicExpr")) {
            (Some(Json::String(topic)), None) => stream.to_with(topic, produced),
            (None, Some(expr_src)) => {
                let Some(e) = self.expr(expr_src, &format!("{at}, topicExpr")) else {
                    return;
                };
                let label = e.expr.source().to_owned();
                stream.to_dynamic(
                    &label,
                    move |k, v, info| match e.eval(info, k, v)? {
                        Value::String(s) => Ok(s.to_string()),
                        other => Err(ProcessError::new(format!(
                            "{}: must return a string topic name, got {other:?}",
                            e.place
                        ))),
                    },
                    produced,
                );
            }
            _ => self.error(
                at,
                "give exactly one of 'topic: <name>' or 'topicExpr: <expression>'",
            ),
        }
    }

    fn split(
        &mut self,
        stream: &Stream,
        arg: &Json,
        name: Option<&str>,
        place: &str,
        at: &str,
        named: &HashMap<String, Position>,
    ) {
        let Some(branches) = arg.as_array().filter(|b| !b.is_empty()) else {
            self.error(
                at,
                "expected a list of branches, each `{ name, when, to | steps }`",
            );
            return;
        };
        let prefix = name.map_or_else(|| format!("{}-", place_pipeline(place)), str::to_owned);
        let mut split = stream.split(Some(&prefix));
        let mut has_default = false;
        let mut branch_bodies: Vec<(String, &Json)> = Vec::new();
        for (i, b) in branches.iter().enumerate() {
            let bat = format!("{at}, branch {}", i + 1);
            let Some(bname) = b.get("name").and_then(Json::as_str) else {
                self.error(&bat, "a branch needs a 'name'");
                continue;
            };
            let bat = format!("{at}, branch '{bname}'");
            if has_default {
                self.error(
                    &bat,
                    "the branch without 'when' is the default and must come last",
                );
            }
            match b.get("when") {
                Some(w) => {
                    let Some(e) = self.expr(w, &format!("{bat}, when")) else {
                        continue;
                    };
                    split = split.try_branch(bname, move |info, k, v| e.eval_bool(info, k, v));
                }
                None => has_default = true,
            }
            branch_bodies.push((format!("{prefix}{bname}"), b));
        }
        let streams: BTreeMap<String, Stream> = if has_default {
            let default_name = branch_bodies
                .last()
                .map(|(n, _)| n[prefix.len()..].to_owned())
                .unwrap_or_default();
            split.default_branch(&default_name)
        } else {
            split.no_default_branch()
        };
        for (full, body) in branch_bodies {
            let Some(bstream) = streams.get(&full) else {
                continue;
            };
            let bat = format!("{at}, branch '{}'", &full[prefix.len()..]);
            let steps = body
                .get("steps")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default();
            let tail = self.steps(Position::Stream(bstream.clone()), &steps, &bat, named);
            match (tail, body.get("to")) {
                (Some(Position::Stream(s)), Some(to)) => {
                    self.sink(&s, to, None, &format!("{bat}, to"))
                }
                (Some(p), Some(_)) => self.error(
                    &bat,
                    format!("the branch ends in {}, which cannot be written to a topic: add `toStream: {{}}`", p.describe()),
                ),
                (Some(_), None) => self.error(
                    &bat,
                    "the branch goes nowhere: give it 'to' or end its 'steps' with a 'to'",
                ),
                (None, Some(_)) => {
                    self.error(&bat, "give either 'to' or 'steps' ending in 'to', not both")
                }
                (None, None) => {}
            }
        }
    }
}

/// `pipeline 'x', ...` → `x`.
fn place_pipeline(place: &str) -> String {
    place.split('\'').nth(1).unwrap_or(place).to_owned()
}

/// A topology as JSON, the form the compiler reads. The typed [`TopologySpec`] has refused
/// unknown fields and wrong types already; the compiler keeps its own checks so that a manifest
/// the types refuse can still be explained by pipeline and step (see `parse_manifest`).
struct RawTopology {
    streams: Vec<Json>,
    tables: Vec<Json>,
    global_tables: Vec<Json>,
    pipelines: Vec<Json>,
}

impl RawTopology {
    fn typed(spec: &TopologySpec) -> RawTopology {
        // Serializing these types cannot fail (string keys only); a failure would show as a
        // missing item, which the compiler reports.
        fn json<T: serde::Serialize>(items: &[T]) -> Vec<Json> {
            items
                .iter()
                .map(|i| serde_json::to_value(i).unwrap_or_default())
                .collect()
        }
        RawTopology {
            streams: json(&spec.streams),
            tables: json(&spec.tables),
            global_tables: json(&spec.global_tables),
            pipelines: json(&spec.pipelines),
        }
    }

    fn json(topology: &Json) -> RawTopology {
        let list = |field: &str| {
            topology
                .get(field)
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default()
        };
        RawTopology {
            streams: list("streams"),
            tables: list("tables"),
            global_tables: list("globalTables"),
            pipelines: list("pipelines"),
        }
    }
}

/// Splits nested deeper than the CRD's schema types them (see [`STEP_LEVELS`]).
fn nesting_errors(spec: &TopologySpec) -> Vec<SpecError> {
    fn walk(steps: &[Step], level: usize, place: &str, errors: &mut Vec<SpecError>) {
        for (i, step) in steps.iter().enumerate() {
            let at = format!("{place}, step {} ({})", i + 1, step.op.kind());
            if !matches!(step.op, StepOp::Split(_)) {
                continue;
            }
            if level >= STEP_LEVELS {
                errors.push(SpecError {
                    place: at,
                    message: format!(
                        "splits nest too deep: steps go {STEP_LEVELS} levels deep at most (a pipeline's, a branch's, a nested branch's); write this branch to a topic and split it in a pipeline that reads the topic"
                    ),
                });
                continue;
            }
            for (branch, inner) in step.branch_steps() {
                walk(
                    inner,
                    level + 1,
                    &format!("{at}, branch '{branch}'"),
                    errors,
                );
            }
        }
    }
    let mut errors = Vec::new();
    for p in &spec.pipelines {
        walk(&p.steps, 1, &format!("pipeline '{}'", p.name), &mut errors);
    }
    errors
}

/// Compiles `spec` with the given default serdes.
pub fn compile(spec: &TopologySpec, defaults: Defaults) -> Result<Topology, SpecErrors> {
    let nesting = nesting_errors(spec);
    if !nesting.is_empty() {
        return Err(SpecErrors(nesting));
    }
    compile_raw(&RawTopology::typed(spec), defaults)
}

/// Compiles a topology given as JSON, as written (`streams`, `tables`, `globalTables`,
/// `pipelines`): how a manifest the typed spec refuses is explained step by step.
pub(crate) fn compile_json(topology: &Json, defaults: Defaults) -> Result<Topology, SpecErrors> {
    compile_raw(&RawTopology::json(topology), defaults)
}

fn compile_raw(spec: &RawTopology, defaults: Defaults) -> Result<Topology, SpecErrors> {
    crate::dsl::set_foreign_null(crate::values::is_cel_null);
    let mut c = Compiler {
        builder: StreamsBuilder::new(),
        defaults,
        errors: Vec::new(),
        value_fields: None,
    };
    let mut named = c.sources(spec);
    // Pipelines may read other pipelines: compile each once its input exists.
    let mut pending: Vec<(usize, &Json)> = spec.pipelines.iter().enumerate().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut next = Vec::new();
        for (i, p) in pending {
            let Some(name) = p.get("name").and_then(Json::as_str) else {
                c.error(format!("pipelines[{i}]"), "a pipeline needs a 'name'");
                continue;
            };
            let place = format!("pipeline '{name}'");
            let from = match as_str(p, "from", &place) {
                Ok(f) => f,
                Err(e) => {
                    c.errors.push(e);
                    continue;
                }
            };
            let Some(input) = named.get(from).cloned() else {
                next.push((i, p));
                continue;
            };
            c.check_fields(p, &["name", "from", "steps"], &place);
            let steps = p
                .get("steps")
                .and_then(Json::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(out) = c.steps(input, &steps, &place, &named) {
                named.insert(name.to_owned(), out);
            }
        }
        if next.len() == before {
            for (_, p) in next {
                let name = p.get("name").and_then(Json::as_str).unwrap_or("?");
                let from = p.get("from").and_then(Json::as_str).unwrap_or("?");
                let known: Vec<&str> = named.keys().map(String::as_str).collect();
                let hint = closest(from, known)
                    .map(|c| format!(": did you mean '{c}'?"))
                    .unwrap_or_default();
                c.error(
                    format!("pipeline '{name}'"),
                    format!("from '{from}' is neither a declared stream nor a pipeline that ends without a sink{hint}"),
                );
            }
            break;
        }
        pending = next;
    }
    if !c.errors.is_empty() {
        return Err(SpecErrors(c.errors));
    }
    c.builder.build().map_err(|e: TopologyError| {
        SpecErrors(vec![SpecError {
            place: "topology".into(),
            message: e.to_string(),
        }])
    })
}
