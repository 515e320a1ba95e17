//! The generated input: deterministic from a seed, shaped so that every verdict is robust.
//!
//! Keys come from a small skewed set of users (`u0` common ... `u7` rare). Stream timestamps are
//! `base + i * STEP_MS`, some moved back by at most `MAX_JITTER_MS` (well inside the 5 s grace, so
//! they always update their windows), and a few moved back by `LATE_BY_MS` (so far past grace that
//! they are always dropped): no record is near the grace edge, so the verdict never hangs on the
//! order in which partitions interleave. Tombstones (null values) are mixed in where the case can
//! take them. At the end one "advance" record per partition, far in the future, closes every
//! window, so `suppress` emits and late windows are final.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::json;

use crate::kafka::base_timestamp;
use crate::kafka_bootstrap;

/// Partitions of every topic the harness creates: more than one, so per-task stream time,
/// repartitioning and the sinks' partitioners all matter.
pub const PARTITIONS: i32 = 2;
const STREAM_RECORDS: i64 = 600;
const TABLE_RECORDS: i64 = 240;
const STEP_MS: i64 = 150;
/// Out-of-order records are at most this much older than their place in the sequence.
pub const MAX_JITTER_MS: i64 = 2_000;
/// Late records are this much older than their place in the sequence: past every window's end
/// plus grace by more than 40 s.
pub const LATE_BY_MS: i64 = 60_000;
/// The advance records come this long after the last record.
const ADVANCE_AFTER_MS: i64 = 60_000;

/// Users and their weights (percent): a skewed key set.
const USERS: [(&str, u64); 8] = [
    ("u0", 40),
    ("u1", 20),
    ("u2", 12),
    ("u3", 9),
    ("u4", 7),
    ("u5", 5),
    ("u6", 4),
    ("u7", 3),
];
const CATEGORIES: u64 = 4;

/// What a generated record is for (reported in summaries; the model computes its own verdicts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// In order, or out of order well inside grace.
    OnTime,
    /// Older than stream time by far more than grace.
    Late,
    /// Far in the future: closes every window of its partition.
    Advance,
}

/// One input record: string key, JSON value (None: a tombstone), absolute timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputRecord {
    pub key: String,
    pub value: Option<String>,
    pub timestamp: i64,
    pub kind: Kind,
}

/// splitmix64: a tiny PRNG whose sequence depends on nothing but the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (the modulo bias is irrelevant for n this small).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn user(&mut self) -> &'static str {
        let mut pick = self.below(100);
        for (user, weight) in USERS {
            if pick < weight {
                return user;
            }
            pick -= weight;
        }
        unreachable!("the weights add up to 100")
    }

    fn value(&mut self, user: &str, amounts: std::ops::Range<u64>) -> String {
        let amount = amounts.start + self.below(amounts.end - amounts.start);
        let category = format!("c{}", self.below(CATEGORIES));
        json!({ "user": user, "amount": amount, "category": category }).to_string()
    }
}

