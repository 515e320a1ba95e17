//! Foreign-key table-table joins (Kafka Streams' `KTable.join(other, foreignKeyExtractor, ...)`,
//! KIP-213): the builder that wires the subscription and response nodes of
//! [`crate::processor::nodes::fk_join`] through their two internal topics.

use std::sync::Arc;

use crate::processor::Node;
use crate::processor::nodes::fk_join::{
    ForeignTableChangeNode, ResponseJoinNode, SubscriptionReceiveNode, SubscriptionSendNode,
    raw_key_serde, response_serde, subscription_serde,
};
use crate::processor::nodes::{ForeignKeyExtractor, Joiner};
use crate::topology::{NodeFactory, StoreDef, TopicName};

use super::join::JoinError;
use super::ktable::KTable;

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
