//! `freshet-engine validate`, `describe` and `test`: bad manifests are refused with the place
//! and the fix; descriptions of the examples match their golden files; the examples pass their
//! expected output on the test driver.
use std::process::Command;

use freshet_tests::engine::engine_binary;
use freshet_tests::repo_root;

fn engine(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(engine_binary())
        .args(args)
        .output()
        .expect("run freshet-engine");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = r#"
applicationId: cli-test
bootstrapServers: 127.0.0.1:9092
defaultKeySerde: string
defaultValueSerde: json
topology:
  streams:
    - { name: orders, topic: orders }
  pipelines:
    - name: big
      from: orders
      steps:
        - filter: "value.amount >= 100"
        - mapValues: "{'id': value.id}"
        - to: { topic: big-orders }
"#;

/// Writes `text` to a temporary manifest and runs `validate` on it.
fn validate(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.yaml");
    std::fs::write(&path, text).unwrap();
    let (ok, stdout, stderr) = engine(&["validate", "-f", path.to_str().unwrap()]);
    (ok, format!("{stdout}{stderr}"))
}

fn assert_refused(text: &str, expected: &[&str]) {
    let (ok, out) = validate(text);
    assert!(!ok, "validate accepted it:\n{out}");
    for e in expected {
        assert!(out.contains(e), "message lacks {e:?}:\n{out}");
    }
}

#[test]
fn a_good_manifest_validates() {
    let (ok, out) = validate(GOOD);
    assert!(ok, "{out}");
    assert!(
        out.contains("valid (application.id cli-test, 1 sub-topologies)"),
        "{out}"
    );
}

#[test]
fn a_bad_cel_expression_is_refused_with_pipeline_step_and_column() {
    assert_refused(
        &GOOD.replace("value.amount >= 100", "value.amount >= "),
        &["pipeline 'big', step 1 (filter)", "line 1, column"],
    );
}

#[test]
fn an_undeclared_variable_is_refused_at_validate() {
    assert_refused(
        &GOOD.replace("value.amount >= 100", "vlaue.amount >= 100"),
        &[
            "pipeline 'big', step 1 (filter)",
            "vlaue",
            "did you mean 'value'",
        ],
    );
}

#[test]
fn an_unknown_step_is_refused_with_a_suggestion() {
    assert_refused(
        &GOOD.replace("mapValues:", "mapValue:"),
        &[
            "pipeline 'big', step 2 (mapValue)",
            "unknown step 'mapValue'",
            "did you mean 'mapValues'",
        ],
    );
}

#[test]
fn a_missing_source_is_refused_naming_the_pipeline() {
    assert_refused(
        &GOOD.replace("from: orders", "from: order"),
        &["pipeline 'big'", "from 'order'", "did you mean 'orders'"],
    );
}

#[test]
fn an_unknown_config_key_is_refused_with_the_nearest_name() {
    assert_refused(
        &format!("{GOOD}config:\n  comit.interval.ms: \"100\"\n"),
        &["comit.interval.ms", "commit.interval.ms"],
    );
}

#[test]
fn a_password_in_config_is_refused_naming_the_secret_field_and_not_the_value() {
    let (ok, out) = validate(&format!(
        "{GOOD}config:\n  sasl.password: \"hunter2-in-config\"\n"
    ));
    assert!(!ok, "validate accepted it:\n{out}");
    assert!(
        out.contains("spec.config[\"sasl.password\"]")
            && out.contains("spec.kafka.authentication.passwordSecret"),
        "{out}"
    );
    assert!(!out.contains("hunter2"), "the value is shown:\n{out}");
}

#[test]
fn an_aggregation_of_an_ungrouped_stream_says_how_to_group_it() {
    assert_refused(
        &GOOD.replace("- mapValues: \"{'id': value.id}\"", "- count: {}"),
        &["step 2 (count)", "cannot follow a stream", "groupByKey"],
    );
}

#[test]
fn a_table_written_to_a_topic_says_to_turn_it_into_a_stream() {
    assert_refused(
        &GOOD.replace(
            "- mapValues: \"{'id': value.id}\"",
            "- groupByKey: {}\n        - count: {}",
        ),
        &["(to)", "cannot follow a table", "toStream"],
    );
}

#[test]
fn a_bad_window_says_what_windows_look_like() {
    assert_refused(
        &GOOD.replace(
            "- mapValues: \"{'id': value.id}\"",
            "- groupByKey: {}\n        - windowedBy: { tumbling: 10 }\n        - count: {}\n        - toStream: {}",
        ),
        &["step 3 (windowedBy)", "tumbling", "1d", "PT5M"],
    );
}

#[test]
fn a_join_names_a_missing_table() {
    assert_refused(
        &GOOD.replace(
            "- mapValues: \"{'id': value.id}\"",
            "- join: { table: t, value: \"left\" }",
        ),
        &["step 2 (join)", "'t' is not a declared table"],
    );
}

#[test]
fn a_stream_stream_join_needs_a_window_and_a_known_stream() {
    let with = |step: &str| GOOD.replace("- mapValues: \"{'id': value.id}\"", step);
    assert_refused(
        &with("- join: { stream: orders, value: \"left\" }"),
        &["step 2 (join)", "needs 'window: { within"],
    );
    assert_refused(
        &with("- outerJoin: { stream: payments, window: { within: 5m } }"),
        &["step 2 (outerJoin)", "'payments' is not a declared stream"],
    );
    assert_refused(
        &with("- join: { stream: orders, window: { within: 5 parsecs } }"),
        &["step 2 (join), window, within"],
    );
    let (ok, out) = validate(&with(
        "- leftJoin: { stream: orders, window: { within: 5m, grace: 1m }, value: \"right\" }",
    ));
    assert!(ok, "a stream-stream join was refused:\n{out}");
}

#[test]
fn a_foreign_key_join_is_inner_or_left_from_a_table() {
    let text = GOOD.replace(
        "  pipelines:",
        "  tables:\n    - { name: customers, topic: customers }\n    - { name: accounts, topic: accounts }\n  pipelines:\n    - name: fk\n      from: accounts\n      steps:\n        - outerJoin: { table: customers, foreignKey: \"value.customer\" }\n        - toStream: {}\n        - to: { topic: out }",
    );
    assert_refused(&text, &["(outerJoin)", "inner (join) or left (leftJoin)"]);
    let (ok, out) = validate(&text.replace("outerJoin:", "leftJoin:"));
    assert!(ok, "a foreign-key left join was refused:\n{out}");
}
#[test]
fn validate_with_a_broker_reports_missing_topics() {
    let bootstrap = freshet_tests::kafka_bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.yaml");
    let missing = freshet_tests::unique_name("no-such-topic");
    std::fs::write(
        &path,
        GOOD.replace("topic: orders", &format!("topic: {missing}")),
    )
    .unwrap();
    let (ok, _, stderr) = engine(&[
        "validate",
        "-f",
        path.to_str().unwrap(),
        "--bootstrap-servers",
        &bootstrap,
    ]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("source topic '{missing}' does not exist")),
        "{stderr}"
    );
}

