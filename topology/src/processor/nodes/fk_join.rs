//! Foreign-key table-table joins (Kafka Streams' `KTable.join(other, foreignKeyExtractor, ...)`,
//! KIP-213): each row of the left table picks, from its value, the key of the right table's row
//! it joins; the two tables need not be co-partitioned.
//!
//! The exchange goes through two internal topics, as in Kafka Streams:
//! - `<name>-subscription-registration-topic`, keyed by the foreign key (so partitioned as the
//!   right table): a left row subscribes to the right row it points at, or unsubscribes when it
//!   changes foreign key or disappears. The right side keeps the subscriptions in
//!   `<name>-subscription-store`, keyed by `(foreign key, left key)`.
//! - `<name>-subscription-response-topic`, keyed by the left key: the right row's value, sent
//!   when a subscription arrives and whenever the right row changes.
//!
//! A response carries a hash of the left value that asked for it; a response to a value that
//! has changed since is stale and dropped, so a result never pairs a right row with an
//! outdated left value. Records on both topics use Freshet's own layout (a version byte, then
//! the fields below), not Kafka Streams' wrapper serialization.

use std::io::Cursor;
use std::sync::Arc;

use crate::processor::{Datum, ErasedRecord, Node, NodeContext, ProcessError, datum, typed};
use crate::processor::{Deserializer, Serializer};
use crate::state::StoreId;

use super::common::{
    Change, ErasedSerde, Joiner, RecordInfo, forward_change, info_of, key_bytes, require_store,
    resolve_store, store_error,
};

/// Picks the right table's key from a left row: `(record, key, value) -> foreign key`; a null
/// foreign key joins nothing.
pub type ForeignKeyExtractor =
    Arc<dyn Fn(&RecordInfo, &Datum, &Datum) -> Result<Datum, ProcessError> + Send + Sync>;

/// What the right side does with a subscription (Kafka Streams' `Instruction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Instruction {
    /// Unsubscribe; the left row moved to another foreign key, whose answer will do.
    DeleteNoPropagate = 0,
    /// Unsubscribe and answer with nothing: the left row is gone.
    DeleteAndPropagate = 1,
    /// Subscribe and answer, even when the right row is missing (a left join, or a foreign key
    /// change whose old result must be replaced).
    PropagateNullIfMissing = 2,
    /// Subscribe and answer only if the right row exists.
    PropagateOnlyIfPresent = 3,
}

impl Instruction {
    fn from_byte(b: u8) -> Option<Self> {
        [
            Instruction::DeleteNoPropagate,
            Instruction::DeleteAndPropagate,
            Instruction::PropagateNullIfMissing,
            Instruction::PropagateOnlyIfPresent,
        ]
        .into_iter()
        .find(|i| *i as u8 == b)
    }
}

const VERSION: u8 = 0;
/// Kafka Streams hashes left values with Murmur3 x64 128 and this seed.
const HASH_SEED: u32 = 104_729;

type Hash = [u8; 16];

fn hash_of(bytes: Option<&[u8]>) -> Option<Hash> {
    let bytes = bytes?;
    let mut out = [0u8; 16];
    murmur3::murmur3_x64_128(&mut Cursor::new(bytes), HASH_SEED, &mut out);
    Some(out)
}

/// Serialized bytes travelling as a key of the internal topics: already in their final form,
/// so they partition exactly as the tables' own keys do.
#[derive(Debug, Clone)]
struct RawKey(Vec<u8>);

