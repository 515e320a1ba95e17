//! Freshet against Java Kafka Streams: the differential cases of tests/differential (see
//! freshet_tests::differential), and Kafka Streams' own describe() of every example against the
//! example's checked-in describe.txt.
use freshet_tests::differential::process::{oracle_classpath, oracle_command};
use freshet_tests::differential::{CASES, Contender, run};
use freshet_tests::repo_root;

/// The harness's self-check: the oracle against a second run of itself, and against the model
/// of the input's results. Proves the harness, the input and the Java twins, without Freshet.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_streams_matches_itself() {
    run(Contender::Java).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn freshet_matches_kafka_streams() {
    run(Contender::Freshet).await;
}

fn oracle(args: &[&str]) -> (bool, String, String) {
    let out = oracle_command(&oracle_classpath())
        .args(args)
        .output()
        .expect("run the oracle (java)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn describe_of_each_example_matches_kafka_streams() {
    let examples = repo_root().join("examples");
    let mut checked = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&examples)
        .expect("examples/")
        .map(|e| e.expect("dir entry").path())
        .filter(|d| d.join("describe.txt").exists())
        .collect();
    entries.sort();
    for dir in entries {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let golden = std::fs::read_to_string(dir.join("describe.txt")).expect("describe.txt");
        let (ok, java, stderr) = oracle(&["describe", &name]);
        assert!(
            ok,
            "the oracle cannot describe example {name}: {stderr}\n(each example with a describe.txt needs its Java topology in tests/reference/streams/.../Describe.java)"
        );
        assert_eq!(
            java,
            golden,
            "Kafka Streams' describe() of example {name} (left) differs from {}",
            dir.join("describe.txt").display()
        );
        checked.push(name);
    }
    assert!(!checked.is_empty(), "no example has a describe.txt");
}

#[test]
fn the_oracle_has_every_case() {
    let (ok, list, stderr) = oracle(&["list"]);
    assert!(ok, "{stderr}");
    let mut java: Vec<&str> = list.lines().collect();
    java.sort();
    let mut rust: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    rust.sort();
    assert_eq!(
        java, rust,
        "Cases.ALL in the oracle vs CASES in the harness"
    );
}
