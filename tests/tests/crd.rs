//! The typed StreamsApp CRD against the real apiserver: `kubectl apply` refuses an unknown step,
//! a misspelled field inside a step, a wrong type and a bad duration with the field's path, and
//! accepts every example in examples/ and the docs, and the differential cases' manifests.
//!
//! The checked-in CRD is installed as a copy with a group, kind and names of its own
//! (`CrdTestStreamsApp.crdtest.freshet.dev`): the CRD is cluster-wide, and other tests sharing
//! the apiserver install `freshet.dev`'s at any time, so only a copy is sure to be this one while
//! the test runs; and it must not share `streamsapp`, `streamsapps` or `sapp`, or kubectl would
//! resolve the other tests' `kubectl get sapp` to the copy.
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use freshet_tests::cluster::namespace;
use freshet_tests::{eventually, kube_client, kubectl, repo_root};

const TEST_GROUP: &str = "crdtest.freshet.dev";

/// Runs kubectl with `input` on stdin; success and what it printed.
fn kubectl_with(args: &[&str], input: &str) -> (bool, String) {
    let mut child = kubectl()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child
        .stdin
        .take()
        .expect("kubectl stdin")
        .write_all(input.as_bytes())
        .expect("write to kubectl");
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The checked-in CRD (diff-tested against the types) moved to the test group, applied the way
/// the docs say (server-side: a typed CRD can outgrow client-side apply's annotation).
async fn install_test_crd() {
    let path = repo_root().join("charts/freshet/crds/streamsapps.yaml");
    let crd = std::fs::read_to_string(&path).expect("the checked-in CRD");
    let crd = as_test_copy(&crd).replace("    shortNames:\n    - sapp\n", "");
    assert!(
        !crd.contains("- sapp"),
        "the copy must not take the short name"
    );
    let (ok, out) = kubectl_with(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=freshet-crd-test",
            "-f",
            "-",
        ],
        &crd,
    );
    assert!(ok, "the apiserver refused the CRD:\n{out}");
    let name = format!("crdteststreamsapps.{TEST_GROUP}");
    eventually(Duration::from_secs(60), "the test CRD Established", || {
        let name = name.clone();
        async move {
            let out = kubectl()
                .args(["get", "crd", &name])
                .args([
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
                ])
                .output()
                .ok()?;
            (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
        }
    })
    .await;
}

/// A CRD or a manifest moved to the test copy's group and kind.
fn as_test_copy(text: &str) -> String {
    text.replace("freshet.dev", TEST_GROUP)
        .replace("StreamsApp", "CrdTestStreamsApp")
        .replace("streamsapp", "crdteststreamsapp")
}

/// `kubectl apply --dry-run=server` of a StreamsApp manifest, as the test copy's kind.
fn dry_run(ns: &str, manifest: &str) -> (bool, String) {
    kubectl_with(
        &["apply", "--dry-run=server", "-n", ns, "-f", "-"],
        &as_test_copy(manifest),
    )
}

const APP: &str = r#"apiVersion: freshet.dev/v1alpha1
kind: StreamsApp
metadata: { name: typed }
spec:
  applicationId: typed
  bootstrapServers: kafka:9092
  autoscaling: { enabled: true, catchUpDuration: 1d, window: PT5M, cooldown: 90s }
  topology:
    streams: [{ name: orders, topic: orders }]
    pipelines:
      - name: p
        from: orders
        steps:
          - filter: "value.amount > 0"
          - STEP
"#;

fn with_step(step: &str) -> String {
    APP.replace("STEP", step)
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_apply_refuses_bad_steps_with_the_fields_path() {
    let client = kube_client().await;
    install_test_crd().await;
    let ns = namespace(&client, "crd").await;

    let (ok, out) = dry_run(&ns, &with_step("windowedBy: { tumbling: 1d, grace: PT5M }"));
    assert!(ok, "a good app was refused:\n{out}");

    // (step, what the refusal must say)
    let cases = [
        (
            "mapValue: \"value\"",
            "unknown field \"spec.topology.pipelines[0].steps[1].mapValue\"",
        ),
        (
            "split: [{ name: eu, wehn: \"value.region == 'eu'\", to: { topic: eu } }]",
            "unknown field \"spec.topology.pipelines[0].steps[1].split[0].wehn\"",
        ),
        (
            "split: [{ name: eu, steps: [{ mapValues: \"value\" }, { to: { topci: eu } }] }]",
            "unknown field \"spec.topology.pipelines[0].steps[1].split[0].steps[1].to.topci\"",
        ),
        (
            "mapValues: 42",
            "spec.topology.pipelines[0].steps[1].mapValues in body must be of type string",
        ),
        (
            "windowedBy: { tumbling: 10 minutes }",
            "spec.topology.pipelines[0].steps[1].windowedBy.tumbling in body should match",
        ),
        (
            "{ filter: \"true\", mapValues: \"value\" }",
            "\"spec.topology.pipelines[0].steps[1]\" must validate one and only one schema",
        ),
        (
            "{ name: nothing }",
            "\"spec.topology.pipelines[0].steps[1]\" must validate one and only one schema",
        ),
    ];
    for (step, expected) in cases {
        let (ok, out) = dry_run(&ns, &with_step(step));
        assert!(!ok, "the apiserver accepted `{step}`:\n{out}");
        assert!(
            out.contains(expected),
            "refusing `{step}`, kubectl said:\n{out}\nexpected it to say: {expected}"
        );
    }

    let (ok, out) = dry_run(
        &ns,
        &with_step("to: { topic: out }")
            .replace("topic: orders }", "topic: orders, topics: [more] }"),
    );
    assert!(!ok, "a stream with topic and topics was accepted:\n{out}");
    assert!(
        out.contains("spec.topology.streams[0]") && out.contains("give 'topic: <name>' or 'topics"),
        "{out}"
    );

    let (ok, out) = dry_run(
        &ns,
        &with_step("to: { topic: out }").replace("cooldown: 90s", "cooldown: soon"),
    );
    assert!(!ok, "a bad autoscaling duration was accepted:\n{out}");
    assert!(out.contains("spec.autoscaling.cooldown"), "{out}");

    // The types' doc comments are the fields' descriptions (once the apiserver has published
    // the new schema: explain reads the OpenAPI document, updated shortly after the CRD).
    eventually(
        Duration::from_secs(60),
        "kubectl explain of windowedBy",
        || async {
            let out = kubectl()
                .args([
                    "explain",
                    "crdteststreamsapp.spec.topology.pipelines.steps.windowedBy",
                ])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            (text.contains("tumbling") && text.contains("Fixed windows of this size")).then_some(())
        },
    )
    .await;

    // Splits are typed three levels of steps deep; a split at the third is not a step there.
    let nested = "split:\n              - name: a\n                steps:\n                  - split:\n                      - name: b\n                        steps:\n                          - split: [{ name: c, to: { topic: deep } }]";
    let (ok, out) = dry_run(&ns, &with_step(nested));
    assert!(!ok, "a split three levels deep was accepted:\n{out}");
    assert!(
        out.contains(
            "spec.topology.pipelines[0].steps[1].split[0].steps[0].split[0].steps[0].split"
        ),
        "{out}"
    );
}

/// Every StreamsApp in examples/*/app.yaml and in the docs' YAML blocks; a block that is only
/// a `spec:` fragment is checked inside a minimal app.
fn documented_apps() -> Vec<(String, String)> {
    let root = repo_root();
    let mut apps = Vec::new();
    let mut examples: Vec<_> = std::fs::read_dir(root.join("examples"))
        .expect("examples/")
        .filter_map(|e| Some(e.ok()?.path().join("app.yaml")))
        .filter(|p| p.exists())
        .collect();
    examples.sort();
    for path in examples {
        let text = std::fs::read_to_string(&path).expect("read example");
        apps.push((path.display().to_string(), text));
    }
    // The differential cases' manifests, with the harness's `${VAR}` placeholders filled in.
    let mut cases: Vec<_> = std::fs::read_dir(root.join("tests/differential"))
        .expect("tests/differential/")
        .filter_map(|e| Some(e.ok()?.path().join("app.yaml")))
        .filter(|p| p.exists())
        .collect();
    cases.sort();
    for path in cases {
        let text = std::fs::read_to_string(&path).expect("read differential case");
        apps.push((path.display().to_string(), fill_placeholders(&text)));
    }
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.push(root.join("README.md"));
    docs.sort();
    for path in docs {
        let text = std::fs::read_to_string(&path).expect("read doc");
        for (i, block) in text.split("```yaml\n").skip(1).enumerate() {
            let block = block.split("```").next().unwrap_or_default();
            let place = format!("{} (yaml block {})", path.display(), i + 1);
            if block.contains("kind: StreamsApp") {
                apps.push((place, block.to_owned()));
            } else if block.starts_with("spec:") {
                apps.push((place, in_minimal_app(block)));
            }
        }
    }
    apps
}

/// `text` with every `${VAR}` replaced by a lowercase name (topics and ids are free text to
/// the schema).
fn fill_placeholders(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&rest[start + 2..start + len].to_lowercase());
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// `fragment` (a `spec:` map) over a minimal app's spec.
fn in_minimal_app(fragment: &str) -> String {
    let minimal = "apiVersion: freshet.dev/v1alpha1\nkind: StreamsApp\nmetadata: { name: doc }\nspec:\n  applicationId: doc\n  bootstrapServers: kafka:9092\n  topology:\n    streams: [{ name: s, topic: t }]\n";
    let mut app: serde_yaml_ng::Value = serde_yaml_ng::from_str(minimal).expect("minimal app");
    let fragment: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(fragment).expect("the docs' spec fragment is YAML");
    if let (Some(spec), Some(extra)) = (
        app.get_mut("spec").and_then(|s| s.as_mapping_mut()),
        fragment.get("spec").and_then(|s| s.as_mapping()),
    ) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_yaml_ng::to_string(&app).expect("app as YAML")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_app_is_accepted_by_the_apiserver_and_the_engine() {
    let client = kube_client().await;
    install_test_crd().await;
    let ns = namespace(&client, "crd-docs").await;
    let apps = documented_apps();
    assert!(
        apps.len() >= 25,
        "found only {} documented apps",
        apps.len()
    );
    for (place, text) in apps {
        let (ok, out) = dry_run(&ns, &text);
        assert!(ok, "the apiserver refused {place}:\n{out}");
        if let Err(e) = freshet_spec::parse_manifest(&text) {
            panic!("the engine refused {place}: {e}");
        }
    }
}
