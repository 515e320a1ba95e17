//! Running a topology in-process, without a broker: Kafka's `TopologyTestDriver`, in Rust.
//!
//! Records piped into a source topic run through the topology's tasks at once; what its sinks
//! write is captured per topic, to be read back. Records written to a topic the topology also
//! reads (repartition and subscription topics) go back in, as a broker would deliver them. Every
//! topic has one partition, so every sub-topology runs as one task (`<id>_0`), as in Kafka's
//! driver. After each piped record the tasks commit: held-back updates and record caches are
//! flushed, so each input's results can be read right after it, as Kafka's driver shows them.
//!
//! Stream time moves with the piped records' timestamps; wall-clock time moves only when
//! [`TopologyTestDriver::advance_wall_clock_time`] moves it, so wall-clock punctuations and
//! time-based emission are deterministic. State stores live in memory and can be read.
//!
//! ```
//! use freshet_streams::TopologyTestDriver;
//! use freshet_streams::dsl::StreamsBuilder;
//! use freshet_streams::test_driver::{TestInputTopic, TestOutputTopic};
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream::<String, String>("words")
//!     .filter(|_, v| v.len() > 3)
//!     .to("long-words");
//! let mut driver = TopologyTestDriver::new(builder.build().unwrap());
//! let input = TestInputTopic::<String, String>::new("words");
//! let output = TestOutputTopic::<String, String>::new("long-words");
//! driver.pipe(&input, "k".into(), "stream".into(), 10).unwrap();
//! driver.pipe(&input, "k".into(), "yes".into(), 20).unwrap();
//! let records = driver.read(&output).unwrap();
//! assert_eq!(records.len(), 1);
//! assert_eq!(records[0].value, "stream");
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::config::{Layer, LayerSource, StreamsConfig};
use crate::processor::{Headers, ProduceRequest, PunctuationType, WallClock};
use crate::runtime::restore::RestoredStores;
use crate::runtime::{Metrics, RawRecord, RecordFailure, Task};
use crate::serdes::{DefaultSerde, Serde};
use crate::state::{GlobalStores, InMemoryStore, KeyValueStore, Offsets, TaskStores, Timestamped};
use crate::topology::Topology;

/// The application id the driver runs with unless the configuration names one; internal topics
/// are named `<application.id>-...`.
pub const DEFAULT_APPLICATION_ID: &str = "test-driver";

/// What the driver cannot do.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A record failed to deserialize or to process, with where it was: the task would stop.
    #[error(transparent)]
    Record(#[from] RecordFailure),
    /// A node failed outside a record: in a punctuation or while flushing for the commit.
    #[error("task {task}: {message}")]
    Task {
        /// The task id, `<subtopology>_0` (`global` for a global table's store).
        task: String,
        /// The error, as the task describes it.
        message: String,
    },
    /// A store could not be read.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// No source of the topology reads the topic.
    #[error(
        "no source reads topic '{0}': pipe into one of the topology's source topics (internal ones with their application id prefix)"
    )]
    UnknownTopic(String),
    /// A store the topology does not have.
    #[error("the topology has no state store '{0}'")]
    UnknownStore(String),
    /// A key or value that its serde could not write or read.
    #[error("topic '{topic}': {what}: {message}")]
    Serde {
        /// The topic written or read, or `store <name>` for a store read through serdes.
        topic: String,
        /// `key` or `value`.
        what: &'static str,
        /// The serde's error.
        message: String,
    },
    /// The default configuration did not resolve (it always does; kept for the cause).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// A record as a sink wrote it (or a store's changelog received it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    /// The key's bytes; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// The value's bytes; `None` is a null value (a tombstone in a changelog).
    pub value: Option<Vec<u8>>,
    /// The record's timestamp, in ms, as the sink set it.
    pub timestamp: i64,
    /// The record's headers.
    pub headers: Headers,
}

/// A record read back through its serdes: Kafka's `TestRecord`, as
/// [`TopologyTestDriver::read`] returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct TestRecord<K, V> {
    /// The key, deserialized (a nullable type such as `Option<K>` reads a null key).
    pub key: K,
    /// The value, deserialized.
    pub value: V,
    /// The record's timestamp, in ms.
    pub timestamp: i64,
    /// The record's headers.
    pub headers: Headers,
}

/// A source topic with the serdes its test writes keys and values with: Kafka's
/// `TestInputTopic`, piped into with [`TopologyTestDriver::pipe`].
pub struct TestInputTopic<K, V> {
    topic: String,
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
}

impl<K: DefaultSerde, V: DefaultSerde> TestInputTopic<K, V> {
    /// The topic with the key and value types' default serdes.
    pub fn new(topic: impl Into<String>) -> Self {
        Self::with_serdes(topic, K::default_serde(), V::default_serde())
    }
}