/// A seed per case, from its name (FNV-1a), so cases get different inputs yet every run of a
/// case the same; `FRESHET_DIFFERENTIAL_SEED` mixes in another value to explore.
pub fn seed_for(case: &str) -> u64 {
    let extra: u64 = std::env::var("FRESHET_DIFFERENTIAL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in case.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^ extra
}

/// The stream input: STREAM_RECORDS records, then one advance record per partition.
pub fn stream_input(seed: u64, tombstones: bool) -> Vec<InputRecord> {
    let mut rng = Rng::new(seed);
    let base = base_timestamp();
    let mut out = Vec::new();
    for i in 0..STREAM_RECORDS {
        let place = i * STEP_MS;
        let key = rng.user();
        // Late records only once there is history to be late against.
        let (offset, kind) = if place > LATE_BY_MS + 10_000 && rng.percent(2) {
            (LATE_BY_MS, Kind::Late)
        } else if rng.percent(30) {
            (rng.below(MAX_JITTER_MS as u64 + 1) as i64, Kind::OnTime)
        } else {
            (0, Kind::OnTime)
        };
        let value = if tombstones && rng.percent(5) {
            None
        } else {
            Some(rng.value(key, 1..11))
        };
        out.push(InputRecord {
            key: key.to_owned(),
            value,
            timestamp: base + place - offset,
            kind,
        });
    }
    let advance = base + (STREAM_RECORDS - 1) * STEP_MS + ADVANCE_AFTER_MS;
    for p in 0..PARTITIONS {
        let key = advance_key(p, PARTITIONS);
        out.push(InputRecord {
            value: Some(json!({ "user": key, "amount": 1, "category": "c0" }).to_string()),
            key,
            timestamp: advance,
            kind: Kind::Advance,
        });
    }
    out
}

/// The table input: updates that move users between categories and change their amounts
/// (0..9, so `amount > 3` filters some out), and tombstones that delete users (some of them
/// already absent).
pub fn table_input(seed: u64) -> Vec<InputRecord> {
    let mut rng = Rng::new(seed);
    let base = base_timestamp();
    (0..TABLE_RECORDS)
        .map(|i| {
            let key = rng.user();
            let value = if rng.percent(12) {
                None
            } else {
                Some(rng.value(key, 0..10))
            };
            InputRecord {
                key: key.to_owned(),
                value,
                timestamp: base + i * STEP_MS,
                kind: Kind::OnTime,
            }
        })
        .collect()
}

pub use freshet_engine::runtime::partitioner::{murmur2, partition_for};

/// A key that Java's partitioner sends to `partition`.
fn advance_key(partition: i32, partitions: i32) -> String {
    (0..)
        .map(|n| format!("advance-{n}"))
        .find(|k| partition_for(k.as_bytes(), partitions) == partition)
        .expect("some key lands on every partition")
}

/// Produces `records` to `topic` in order with Java's partitioner and returns the partition each
/// landed on. Panics if the advance records missed a partition (which would leave its windows
/// open).
pub fn produce(topic: &str, records: &[InputRecord]) -> Vec<i32> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap())
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let deliveries: Vec<_> = records
        .iter()
        .map(|r| {
            let mut rec = FutureRecord::to(topic)
                .key(r.key.as_bytes())
                .timestamp(r.timestamp);
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_bytes());
            }
            producer
                .send_result(rec)
                .map_err(|(e, _)| e)
                .unwrap_or_else(|e| panic!("enqueueing a record for {topic}: {e}"))
        })
        .collect();
    producer
        .flush(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("flushing the input of {topic}: {e}"));
    let partitions: Vec<i32> = deliveries
        .into_iter()
        .map(|d| match futures::executor::block_on(d) {
            Ok(Ok(delivery)) => delivery.partition,
            Ok(Err((e, _))) => panic!("producing to {topic}: {e}"),
            Err(_) => panic!("producing to {topic}: the delivery report was lost"),
        })
        .collect();
    let advanced: std::collections::BTreeSet<i32> = records
        .iter()
        .zip(&partitions)
        .filter(|(r, _)| r.kind == Kind::Advance)
        .map(|(_, p)| *p)
        .collect();
    let advance_records = records.iter().filter(|r| r.kind == Kind::Advance).count();
    assert!(
        advance_records == 0 || advanced.len() == PARTITIONS as usize,
        "the advance records of {topic} landed on partitions {advanced:?}, not on all {PARTITIONS}: \
         murmur2 here disagrees with the producer's partitioner"
    );
    partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from Kafka's own UtilsTest.testMurmur2.
    #[test]
    fn input_is_deterministic_and_shaped_as_promised() {
        let a = stream_input(seed_for("count"), true);
        assert_eq!(a, stream_input(seed_for("count"), true));
        assert_ne!(a, stream_input(seed_for("reduce"), true));
        assert!(a.iter().any(|r| r.value.is_none()), "tombstones");
        assert!(a.iter().any(|r| r.kind == Kind::Late), "late records");
        assert!(
            stream_input(1, false).iter().all(|r| r.value.is_some()),
            "no tombstones when the case cannot take them"
        );
        let advance: Vec<_> = a.iter().filter(|r| r.kind == Kind::Advance).collect();
        assert_eq!(advance.len(), PARTITIONS as usize);
        let mut partitions: Vec<i32> = advance
            .iter()
            .map(|r| partition_for(r.key.as_bytes(), PARTITIONS))
            .collect();
        partitions.sort();
        assert_eq!(partitions, (0..PARTITIONS).collect::<Vec<_>>());
        // The skew: u0 is the most common key, u7 the rarest.
        let count = |k: &str| a.iter().filter(|r| r.key == k).count();
        assert!(
            count("u0") > 3 * count("u7"),
            "{} vs {}",
            count("u0"),
            count("u7")
        );
        let table = table_input(seed_for("table-ops"));
        assert!(table.iter().any(|r| r.value.is_none()));
    }
}