#[derive(Debug, Clone)]
struct Subscription {
    instruction: Instruction,
    hash: Option<Hash>,
    primary_key: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Response {
    hash: Option<Hash>,
    value: Option<Vec<u8>>,
}

fn put_hash(out: &mut Vec<u8>, hash: Option<Hash>) {
    match hash {
        Some(h) => {
            out.push(1);
            out.extend_from_slice(&h);
        }
        None => out.push(0),
    }
}

/// Why an internal record of the join's topics cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The value hash is missing, has an invalid presence byte, or is shorter than 16 bytes.
    #[error("a truncated value hash")]
    TruncatedHash,
    /// A subscription record shorter than a version and an instruction, or of another version.
    #[error("not a subscription of this Freshet version")]
    NotASubscription,
    /// A subscription with an instruction byte this version does not know.
    #[error("unknown subscription instruction {0}")]
    UnknownInstruction(u8),
    /// A response record that is empty or of another version.
    #[error("not a subscription response of this Freshet version")]
    NotAResponse,
    /// A response missing its value's presence byte, or with an invalid one.
    #[error("a truncated subscription response")]
    TruncatedResponse,
}

fn take_hash(bytes: &[u8]) -> Result<(Option<Hash>, &[u8]), CodecError> {
    match bytes.split_first() {
        Some((0, rest)) => Ok((None, rest)),
        Some((1, rest)) if rest.len() >= 16 => {
            let mut h = [0u8; 16];
            h.copy_from_slice(&rest[..16]);
            Ok((Some(h), &rest[16..]))
        }
        _ => Err(CodecError::TruncatedHash),
    }
}

/// `version, instruction, hash, primary key`.
fn encode_subscription(s: &Subscription) -> Vec<u8> {
    let mut out = vec![VERSION, s.instruction as u8];
    put_hash(&mut out, s.hash);
    out.extend_from_slice(&s.primary_key);
    out
}

fn decode_subscription(bytes: &[u8]) -> Result<Subscription, CodecError> {
    let [VERSION, instruction, rest @ ..] = bytes else {
        return Err(CodecError::NotASubscription);
    };
    let instruction =
        Instruction::from_byte(*instruction).ok_or(CodecError::UnknownInstruction(*instruction))?;
    let (hash, primary_key) = take_hash(rest)?;
    Ok(Subscription {
        instruction,
        hash,
        primary_key: primary_key.to_vec(),
    })
}

/// `version, hash, has value, value`.
fn encode_response(r: &Response) -> Vec<u8> {
    let mut out = vec![VERSION];
    put_hash(&mut out, r.hash);
    match &r.value {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(v);
        }
        None => out.push(0),
    }
    out
}

fn decode_response(bytes: &[u8]) -> Result<Response, CodecError> {
    let [VERSION, rest @ ..] = bytes else {
        return Err(CodecError::NotAResponse);
    };
    let (hash, rest) = take_hash(rest)?;
    let value = match rest.split_first() {
        Some((0, _)) => None,
        Some((1, v)) => Some(v.to_vec()),
        _ => return Err(CodecError::TruncatedResponse),
    };
    Ok(Response { hash, value })
}

pub(crate) fn raw_key_serde() -> (Serializer, Deserializer) {
    let ser: Serializer = Arc::new(|d| Ok(Some(typed::<RawKey>(d, "an internal key")?.0.clone())));
    let de: Deserializer = Arc::new(|b| Ok(datum(RawKey(b.unwrap_or_default().to_vec()))));
    (ser, de)
}

pub(crate) fn subscription_serde() -> (Serializer, Deserializer) {
    let ser: Serializer = Arc::new(|d| {
        Ok(Some(encode_subscription(typed::<Subscription>(
            d,
            "a subscription",
        )?)))
    });
    // Deserializers report text (the public `Deserializer` type); the codec's error becomes it
    // at this boundary.
    let de: Deserializer = Arc::new(|b| {
        decode_subscription(b.ok_or("a subscription without a value")?)
            .map(datum)
            .map_err(|e| e.to_string())
    });
    (ser, de)
}

pub(crate) fn response_serde() -> (Serializer, Deserializer) {
    let ser: Serializer =
        Arc::new(|d| Ok(Some(encode_response(typed::<Response>(d, "a response")?))));
    let de: Deserializer = Arc::new(|b| {
        decode_response(b.ok_or("a response without a value")?)
            .map(datum)
            .map_err(|e| e.to_string())
    });
    (ser, de)
}

