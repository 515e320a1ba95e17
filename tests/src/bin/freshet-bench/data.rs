//! The benchmark's input: keys from a 10,000-key Zipf set, ~100-byte JSON values, timestamps in
//! order with a small out-of-order share; and what every workload must output for it.

use std::collections::HashMap;

/// Distinct keys (`cust-00000` .. `cust-09999`), drawn with Zipf's law (exponent 1).
pub const KEYS: usize = 10_000;
/// Tumbling windows of the windowed count.
pub const WINDOW_MS: i64 = 60_000;
/// The share of records stamped earlier than their position (1 in OUT_OF_ORDER_EVERY) and by
/// how much at most; always inside the windowed count's 10 s grace, so nothing is dropped.
pub const OUT_OF_ORDER_EVERY: u64 = 50;
pub const OUT_OF_ORDER_MAX_MS: u64 = 5_000;

/// splitmix64: a small deterministic generator (no dependency, the same input every run).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf sampling by inverting the cumulative distribution.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, exponent: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / (k as f64).powf(exponent);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

pub fn key_name(k: usize) -> String {
    format!("cust-{k:05}")
}

/// The key index of `cust-NNNNN`.
pub fn key_index(key: &[u8]) -> Option<usize> {
    let digits = key.strip_prefix(b"cust-")?;
    let i: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (i < KEYS).then_some(i)
}

/// One input record.
pub struct Record {
    pub id: u64,
    pub key: usize,
    /// Tenths: the JSON value's `amount` is `amount_tenths / 10` with one decimal.
    pub amount_tenths: u32,
    pub timestamp: i64,
}

impl Record {
    pub fn passes_filter(&self) -> bool {
        self.amount_tenths >= 1000
    }

    /// ~100 bytes of JSON: id, amount, region, customer and padding.
    pub fn value(&self) -> Vec<u8> {
        let (head, pad) = self.json_head();
        let mut v = head.into_bytes();
        v.extend(std::iter::repeat_n(b'x', pad));
        v.extend_from_slice(b"\"}");
        v
    }

    fn region(&self) -> &'static str {
        ["eu", "us", "apac"][(self.id % 3) as usize]
    }

    /// The JSON value up to the note's text, and the note's length.
    fn json_head(&self) -> (String, usize) {
        let head = format!(
            "{{\"id\":{},\"amount\":{}.{},\"region\":\"{}\",\"customer\":\"{}\",\"note\":\"",
            self.id,
            self.amount_tenths / 10,
            self.amount_tenths % 10,
            self.region(),
            key_name(self.key)
        );
        let pad = 98usize.saturating_sub(head.len()).max(4);
        (head, pad)
    }

    /// The same value in Confluent's Avro wire format with [`AVRO_SCHEMA`] under `schema_id`:
    /// byte 0, the id (4 bytes, big-endian), the Avro binary datum (zig-zag varint longs,
    /// little-endian doubles, length-prefixed strings).
    pub fn avro(&self, schema_id: u32) -> Vec<u8> {
        let (_, pad) = self.json_head();
        let mut v = Vec::with_capacity(64);
        v.push(0);
        v.extend_from_slice(&schema_id.to_be_bytes());
        avro_long(self.id as i64, &mut v);
        let amount = f64::from(self.amount_tenths) / 10.0;
        v.extend_from_slice(&amount.to_le_bytes());
        for text in [
            self.region(),
            key_name(self.key).as_str(),
            "x".repeat(pad).as_str(),
        ] {
            avro_long(text.len() as i64, &mut v);
            v.extend_from_slice(text.as_bytes());
        }
        v
    }
}

/// The Avro schema of the `avro` workload's input: the JSON value's fields, typed.
pub const AVRO_SCHEMA: &str = r#"{"type":"record","name":"BenchOrder","namespace":"bench","fields":[{"name":"id","type":"long"},{"name":"amount","type":"double"},{"name":"region","type":"string"},{"name":"customer","type":"string"},{"name":"note","type":"string"}]}"#;

/// The Avro schema of the `avro` workload's output (the stateless mapValues' fields).
pub const AVRO_OUTPUT_SCHEMA: &str = r#"{"type":"record","name":"BenchOut","namespace":"bench","fields":[{"name":"id","type":"long"},{"name":"amount","type":"double"}]}"#;

/// Avro's long: zig-zag, then a base-128 varint.
fn avro_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// The first field of an Avro record in Confluent's framing, a long (the `avro` workload's id).
pub fn avro_first_long(v: &[u8]) -> Option<i64> {
    let body = v.strip_prefix(&[0u8])?.get(4..)?;
    let (mut z, mut shift) = (0u64, 0u32);
    for b in body.iter().take(10) {
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((z >> 1) as i64 ^ -((z & 1) as i64));
        }
        shift += 7;
    }
    None
}

/// The records `first_id..first_id + n`, stamped by `timestamp(i)` (i counts from 0), with the
/// out-of-order share applied when `out_of_order`.
pub struct Generator {
    rng: Rng,
    zipf: Zipf,
    next: u64,
    end: u64,
    first: u64,
    out_of_order: bool,
    timestamp: Box<dyn Fn(u64) -> i64 + Send>,
}

impl Generator {
    pub fn new(
        seed: u64,
        first_id: u64,
        n: u64,
        out_of_order: bool,
        timestamp: Box<dyn Fn(u64) -> i64 + Send>,
    ) -> Generator {
        Generator {
            rng: Rng::new(seed),
            zipf: Zipf::new(KEYS, 1.0),
            next: first_id,
            end: first_id + n,
            first: first_id,
            out_of_order,
            timestamp,
        }
    }
}

impl Iterator for Generator {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.next >= self.end {
            return None;
        }
        let id = self.next;
        self.next += 1;
        let key = self.zipf.sample(&mut self.rng);
        let amount_tenths = (self.rng.next() % 2500) as u32;
        let mut timestamp = (self.timestamp)(id - self.first);
        let r = self.rng.next();
        if self.out_of_order && r.is_multiple_of(OUT_OF_ORDER_EVERY) {
            timestamp -= 1 + ((r >> 32) % OUT_OF_ORDER_MAX_MS) as i64;
        }
        Some(Record {
            id,
            key,
            amount_tenths,
            timestamp,
        })
    }
}

/// What the outputs must hold, built while the input is generated.
#[derive(Default)]
pub struct Expect {
    pub first_id: u64,
    pub n: u64,
    /// Per id (from first_id): whether it passes the stateless filter.
    pub passes: Vec<bool>,
    pub passing: u64,
    pub counts: Vec<u64>,
    pub windows: HashMap<(usize, i64), u64>,
}

impl Expect {
    pub fn new(first_id: u64) -> Expect {
        Expect {
            first_id,
            counts: vec![0; KEYS],
            ..Expect::default()
        }
    }

    pub fn add(&mut self, r: &Record) {
        self.n += 1;
        self.passes.push(r.passes_filter());
        self.passing += u64::from(r.passes_filter());
        self.counts[r.key] += 1;
        let start = r.timestamp - r.timestamp.rem_euclid(WINDOW_MS);
        *self.windows.entry((r.key, start)).or_default() += 1;
    }

    pub fn distinct_keys(&self) -> u64 {
        self.counts.iter().filter(|c| **c > 0).count() as u64
    }
}

/// The table of the stream-table join: one row per key, `{"tier": ..., "name": ...}`.
pub fn table_row(k: usize) -> Vec<u8> {
    let tier = ["gold", "silver", "bronze"][k % 3];
    format!("{{\"tier\":\"{tier}\",\"name\":\"customer {k}\"}}").into_bytes()
}
