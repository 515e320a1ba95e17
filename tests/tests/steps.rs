//! Every declarative step, run by `freshet-engine run` from one manifest against the real broker,
//! with each output checked byte for byte.
use std::time::Duration;

use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{KeyValue, consume, create_topics, partition_count, produce_each_at};
use freshet_tests::{kafka_bootstrap, unique_name};

const INPUT: &[(&str, &str)] = &[
    (
        "k1",
        r#"{"id":1,"amount":150,"region":"eu","items":["a","b"]}"#,
    ),
    ("k2", r#"{"id":2,"amount":50,"region":"us","items":["c"]}"#),
    ("k3", r#"{"id":3,"amount":100.5,"region":"eu","items":[]}"#),
];

/// Pipeline steps after `from`, output topic suffix (`|` sink serde), expected (key, value bytes)
/// in order.
type Case = (&'static str, &'static str, Vec<(&'static str, Vec<u8>)>);

fn cases() -> Vec<Case> {
    let s = |v: &str| v.as_bytes().to_vec();
    let long = |v: i64| v.to_be_bytes().to_vec();
    vec![
        (
            "from: input\n      steps:\n        - filter: \"value.amount >= 100\"",
            "filter",
            vec![
                (
                    "k1",
                    s(r#"{"amount":150,"id":1,"items":["a","b"],"region":"eu"}"#),
                ),
                (
                    "k3",
                    s(r#"{"amount":100.5,"id":3,"items":[],"region":"eu"}"#),
                ),
            ],
        ),
        (
            "from: input\n      steps:\n        - filterNot: \"value.amount >= 100\"",
            "filternot",
            vec![(
                "k2",
                s(r#"{"amount":50,"id":2,"items":["c"],"region":"us"}"#),
            )],
        ),
        (
            "from: input\n      steps:\n        - map: \"{'key': value.region, 'value': value.id * 2}\"",
            "map|valueSerde: long",
            vec![("eu", long(2)), ("us", long(4)), ("eu", long(6))],
        ),
        (
            "from: input\n      steps:\n        - mapValues: \"{'total': value.amount * 2, 'k': key}\"",
            "mapvalues",
            vec![
                ("k1", s(r#"{"k":"k1","total":300}"#)),
                ("k2", s(r#"{"k":"k2","total":100}"#)),
                ("k3", s(r#"{"k":"k3","total":201.0}"#)),
            ],
        ),
        (
            "from: input\n      steps:\n        - flatMap: \"value.items.map(i, {'key': i, 'value': value.id})\"",
            "flatmap",
            vec![("a", s("1")), ("b", s("1")), ("c", s("2"))],
        ),
        (
            "from: input\n      steps:\n        - flatMapValues: \"value.items\"",
            "flatmapvalues|valueSerde: string",
            vec![("k1", s("a")), ("k1", s("b")), ("k2", s("c"))],
        ),
        (
            "from: input\n      steps:\n        - selectKey: \"value.region + '-' + string(value.id)\"\n        - mapValues: \"value.id\"",
            "selectkey",
            vec![("eu-1", s("1")), ("us-2", s("2")), ("eu-3", s("3"))],
        ),
        (
            "from: input\n      steps:\n        - peek: \"'saw ' + key\"\n        - mapValues: \"value.id\"",
            "peek",
            vec![("k1", s("1")), ("k2", s("2")), ("k3", s("3"))],
        ),
        (
            "from: input\n      steps:\n        - mapValues: \"value.id\"\n        - merge: [extra]",
            "merge",
            vec![
                ("k1", s("1")),
                ("k2", s("2")),
                ("k3", s("3")),
                ("k9", s(r#"{"id":9}"#)),
            ],
        ),
        (
            "from: input\n      steps:\n        - selectKey: \"value.region\"\n        - repartition: { name: by-region, partitions: 2 }\n        - mapValues: \"value.id\"",
            "repartition",
            vec![("eu", s("1")), ("us", s("2")), ("eu", s("3"))],
        ),
        (
            "from: big-ones\n      steps:\n        - mapValues: \"value.id\"",
            "chained",
            vec![("k1", s("1")), ("k3", s("3"))],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_declarative_step_writes_the_expected_bytes() {
    let prefix = unique_name("steps");
    let (input, extra) = (format!("{prefix}-in"), format!("{prefix}-extra"));
    let cases = cases();
    let mut topics = vec![(input.clone(), 1), (extra.clone(), 1)];
    let mut pipelines = String::new();
    for (steps, out, _) in &cases {
        let (name, serde) = out.split_once('|').map_or((*out, ""), |(n, s)| (n, s));
        let topic = format!("{prefix}-{name}");
        topics.push((topic.clone(), 1));
        let serde = if serde.is_empty() {
            String::new()
        } else {
            format!(", {serde}")
        };
        pipelines.push_str(&format!(
            "    - name: p-{name}\n      {steps}\n        - to: {{ topic: {topic}{serde} }}\n"
        ));
    }
    // A pipeline without a sink, read by the `chained` case.
    pipelines.push_str("    - name: big-ones\n      from: input\n      steps:\n        - filter: \"value.amount >= 100\"\n");
    let refs: Vec<(&str, i32)> = topics.iter().map(|(t, p)| (t.as_str(), *p)).collect();
    create_topics(&refs).await;

    let records: Vec<KeyValue<'_>> = INPUT
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes())))
        .collect();
    produce_each_at(&input, &records, &[1_000, 1_001, 1_002]);
    produce_each_at(&extra, &[(Some(b"k9"), Some(br#"{"id":9}"#))], &[1_003]);

    let app = unique_name("steps-app");
    let manifest = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(
        manifest.path(),
        format!(
            "applicationId: {app}\nbootstrapServers: {}\ndefaultKeySerde: string\ndefaultValueSerde: json\nconfig:\n  commit.interval.ms: \"100\"\ntopology:\n  streams:\n    - {{ name: input, topic: {input} }}\n    - {{ name: extra, topic: {extra} }}\n  pipelines:\n{pipelines}",
            kafka_bootstrap()
        ),
    )
    .unwrap();
    let mut engine = EngineProcess::start(manifest.path(), &[], &[]);
    engine.wait_ready(Duration::from_secs(60));
    for (_, out, expected) in &cases {
        let name = out.split('|').next().unwrap();
        let topic = format!("{prefix}-{name}");
        let got = consume(
            &topic,
            expected.len(),
            Duration::from_secs(60),
            Duration::from_millis(300),
        );
        let got: Vec<(String, Vec<u8>)> = got
            .iter()
            .map(|r| (r.key_str().to_owned(), r.value.clone().unwrap_or_default()))
            .collect();
        let want: Vec<(String, Vec<u8>)> = expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        if name == "repartition" || name == "merge" {
            // Several partitions or inputs: compare as sets of records.
            let (mut g, mut w) = (got.clone(), want.clone());
            g.sort();
            w.sort();
            assert_eq!(g, w, "step {name}; log:\n{}", engine.log_text());
        } else {
            assert_eq!(got, want, "step {name}; log:\n{}", engine.log_text());
        }
    }
    assert_eq!(partition_count(&format!("{app}-by-region-repartition")), 2);
    assert!(
        engine.log_text().contains("saw k2"),
        "peek logs its expression"
    );
    assert!(
        engine.terminate(Duration::from_secs(60)).success(),
        "{}",
        engine.log_text()
    );
}
