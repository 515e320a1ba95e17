//! `freshet-operator render` against the real operator: for an example app and an app with
//! every pod setting, the operator runs against the apiserver (and the broker) and creates its
//! objects; `render -f` on the same manifest must print objects that the live ones contain,
//! field by field. Only what the apiserver adds (uid, resourceVersion, managedFields, status,
//! defaulted fields) may differ, so a field render prints wrong or misspelled fails. The other
//! way round, every field the operator applied (its server-side apply `managedFields`) must
//! be rendered, so a field render leaves out fails too.
use std::process::Command;
use std::time::Duration;

use freshet_crds::StreamsApp;
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::engine::{EngineProcess, free_port, workspace_binary};
use freshet_tests::kafka::create_topics;
use freshet_tests::unique_name;
use freshet_tests::{eventually, kafka_bootstrap, kube_client, kubeconfig_path, repo_root};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const IMAGE: &str = "freshet-test/engine:render";

/// The operator on `ns`, with a fixed engine image that render is given too.
fn operator(ns: &str) -> EngineProcess {
    let port = free_port();
    let args: Vec<String> = [
        "--namespace",
        ns,
        "--http-port",
        &port.to_string(),
        "--http-address",
        "127.0.0.1",
        "--leader-election",
        "false",
        "--retry-seconds",
        "2",
        "--resync-seconds",
        "2",
        "--engine-image",
        IMAGE,
    ]
    .map(str::to_owned)
    .to_vec();
    let kubeconfig = kubeconfig_path().display().to_string();
    EngineProcess::spawn(
        "freshet-operator",
        &args,
        &[
            ("KUBECONFIG", kubeconfig.as_str()),
            ("RUST_LOG", "info,kube=warn"),
        ],
        port,
    )
}

/// `path` made unique to this run: its topics (every occurrence of `topic_prefix`) and
/// applicationId renamed, the test broker, the namespace `ns`. Returns the manifest and the
/// source topic to create.
fn manifest(path: &str, topic_prefix: &str, ns: &str) -> (Value, String) {
    let text = std::fs::read_to_string(repo_root().join(path)).expect("manifest");
    let prefix = unique_name("render");
    let text = text.replace(topic_prefix, &format!("{prefix}-{topic_prefix}"));
    let mut doc: Value = serde_yaml_ng::from_str(&text).expect("YAML");
    doc["metadata"]["namespace"] = ns.into();
    doc["spec"]["applicationId"] = format!("{prefix}-app").into();
    doc["spec"]["bootstrapServers"] = kafka_bootstrap().into();
    (doc, format!("{prefix}-{topic_prefix}"))
}

