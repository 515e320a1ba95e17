//! Running a topology: [`KafkaStreams`] with its stream threads, tasks, state machine and
//! error handling.

use freshet_topology::sync::Unpoisoned;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::config::StreamsConfig;
use crate::processor::ProduceRequest;
use crate::topology::Topology;

pub use freshet_admin as admin;
mod abandonable;
pub mod client_stats;
pub mod error;
mod failure;
mod flush;
mod global;
mod member_offsets;
mod metrics;
pub mod partitioner;
mod positions;
mod producer;
mod rebalance;
mod refusal;
pub mod repeats;
pub(crate) mod restore;
mod standby;
mod state_updater;
mod streams_group;
pub(crate) mod task;
mod task_manager;
mod task_timeout;
mod thread;

pub use error::{ErrorClass, RuntimeError};
pub use metrics::{Metrics, PartitionCounts};
pub use task::{FailureKind, RawRecord, RecordFailure, Task};

/// Kafka Streams' `KafkaStreams.State`: where the application is in its life. Once in
/// `PendingShutdown` or `PendingError`, only `NotRunning` or `Error` follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Built, not started yet.
    Created,
    /// Started, and at least one stream thread is starting or taking part in a rebalance
    /// (restoring stores included).
    Rebalancing,
    /// Every stream thread is processing its tasks.
    Running,
    /// [`KafkaStreams::close`] was called: threads finish, flush and commit.
    PendingShutdown,
    /// A thread failed and the others are being stopped; `Error` follows once all have.
    PendingError,
    /// Stopped after a failure, which [`KafkaStreams::error`] returns. Terminal.
    Error,
    /// Closed cleanly. Terminal.
    NotRunning,
}