#[test]
fn describe_of_each_example_matches_its_golden_file() {
    let examples = repo_root().join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let dir = entry.unwrap().path();
        let manifest = dir.join("app.yaml");
        if !manifest.exists() {
            continue;
        }
        let golden = std::fs::read_to_string(dir.join("describe.txt"))
            .unwrap_or_else(|e| panic!("{}/describe.txt: {e}", dir.display()));
        let (ok, stdout, stderr) = engine(&["describe", "-f", manifest.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        assert_eq!(
            stdout,
            golden,
            "describe of {} differs from its golden file",
            dir.display()
        );
        // The JSON form names every node the text does.
        let (ok, json, stderr) = engine(&[
            "describe",
            "-f",
            manifest.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert!(ok, "json: {stderr}");
        let json: serde_json::Value = serde_json::from_str(&json).expect("describe --format json");
        let names: std::collections::BTreeSet<String> = json["subtopologies"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["nodes"].as_array().cloned().unwrap_or_default())
            .filter_map(|n| n["name"].as_str().map(str::to_owned))
            .chain(
                json["globalStores"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|g| [g["source"].as_str(), g["processor"].as_str()])
                    .flatten()
                    .map(str::to_owned),
            )
            .collect();
        for line in golden.lines().map(str::trim) {
            for kind in ["Source: ", "Processor: ", "Sink: "] {
                if let Some(name) = line.strip_prefix(kind).and_then(|r| r.split(" (").next()) {
                    assert!(names.contains(name), "{}: json lacks {name}", dir.display());
                }
            }
        }
        for format in ["dot", "mermaid"] {
            let (ok, picture, stderr) = engine(&[
                "describe",
                "-f",
                manifest.to_str().unwrap(),
                "--format",
                format,
            ]);
            assert!(
                ok && picture.contains("KSTREAM-SOURCE-0000000000"),
                "{format}: {stderr}"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 2,
        "expected at least two examples, found {checked}"
    );
}

/// `freshet-engine test`: every example with an input and an expected output passes on the
/// test driver, without a broker, and a wrong expectation fails with both sides shown.
#[test]
fn examples_pass_freshet_engine_test_without_a_broker() {
    for name in [
        "branch-by-region",
        "route-by-type",
        "enriched-orders",
        "orders-with-product",
    ] {
        let dir = repo_root().join("examples").join(name);
        let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let (ok, _, err) = engine(&[
            "test",
            "-f",
            &path("app.yaml"),
            "--input",
            &path("input.jsonl"),
            "--expected",
            &path("expected.jsonl"),
        ]);
        assert!(ok, "example {name}: {err}");
    }
    let dir = repo_root().join("examples/branch-by-region");
    let wrong = tempfile::NamedTempFile::new().unwrap();
    let expected = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap();
    std::fs::write(wrong.path(), expected.replacen("\"o1\"", "\"o0\"", 1)).unwrap();
    let (ok, _, err) = engine(&[
        "test",
        "-f",
        &dir.join("app.yaml").to_string_lossy(),
        "--input",
        &dir.join("input.jsonl").to_string_lossy(),
        "--expected",
        &wrong.path().to_string_lossy(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("topic branch-orders-eu") && err.contains("o0") && err.contains("o1"),
        "{err}"
    );
}
