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
use crate::state::StoreId;
use crate::topology::{Deserializer, NodeFactory, Serializer, StoreDef, TopicName};

use super::RecordInfo;
use super::join::{JoinError, Joiner};
use super::ktable::KTable;
use super::stateful::{
    Change, ErasedSerde, forward_change, info_of, key_bytes, require_store, resolve_store,
    store_error,
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

fn take_hash(bytes: &[u8]) -> Result<(Option<Hash>, &[u8]), String> {
    match bytes.split_first() {
        Some((0, rest)) => Ok((None, rest)),
        Some((1, rest)) if rest.len() >= 16 => {
            let mut h = [0u8; 16];
            h.copy_from_slice(&rest[..16]);
            Ok((Some(h), &rest[16..]))
        }
        _ => Err("a truncated value hash".into()),
    }
}

/// `version, instruction, hash, primary key`.
fn encode_subscription(s: &Subscription) -> Vec<u8> {
    let mut out = vec![VERSION, s.instruction as u8];
    put_hash(&mut out, s.hash);
    out.extend_from_slice(&s.primary_key);
    out
}

fn decode_subscription(bytes: &[u8]) -> Result<Subscription, String> {
    let [VERSION, instruction, rest @ ..] = bytes else {
        return Err("not a subscription of this Freshet version".into());
    };
    let instruction = Instruction::from_byte(*instruction)
        .ok_or_else(|| format!("unknown subscription instruction {instruction}"))?;
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

fn decode_response(bytes: &[u8]) -> Result<Response, String> {
    let [VERSION, rest @ ..] = bytes else {
        return Err("not a subscription response of this Freshet version".into());
    };
    let (hash, rest) = take_hash(rest)?;
    let value = match rest.split_first() {
        Some((0, _)) => None,
        Some((1, v)) => Some(v.to_vec()),
        _ => return Err("a truncated subscription response".into()),
    };
    Ok(Response { hash, value })
}

fn raw_key_serde() -> (Serializer, Deserializer) {
    let ser: Serializer = Arc::new(|d| Ok(Some(typed::<RawKey>(d, "an internal key")?.0.clone())));
    let de: Deserializer = Arc::new(|b| Ok(datum(RawKey(b.unwrap_or_default().to_vec()))));
    (ser, de)
}

fn subscription_serde() -> (Serializer, Deserializer) {
    let ser: Serializer = Arc::new(|d| {
        Ok(Some(encode_subscription(typed::<Subscription>(
            d,
            "a subscription",
        )?)))
    });
    let de: Deserializer =
        Arc::new(|b| decode_subscription(b.ok_or("a subscription without a value")?).map(datum));
    (ser, de)
}

fn response_serde() -> (Serializer, Deserializer) {
    let ser: Serializer =
        Arc::new(|d| Ok(Some(encode_response(typed::<Response>(d, "a response")?))));
    let de: Deserializer =
        Arc::new(|b| decode_response(b.ok_or("a response without a value")?).map(datum));
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
struct SubscriptionSendNode {
    extractor: ForeignKeyExtractor,
    left_key: ErasedSerde,
    left_value: ErasedSerde,
    right_key: ErasedSerde,
    joiner: Joiner,
    left_join: bool,
    sink: String,
    output: String,
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
struct SubscriptionReceiveNode {
    subscriptions_name: String,
    subscriptions: Option<StoreId>,
    right_store_name: String,
    right_store: Option<StoreId>,
    sink: String,
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
struct ForeignTableChangeNode {
    subscriptions_name: String,
    subscriptions: Option<StoreId>,
    right_key: ErasedSerde,
    right_value: ErasedSerde,
    sink: String,
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
            let s = decode_subscription(&stored.value).map_err(ProcessError::new)?;
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
struct ResponseJoinNode {
    left_store_name: String,
    left_store: Option<StoreId>,
    left_key: ErasedSerde,
    left_value: ErasedSerde,
    right_value: ErasedSerde,
    joiner: Joiner,
    left_join: bool,
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

impl<K, V> KTable<K, V> {
    /// Joins each row with the row of `other` whose key `extractor` picks from it (Kafka
    /// Streams' foreign-key `KTable.join` / `leftJoin`); `name` names the internal topics and
    /// the subscription store. Both tables must be materialized.
    pub fn join_foreign_key_erased<KO, VO, VR>(
        &self,
        other: &KTable<KO, VO>,
        extractor: ForeignKeyExtractor,
        joiner: Joiner,
        left_join: bool,
        name: Option<&str>,
    ) -> Result<KTable<K, VR>, JoinError> {
        let (Some(left_store), Some(right_store)) = (self.store_name(), other.store_name()) else {
            return Err(JoinError::NotMaterialized);
        };
        let ((Some(left_key), Some(left_value)), (Some(right_key), Some(right_value))) =
            (self.serdes(), other.serdes())
        else {
            return Err(JoinError::NoSerdes);
        };
        let builder = self.builder().clone();
        let base = name.map_or_else(|| builder.generated_name("KTABLE-FK-JOIN-"), str::to_owned);
        let registration = format!("{base}-subscription-registration");
        let response = format!("{base}-subscription-response");
        let subscriptions = format!("{base}-subscription-store");
        builder.add_store(StoreDef::key_value(subscriptions.clone()));
        let output = format!("{base}-output");
        let (raw_ser, raw_de) = raw_key_serde();
        let (sub_ser, sub_de) = subscription_serde();
        let (resp_ser, resp_de) = response_serde();

        // Left side: subscribe.
        let sink = format!("{registration}-sink");
        let send: NodeFactory = {
            let (extractor, joiner, sink, output) = (
                extractor.clone(),
                joiner.clone(),
                sink.clone(),
                output.clone(),
            );
            let (left_key, left_value, right_key) =
                (left_key.clone(), left_value.clone(), right_key.clone());
            Arc::new(move || {
                Box::new(SubscriptionSendNode {
                    extractor: extractor.clone(),
                    left_key: left_key.clone(),
                    left_value: left_value.clone(),
                    right_key: right_key.clone(),
                    joiner: joiner.clone(),
                    left_join,
                    sink: sink.clone(),
                    output: output.clone(),
                }) as Box<dyn Node>
            })
        };
        let send = builder.add_processor(
            format!("{registration}-send"),
            &[self.node_index()],
            Vec::new(),
            send,
        );
        builder.internal_topic_sink(
            sink,
            TopicName::Internal(format!("{registration}-topic")),
            None,
            &[send],
            raw_ser.clone(),
            sub_ser,
        );

        // Right side: keep subscriptions, answer them, and answer again on every change.
        let registrations = builder.source::<(), ()>(
            vec![TopicName::Internal(format!("{registration}-topic"))],
            raw_de.clone(),
            sub_de,
            Some(format!("{registration}-source")),
        );
        let response_sink = format!("{response}-sink");
        let receive: NodeFactory = {
            let (subs, right, sink) = (
                subscriptions.clone(),
                right_store.to_owned(),
                response_sink.clone(),
            );
            Arc::new(move || {
                Box::new(SubscriptionReceiveNode {
                    subscriptions_name: subs.clone(),
                    subscriptions: None,
                    right_store_name: right.clone(),
                    right_store: None,
                    sink: sink.clone(),
                }) as Box<dyn Node>
            })
        };
        let receive = builder.add_processor(
            format!("{registration}-receive"),
            &[registrations.node()],
            vec![subscriptions.clone(), right_store.to_owned()],
            receive,
        );
        let change: NodeFactory = {
            let (subs, sink) = (subscriptions.clone(), response_sink.clone());
            let (right_key, right_value) = (right_key.clone(), right_value.clone());
            Arc::new(move || {
                Box::new(ForeignTableChangeNode {
                    subscriptions_name: subs.clone(),
                    subscriptions: None,
                    right_key: right_key.clone(),
                    right_value: right_value.clone(),
                    sink: sink.clone(),
                }) as Box<dyn Node>
            })
        };
        let change = builder.add_processor(
            format!("{base}-foreign-table-change"),
            &[other.node_index()],
            vec![subscriptions.clone()],
            change,
        );
        let response_topic = TopicName::Internal(format!("{response}-topic"));
        builder.internal_topic_sink(
            response_sink,
            response_topic.clone(),
            None,
            &[receive, change],
            raw_ser.clone(),
            resp_ser,
        );

        // Left side again: results.
        let responses = builder.source::<(), ()>(
            vec![response_topic],
            raw_de,
            resp_de,
            Some(format!("{response}-source")),
        );
        let join: NodeFactory = {
            let left_store = left_store.to_owned();
            let (left_key, left_value, right_value, joiner) = (
                left_key.clone(),
                left_value.clone(),
                right_value.clone(),
                joiner.clone(),
            );
            Arc::new(move || {
                Box::new(ResponseJoinNode {
                    left_store_name: left_store.clone(),
                    left_store: None,
                    left_key: left_key.clone(),
                    left_value: left_value.clone(),
                    right_value: right_value.clone(),
                    joiner: joiner.clone(),
                    left_join,
                }) as Box<dyn Node>
            })
        };
        let join = builder.add_processor(
            format!("{response}-join"),
            &[responses.node()],
            vec![left_store.to_owned()],
            join,
        );
        let pass: NodeFactory =
            Arc::new(|| Box::new(super::OpNode(super::Op::PassThrough)) as Box<dyn Node>);
        let node = builder.add_processor(output, &[join, send], Vec::new(), pass);
        Ok(KTable::at(&builder, node, Some(left_key), None, None, None))
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