impl State {
    /// Kafka Streams' name of the state (`RUNNING`, `PENDING_SHUTDOWN`...), as logs and the
    /// `Display` show it.
    pub fn name(self) -> &'static str {
        match self {
            State::Created => "CREATED",
            State::Rebalancing => "REBALANCING",
            State::Running => "RUNNING",
            State::PendingShutdown => "PENDING_SHUTDOWN",
            State::PendingError => "PENDING_ERROR",
            State::Error => "ERROR",
            State::NotRunning => "NOT_RUNNING",
        }
    }

    /// The numeric code the `/metrics` state gauge reports (the enum's order).
    pub fn code(self) -> i64 {
        self as i64
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ThreadState {
    Starting,
    Rebalancing,
    Running,
    Dead,
}

type Listener = Box<dyn Fn(State, State) + Send + Sync>;

/// State shared by the threads and the application handle.
pub(crate) struct Shared {
    pub config: StreamsConfig,
    /// Present when the topology has state stores.
    pub stores: Option<restore::StateContext>,
    /// The global tables, loaded before the stream threads start.
    pub globals: std::sync::OnceLock<Arc<crate::state::GlobalStores>>,
    /// Set while `start` loads the global tables, before any stream thread runs.
    loading_globals: AtomicBool,
    pub instance_base: Option<String>,
    /// Under exactly_once_v2: the `<instance>` of each thread's `transactional.id`.
    pub transactional_instance: Option<String>,
    /// Holds the persisted process id (when it names the transactional ids) for the process's life.
    _process_id: Option<crate::state::ProcessId>,
    /// Under group.protocol=streams: the process id every thread's member reports (Kafka
    /// Streams' `processId`, a UUID), which tells the broker's assignor the threads of one
    /// instance apart from those of another.
    pub group_process_id: String,
    /// How the stream threads join the group: set when the application is created, or, under
    /// `group.protocol=auto`, when it starts (the brokers are asked then, once reachable).
    membership: std::sync::OnceLock<streams_group::Membership>,
    pub metrics: Metrics,
    state: Mutex<State>,
    threads: Mutex<Vec<ThreadState>>,
    tasks: RwLock<Vec<Vec<String>>>,
    /// Standby (and warm-up) tasks per thread.
    standby_tasks: RwLock<Vec<Vec<String>>>,
    /// Active tasks being restored, per thread.
    restoring_tasks: RwLock<Vec<Vec<restore::RestoreRequest>>>,
    failure: Mutex<Option<RecordFailure>>,
    fatal: Mutex<Option<RuntimeError>>,
    listeners: Mutex<Vec<Listener>>,
}

impl Shared {
    /// How the stream threads join the group. Decided by `KafkaStreams::start` before any
    /// stream thread runs, so the threads always find it.
    pub(crate) fn membership(&self) -> &streams_group::Membership {
        self.membership
            .get()
            .expect("the group membership is decided before the stream threads start")
    }

    /// `group.protocol` as decided (`auto` until `start` decides it).
    pub(crate) fn group_protocol(&self) -> crate::config::GroupProtocol {
        self.membership
            .get()
            .map_or(self.config.group_protocol, |m| m.protocol)
    }

    fn transition(&self, to: State) {
        let mut state = self.state.lock_unpoisoned();
        let from = *state;
        if from == to {
            return;
        }
        // Once shutting down or failed, only the terminal states may follow.
        let allowed = match from {
            State::PendingShutdown => to == State::NotRunning,
            State::PendingError => to == State::Error,
            State::Error | State::NotRunning => false,
            _ => true,
        };
        if !allowed {
            return;
        }
        *state = to;
        drop(state);
        info!(from = %from, to = %to, "state transition");
        self.metrics.state.set(to.code());
        for l in self.listeners.lock_unpoisoned().iter() {
            l(to, from);
        }
    }

    pub fn set_thread_state(&self, thread: usize, ts: ThreadState) {
        let app = {
            let mut threads = self.threads.lock_unpoisoned();
            threads[thread] = ts;
            if threads.iter().all(|t| *t == ThreadState::Running) {
                State::Running
            } else if threads
                .iter()
                .any(|t| matches!(t, ThreadState::Rebalancing | ThreadState::Starting))
            {
                State::Rebalancing
            } else {
                return;
            }
        };
        self.transition(app);
    }

    pub fn publish_tasks(&self, thread: usize, tasks: Vec<String>, standbys: Vec<String>) {
        self.tasks.lock_unpoisoned()[thread] = tasks;
        self.standby_tasks.lock_unpoisoned()[thread] = standbys;
    }

    /// Records which active tasks thread `thread` is restoring.
    pub fn publish_restoring(&self, thread: usize, restoring: Vec<restore::RestoreRequest>) {
        self.restoring_tasks.lock_unpoisoned()[thread] = restoring;
    }

    pub fn record_failure(&self, failure: &RecordFailure) {
        self.failure
            .lock_unpoisoned()
            .get_or_insert_with(|| failure.clone());
    }
}

/// Kafka Streams' client id prefix: `client.id` if set, else the application id.
pub(crate) fn client_prefix(config: &StreamsConfig) -> &str {
    config
        .client_id
        .as_deref()
        .unwrap_or(&config.application_id)
}

/// A consumer that is assigned partitions and reads them to some offset, never subscribing or
/// committing: the restore and global consumers. `role` names its client id
/// (`<prefix>-<role>`), `group` its group id (`<application.id>-<group>`): librdkafka assigns
/// partitions only to a consumer with a group id, though this group stays empty.
pub(crate) fn assigning_consumer_config(
    config: &StreamsConfig,
    role: &str,
    group: &str,
    props: &[(String, String)],
) -> rdkafka::ClientConfig {
    let mut cfg = rdkafka::ClientConfig::new();
    cfg.set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", format!("{}-{role}", client_prefix(config)))
        .set("group.id", format!("{}-{group}", config.application_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in props {
        cfg.set(k, v);
    }
    cfg
}

/// The `<instance>` part of the stream threads' transactional ids under exactly_once_v2 (`None`
/// under at-least-once): the static membership base (`group.instance.id` or the pod's name), which
/// a restart keeps; else, as Kafka Streams does, a process id kept in the state directory, so a
/// local restart over the same state directory fences its predecessor too. A process id another
/// live process holds is not shared: two producers with one transactional id fence each other.
fn transactional_instance(
    config: &StreamsConfig,
    instance_base: &Option<String>,
) -> (Option<String>, Option<crate::state::ProcessId>) {
    if config.processing_guarantee != crate::config::ProcessingGuarantee::ExactlyOnceV2 {
        return (None, None);
    }
    if let Some(base) = instance_base {
        return (Some(base.clone()), None);
    }
    match crate::state::ProcessId::load_or_create(&config.state_dir, &config.application_id) {
        Ok(Some(p)) => (Some(p.id.clone()), Some(p)),
        Ok(None) => {
            let id = crate::state::random_id();
            warn!(
                state_dir = %config.state_dir.display(), instance = %id,
                "another process of this application uses this state.dir; transactional ids use a fresh instance id, so a restart of this one cannot fence it: give each instance its own state.dir or a group.instance.id"
            );
            (Some(id), None)
        }
        Err(e) => {
            let id = crate::state::random_id();
            warn!(error = %e, instance = %id, "no persisted process id; transactional ids use a fresh one, so a restart waits out transaction.timeout.ms for the old one's open transaction");
            (Some(id), None)
        }
    }
}

/// A dead-letter record (KIP-1034): the input's original bytes, with headers saying why.
pub(crate) fn dead_letter(topic: &str, raw: &RawRecord, failure: &RecordFailure) -> ProduceRequest {
    let exception = match failure.kind {
        FailureKind::Deserialization => "org.apache.kafka.common.errors.SerializationException",
        FailureKind::Processing | FailureKind::Production => {
            "org.apache.kafka.streams.errors.StreamsException"
        }
    };
    dead_letter_of(topic, Some(raw), raw.timestamp, failure, exception)
}

/// A dead-letter record as Kafka Streams' `ExceptionHandlerUtils.buildDeadLetterQueueRecord`
/// builds it: the input record's key, value, timestamp and headers (`source`; null key and value
/// when none is known, as for a punctuation's output, stamped `timestamp`), plus the
/// `__streams.errors.*` headers naming the Java `exception`, the failure and the input's place.
pub(crate) fn dead_letter_of(
    topic: &str,
    source: Option<&RawRecord>,
    timestamp: i64,
    failure: &RecordFailure,
    exception: &str,
) -> ProduceRequest {
    let mut headers = source.map(|r| r.headers.clone()).unwrap_or_default();
    headers.add("__streams.errors.exception", exception);
    headers.add("__streams.errors.message", failure.message.as_bytes());
    headers.add(
        "__streams.errors.stacktrace",
        failure.to_string().as_bytes(),
    );
    match source {
        Some(raw) => headers.add("__streams.errors.topic", raw.topic.as_bytes()),
        // Kafka Streams writes a null value when the context has no topic.
        None => headers.0.push(("__streams.errors.topic".to_owned(), None)),
    }
    headers.add("__streams.errors.partition", failure.partition.to_string());
    headers.add("__streams.errors.offset", failure.offset.to_string());
    ProduceRequest {
        partition: None,
        hash_len: None,
        changelog: false,
        topic: topic.to_owned(),
        key: source.and_then(|r| r.key.clone()),
        value: source.and_then(|r| r.value.clone()),
        timestamp: source.map_or(timestamp, |r| r.timestamp),
        headers,
    }
}

/// A running application: Kafka Streams' `KafkaStreams`.
pub struct KafkaStreams {
    topology: Arc<Topology>,
    shared: Arc<Shared>,
    shutdown: Arc<AtomicBool>,
    /// The stream threads, once `start` has loaded the global tables.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Set by the first `start`: a second one (from another thread) does nothing.
    started: AtomicBool,
}

/// Why the application stopped in ERROR.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StreamsError {
    /// A record failed to deserialize or process and its exception handler said fail: where
    /// it was and why.
    #[error(transparent)]
    Record(#[from] RecordFailure),
    /// A stream thread, the global tables or the state directory failed (Kafka Streams'
    /// `StreamsException` reaching the uncaught-exception handler).
    #[error(transparent)]
    Fatal(RuntimeError),
}

impl KafkaStreams {
    /// `pod_name` is the `POD_NAME` of the operator's pods, the fallback base for static membership.
    pub fn new(topology: Topology, config: StreamsConfig, pod_name: Option<&str>) -> Self {
        let instance_base = crate::config::instance_base(&config, pod_name);
        let (transactional_instance, process_id) = transactional_instance(&config, &instance_base);
        let threads = config.num_stream_threads.max(1);
        let metrics = Metrics::new();
        metrics.state.set(State::Created.code());
        let mut fatal = None;
        let state = if topology.stores().is_empty() {
            None
        } else {
            match crate::state::StateDirectory::new(&config.state_dir, &config.application_id) {
                Ok(directory) => Some(restore::StateContext {
                    directory,
                    budget: crate::state::StoreBudget::new(
                        config.rocksdb_block_cache_bytes as usize,
                        config.rocksdb_write_buffer_bytes as usize,
                    ),
                }),
                Err(e) => {
                    fatal.get_or_insert(RuntimeError::Other(format!("{e}: check state.dir")));
                    None
                }
            }
        };
        let group_process_id = streams_group::process_id();
        // What `auto` needs the brokers for is decided when the application starts: they may
        // not answer yet.
        let membership = std::sync::OnceLock::new();
        let protocol = match config.group_protocol {
            crate::config::GroupProtocol::Auto => streams_group::decide_auto_from_config(&config),
            given => Some(given),
        };
        if let Some(protocol) = protocol {
            match streams_group::Membership::new(&config, protocol, &group_process_id) {
                Ok(m) => {
                    let _ = membership.set(m);
                }
                Err(e) => {
                    fatal.get_or_insert(e);
                }
            }
        }
        KafkaStreams {
            topology: Arc::new(topology),
            shared: Arc::new(Shared {
                config,
                stores: state,
                globals: std::sync::OnceLock::new(),
                loading_globals: AtomicBool::new(false),
                instance_base,
                transactional_instance,
                _process_id: process_id,
                group_process_id,
                membership,
                metrics,
                state: Mutex::new(State::Created),
                threads: Mutex::new(vec![ThreadState::Starting; threads]),
                tasks: RwLock::new(vec![Vec::new(); threads]),
                standby_tasks: RwLock::new(vec![Vec::new(); threads]),
                restoring_tasks: RwLock::new(vec![Vec::new(); threads]),
                failure: Mutex::new(None),
                fatal: Mutex::new(fatal),
                listeners: Mutex::new(Vec::new()),
            }),
            shutdown: Arc::new(AtomicBool::new(false)),
            threads: Mutex::new(Vec::new()),
            started: AtomicBool::new(false),
        }
    }

    /// Called with (new, old) on every state change, from whichever thread caused it.
    pub fn set_state_listener(&self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        self.shared
            .listeners
            .lock_unpoisoned()
            .push(Box::new(listener));
    }

    /// The application's current state.
    pub fn state(&self) -> State {
        *self.shared.state.lock_unpoisoned()
    }

    /// The resolved configuration the application runs with.
    pub fn config(&self) -> &StreamsConfig {
        &self.shared.config
    }

    /// The application's Prometheus metrics (what `/metrics` serves).
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The topology the application runs.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Whether `start` is loading the global tables (state REBALANCING): the stream threads start
    /// once they are loaded. Probes use it to say why the application is not ready yet.
    pub fn loading_global_tables(&self) -> bool {
        self.shared.loading_globals.load(Ordering::Relaxed)
    }

    /// The process id the stream threads report to their streams group (Kafka Streams'
    /// `processId`), under group.protocol=streams.
    pub fn group_process_id(&self) -> Option<&str> {
        (self.group_protocol() == crate::config::GroupProtocol::Streams)
            .then_some(self.shared.group_process_id.as_str())
    }

    /// `group.protocol` as the application runs it: `auto` becomes `streams` or `classic` when
    /// the application starts.
    pub fn group_protocol(&self) -> crate::config::GroupProtocol {
        self.shared.group_protocol()
    }

    /// The main consumer's client id of stream thread `thread` (1-based), as the group lists it:
    /// `<client.id>-StreamThread-<n>-consumer`, or under group.protocol=streams without a
    /// `client.id`, `<application.id>-<process id>-StreamThread-<n>-consumer` (Kafka Streams').
    pub fn thread_client_id(&self, thread: usize) -> String {
        match self.shared.membership.get() {
            Some(m) => format!("{}-StreamThread-{thread}-consumer", m.thread_client_prefix),
            None => format!(
                "{}-StreamThread-{thread}-consumer",
                client_prefix(&self.shared.config)
            ),
        }
    }

    /// Tasks per thread, `<subtopology>_<partition>`.
    pub fn tasks(&self) -> Vec<Vec<String>> {
        self.shared.tasks.read_unpoisoned().clone()
    }

    /// Standby and warm-up tasks per thread (under `group.protocol=streams`).
    pub fn standby_tasks(&self) -> Vec<Vec<String>> {
        self.shared.standby_tasks.read_unpoisoned().clone()
    }

    /// The active tasks whose stores are being restored (their input partitions paused
    /// meanwhile), in id order, with the changelog records each still has to apply as far as
    /// its restore has measured them (`freshet_restore_remaining_records` of its stores).
    pub fn restoring_tasks(&self) -> Vec<RestoringTask> {
        let mut restoring: Vec<RestoringTask> = self
            .shared
            .restoring_tasks
            .read_unpoisoned()
            .iter()
            .flatten()
            .map(|r| {
                let remaining_records = self
                    .topology
                    .subtopologies()
                    .iter()
                    .find(|s| s.id == r.subtopology)
                    .map_or(0, |sub| {
                        self.topology
                            .stores_of(sub)
                            .iter()
                            .filter(|d| d.logged)
                            .map(|d| self.shared.metrics.restore_remaining(&d.name, r.partition))
                            .sum()
                    });
                RestoringTask {
                    task: r.task.clone(),
                    remaining_records,
                }
            })
            .collect();
        restoring.sort_by(|a, b| a.task.cmp(&b.task));
        restoring
    }

    /// The failure that moved the application to ERROR, if any.
    pub fn error(&self) -> Option<StreamsError> {
        if let Some(f) = self.shared.failure.lock_unpoisoned().clone() {
            return Some(StreamsError::Record(f));
        }
        self.shared
            .fatal
            .lock_unpoisoned()
            .clone()
            .map(StreamsError::Fatal)
    }

    /// Loads the global tables, then starts the stream threads; returns once they are started.
    /// As in Kafka Streams the load happens here, in state REBALANCING; `start` takes `&self` so
    /// that the state and metrics can be read meanwhile (an HTTP probe must not wait for it).
    pub fn start(&self) {
        if self.state() != State::Created || self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        self.shared.transition(State::Rebalancing);
        if let Err(e) = self.decide_membership() {
            if let RuntimeError::Interrupted { .. } = &e {
                // Closed before it could join: nothing started, so nothing failed.
                info!(reason = %e, "closed while deciding how to join the group");
                return;
            }
            error!(error = %e, "the application cannot join its group");
            self.shared.fatal.lock_unpoisoned().get_or_insert(e);
            self.shared.transition(State::PendingError);
            self.shared.transition(State::Error);
            return;
        }
        self.start_state_cleaner();
        self.shared.loading_globals.store(true, Ordering::Relaxed);
        let loaded = global::start(
            &self.topology,
            &self.shared.config,
            self.shutdown.clone(),
            self.shared.metrics.global_records.clone(),
        );
        self.shared.loading_globals.store(false, Ordering::Relaxed);
        match loaded {
            Ok(Some(stores)) => {
                let _ = self.shared.globals.set(stores);
            }
            Ok(None) => {}
            Err(e) => {
                error!(error = %e, "global tables could not be loaded");
                self.shared
                    .fatal
                    .lock_unpoisoned()
                    .get_or_insert(RuntimeError::Global(e));
                self.shared.transition(State::PendingError);
                self.shared.transition(State::Error);
                return;
            }
        }
        for index in 0..self.shared.config.num_stream_threads.max(1) {
            let thread = thread::StreamThread {
                index,
                shared: self.shared.clone(),
                topology: self.topology.clone(),
                shutdown: self.shutdown.clone(),
                brokers_away: std::cell::Cell::new(false),
            };
            let shared = self.shared.clone();
            let shutdown = self.shutdown.clone();
            let handle = std::thread::Builder::new()
                .name(format!("StreamThread-{}", index + 1))
                .spawn(move || {
                    if let Err(e) = thread.run() {
                        error!(thread = index, error = %e, "stream thread failed");
                        if let RuntimeError::Record(failure) = &e {
                            // A handler said fail: `error()` names the record (the production
                            // handler's failures come this way).
                            shared.record_failure(failure);
                        }
                        shared.fatal.lock_unpoisoned().get_or_insert(e);
                        shared.transition(State::PendingError);
                        // One failed thread stops the application, as Kafka Streams' default
                        // uncaught-exception handler (SHUTDOWN_CLIENT) does.
                        shutdown.store(true, Ordering::Relaxed);
                    }
                    shared.set_thread_state(index, ThreadState::Dead);
                    let all_dead = shared
                        .threads
                        .lock_unpoisoned()
                        .iter()
                        .all(|t| *t == ThreadState::Dead);
                    if all_dead && *shared.state.lock_unpoisoned() == State::PendingError {
                        shared.transition(State::Error);
                    }
                })
                .expect("spawning a stream thread");
            self.threads.lock_unpoisoned().push(handle);
        }
    }

    /// Decides `group.protocol=auto` (asking the brokers) unless the protocol was given.
    fn decide_membership(&self) -> Result<(), RuntimeError> {
        if self.shared.membership.get().is_some() {
            return Ok(());
        }
        if self.shared.config.group_protocol != crate::config::GroupProtocol::Auto {
            // `new` found the given protocol unusable; its error is the application's already.
            return Err(self
                .shared
                .fatal
                .lock_unpoisoned()
                .clone()
                .unwrap_or_else(|| {
                    RuntimeError::Other("the group membership could not be set up".to_owned())
                }));
        }
        let protocol = streams_group::decide_auto(&self.shared.config, &self.shutdown)?;
        let membership = streams_group::Membership::new(
            &self.shared.config,
            protocol,
            &self.shared.group_process_id,
        )?;
        let _ = self.shared.membership.set(membership);
        Ok(())
    }

    /// Deletes, now and then, the directories of tasks that moved to other instances once they
    /// have been left alone for `state.cleanup.delay.ms`.
    fn start_state_cleaner(&self) {
        if self.shared.stores.is_none() {
            return;
        }
        let shared = self.shared.clone();
        let shutdown = self.shutdown.clone();
        let delay = shared.config.state_cleanup_delay;
        let period = delay.clamp(Duration::from_secs(1), Duration::from_secs(60));
        let spawned = std::thread::Builder::new()
            .name("state-cleaner".into())
            .spawn(move || {
                let mut next = Instant::now() + period;
                while !shutdown.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if Instant::now() < next {
                        continue;
                    }
                    next = Instant::now() + period;
                    let Some(state) = &shared.stores else { return };
                    match state.directory.clean_unowned(delay) {
                        Ok(removed) if !removed.is_empty() => {
                            info!(tasks = ?removed, "deleted the state of tasks this instance no longer owns")
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cleaning the state directory"),
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no state cleaner: old task directories stay until removed by hand");
        }
    }

    /// A handle another thread (a signal handler) uses to ask for a stop, even while
    /// [`start`](Self::start) still runs: deciding `group.protocol=auto` and loading global
    /// tables then end early, and [`close`](Self::close) finishes the stop.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.shutdown.clone())
    }

    /// True once every thread has stopped (after `close`, or after a failure).
    pub fn is_finished(&self) -> bool {
        self.threads
            .lock_unpoisoned()
            .iter()
            .all(JoinHandle::is_finished)
    }

    /// Stops processing: in-flight records finished, outputs flushed, offsets committed.
    /// Returns false if the threads did not stop within `timeout`.
    pub fn close(&mut self, timeout: Duration) -> bool {
        let failed = matches!(self.state(), State::PendingError | State::Error);
        if !failed {
            self.shared.transition(State::PendingShutdown);
        }
        self.shutdown.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + timeout;
        while !self.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let done = self.is_finished();
        if done {
            for h in self.threads.lock_unpoisoned().drain(..) {
                let _ = h.join();
            }
        }
        self.shared.transition(if failed || self.error().is_some() {
            State::Error
        } else {
            State::NotRunning
        });
        done
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if !self.threads.lock_unpoisoned().is_empty() {
            self.close(Duration::from_secs(30));
        }
    }
}

/// An active task whose stores are being restored ([`KafkaStreams::restoring_tasks`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoringTask {
    /// The task, `<subtopology>_<partition>`.
    pub task: String,
    /// Changelog records its stores still have to apply (0 until its restore has read where
    /// the changelogs end).
    pub remaining_records: i64,
}

/// Asks a [`KafkaStreams`] to stop from another thread ([`KafkaStreams::stop_handle`]).
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the application to stop: the stream threads finish what they hold and leave, as on
    /// [`KafkaStreams::close`], which is still to be called to wait for them.
    pub fn request_stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Why [`run_until_stopped`] returned an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A source topic is missing, or the internal topics (repartition, changelog) could not be
    /// created.
    #[error(transparent)]
    Topics(#[from] admin::AdminError),
    /// The application stopped in ERROR.
    #[error(transparent)]
    Streams(#[from] StreamsError),
    /// The stream threads did not stop within 30 s of the close.
    #[error("the application did not close within 30 s")]
    CloseTimeout,
}

/// Runs `topology` in this process: creates its internal topics, starts it, and blocks until
/// SIGINT or SIGTERM arrives, the application stops by itself, or `max` passes
/// (`Duration::ZERO`: no limit); then closes it. For examples and small programs.
pub fn run_until_stopped(
    topology: Topology,
    config: StreamsConfig,
    max: Duration,
) -> Result<(), RunError> {
    admin::prepare_topics(&topology, &config)?;
    let mut app = KafkaStreams::new(topology, config, None);
    app.start();
    wait_for_stop(&app, max);
    let closed = app.close(Duration::from_secs(30));
    match app.error() {
        Some(e) => Err(e.into()),
        None if closed => Ok(()),
        None => Err(RunError::CloseTimeout),
    }
}

fn wait_for_stop(app: &KafkaStreams, max: Duration) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        let deadline = (!max.is_zero()).then(|| tokio::time::Instant::now() + max);
        loop {
            tokio::select! {
                _ = term.recv() => return,
                _ = tokio::signal::ctrl_c() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if app.is_finished() || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return;
            }
        }
    });
}