/// `freshet-operator render -f <file> <args>`: the documents printed, or the test fails with
/// the command's error.
fn render(file: &std::path::Path, args: &[&str]) -> Vec<Value> {
    let out = Command::new(workspace_binary("freshet-operator"))
        .arg("render")
        .arg("-f")
        .arg(file)
        .args(args)
        // Render needs no cluster: make sure it does not find one.
        .env_remove("KUBECONFIG")
        .output()
        .expect("run freshet-operator render");
    assert!(
        out.status.success(),
        "render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    text.split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml_ng::from_str(d).expect("a YAML document"))
        .collect()
}

/// Where `rendered` is not contained in `live`: objects by key (the live one may have more
/// keys, the apiserver's defaults), lists element by element with the same length, anything
/// else equal. Each difference as `path: rendered vs live`.
fn not_contained(path: &str, rendered: &Value, live: &Value, out: &mut Vec<String>) {
    match (rendered, live) {
        (Value::Object(r), Value::Object(l)) => {
            for (k, v) in r {
                let here = format!("{path}.{k}");
                match l.get(k) {
                    Some(lv) => not_contained(&here, v, lv, out),
                    None => out.push(format!("{here}: {v} rendered, absent on the apiserver")),
                }
            }
        }
        (Value::Array(r), Value::Array(l)) if r.len() == l.len() => {
            for (i, (rv, lv)) in r.iter().zip(l).enumerate() {
                not_contained(&format!("{path}[{i}]"), rv, lv, out);
            }
        }
        _ if rendered == live => {}
        _ => out.push(format!(
            "{path}: {rendered} rendered, {live} on the apiserver"
        )),
    }
}

/// The fields of `fields` (a server-side apply field set, `fieldsV1`) that `rendered` lacks, as
/// paths. `f:<name>` is a field, `k:<json>` the list item with those key fields, `v:<json>` a
/// set member, `.` the item itself.
fn not_rendered(path: &str, fields: &Value, rendered: &Value, out: &mut Vec<String>) {
    let Some(fields) = fields.as_object() else {
        return;
    };
    for (key, children) in fields {
        if key == "." {
            continue;
        }
        let here = format!("{path}.{key}");
        let found = if let Some(name) = key.strip_prefix("f:") {
            rendered.get(name)
        } else if let Some(item) = key.strip_prefix("k:") {
            let item: Value = serde_json::from_str(item).expect("a k: key is JSON");
            // A key field the operator leaves to the apiserver's default (a port's
            // `protocol: TCP`) is in the key but not in what was applied.
            let matches = |v: &&Value| {
                item.as_object().is_some_and(|k| {
                    k.iter()
                        .all(|(f, want)| v.get(f).is_none_or(|got| got == want))
                        && k.keys().any(|f| v.get(f).is_some())
                })
            };
            rendered.as_array().and_then(|a| a.iter().find(matches))
        } else if let Some(member) = key.strip_prefix("v:") {
            let member: Value = serde_json::from_str(member).expect("a v: key is JSON");
            rendered
                .as_array()
                .and_then(|a| a.iter().find(|v| **v == member))
        } else {
            out.push(format!("{here}: a field set key this test does not know"));
            continue;
        };
        match found {
            Some(v) => not_rendered(&here, children, v, out),
            None => out.push(format!("{here}: applied by the operator, not rendered")),
        }
    }
}

/// The fields the operator applied to `live` (its `managedFields` entry).
fn applied_fields(live: &Value) -> Value {
    live["metadata"]["managedFields"]
        .as_array()
        .and_then(|entries| {
            entries.iter().find(|e| {
                e["manager"] == "freshet-operator"
                    && e["operation"] == "Apply"
                    && e.get("subresource").is_none()
            })
        })
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

/// The live object of the rendered document `doc`, as the apiserver returns it.
async fn live(client: &Client, ns: &str, doc: &Value) -> Option<Value> {
    let (group, version) = match doc["apiVersion"].as_str()?.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), doc["apiVersion"].as_str()?.to_owned()),
    };
    let kind = doc["kind"].as_str()?;
    let resource = ApiResource {
        api_version: doc["apiVersion"].as_str()?.to_owned(),
        group,
        version,
        kind: kind.to_owned(),
        plural: format!("{}s", kind.to_lowercase()),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let object = api
        .get_opt(doc["metadata"]["name"].as_str()?)
        .await
        .ok()??;
    serde_json::to_value(object).ok()
}

async fn compare(
    client: &Client,
    ns: &str,
    path: &str,
    topic_prefix: &str,
    partitions: i32,
    op: &EngineProcess,
) {
    let (doc, source) = manifest(path, topic_prefix, ns);
    create_topics(&[(&source, partitions)]).await;
    let app: StreamsApp = serde_json::from_value(doc.clone()).expect("a StreamsApp");
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), ns);
    apps.patch(
        &app.name_any(),
        &PatchParams::apply("freshet-tests").force(),
        &Patch::Apply(&app),
    )
    .await
    .expect("apply the StreamsApp");
    let uid = apps
        .get(&app.name_any())
        .await
        .expect("the StreamsApp")
        .uid()
        .expect("uid");
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        file.path(),
        serde_yaml_ng::to_string(&doc).expect("manifest YAML"),
    )
    .expect("write the manifest");
    let rendered = render(file.path(), &["--image", IMAGE, "--owner-uid", &uid]);
    let kinds: Vec<&str> = rendered.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"],
        "{path}: the objects in apply order"
    );
    for doc in &rendered {
        let what = format!("{path}: {} {}", doc["kind"], doc["metadata"]["name"]);
        let live = eventually(WAIT, &what, || live(client, ns, doc)).await;
        let mut differences = Vec::new();
        not_contained("", doc, &live, &mut differences);
        let applied = applied_fields(&live);
        assert!(
            applied.is_object(),
            "{what}: no managedFields entry of freshet-operator: {live}"
        );
        not_rendered("", &applied, doc, &mut differences);
        assert!(
            differences.is_empty(),
            "{what}: render differs from what the operator applied:\n{}\noperator log:\n{}",
            differences.join("\n"),
            op.log_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn render_prints_the_objects_the_operator_applies() {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "render").await;
    let mut op = operator(&ns);
    // An example as users run it: one source partition, no replicas asked for.
    compare(
        &client,
        &ns,
        "examples/branch-by-region/app.yaml",
        "branch-orders",
        1,
        &op,
    )
    .await;
    // Every pod setting, storage, resources, env from Secrets, internal topics and a store;
    // 3 replicas of 2 threads, which 6 partitions can use, so the operator does not cap them.
    compare(
        &client,
        &ns,
        "operator/tests/render/pod-settings.yaml",
        "orders",
        6,
        &op,
    )
    .await;
    assert!(
        op.child.try_wait().expect("wait").is_none(),
        "operator died:\n{}",
        op.log_text()
    );
    op.kill();
}
