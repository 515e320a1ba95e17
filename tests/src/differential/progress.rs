//! When an application is done with the input: its committed offsets (group = application id)
//! have reached the end of every topic it reads (every source but a global table, whose thread
//! commits nothing; repartition topics and a foreign-key join's subscription topics included), and
//! its output has then stayed quiet for a moment.
//!
//! Under at-least-once both Kafka Streams and Freshet flush their producers before committing, so
//! once the offsets are committed every output of those records is already in the output topic;
//! the quiet period is a margin, not the mechanism.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::kafka::Received;
use crate::kafka_bootstrap;

const TIMEOUT: Duration = Duration::from_secs(10);

/// How long the output must stay unchanged once the input is fully committed.
pub const QUIET: Duration = Duration::from_millis(1500);

/// The partitions of `topic`, or None if it does not exist.
pub fn partitions(client: &BaseConsumer, topic: &str) -> Result<Option<i32>, String> {
    let md = client
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| format!("metadata of {topic}: {e}"))?;
    Ok(md
        .topics()
        .first()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().len() as i32))
}

fn end_offsets(client: &BaseConsumer, topic: &str, partitions: i32) -> Result<Vec<i64>, String> {
    (0..partitions)
        .map(|p| {
            client
                .fetch_watermarks(topic, p, TIMEOUT)
                .map(|(_, high)| high)
                .map_err(|e| format!("end offset of {topic}/{p}: {e}"))
        })
        .collect()
}

/// One application being waited for.
pub struct Progress {
    app: String,
    /// The topics it consumes: its sources, then its internal topics.
    sources: Vec<String>,
    output: String,
    /// Reads the group's committed offsets; never joins the group.
    group: BaseConsumer,
    /// Since when the input is committed and the output has these end offsets.
    quiet: Option<(Instant, Vec<i64>)>,
    /// The last lag seen, for a timeout's message.
    pub last_state: String,
}

impl Progress {
    pub fn new(app: &str, sources: Vec<String>, output: &str) -> Progress {
        let group: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka_bootstrap())
            .set("group.id", app)
            .set("enable.auto.commit", "false")
            .create()
            .expect("offsets reader");
        Progress {
            app: app.to_owned(),
            sources,
            output: output.to_owned(),
            group,
            quiet: None,
            last_state: "not polled yet".to_owned(),
        }
    }

    /// Ok(true) once done; Ok(false) while still working; Err when a query failed.
    pub fn poll(&mut self, client: &BaseConsumer) -> Result<bool, String> {
        let mut state = String::new();
        let mut caught_up = true;
        for topic in &self.sources {
            let Some(n) = partitions(client, topic)? else {
                // Repartition topics appear when the application starts.
                let _ = write!(state, "{topic}: not created yet; ");
                caught_up = false;
                continue;
            };
            let ends = end_offsets(client, topic, n)?;
            let mut tpl = TopicPartitionList::new();
            for p in 0..n {
                tpl.add_partition(topic, p);
            }
            let committed = self
                .group
                .committed_offsets(tpl, TIMEOUT)
                .map_err(|e| format!("committed offsets of group {} on {topic}: {e}", self.app))?;
            for (p, end) in ends.iter().enumerate() {
                let done = match committed
                    .find_partition(topic, p as i32)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(o)) => o,
                    _ => 0,
                };
                let _ = write!(state, "{topic}/{p} committed {done} of {end}; ");
                caught_up &= done >= *end;
            }
        }
        let n = partitions(client, &self.output)?
            .ok_or_else(|| format!("the output topic {} does not exist", self.output))?;
        let out_ends = end_offsets(client, &self.output, n)?;
        let _ = write!(state, "output {} end offsets {out_ends:?}", self.output);
        self.last_state = state;
        if !caught_up {
            self.quiet = None;
            return Ok(false);
        }
        match &self.quiet {
            Some((since, ends)) if *ends == out_ends => Ok(since.elapsed() >= QUIET),
            _ => {
                self.quiet = Some((Instant::now(), out_ends));
                Ok(false)
            }
        }
    }
}

/// Every record of `topic` up to its current end offsets, in partition order.
pub fn read_all(client: &BaseConsumer, topic: &str) -> Result<Vec<Received>, String> {
    Ok(
        read_to_end(&kafka_bootstrap(), client, topic, "read_uncommitted")?
            .into_iter()
            .map(|(_, r)| r)
            .collect(),
    )
}

/// Every committed record of `topic` up to its current end offsets (a `read_committed` reader:
/// what an exactly-once application's downstream sees), in partition order, with its offset.
pub fn read_all_committed(
    client: &BaseConsumer,
    topic: &str,
) -> Result<Vec<(i64, Received)>, String> {
    read_to_end(&kafka_bootstrap(), client, topic, "read_committed")
}

/// Every record of `topic` on the brokers at `bootstrap` up to its current end offsets, read
/// with `isolation` (`read_committed` or `read_uncommitted`), in partition order, with offsets.
pub fn read_all_at(
    bootstrap: &str,
    topic: &str,
    isolation: &str,
) -> Result<Vec<(i64, Received)>, String> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| format!("metadata client for {topic}: {e}"))?;
    read_to_end(bootstrap, &client, topic, isolation)
}

fn read_to_end(
    bootstrap: &str,
    client: &BaseConsumer,
    topic: &str,
    isolation: &str,
) -> Result<Vec<(i64, Received)>, String> {
    let n = partitions(client, topic)?.ok_or_else(|| format!("{topic} does not exist"))?;
    let ends = end_offsets(client, topic, n)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", crate::unique_name("differential-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .map_err(|e| format!("reader for {topic}: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| format!("{topic}/{p}: {e}"))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| format!("assign {topic}: {e}"))?;
    let mut next = vec![0i64; n as usize];
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while next.iter().zip(&ends).any(|(a, b)| a < b) {
        if Instant::now() > deadline {
            return Err(format!(
                "reading {topic}: at offsets {next:?} of {ends:?} after 60 s"
            ));
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            // Transaction markers and aborted records are never handed out: the position steps
            // past them, so it, not the last record's offset, says when a partition is read.
            if let Ok(positions) = consumer.position() {
                for (p, n) in next.iter_mut().enumerate() {
                    if let Some(Offset::Offset(o)) = positions
                        .find_partition(topic, p as i32)
                        .map(|e| e.offset())
                    {
                        *n = (*n).max(o);
                    }
                }
            }
            continue;
        };
        let m = m.map_err(|e| format!("reading {topic}: {e}"))?;
        use rdkafka::Message as _;
        let p = m.partition() as usize;
        next[p] = m.offset() + 1;
        if m.offset() < ends[p] {
            out.push((
                m.offset(),
                Received {
                    topic: topic.to_owned(),
                    partition: m.partition(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    timestamp: m.timestamp().to_millis().unwrap_or(-1),
                    headers: Vec::new(),
                },
            ));
        }
    }
    Ok(out)
}
