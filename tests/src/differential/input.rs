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

/// Table rows of the join cases come first: every stream record of a join case is stamped at
/// least this long after the base, every table row before it.
const JOIN_STREAM_AFTER_MS: i64 = 60_000;
const ORDERS: i64 = 300;
const ORDER_STEP_MS: i64 = 100;
/// Users with a row in the users table; the others (`u6`, `u7`) never have one, and some of
/// these are deleted, so inner joins drop orders and left joins meet no row.
const USERS_WITH_ROWS: u64 = 6;
const USER_ROWS: i64 = 60;

/// The orders stream of the stream-table and stream-globalTable joins: keys `o<i>`, values
/// `{"id", "user", "amount"}` with a skewed `user`, no tombstones (a key selector or a key
/// expression over `value.user` cannot read a null value), all stamped after every table row.
pub fn orders(seed: u64) -> Vec<InputRecord> {
    let mut rng = Rng::new(seed);
    let base = base_timestamp() + JOIN_STREAM_AFTER_MS;
    (0..ORDERS)
        .map(|i| {
            let user = rng.user();
            let amount = 1 + rng.below(100);
            InputRecord {
                key: format!("o{i}"),
                value: Some(json!({ "id": i, "user": user, "amount": amount }).to_string()),
                timestamp: base + i * ORDER_STEP_MS,
                kind: Kind::OnTime,
            }
        })
        .collect()
}

/// The users table joined by orders: rows of `u0`..`u5` only, updated and sometimes deleted,
/// stamped before every order (`base + i` ms), so a join reads each user's final row.
pub fn users(seed: u64) -> Vec<InputRecord> {
    let mut rng = Rng::new(seed);
    let base = base_timestamp();
    (0..USER_ROWS)
        .map(|i| {
            let key = format!("u{}", rng.below(USERS_WITH_ROWS));
            let value = if rng.percent(15) {
                None
            } else {
                Some(json!({ "name": format!("user-{i}"), "tier": rng.below(3) }).to_string())
            };
            InputRecord {
                key,
                value,
                timestamp: base + i,
                kind: Kind::OnTime,
            }
        })
        .collect()
}

/// The orders table of the foreign-key joins: keys `o0`..`o39`, values `{"id", "user"}` whose
/// `user` (the foreign key, never null) changes between updates; some orders are deleted.
pub fn order_rows(seed: u64) -> Vec<InputRecord> {
    let mut rng = Rng::new(seed);
    let base = base_timestamp();
    (0..160)
        .map(|i| {
            let id = rng.below(40);
            let value = if rng.percent(10) {
                None
            } else {
                Some(json!({ "id": id, "user": rng.user(), "version": i }).to_string())
            };
            InputRecord {
                key: format!("o{id}"),
                value,
                timestamp: base + 100 + i,
                kind: Kind::OnTime,
            }
        })
        .collect()
}

/// One side of the table-table joins: rows of the keys `u<first>`..`u<first + 5>` (the left side
/// starts at `u0`, the right at `u2`: four keys on both sides, two on each side only), updated
/// and sometimes deleted.
pub fn side_rows(seed: u64, side: &str, first: u64) -> Vec<InputRecord> {
    let mut rng = Rng::new(seed);
    let base = base_timestamp();
    (0..120)
        .map(|i| {
            let key = format!("u{}", first + rng.below(6));
            let value = if rng.percent(12) {
                None
            } else {
                Some(json!({ "side": side, "version": i, "n": rng.below(10) }).to_string())
            };
            InputRecord {
                key,
                value,
                timestamp: base + i,
                kind: Kind::OnTime,
            }
        })
        .collect()
}