impl<K, V> TestInputTopic<K, V> {
    /// The topic with the serdes a test writes with.
    pub fn with_serdes(
        topic: impl Into<String>,
        key: Arc<dyn Serde<K>>,
        value: Arc<dyn Serde<V>>,
    ) -> Self {
        TestInputTopic {
            topic: topic.into(),
            key,
            value,
        }
    }
}

/// An output topic with the serdes its test reads keys and values with: Kafka's
/// `TestOutputTopic`, read with [`TopologyTestDriver::read`].
pub struct TestOutputTopic<K, V> {
    topic: String,
    key: Arc<dyn Serde<K>>,
    value: Arc<dyn Serde<V>>,
}

impl<K: DefaultSerde, V: DefaultSerde> TestOutputTopic<K, V> {
    /// The topic with the key and value types' default serdes.
    pub fn new(topic: impl Into<String>) -> Self {
        Self::with_serdes(topic, K::default_serde(), V::default_serde())
    }
}

impl<K, V> TestOutputTopic<K, V> {
    /// The topic with the serdes a test reads with.
    pub fn with_serdes(
        topic: impl Into<String>,
        key: Arc<dyn Serde<K>>,
        value: Arc<dyn Serde<V>>,
    ) -> Self {
        TestOutputTopic {
            topic: topic.into(),
            key,
            value,
        }
    }
}

/// Drives a [`Topology`] in-process: see the [module documentation](self).
pub struct TopologyTestDriver {
    config: StreamsConfig,
    /// One task per sub-topology, by sub-topology id.
    tasks: BTreeMap<usize, Task>,
    /// Which task reads a topic (by its name in Kafka).
    readers: HashMap<String, usize>,
    /// Global table topics and their stores.
    global_topics: HashMap<String, String>,
    globals: Option<Arc<GlobalStores>>,
    /// Written records by topic, oldest first, until read.
    outputs: HashMap<String, VecDeque<OutputRecord>>,
    /// The next offset of each topic's only partition.
    next_offset: HashMap<String, i64>,
    wall_clock: Arc<AtomicI64>,
}

impl TopologyTestDriver {
    /// A driver with the default configuration, application id [`DEFAULT_APPLICATION_ID`], and
    /// the wall clock at 0.
    pub fn new(topology: Topology) -> Self {
        // The defaults plus an application id always resolve.
        match Self::with_config(topology, &[], 0) {
            Ok(driver) => driver,
            Err(e) => unreachable!("the default configuration resolves: {e}"),
        }
    }

