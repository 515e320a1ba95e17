//! `FRESHET_*` variables, static membership ids, and properties over arbitrary input.

use std::time::Duration;

use proptest::prelude::*;

use super::*;

// ---- environment ----------------------------------------------------------------------------

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn environment_variables_map_to_properties() {
    let entries = layers_from_env(vars(&[
        ("PATH", "/usr/bin"),
        ("FRESHET_KAFKA_PORT", "9092"),
        ("FRESHET_APPLICATION_ID", "orders-app"),
        ("FRESHET_BOOTSTRAP_SERVERS", "kafka:9092"),
        ("FRESHET_STATE_DIR", "/state"),
        ("FRESHET_PROCESSING_GUARANTEE", "exactly_once_v2"),
        ("FRESHET_HTTP_PORT", "8080"),
        ("FRESHET_CONFIG_COMMIT_INTERVAL_MS", "200"),
        ("FRESHET_CONFIG_PRODUCER_LINGER_MS", "5"),
        ("FRESHET_CONFIG_LOG__LEVEL", "7"),
    ]));
    let expect = |key: &str, value: &str| {
        assert!(
            entries.contains(&(key.to_owned(), value.to_owned())),
            "{key}={value} missing from {entries:?}"
        );
    };
    expect("application.id", "orders-app");
    expect("bootstrap.servers", "kafka:9092");
    expect("state.dir", "/state");
    expect("processing.guarantee", "exactly_once_v2");
    expect("freshet.http.port", "8080");
    expect("commit.interval.ms", "200");
    expect("producer.linger.ms", "5");
    expect("log_level", "7");
    assert_eq!(entries.len(), 8, "{entries:?}");

    let c = resolve_ok(&[Layer::new(LayerSource::Env, entries)]);
    assert_eq!(c.http_port, Some(8080));
    assert_eq!(c.commit_interval, Duration::from_millis(200));
    assert_eq!(get(&c.producer, "queue.buffering.max.ms"), Some("5"));
    assert_eq!(get(&c.admin, "log_level"), Some("7"));
}

#[test]
fn dedicated_variables_beat_aliases_beat_generic_ones() {
    let threads = |pairs: &[(&str, &str)]| {
        let mut all = vars(&[
            ("FRESHET_APPLICATION_ID", "a"),
            ("FRESHET_BOOTSTRAP_SERVERS", "k:1"),
        ]);
        all.extend(vars(pairs));
        resolve_ok(&[Layer::new(LayerSource::Env, layers_from_env(all))]).num_stream_threads
    };
    assert_eq!(threads(&[("FRESHET_THREADS", "3")]), 3);
    assert_eq!(threads(&[("FRESHET_CONFIG_NUM_STREAM_THREADS", "2")]), 2);
    assert_eq!(
        threads(&[
            ("FRESHET_NUM_STREAM_THREADS", "4"),
            ("FRESHET_THREADS", "3"),
            ("FRESHET_CONFIG_NUM_STREAM_THREADS", "2"),
        ]),
        4
    );
    assert_eq!(
        threads(&[
            ("FRESHET_THREADS", "3"),
            ("FRESHET_CONFIG_NUM_STREAM_THREADS", "2")
        ]),
        3
    );
}

#[test]
fn near_misses_of_freshet_variables_are_warned_about() {
    let warnings = env_warnings(vars(&[
        ("FRESHET_APLICATION_ID", "x"),
        ("FRESHET_KAFKA_PORT", "9092"),
        ("FRESHET_CACHE", "/cache"),
        ("HOME", "/root"),
    ]));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("FRESHET_APPLICATION_ID"),
        "{warnings:?}"
    );
}

// ---- static membership ----------------------------------------------------------------------

#[test]
fn instance_base_prefers_group_instance_id_then_pod_name() {
    let plain = with_config(&[]);
    assert_eq!(instance_base(&plain, None), None);
    assert_eq!(instance_base(&plain, Some("")), None);
    assert_eq!(
        instance_base(&plain, Some("orders-1")).as_deref(),
        Some("orders-1")
    );
    let configured = with_config(&[("group.instance.id", "fixed")]);
    assert_eq!(
        instance_base(&configured, Some("orders-1")).as_deref(),
        Some("fixed")
    );
    assert_eq!(thread_instance_id("orders-1", 2), "orders-1-2");
}

#[test]
fn transactional_ids_are_per_instance_and_thread_and_stable() {
    // Kafka Streams' EOS-v2 shape: the same instance and thread always get the same id, so a
    // restart fences the dead producer; other instances and threads never collide with it.
    let id = transactional_id("orders-app", "orders-1", 1);
    assert_eq!(id, "orders-app-orders-1-1");
    assert_eq!(transactional_id("orders-app", "orders-1", 1), id);
    assert_ne!(transactional_id("orders-app", "orders-1", 2), id);
    assert_ne!(transactional_id("orders-app", "orders-2", 1), id);
}

// ---- properties -----------------------------------------------------------------------------

fn source_strategy() -> impl Strategy<Value = LayerSource> {
    prop_oneof![
        Just(LayerSource::Config),
        Just(LayerSource::Spec),
        Just(LayerSource::Env),
        Just(LayerSource::Flag),
    ]
}

proptest! {
    /// Whatever layers set a property, in whatever order they are given, the highest source wins,
    /// and among layers of that source the last one given.
    #[test]
    fn the_highest_layer_wins(settings in proptest::collection::vec((source_strategy(), 1usize..64), 1..8)) {
        let mut layers = vec![spec()];
        for (source, threads) in &settings {
            layers.push(Layer::new(*source, [("num.stream.threads", threads.to_string())]));
        }
        let top = settings.iter().map(|(s, _)| *s).max().unwrap_or(LayerSource::Config);
        let expected = settings.iter().rev().find(|(s, _)| *s == top).map(|(_, t)| *t);
        let resolved = StreamsConfig::resolve(&layers).map(|c| c.num_stream_threads).ok();
        prop_assert_eq!(resolved, expected);
    }

    /// Every librdkafka property can be set through FRESHET_CONFIG_* and is reported back under
    /// the variable it came from.
    #[test]
    fn every_librdkafka_name_round_trips_through_the_environment(index in 0usize..super::librdkafka::PROPERTIES.len()) {
        let name = super::librdkafka::PROPERTIES[index].name;
        let var = super::env::variable_for(name);
        let entries = layers_from_env([(var, "v".to_owned())]);
        prop_assert_eq!(entries, vec![(name.to_owned(), "v".to_owned())]);
    }

    /// No input makes resolution panic.
    #[test]
    fn arbitrary_entries_never_panic(entries in proptest::collection::vec(("[a-z._]{0,24}", "\\PC{0,16}"), 0..6)) {
        let _ = StreamsConfig::resolve(&[spec(), Layer::new(LayerSource::Config, entries)]);
    }
}
