//! Key layouts of window and session stores, as Kafka Streams lays them out: the record key's
//! bytes first, so one key's windows are adjacent and ordered by time.
//!
//! - window store: `key ++ window start (8 bytes, big-endian) ++ sequence number (4 bytes)`;
//! - session store: `key ++ session end (8 bytes) ++ session start (8 bytes)`.
//!
//! Keys of different lengths can interleave (`a` followed by a timestamp may sort between `a`
//! and `ab`), so every scan checks the length of what it finds, as Kafka Streams' does.

const TS: usize = 8;
const SEQ: usize = 4;

/// A time window `[start, end)` (sliding windows treat `end` as inclusive, as Kafka Streams does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Start of the window, in ms since the Unix epoch; inclusive.
    pub start: i64,
    /// End of the window, in ms since the Unix epoch: exclusive for tumbling and hopping windows,
    /// inclusive for sliding and session windows.
    pub end: i64,
}

/// Timestamps are written big-endian; they are never negative for records Kafka accepts, so
/// their byte order is their numeric order.
fn ts_bytes(ts: i64) -> [u8; TS] {
    ts.max(0).to_be_bytes()
}

fn read_ts(bytes: &[u8]) -> i64 {
    let mut b = [0u8; TS];
    b.copy_from_slice(&bytes[..TS]);
    i64::from_be_bytes(b)
}

/// The store key of `key`'s window starting at `start`.
pub fn window_key(key: &[u8], start: i64) -> Vec<u8> {
    window_key_seq(key, start, 0)
}

/// The store key of one of several entries of `key` at `start` (a store retaining duplicates,
/// as a stream-stream join's is): `seq` tells them apart.
pub fn window_key_seq(key: &[u8], start: i64, seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + TS + SEQ);
    out.extend_from_slice(key);
    out.extend_from_slice(&ts_bytes(start));
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// The record key and window start of a window-store key.
pub fn split_window_key(store_key: &[u8]) -> Option<(&[u8], i64)> {
    let n = store_key.len().checked_sub(TS + SEQ)?;
    Some((&store_key[..n], read_ts(&store_key[n..])))
}

/// The scan bounds `[from, to)` covering `key`'s windows starting in `[earliest, latest]`.
pub fn window_range(key: &[u8], earliest: i64, latest: i64) -> (Vec<u8>, Vec<u8>) {
    let from = window_key(key, earliest);
    let mut to = Vec::with_capacity(key.len() + TS + SEQ);
    to.extend_from_slice(key);
    to.extend_from_slice(&ts_bytes(latest));
    to.extend_from_slice(&u32::MAX.to_be_bytes());
    to.push(0);
    (from, to)
}

/// Whether a store key found in a scan of `key`'s range really is one of `key`'s windows.
pub fn is_window_of(store_key: &[u8], key: &[u8]) -> bool {
    store_key.len() == key.len() + TS + SEQ && store_key.starts_with(key)
}

/// The store key of `key`'s session `[start, end]`.
pub fn session_key(key: &[u8], start: i64, end: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2 * TS);
    out.extend_from_slice(key);
    out.extend_from_slice(&ts_bytes(end));
    out.extend_from_slice(&ts_bytes(start));
    out
}

/// The record key and the session `(start, end)` of a session-store key.
pub fn split_session_key(store_key: &[u8]) -> Option<(&[u8], Window)> {
    let n = store_key.len().checked_sub(2 * TS)?;
    Some((
        &store_key[..n],
        Window {
            end: read_ts(&store_key[n..]),
            start: read_ts(&store_key[n + TS..]),
        },
    ))
}

/// Scan bounds `[from, to)` covering `key`'s sessions that end at or after `earliest_end`.
pub fn session_range(key: &[u8], earliest_end: i64) -> (Vec<u8>, Vec<u8>) {
    let from = session_key(key, 0, earliest_end);
    let mut to = Vec::with_capacity(key.len() + 2 * TS + 1);
    to.extend_from_slice(key);
    to.extend_from_slice(&[0xff; 2 * TS]);
    to.push(0);
    (from, to)
}

/// Whether a store key found in a scan of `key`'s range really is one of `key`'s sessions.
pub fn is_session_of(store_key: &[u8], key: &[u8]) -> bool {
    store_key.len() == key.len() + 2 * TS && store_key.starts_with(key)
}

/// The time a window or session store entry is judged by for retention: a window's start, a
/// session's end.
pub fn entry_time(kind: super::StoreKind, store_key: &[u8]) -> Option<i64> {
    match kind {
        super::StoreKind::KeyValue => None,
        super::StoreKind::Window { .. } => split_window_key(store_key).map(|(_, t)| t),
        super::StoreKind::Session { .. } => split_session_key(store_key).map(|(_, w)| w.end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_round_trip_and_order_by_time_within_a_key() {
        let a = window_key(b"user", 1_000);
        let b = window_key(b"user", 2_000);
        assert!(a < b);
        assert_eq!(split_window_key(&a), Some((&b"user"[..], 1_000)));
        let (from, to) = window_range(b"user", 1_000, 1_500);
        assert!(from <= a && a < to);
        assert!(b >= to);
        assert!(is_window_of(&a, b"user"));
        assert!(!is_window_of(&window_key(b"users", 1_000), b"user"));
    }

    #[test]
    fn session_keys_carry_end_then_start() {
        let k = session_key(b"k", 100, 250);
        assert_eq!(&k[1..9], &250i64.to_be_bytes());
        assert_eq!(&k[9..], &100i64.to_be_bytes());
        assert_eq!(
            split_session_key(&k),
            Some((
                &b"k"[..],
                Window {
                    start: 100,
                    end: 250
                }
            ))
        );
        let (from, to) = session_range(b"k", 200);
        assert!(from <= k && k < to);
        let (from, _) = session_range(b"k", 300);
        assert!(
            k < from,
            "sessions ending before the bound are outside the range"
        );
    }
}