/// The stream-stream joins' window, as the manifests and Java twins set it.
pub const JOIN_WITHIN_MS: i64 = 10_000;
pub const JOIN_GRACE_MS: i64 = 5_000;
/// Epochs start this far apart: far more than within + grace, so no record joins across epochs
/// and an epoch's windows have closed before the next but one.
const EPOCH_GAP_MS: i64 = 40_000;
/// The records of one key and epoch lie within this span: inside the window of each other.
const EPOCH_SPAN_MS: i64 = 8_000;
const EPOCHS: i64 = 8;
/// Keys of the stream-stream joins.
const EPOCH_KEYS: u64 = 6;

/// The two streams of the stream-stream joins, generated together, so that no join decision
/// depends on the order in which a task interleaves them. Per key and epoch: records on both
/// sides (every pair joins), on one side only (left or outer joins emit them unmatched when the
/// window closes), or none; all of one key's records in an epoch lie within the window of each
/// other, epochs lie far apart, the left side's timestamps are even and the right side's odd (no
/// ties between the sides). Each side is in timestamp order, so no record is ever late. A final
/// epoch with a record on both sides for every key, and for a key on each partition, moves
/// stream time past every earlier window's close in every task, so the unmatched records are
/// emitted.
pub fn epochs(seed: u64, partitions: i32) -> (Vec<InputRecord>, Vec<InputRecord>) {
    let mut rng = Rng::new(seed);
    let base = base_timestamp() + JOIN_STREAM_AFTER_MS;
    let (mut left, mut right) = (Vec::new(), Vec::new());
    let mut id = 0;
    let mut record = |key: &str, side: &str, epoch: i64, ts: i64| {
        id += 1;
        InputRecord {
            key: key.to_owned(),
            value: Some(json!({ "id": id, "side": side, "epoch": epoch }).to_string()),
            timestamp: ts,
            kind: Kind::OnTime,
        }
    };
    for epoch in 0..EPOCHS {
        let start = base + epoch * EPOCH_GAP_MS;
        for k in 0..EPOCH_KEYS {
            let key = format!("u{k}");
            let (l, r) = match rng.below(10) {
                0..=4 => (1 + rng.below(3), 1 + rng.below(3)),
                5 | 6 => (1 + rng.below(3), 0),
                7 | 8 => (0, 1 + rng.below(3)),
                _ => (0, 0),
            };
            for _ in 0..l {
                let ts = start + 2 * rng.below(EPOCH_SPAN_MS as u64 / 2) as i64;
                left.push(record(&key, "left", epoch, ts));
            }
            for _ in 0..r {
                let ts = start + 2 * rng.below(EPOCH_SPAN_MS as u64 / 2) as i64 + 1;
                right.push(record(&key, "right", epoch, ts));
            }
        }
    }
    let last = base + (EPOCHS - 1) * EPOCH_GAP_MS + 2 * EPOCH_GAP_MS;
    let mut keys: Vec<String> = (0..EPOCH_KEYS).map(|k| format!("u{k}")).collect();
    keys.extend((0..partitions).map(|p| advance_key(p, partitions)));
    for (i, key) in keys.iter().enumerate() {
        let ts = last + 2 * i as i64;
        let mut l = record(key, "left", EPOCHS, ts);
        let mut r = record(key, "right", EPOCHS, ts + 1);
        l.kind = Kind::Advance;
        r.kind = Kind::Advance;
        left.push(l);
        right.push(r);
    }
    left.sort_by_key(|r| r.timestamp);
    right.sort_by_key(|r| r.timestamp);
    (left, right)
}

pub use freshet_streams::runtime::partitioner::{murmur2, partition_for};

/// A key that Java's partitioner sends to `partition`.
fn advance_key(partition: i32, partitions: i32) -> String {
    (0..)
        .map(|n| format!("advance-{n}"))
        .find(|k| partition_for(k.as_bytes(), partitions) == partition)
        .expect("some key lands on every partition")
}