/// The subscription store's key: `foreign key length (4 bytes), foreign key, primary key`
/// (Kafka Streams' `CombinedKey` layout), so one right row's subscribers are adjacent.
fn combined_key(foreign: &[u8], primary: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + foreign.len() + primary.len());
    out.extend_from_slice(&(foreign.len() as u32).to_be_bytes());
    out.extend_from_slice(foreign);
    out.extend_from_slice(primary);
    out
}

/// The scan bounds of every combined key starting with `foreign`.
fn subscribers_range(foreign: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let from = combined_key(foreign, &[]);
    let mut to = from.clone();
    // The smallest key after every key with this prefix: bump the last byte below 0xff.
    while let Some(last) = to.pop() {
        if last < u8::MAX {
            to.push(last + 1);
            break;
        }
    }
    (from, to)
}

/// Left table changes → subscriptions (Kafka Streams' `SubscriptionSendProcessorSupplier`).
pub(crate) struct SubscriptionSendNode {
    pub(crate) extractor: ForeignKeyExtractor,
    pub(crate) left_key: ErasedSerde,
    pub(crate) left_value: ErasedSerde,
    pub(crate) right_key: ErasedSerde,
    pub(crate) joiner: Joiner,
    pub(crate) left_join: bool,
    pub(crate) sink: String,
    pub(crate) output: String,
}

impl SubscriptionSendNode {
    fn foreign_key(
        &self,
        info: &RecordInfo,
        key: &Datum,
        value: Option<&Datum>,
    ) -> Result<Option<Vec<u8>>, ProcessError> {
        match value {
            Some(v) => key_bytes(&self.right_key, &(self.extractor)(info, key, v)?),
            None => Ok(None),
        }
    }

    fn send(
        ctx: &mut NodeContext,
        record: &ErasedRecord,
        sink: &str,
        foreign: Vec<u8>,
        subscription: Subscription,
    ) {
        ctx.forward(
            ErasedRecord {
                key: datum(RawKey(foreign)),
                value: datum(subscription),
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            },
            Some(sink),
        );
    }
}

impl Node for SubscriptionSendNode {
    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let change = typed::<Change>(&record.value, "table update")?;
        let Some(primary) = key_bytes(&self.left_key, &record.key)? else {
            return Ok(());
        };
        let info = info_of(ctx, record);
        let new_fk = self.foreign_key(&info, &record.key, change.new.as_ref())?;
        let old_fk = self.foreign_key(&info, &record.key, change.old.as_ref())?;
        let new_bytes = match &change.new {
            Some(v) => self.left_value.bytes(v)?,
            None => None,
        };
        let hash = hash_of(new_bytes.as_deref());
        let subscription = |instruction| Subscription {
            instruction,
            hash,
            primary_key: primary.clone(),
        };
        match (&change.new, new_fk) {
            // The row is gone: its result goes too.
            (None, _) => {
                if let Some(old) = old_fk {
                    let s = subscription(Instruction::DeleteAndPropagate);
                    Self::send(ctx, record, &self.sink, old, s);
                }
            }
            // No foreign key: nothing to join; a left join emits the row alone, an inner join
            // drops an earlier result.
            (Some(value), None) => {
                if let Some(old) = old_fk {
                    let s = subscription(Instruction::DeleteNoPropagate);
                    Self::send(ctx, record, &self.sink, old, s);
                }
                let info = info_of(ctx, record);
                let result = if self.left_join {
                    Some((self.joiner)(&info, &record.key, value, None)?)
                } else {
                    None
                };
                ctx.forward(
                    ErasedRecord {
                        key: record.key.clone(),
                        value: datum(Change {
                            new: result,
                            old: None,
                        }),
                        timestamp: record.timestamp,
                        headers: record.headers.clone(),
                    },
                    Some(&self.output),
                );
            }
            (Some(_), Some(new)) => {
                let moved = old_fk.as_ref().is_some_and(|old| *old != new);
                if let (true, Some(old)) = (moved, old_fk) {
                    let s = subscription(Instruction::DeleteNoPropagate);
                    Self::send(ctx, record, &self.sink, old, s);
                }
                // An inner join whose row kept its foreign key had no result to replace when
                // the right row is missing; every other case must answer.
                let instruction = if self.left_join || moved || change.old.is_none() {
                    Instruction::PropagateNullIfMissing
                } else {
                    Instruction::PropagateOnlyIfPresent
                };
                Self::send(ctx, record, &self.sink, new, subscription(instruction));
            }
        }
        Ok(())
    }
}

