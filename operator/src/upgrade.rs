//! Upgrades that say what they change. The StatefulSet records the state layout it runs with
//! (`freshet_spec::Plan::state_items`: the processing guarantee, each internal topic with its
//! partitions, each store with its kind, serdes, window size and grace) and its digest, the
//! state signature. A new topology with the same signature rolls out; one with another is held,
//! the running version kept, and the `Degraded` condition (and its Event) names each item that
//! differs and the two ways on: reset and apply (the [`RESET`](crate::reset::RESET) annotation),
//! or a new `applicationId`. Accepting the signature ([`ACCEPT_STATE_CHANGE`]) lets it roll out
//! with the old state, for who knows the new version reads it.

use std::collections::BTreeMap;

use freshet_crds::StreamsApp;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;

use crate::kafka::Plan;
use crate::render;

/// Annotation on the StreamsApp accepting a topology change of the state: its value must be the
/// new state signature, which the Degraded condition's message gives.
pub const ACCEPT_STATE_CHANGE: &str = "freshet.dev/accept-state-change";

/// Why a rollout is held back: the running StatefulSet was made for another state layout, and
/// the change was not accepted. `None` when it may go ahead.
pub fn held_change(
    app: &StreamsApp,
    running: &StatefulSet,
    plan: &Plan,
    signature: &str,
) -> Option<String> {
    let annotations = running.metadata.annotations.clone().unwrap_or_default();
    let old = annotations.get(render::STATE_SIGNATURE)?;
    if old == signature
        || app
            .annotations()
            .get(ACCEPT_STATE_CHANGE)
            .map(String::as_str)
            == Some(signature)
        // Reset and apply: the state this version would misread is gone.
        || crate::reset::done_signature(app) == Some(signature)
    {
        return None;
    }
    let differences = match annotations.get(render::STATE_LAYOUT) {
        Some(layout) => differences(&parse(layout), &plan.state_items()),
        None => {
            // Made by an operator that recorded topics and stores only: compared as it would.
            if *old == crate::digest(&plan.legacy_state_layout()) {
                return None;
            }
            let list = |key: &str| -> Vec<String> {
                annotations
                    .get(key)
                    .map(|v| {
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let legacy = |what: &str, old: Vec<String>, new: &[String]| -> Vec<String> {
                let added = new.iter().filter(|n| !old.contains(n));
                let removed = old.iter().filter(|o| !new.contains(o));
                added
                    .map(|n| format!("{what} {n}: added"))
                    .chain(removed.map(|o| format!("{what} {o}: removed")))
                    .collect()
            };
            let mut d = legacy("topic", list(render::STATE_TOPICS), &plan.internal_topics);
            d.extend(legacy("store", list(render::STATE_STORES), &plan.stores));
            d
        }
    };
    let name = app.name_any();
    Some(format!(
        "the new topology changes the application's state ({}), so it is not rolled out: the running version is kept, since the new one would misread the old state. Two ways on: reset and apply (kubectl annotate streamsapp {name} {}=<any new token>: the instances stop, the input offsets go to the start, the internal topics and the local state are deleted, and the new version starts), or a new applicationId (a new StreamsApp, which starts with no state). If the new version does read the old state: kubectl annotate streamsapp {name} {ACCEPT_STATE_CHANGE}={signature} --overwrite",
        differences.join("; "),
        crate::reset::RESET,
    ))
}

/// A recorded layout's lines as items: `<item>: <what>`.
fn parse(layout: &str) -> BTreeMap<String, String> {
    layout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(item, what)| (item.to_owned(), what.to_owned()))
        .collect()
}

/// Each item that differs between the running layout and the new one, in words.
pub fn differences(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (item, was) in old {
        match new.get(item) {
            None => out.push(format!("{item}: removed")),
            Some(now) if now != was => out.push(format!("{item}: {was} -> {now}")),
            Some(_) => {}
        }
    }
    for (item, now) in new {
        if !old.contains_key(item) {
            out.push(format!("{item}: added ({now})"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::StateSignature as _;

    fn plan(topology: &str, config: &str) -> Plan {
        let spec: freshet_crds::StreamsAppSpec = serde_yaml_ng::from_str(&format!(
            "applicationId: app\nbootstrapServers: kafka:9092\ndefaultKeySerde: string\ndefaultValueSerde: string\n{config}\ntopology:\n{topology}"
        ))
        .expect("spec");
        freshet_spec::plan(&spec).expect("plan")
    }

    /// The differences between a count's topology and the one `steps` and `config` make.
    fn diff(steps: &str, config: &str) -> Vec<String> {
        let base = plan(&topology(COUNT), "");
        let changed = plan(&topology(steps), config);
        differences(&base.state_items(), &changed.state_items())
    }

    fn topology(steps: &str) -> String {
        format!(
            "  streams:\n    - {{ name: events, topic: in }}\n  pipelines:\n    - name: p\n      from: events\n      steps:\n{steps}\n        - toStream: {{}}\n        - to: {{ topic: out }}"
        )
    }

    const COUNT: &str = "        - groupByKey: {}\n        - count: { store: counts }";

    #[test]
    fn a_stateless_config_or_store_type_change_keeps_the_signature() {
        let base = plan(&topology(COUNT), "");
        let filtered = plan(
            &topology(
                "        - filter: \"value != ''\"\n        - groupByKey: {}\n        - count: { store: counts, inMemory: true }",
            ),
            "numStreamThreads: 2\nconfig:\n  commit.interval.ms: \"500\"",
        );
        assert_eq!(base.state_layout(), filtered.state_layout());
    }

    #[test]
    fn each_kind_of_state_change_is_named() {
        let d = diff(
            "        - groupByKey: {}\n        - count: { store: tallies }",
            "",
        );
        assert!(d.contains(&"store counts: removed".to_owned()), "{d:?}");
        assert!(
            d.iter().any(|l| l.starts_with("store tallies: added")),
            "{d:?}"
        );
        assert!(
            d.contains(&"topic app-counts-changelog: removed".to_owned()),
            "{d:?}"
        );
        let d = diff(
            "        - groupByKey: { keySerde: long }\n        - count: { store: counts }",
            "",
        );
        assert!(
            d.iter()
                .any(|l| l.starts_with("store counts: key-value key=string")
                    && l.contains("-> key-value key=long")),
            "key serde: {d:?}"
        );
        let d = diff(
            "        - groupByKey: {}\n        - windowedBy: { tumbling: 5m }\n        - count: { store: counts }",
            "",
        );
        assert!(
            d.iter().any(|l| l.starts_with("store counts: key-value")
                && l.contains("-> window")
                && l.contains("size=300000ms")),
            "kind: {d:?}"
        );
        let five = plan(
            &topology(
                "        - groupByKey: {}\n        - windowedBy: { tumbling: 5m }\n        - count: { store: counts }",
            ),
            "",
        );
        for (steps, what) in [
            (
                "        - groupByKey: {}\n        - windowedBy: { tumbling: 10m }\n        - count: { store: counts }",
                "size=600000ms",
            ),
            (
                "        - groupByKey: {}\n        - windowedBy: { tumbling: 5m, grace: 1m }\n        - count: { store: counts }",
                "grace=60000ms",
            ),
        ] {
            let d = differences(
                &five.state_items(),
                &plan(&topology(steps), "").state_items(),
            );
            assert!(
                d.len() == 1 && d[0].starts_with("store counts: window") && d[0].contains(what),
                "{what}: {d:?}"
            );
        }
        let reduce = |serde: &str| {
            plan(
                &topology(&format!(
                    "        - groupByKey: {{ valueSerde: {serde} }}\n        - reduce: \"agg + value\""
                )),
                "",
            )
            .state_items()
        };
        let d = differences(&reduce("string"), &reduce("json"));
        assert!(
            d.len() == 1
                && d[0].contains("value=string")
                && d[0].contains("-> key-value key=string value=json"),
            "value serde: {d:?}"
        );
        let repartition = |n: i32| {
            plan(
                &topology(&format!(
                    "        - repartition: {{ name: r, partitions: {n} }}\n{COUNT}"
                )),
                "",
            )
            .state_items()
        };
        assert_eq!(
            differences(&repartition(4), &repartition(8)),
            vec![
                "topic app-r-repartition: repartition, partitions 4 -> repartition, partitions 8"
                    .to_owned()
            ],
            "partition count"
        );
        let d = diff(COUNT, "processingGuarantee: exactly_once_v2");
        assert_eq!(
            d,
            vec!["processing.guarantee: at_least_once -> exactly_once_v2".to_owned()]
        );
        let d = diff(
            "        - groupBy: \"key\"\n        - count: { store: counts }",
            "",
        );
        assert!(
            d.iter()
                .any(|l| l.starts_with("topic app-counts-repartition: added")),
            "repartition topic: {d:?}"
        );
    }

    /// A StatefulSet an operator before the fuller layout made: the legacy signature and lists.
    fn legacy_set(plan: &Plan) -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "app", "annotations": {
                render::STATE_SIGNATURE: crate::digest(&plan.legacy_state_layout()),
                render::STATE_TOPICS: plan.internal_topics.join(","),
                render::STATE_STORES: plan.stores.join(","),
            }}
        }))
        .expect("a StatefulSet")
    }

    fn app() -> StreamsApp {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "freshet.dev/v1alpha1", "kind": "StreamsApp",
            "metadata": { "name": "app" },
            "spec": { "applicationId": "app", "bootstrapServers": "kafka:9092",
                      "topology": { "streams": [], "pipelines": [] } }
        }))
        .expect("a StreamsApp")
    }

    #[test]
    fn a_stateful_set_of_an_earlier_operator_is_compared_as_it_was() {
        let old = plan(&topology(COUNT), "");
        let set = legacy_set(&old);
        // The same topology under the new operator: not held, though the signature changed.
        let same = plan(&topology(COUNT), "");
        assert_ne!(
            same.state_signature(),
            set.annotations()[render::STATE_SIGNATURE]
        );
        assert_eq!(
            held_change(&app(), &set, &same, &same.state_signature()),
            None
        );
        // A store renamed: held, named as that operator named it.
        let renamed = plan(
            &topology("        - groupByKey: {}\n        - count: { store: tallies }"),
            "",
        );
        let held = held_change(&app(), &set, &renamed, &renamed.state_signature()).expect("held");
        assert!(held.contains("store tallies: added"), "{held}");
        assert!(held.contains("store counts: removed"), "{held}");
    }
}
