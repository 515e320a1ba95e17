//! Reading a contender's output topic from the start (read_committed) and checking it against
//! what the input must produce: a contender cannot win by dropping records.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::data::{Expect, key_index};

/// What a workload's output must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Every input id once (raw pipe, stream-table join).
    AllIds,
    /// The ids passing the filter, none other (filter + mapValues).
    FilteredIds,
    /// Each key's final count.
    Counts,
    /// Each (key, window)'s final count.
    Windows,
}

pub struct Checker {
    expected: Expected,
    expect: Arc<Expect>,
    seen: Vec<bool>,
    counts: Vec<u64>,
    windows: HashMap<(usize, i64), u64>,
    pub matched: u64,
    pub target: u64,
    pub records: u64,
    pub duplicates: u64,
    pub errors: Vec<String>,
    /// With Some(from): end-to-end latencies (ms) of the records stamped at or after `from`.
    latency_from: Option<i64>,
    pub latencies: Vec<u32>,
}

impl Checker {
    pub fn new(expected: Expected, expect: Arc<Expect>, latency_from: Option<i64>) -> Checker {
        let target = match expected {
            Expected::AllIds => expect.n,
            Expected::FilteredIds => expect.passing,
            Expected::Counts => expect.distinct_keys(),
            Expected::Windows => expect.windows.len() as u64,
        };
        let ids = match expected {
            Expected::AllIds | Expected::FilteredIds => expect.n as usize,
            _ => 0,
        };
        Checker {
            expected,
            seen: vec![false; ids],
            counts: vec![
                0;
                if expected == Expected::Counts {
                    expect.counts.len()
                } else {
                    0
                }
            ],
            windows: HashMap::new(),
            expect,
            matched: 0,
            target,
            records: 0,
            duplicates: 0,
            errors: Vec::new(),
            latency_from,
            latencies: Vec::new(),
        }
    }

    pub fn complete(&self) -> bool {
        self.matched == self.target && self.errors.is_empty()
    }

    fn error(&mut self, e: String) {
        if self.errors.len() < 5 {
            self.errors.push(e);
        }
    }

    pub fn feed(&mut self, key: Option<&[u8]>, value: Option<&[u8]>, timestamp: i64, now_ms: i64) {
        self.records += 1;
        if let Some(from) = self.latency_from
            && timestamp >= from
        {
            self.latencies
                .push((now_ms - timestamp).clamp(0, u32::MAX as i64) as u32);
        }
        match self.expected {
            Expected::AllIds | Expected::FilteredIds => {
                let Some(id) = value.and_then(value_id) else {
                    return self.error(format!(
                        "a value without an id: {:?}",
                        value.map(String::from_utf8_lossy)
                    ));
                };
                let Some(i) = id
                    .checked_sub(self.expect.first_id)
                    .filter(|i| *i < self.expect.n)
                else {
                    return self.error(format!("id {id} is not in the input"));
                };
                let i = i as usize;
                if self.expected == Expected::FilteredIds && !self.expect.passes[i] {
                    return self.error(format!("id {id} does not pass the filter but was output"));
                }
                if self.seen[i] {
                    self.duplicates += 1;
                } else {
                    self.seen[i] = true;
                    self.matched += 1;
                }
            }
            Expected::Counts => {
                let (Some(k), Some(c)) = (key.and_then(key_index), value.and_then(long)) else {
                    return self.error(format!("bad count record {key:?} {value:?}"));
                };
                let want = self.expect.counts[k];
                self.track(c, self.counts[k], want, format!("key {k}"));
                self.counts[k] = c;
            }
            Expected::Windows => {
                let parsed = key.filter(|k| k.len() > 8).and_then(|k| {
                    let (inner, start) = k.split_at(k.len() - 8);
                    Some((
                        key_index(inner)?,
                        i64::from_be_bytes(start.try_into().ok()?),
                    ))
                });
                let (Some(w), Some(c)) = (parsed, value.and_then(long)) else {
                    return self.error(format!("bad windowed count record {key:?} {value:?}"));
                };
                let want = self.expect.windows.get(&w).copied().unwrap_or(0);
                let before = self.windows.insert(w, c).unwrap_or(0);
                self.track(c, before, want, format!("window {w:?}"));
            }
        }
    }

    /// A count went from `before` to `now`; `want` is the final one.
    fn track(&mut self, now: u64, before: u64, want: u64, what: String) {
        if now > want {
            self.error(format!("{what}: count {now} exceeds the input's {want}"));
        }
        if before == want && now != want {
            self.matched -= 1;
        } else if before != want && now == want {
            self.matched += 1;
        }
    }
}

/// The id of an output value: the first field of an Avro record in Confluent's framing (the
/// `avro` workload), else the `"id"` of a JSON value.
fn value_id(v: &[u8]) -> Option<u64> {
    if v.first() == Some(&0) {
        return crate::data::avro_first_long(v).and_then(|id| u64::try_from(id).ok());
    }
    json_id(v)
}

/// The `"id":N` field of a JSON value (Freshet writes sorted keys, Jackson insertion order).
fn json_id(v: &[u8]) -> Option<u64> {
    let at = v.windows(5).position(|w| w == b"\"id\":")? + 5;
    let digits = v[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&v[at..at + digits]).ok()?.parse().ok()
}

fn long(v: &[u8]) -> Option<u64> {
    Some(i64::from_be_bytes(v.try_into().ok()?) as u64)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// The outcome of watching an output topic.
pub struct Watched {
    pub checker: Checker,
    /// When the output first held every result.
    pub complete_at: Option<Instant>,
}

/// Reads `topic` (all `partitions`, from the start, read_committed) into `checker` until it is
/// complete, `stop` is set or `deadline` passes.
pub fn watch(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    mut checker: Checker,
    deadline: Instant,
    stop: Arc<AtomicBool>,
) -> Watched {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-checker"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "20")
        .create()
        .expect("checker consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut complete_at = None;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let Some(m) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                eprintln!("[bench] checker of {topic}: {e}");
                continue;
            }
        };
        let ts = m.timestamp().to_millis().unwrap_or(0);
        checker.feed(m.key(), m.payload(), ts, now_ms());
        if checker.complete() {
            complete_at = Some(Instant::now());
            break;
        }
        if !checker.errors.is_empty() {
            break;
        }
    }
    Watched {
        checker,
        complete_at,
    }
}