fn respond(
    ctx: &mut NodeContext,
    record: &ErasedRecord,
    sink: &str,
    primary: Vec<u8>,
    response: Response,
) {
    ctx.forward(
        ErasedRecord {
            key: datum(RawKey(primary)),
            value: datum(response),
            timestamp: record.timestamp,
            headers: record.headers.clone(),
        },
        Some(sink),
    );
}

/// Subscriptions → the subscription store and a first answer (Kafka Streams'
/// `SubscriptionReceiveProcessorSupplier` and `SubscriptionJoinProcessorSupplier`).
pub(crate) struct SubscriptionReceiveNode {
    pub(crate) subscriptions_name: String,
    pub(crate) subscriptions: Option<StoreId>,
    pub(crate) right_store_name: String,
    pub(crate) right_store: Option<StoreId>,
    pub(crate) sink: String,
}

impl Node for SubscriptionReceiveNode {
    fn init(&mut self, ctx: &mut NodeContext) {
        self.subscriptions = resolve_store(ctx, &self.subscriptions_name);
        self.right_store = resolve_store(ctx, &self.right_store_name);
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let subscriptions = require_store(self.subscriptions, &self.subscriptions_name)?;
        let right = require_store(self.right_store, &self.right_store_name)?;
        let foreign = &typed::<RawKey>(&record.key, "a foreign key")?.0;
        let s = typed::<Subscription>(&record.value, "a subscription")?;
        let key = combined_key(foreign, &s.primary_key);
        let stored = match s.instruction {
            Instruction::DeleteNoPropagate | Instruction::DeleteAndPropagate => None,
            _ => Some(encode_subscription(s)),
        };
        ctx.stores
            .put(subscriptions, key, stored.as_deref(), record.timestamp)
            .map_err(store_error)?;
        let row = ctx
            .stores
            .get(right, foreign)
            .map_err(store_error)?
            .map(|t| t.value);
        let response = match (s.instruction, row) {
            (Instruction::DeleteNoPropagate, _) | (Instruction::PropagateOnlyIfPresent, None) => {
                return Ok(());
            }
            (Instruction::DeleteAndPropagate, _) => Response {
                hash: None,
                value: None,
            },
            (_, value) => Response {
                hash: s.hash,
                value,
            },
        };
        respond(ctx, record, &self.sink, s.primary_key.clone(), response);
        Ok(())
    }
}

/// Right table changes → an answer to every subscriber (Kafka Streams'
/// `ForeignTableJoinProcessorSupplier`).
pub(crate) struct ForeignTableChangeNode {
    pub(crate) subscriptions_name: String,
    pub(crate) subscriptions: Option<StoreId>,
    pub(crate) right_key: ErasedSerde,
    pub(crate) right_value: ErasedSerde,
    pub(crate) sink: String,
}

impl Node for ForeignTableChangeNode {
    fn init(&mut self, ctx: &mut NodeContext) {
        self.subscriptions = resolve_store(ctx, &self.subscriptions_name);
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let subscriptions = require_store(self.subscriptions, &self.subscriptions_name)?;
        let change = typed::<Change>(&record.value, "table update")?;
        let Some(foreign) = key_bytes(&self.right_key, &record.key)? else {
            return Ok(());
        };
        let value = match &change.new {
            Some(v) => self.right_value.bytes(v)?,
            None => None,
        };
        let (from, to) = subscribers_range(&foreign);
        let subscribers = ctx
            .stores
            .range(subscriptions, &from, &to)
            .map_err(store_error)?;
        for (_, stored) in subscribers {
            let s =
                decode_subscription(&stored.value).map_err(|e| ProcessError::new(e.to_string()))?;
            let response = Response {
                hash: s.hash,
                value: value.clone(),
            };
            respond(ctx, record, &self.sink, s.primary_key, response);
        }
        Ok(())
    }
}