    /// A driver with configuration `entries` (Kafka Streams or librdkafka names, as in a
    /// manifest's `config`) and the wall clock starting at `wall_clock_ms`.
    pub fn with_config(
        topology: Topology,
        entries: &[(&str, &str)],
        wall_clock_ms: i64,
    ) -> Result<Self, DriverError> {
        let mut all = vec![
            (
                "application.id".to_owned(),
                DEFAULT_APPLICATION_ID.to_owned(),
            ),
            (
                "bootstrap.servers".to_owned(),
                "test-driver:9092".to_owned(),
            ),
        ];
        all.extend(
            entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let config = StreamsConfig::resolve(&[Layer::new(LayerSource::Config, all)])?;
        Ok(Self::with_resolved_config(topology, config, wall_clock_ms))
    }

    /// A driver with an already resolved configuration (a manifest's, say).
    pub fn with_resolved_config(
        topology: Topology,
        config: StreamsConfig,
        wall_clock_ms: i64,
    ) -> Self {
        let app = config.application_id.clone();
        let wall_clock = Arc::new(AtomicI64::new(wall_clock_ms));
        let globals = (!topology.global_tables().is_empty()).then(|| {
            Arc::new(GlobalStores::new(
                topology.global_tables().iter().map(|g| g.store.as_str()),
            ))
        });
        let global_topics = topology
            .global_tables()
            .iter()
            .map(|g| (g.topic.clone(), g.store.clone()))
            .collect();
        let metrics = Metrics::new();
        let mut tasks = BTreeMap::new();
        let mut readers = HashMap::new();
        for sub in topology.subtopologies() {
            let inputs: Vec<(String, i32)> = sub
                .source_topics
                .iter()
                .map(|t| (t.resolve(&app), 0))
                .collect();
            let mut stores = TaskStores::new(0, cache_limit(&config));
            for def in topology.stores_of(sub) {
                let changelog = def.logged.then(|| def.changelog().resolve(&app));
                stores.add(
                    def.clone(),
                    Box::new(InMemoryStore::new(&def.name)) as Box<dyn KeyValueStore>,
                    changelog,
                );
            }
            let restored = RestoredStores {
                stores,
                directory: None,
                offsets: Offsets::new(),
                globals: globals.clone(),
                exactly_once: false,
            };
            let mut task = Task::new(
                &topology,
                sub,
                0,
                &inputs,
                &app,
                &HashMap::new(),
                &metrics,
                restored,
            );
            task.configure(&config);
            task.set_wall_clock(WallClock::Manual(wall_clock.clone()));
            // Wall-clock punctuations count their first interval from now, as they do from
            // `schedule` in Kafka Streams (nothing is due yet, so nothing is produced).
            let mut nothing = Vec::new();
            let _ = task.punctuate(PunctuationType::WallClockTime, wall_clock_ms, &mut nothing);
            for (topic, _) in inputs {
                readers.insert(topic, sub.id);
            }
            tasks.insert(sub.id, task);
        }
        TopologyTestDriver {
            config,
            tasks,
            readers,
            global_topics,
            globals,
            outputs: HashMap::new(),
            next_offset: HashMap::new(),
            wall_clock,
        }
    }

    /// The configuration the topology runs with.
    pub fn config(&self) -> &StreamsConfig {
        &self.config
    }

    /// Pipes one record, as bytes, into `topic` and runs it (and what it causes) through.
    pub fn pipe_raw(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<(), DriverError> {
        if let Some(store) = self.global_topics.get(topic) {
            let globals = self.globals.as_ref().ok_or_else(|| {
                DriverError::UnknownStore(format!("{store} (global tables not set up)"))
            })?;
            let Some(key) = key else {
                // A global table ignores records without a key, as Kafka Streams does.
                return Ok(());
            };
            return globals
                .apply(store, &[(key, value)])
                .map_err(|e| DriverError::Task {
                    task: "global".into(),
                    message: e.to_string(),
                });
        }
        if !self.readers.contains_key(topic) {
            return Err(DriverError::UnknownTopic(topic.to_owned()));
        }
        let mut pending = VecDeque::from([self.raw(topic, key, value, timestamp, headers)]);
        self.run(&mut pending)?;
        self.commit(&mut pending)
    }

    /// Pipes one record into `input`'s topic, written with its serdes.
    pub fn pipe<K, V>(
        &mut self,
        input: &TestInputTopic<K, V>,
        key: K,
        value: V,
        timestamp: i64,
    ) -> Result<(), DriverError> {
        let serde_error = |what, message| DriverError::Serde {
            topic: input.topic.clone(),
            what,
            message,
        };
        let key = input
            .key
            .serialize(&key)
            .map_err(|m| serde_error("key", m))?;
        let value = input
            .value
            .serialize(&value)
            .map_err(|m| serde_error("value", m))?;
        self.pipe_raw(&input.topic, key, value, timestamp, Headers::default())
    }

    /// Moves the wall clock forward by `by` and fires the wall-clock punctuations now due.
    pub fn advance_wall_clock_time(&mut self, by: Duration) -> Result<(), DriverError> {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let now = self
            .wall_clock
            .fetch_add(by, Ordering::Relaxed)
            .saturating_add(by);
        let mut produced = Vec::new();
        for task in self.tasks.values_mut() {
            task.punctuate(PunctuationType::WallClockTime, now, &mut produced)
                .map_err(|e| DriverError::Task {
                    task: task.id.clone(),
                    message: e.to_string(),
                })?;
        }
        let mut pending = VecDeque::new();
        self.route(produced, &mut pending);
        self.run(&mut pending)?;
        self.commit(&mut pending)
    }

    /// The wall clock's time, in milliseconds.
    pub fn wall_clock_ms(&self) -> i64 {
        self.wall_clock.load(Ordering::Relaxed)
    }

    /// The topics that hold records not read yet, changelogs and internal topics included.
    pub fn written_topics(&self) -> Vec<String> {
        self.outputs
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Takes every record written to `topic` since it was last read, oldest first.
    pub fn read_raw(&mut self, topic: &str) -> Vec<OutputRecord> {
        self.outputs
            .get_mut(topic)
            .map(|q| q.drain(..).collect())
            .unwrap_or_default()
    }

    /// Takes every record written to `output`'s topic since it was last read, through its serdes.
    pub fn read<K, V>(
        &mut self,
        output: &TestOutputTopic<K, V>,
    ) -> Result<Vec<TestRecord<K, V>>, DriverError> {
        let serde_error = |what, message| DriverError::Serde {
            topic: output.topic.clone(),
            what,
            message,
        };
        self.read_raw(&output.topic)
            .into_iter()
            .map(|r| {
                Ok(TestRecord {
                    key: output
                        .key
                        .deserialize(r.key.as_deref())
                        .map_err(|m| serde_error("key", m))?,
                    value: output
                        .value
                        .deserialize(r.value.as_deref())
                        .map_err(|m| serde_error("value", m))?,
                    timestamp: r.timestamp,
                    headers: r.headers,
                })
            })
            .collect()
    }

    /// Takes the records written to `output`'s topic as (key, value) pairs.
    pub fn read_key_values<K, V>(
        &mut self,
        output: &TestOutputTopic<K, V>,
    ) -> Result<Vec<(K, V)>, DriverError> {
        Ok(self
            .read(output)?
            .into_iter()
            .map(|r| (r.key, r.value))
            .collect())
    }

    /// Every entry of state store `name` (of every task), in key order: key bytes, value
    /// bytes and the value's timestamp. Window and session stores show their stored key layout.
    pub fn store_entries(
        &mut self,
        name: &str,
    ) -> Result<Vec<(Vec<u8>, Timestamped)>, DriverError> {
        let mut found = false;
        let mut entries = Vec::new();
        for task in self.tasks.values_mut() {
            if let Some(all) = task.store_entries(name)? {
                found = true;
                entries.extend(all);
            }
        }
        if !found {
            return Err(DriverError::UnknownStore(name.to_owned()));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// The entries of key-value store `name`, read through serdes.
    pub fn key_value_store<K: Ord, V>(
        &mut self,
        name: &str,
        key: &dyn Serde<K>,
        value: &dyn Serde<V>,
    ) -> Result<BTreeMap<K, V>, DriverError> {
        let serde_error = |what, message| DriverError::Serde {
            topic: format!("store {name}"),
            what,
            message,
        };
        self.store_entries(name)?
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    key.deserialize(Some(&k))
                        .map_err(|m| serde_error("key", m))?,
                    value
                        .deserialize(Some(&v.value))
                        .map_err(|m| serde_error("value", m))?,
                ))
            })
            .collect()
    }

    fn raw(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> RawRecord {
        let offset = self.next_offset.entry(topic.to_owned()).or_insert(0);
        let record = RawRecord {
            topic: topic.to_owned(),
            partition: 0,
            offset: *offset,
            timestamp,
            key,
            value,
            headers,
        };
        *offset += 1;
        record
    }

    /// Captures what tasks produced; records for topics the topology reads go to `pending`.
    fn route(&mut self, produced: Vec<ProduceRequest>, pending: &mut VecDeque<RawRecord>) {
        for p in produced {
            let out = OutputRecord {
                key: p.key.clone(),
                value: p.value.clone(),
                timestamp: p.timestamp,
                headers: p.headers.clone(),
            };
            if !p.changelog && self.readers.contains_key(&p.topic) {
                let raw = self.raw(&p.topic, p.key, p.value, p.timestamp, p.headers);
                pending.push_back(raw);
            }
            self.outputs.entry(p.topic).or_default().push_back(out);
        }
    }

    /// Runs records until none is left, those the topology writes to itself included.
    fn run(&mut self, pending: &mut VecDeque<RawRecord>) -> Result<(), DriverError> {
        let caught_up = |_: &str, _: i32, _: Option<i64>| Some(0);
        while let Some(record) = pending.pop_front() {
            let Some(task) = self
                .readers
                .get(&record.topic)
                .and_then(|id| self.tasks.get_mut(id))
            else {
                continue;
            };
            task.enqueue(record);
            let mut produced = Vec::new();
            while task
                .process_next(Duration::ZERO, &caught_up, &mut produced)
                .map_err(|failed| failed.1)?
                .is_some()
            {}
            self.route(produced, pending);
        }
        Ok(())
    }

    /// Commits every task as Kafka's driver does after each input: nodes flush what they held
    /// back, record caches write through, and what that forwards runs too.
    fn commit(&mut self, pending: &mut VecDeque<RawRecord>) -> Result<(), DriverError> {
        loop {
            let mut produced = Vec::new();
            for task in self.tasks.values_mut() {
                task.prepare_commit(&mut produced)
                    .map_err(|e| DriverError::Task {
                        task: task.id.clone(),
                        message: e.to_string(),
                    })?;
            }
            if produced.is_empty() {
                return Ok(());
            }
            self.route(produced, pending);
            self.run(pending)?;
        }
    }
}

/// The record cache of each task's stores, as the runtime sizes it for one thread.
fn cache_limit(config: &StreamsConfig) -> usize {
    if config.cache_max_bytes == 0 {
        0
    } else {
        (config.cache_max_bytes as usize / 4).max(4096)
    }
}