/// Produces `records` to `topic` (of `topic_partitions` partitions) in order with Java's
/// partitioner and returns the partition each landed on. Panics if the advance records missed a
/// partition (which would leave its windows open).
pub fn produce(topic: &str, topic_partitions: i32, records: &[InputRecord]) -> Vec<i32> {
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
        advance_records == 0 || advanced.len() == topic_partitions as usize,
        "the advance records of {topic} landed on partitions {advanced:?}, not on all {topic_partitions}: \
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

    /// The promises the join cases' verdicts rest on.
    #[test]
    fn join_inputs_leave_nothing_to_arrival_order() {
        // Every table row is older than every stream record.
        let (users, orders) = (users(1), orders(2));
        let newest_row = [users.as_slice(), &order_rows(3), &side_rows(4, "left", 0)]
            .iter()
            .flat_map(|rows| rows.iter().map(|r| r.timestamp))
            .max()
            .expect("rows");
        let (left, right) = epochs(5, PARTITIONS);
        let oldest_record = [orders.as_slice(), &left, &right]
            .iter()
            .flat_map(|records| records.iter().map(|r| r.timestamp))
            .min()
            .expect("records");
        assert!(newest_row < oldest_record);
        // Users without a row and deleted users: inner joins drop orders, left joins meet null.
        assert!(
            orders
                .iter()
                .any(|o| o.value.as_deref().is_some_and(|v| v.contains("\"u7\"")))
        );
        assert!(users.iter().any(|r| r.value.is_none()));
        assert!(users.iter().all(|r| r.key != "u6" && r.key != "u7"));

        // Stream-stream epochs: each side in timestamp order (nothing late), left even and right
        // odd, a key's records of one epoch within the window of each other, epochs further apart
        // than window and grace, and keys alone on one side in some epochs.
        // (Parity relative to the first left record: the base timestamp is the clock's.)
        let base = left[0].timestamp;
        for (side, parity) in [(&left, 0), (&right, 1)] {
            assert!(side.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
            assert!(
                side.iter()
                    .all(|r| (r.timestamp - base).rem_euclid(2) == parity)
            );
        }
        let epoch_of = |r: &InputRecord| -> i64 {
            let v: serde_json::Value =
                serde_json::from_str(r.value.as_deref().expect("value")).expect("JSON");
            v["epoch"].as_i64().expect("epoch")
        };
        let mut spans: std::collections::BTreeMap<(String, i64), (i64, i64, bool, bool)> =
            Default::default();
        for (is_left, r) in left
            .iter()
            .map(|r| (true, r))
            .chain(right.iter().map(|r| (false, r)))
        {
            let e = spans.entry((r.key.clone(), epoch_of(r))).or_insert((
                i64::MAX,
                i64::MIN,
                false,
                false,
            ));
            e.0 = e.0.min(r.timestamp);
            e.1 = e.1.max(r.timestamp);
            if is_left {
                e.2 = true;
            } else {
                e.3 = true;
            }
        }
        assert!(
            spans
                .values()
                .all(|(lo, hi, _, _)| hi - lo <= JOIN_WITHIN_MS)
        );
        assert!(spans.values().any(|&(_, _, l, r)| l && !r), "left alone");
        assert!(spans.values().any(|&(_, _, l, r)| !l && r), "right alone");
        let mut by_epoch: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
        for ((_, epoch), (lo, hi, _, _)) in &spans {
            let e = by_epoch.entry(*epoch).or_insert((i64::MAX, i64::MIN));
            e.0 = e.0.min(*lo);
            e.1 = e.1.max(*hi);
        }
        let epochs: Vec<(i64, i64)> = by_epoch.into_values().collect();
        assert!(
            epochs
                .windows(2)
                .all(|w| w[1].0 - w[0].1 > JOIN_WITHIN_MS + JOIN_GRACE_MS)
        );
        // The last epoch reaches every partition on both sides.
        for side in [&left, &right] {
            let last: std::collections::BTreeSet<i32> = side
                .iter()
                .filter(|r| r.kind == Kind::Advance)
                .map(|r| partition_for(r.key.as_bytes(), PARTITIONS))
                .collect();
            assert_eq!(last.len(), PARTITIONS as usize);
        }
    }
}