/// Answers → join results, unless the left row changed since it asked (Kafka Streams'
/// `ResponseJoinProcessorSupplier`).
pub(crate) struct ResponseJoinNode {
    pub(crate) left_store_name: String,
    pub(crate) left_store: Option<StoreId>,
    pub(crate) left_key: ErasedSerde,
    pub(crate) left_value: ErasedSerde,
    pub(crate) right_value: ErasedSerde,
    pub(crate) joiner: Joiner,
    pub(crate) left_join: bool,
}

impl Node for ResponseJoinNode {
    fn init(&mut self, ctx: &mut NodeContext) {
        self.left_store = resolve_store(ctx, &self.left_store_name);
    }

    fn process(
        &mut self,
        ctx: &mut NodeContext,
        record: &ErasedRecord,
    ) -> Result<(), ProcessError> {
        let left_store = require_store(self.left_store, &self.left_store_name)?;
        let primary = &typed::<RawKey>(&record.key, "a primary key")?.0;
        let response = typed::<Response>(&record.value, "a subscription response")?;
        let current = ctx
            .stores
            .get(left_store, primary)
            .map_err(store_error)?
            .map(|t| t.value);
        if hash_of(current.as_deref()) != response.hash {
            return Ok(());
        }
        let key = self.left_key.read(primary, "a join key")?;
        let result = match current {
            None => None,
            Some(left) => {
                let left = self.left_value.read(&left, "a table row")?;
                let right = response
                    .value
                    .as_deref()
                    .map(|r| self.right_value.read(r, "a table row"))
                    .transpose()?;
                if right.is_none() && !self.left_join {
                    None
                } else {
                    let info = info_of(ctx, record);
                    Some((self.joiner)(&info, &key, &left, right.as_ref())?)
                }
            }
        };
        let change = Change {
            new: result,
            old: None,
        };
        forward_change(ctx, key, change, record.timestamp, record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_and_responses_round_trip() {
        let s = Subscription {
            instruction: Instruction::PropagateOnlyIfPresent,
            hash: hash_of(Some(b"value")),
            primary_key: b"pk".to_vec(),
        };
        let back = decode_subscription(&encode_subscription(&s)).expect("decodes");
        assert_eq!(back.instruction, s.instruction);
        assert_eq!(back.hash, s.hash);
        assert_eq!(back.primary_key, s.primary_key);
        for r in [
            Response {
                hash: None,
                value: None,
            },
            Response {
                hash: hash_of(Some(b"")),
                value: Some(b"right".to_vec()),
            },
        ] {
            let back = decode_response(&encode_response(&r)).expect("decodes");
            assert_eq!((back.hash, back.value), (r.hash, r.value));
        }
        assert!(decode_subscription(&[9, 0, 0]).is_err());
        assert!(decode_response(&[0, 1, 2]).is_err());
    }

    #[test]
    fn subscribers_of_a_foreign_key_are_one_range() {
        let (from, to) = subscribers_range(b"ab");
        for pk in [&b""[..], b"x", b"\xff\xff"] {
            let k = combined_key(b"ab", pk);
            assert!(from <= k && k < to, "{k:?}");
        }
        for (fk, pk) in [(&b"a"[..], &b"bz"[..]), (b"abc", b""), (b"ac", b"")] {
            let k = combined_key(fk, pk);
            assert!(!(from <= k && k < to), "{k:?}");
        }
        assert_ne!(hash_of(Some(b"a")), hash_of(Some(b"b")));
        assert_eq!(hash_of(None), None);
    }
}
