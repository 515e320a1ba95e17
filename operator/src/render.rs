//! The objects a StreamsApp becomes: a ConfigMap holding the manifest the engine runs, a
//! headless Service, a StatefulSet of engine pods and a PodDisruptionBudget, all owned by the
//! StreamsApp. Pure functions of the StreamsApp and the reconciler's decisions, so they are
//! tested without a cluster.
//!
//! The engine ↔ operator contract: the pods run `freshet-engine run -f /etc/freshet/app.yaml`,
//! the ConfigMap's `app.yaml` being the StreamsApp with the fields only the operator reads
//! removed (so scaling, a new image or new pod settings do not change it); `POD_NAME` gives each
//! instance its static membership id; credentials reach the engine as environment variables
//! from Secrets (`spec.pod.env`, `spec.pod.envFrom`), never through the ConfigMap.

use std::collections::BTreeMap;

use freshet_crds::{StreamsApp, StreamsAppSpec};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::digest;

/// The label every object of one StreamsApp carries; also the pods' selector.
pub const APP_LABEL: &str = "freshet.dev/app";
/// Pod template annotation whose change rolls the pods when the manifest changes.
pub const CONFIG_HASH: &str = "freshet.dev/config-hash";
/// StatefulSet annotations recording the internal topics and stores it runs with.
pub const STATE_SIGNATURE: &str = "freshet.dev/state-signature";
pub const STATE_TOPICS: &str = "freshet.dev/internal-topics";
pub const STATE_STORES: &str = "freshet.dev/stores";
/// Where the manifest is mounted, and the default state directory (a PersistentVolume).
pub const MANIFEST_DIR: &str = "/etc/freshet";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/freshet/state";
pub const HTTP_PORT: i32 = 8080;
/// Long enough for a clean close: commit, flush and checkpoint every store.
pub const TERMINATION_GRACE_SECONDS: i64 = 120;

/// What the reconciler decided, beyond the StreamsApp itself.
pub struct Decisions<'a> {
    pub replicas: i32,
    pub image: &'a str,
    /// The internal topics and stores of the topology being rolled out.
    pub signature: &'a str,
    pub internal_topics: &'a [String],
    pub stores: &'a [String],
}

pub fn config_map_name(app: &StreamsApp) -> String {
    format!("{}-app", app.name_any())
}

/// The label selector of the app's pods, as the scale subresource reports it.
pub fn selector(app: &StreamsApp) -> String {
    format!("{APP_LABEL}={}", app.name_any())
}

fn labels(app: &StreamsApp) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "freshet-engine".into()),
        ("app.kubernetes.io/instance".into(), app.name_any()),
        (
            "app.kubernetes.io/managed-by".into(),
            "freshet-operator".into(),
        ),
        (APP_LABEL.into(), app.name_any()),
    ])
}

fn metadata(app: &StreamsApp, name: String) -> serde_json::Value {
    json!({
        "name": name,
        "namespace": app.namespace(),
        "labels": labels(app),
        "ownerReferences": app.controller_owner_ref(&()).into_iter().collect::<Vec<_>>(),
    })
}

/// The spec the engine reads: the StreamsApp without what only the operator uses.
pub fn engine_manifest(app: &StreamsApp) -> Result<String, serde_yaml_ng::Error> {
    let spec = StreamsAppSpec {
        replicas: None,
        autoscaling: None,
        storage: None,
        image: None,
        resources: None,
        cleanup_policy: None,
        pod: None,
        ..app.spec.clone()
    };
    let doc = json!({
        "apiVersion": StreamsApp::api_version(&()),
        "kind": StreamsApp::kind(&()),
        "metadata": { "name": app.name_any() },
        "spec": spec,
    });
    serde_yaml_ng::to_string(&doc)
}

pub fn config_map(app: &StreamsApp, manifest: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(app, config_map_name(app)),
        "data": { "app.yaml": manifest },
    }))
    .expect("a ConfigMap built from its own fields")
}

/// Headless: each pod gets a stable DNS name, which `application.server` can use.
pub fn service(app: &StreamsApp) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(app, app.name_any()),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": { APP_LABEL: app.name_any() },
            "ports": [{ "name": "http", "port": HTTP_PORT, "targetPort": "http" }],
        },
    }))
    .expect("a Service built from its own fields")
}

/// One instance at a time may be evicted: its tasks move to the others while it is away.
pub fn pod_disruption_budget(app: &StreamsApp) -> PodDisruptionBudget {
    serde_json::from_value(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(app, app.name_any()),
        "spec": {
            "maxUnavailable": 1,
            "selector": { "matchLabels": { APP_LABEL: app.name_any() } },
        },
    }))
    .expect("a PodDisruptionBudget built from its own fields")
}

pub fn stateful_set(app: &StreamsApp, manifest: &str, d: &Decisions<'_>) -> StatefulSet {
    let spec = &app.spec;
    let pod = spec.pod.clone().unwrap_or_default();
    let state_dir = spec
        .state_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_STATE_DIR.to_owned());
    let mut pod_labels = pod.labels.clone();
    pod_labels.extend(labels(app));
    let mut annotations = pod.annotations.clone();
    annotations.insert(CONFIG_HASH.into(), digest(manifest));
    let field = |path: &str| json!({ "fieldRef": { "fieldPath": path } });
    let mut env = vec![
        json!({ "name": "POD_NAME", "valueFrom": field("metadata.name") }),
        json!({ "name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace") }),
        json!({ "name": "POD_IP", "valueFrom": field("status.podIP") }),
        // The endpoints bind the pod's own address.
        json!({ "name": "FRESHET_HTTP_ADDRESS", "valueFrom": field("status.podIP") }),
        json!({ "name": "FRESHET_STATE_DIR", "value": state_dir }),
    ];
    env.extend(pod.env.iter().map(|e| json!(e)));
    let storage = spec.storage.clone().unwrap_or_default();
    let mut claim = json!({
        "metadata": { "name": "state", "labels": labels(app) },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": storage.size.as_deref().unwrap_or("1Gi") } },
        },
    });
    if let Some(class) = &storage.storage_class_name {
        claim["spec"]["storageClassName"] = json!(class);
    }
    let probe = |path: &str, period: i32, failures: i32| {
        json!({
            "httpGet": { "path": path, "port": "http" },
            "periodSeconds": period,
            "failureThreshold": failures,
        })
    };
    let mut container = json!({
        "name": "engine",
        "image": d.image,
        "args": ["run", "-f", format!("{MANIFEST_DIR}/app.yaml")],
        "env": env,
        "ports": [{ "name": "http", "containerPort": HTTP_PORT }],
        // The end of the log becomes the termination message, which the operator reports as
        // the app's last processing error.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "readinessProbe": probe("/readyz", 5, 3),
        // Restoring a large store can take minutes; /healthz stays up meanwhile.
        "livenessProbe": probe("/healthz", 10, 6),
        "volumeMounts": [
            { "name": "manifest", "mountPath": MANIFEST_DIR, "readOnly": true },
            { "name": "state", "mountPath": state_dir },
        ],
    });
    if !pod.env_from.is_empty() {
        container["envFrom"] = json!(pod.env_from);
    }
    if let Some(resources) = &spec.resources {
        container["resources"] = json!(resources);
    }
    let mut pod_spec = json!({
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "containers": [container],
        "volumes": [{ "name": "manifest", "configMap": { "name": config_map_name(app) } }],
    });
    if !pod.tolerations.is_empty() {
        pod_spec["tolerations"] = json!(pod.tolerations);
    }
    if !pod.node_selector.is_empty() {
        pod_spec["nodeSelector"] = json!(pod.node_selector);
    }
    if let Some(affinity) = &pod.affinity {
        pod_spec["affinity"] = json!(affinity);
    }
    // The engine image runs as uid 65532: the state volume must be writable for it.
    pod_spec["securityContext"] = match &pod.security_context {
        Some(sc) => json!(sc),
        None => json!({ "fsGroup": 65532 }),
    };
    if let Some(sa) = &pod.service_account_name {
        pod_spec["serviceAccountName"] = json!(sa);
    }
    let mut meta = metadata(app, app.name_any());
    meta["annotations"] = json!({
        STATE_SIGNATURE: d.signature,
        STATE_TOPICS: d.internal_topics.join(","),
        STATE_STORES: d.stores.join(","),
    });
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta,
        "spec": {
            "serviceName": app.name_any(),
            "replicas": d.replicas,
            "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": { APP_LABEL: app.name_any() } },
            "template": {
                "metadata": { "labels": pod_labels, "annotations": annotations },
                "spec": pod_spec,
            },
            "volumeClaimTemplates": [claim],
        },
    }))
    .expect("a StatefulSet built from typed fields")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(extra: &str) -> StreamsApp {
        let mut app: StreamsApp = serde_yaml_ng::from_str(&format!(
            r#"
apiVersion: freshet.dev/v1alpha1
kind: StreamsApp
metadata: {{ name: orders, namespace: shop, uid: 1234 }}
spec:
  applicationId: orders-app
  bootstrapServers: kafka:9092
  replicas: 3
{extra}
  topology:
    streams: [{{ name: orders, topic: orders }}]
    pipelines: [{{ name: p, from: orders, steps: [{{ to: {{ topic: out }} }}] }}]
"#
        ))
        .expect("test manifest");
        app.metadata.uid = Some("1234".into());
        app
    }

    fn decisions<'a>(topics: &'a [String], stores: &'a [String]) -> Decisions<'a> {
        Decisions {
            replicas: 2,
            image: "freshet/engine:test",
            signature: "sig",
            internal_topics: topics,
            stores,
        }
    }

    #[test]
    fn scaling_or_pod_settings_do_not_change_the_engine_manifest() {
        let a = app("");
        let mut b = app("  image: other:1\n  pod: { labels: { team: x } }");
        b.spec.replicas = Some(9);
        assert_eq!(
            engine_manifest(&a).expect("yaml"),
            engine_manifest(&b).expect("yaml")
        );
        let text = engine_manifest(&a).expect("yaml");
        assert!(!text.contains("replicas"), "{text}");
        assert!(text.contains("applicationId: orders-app"), "{text}");
    }

    #[test]
    fn the_stateful_set_follows_the_contract() {
        let a = app(
            "  stateDir: /data\n  storage: { size: 5Gi }\n  pod:\n    env: [{ name: FRESHET_CONFIG_SASL_PASSWORD, valueFrom: { secretKeyRef: { name: creds, key: password } } }]",
        );
        let manifest = engine_manifest(&a).expect("yaml");
        let sts = stateful_set(&a, &manifest, &decisions(&[], &[]));
        let v = serde_json::to_value(&sts).expect("json");
        let spec = &v["spec"];
        assert_eq!(
            spec["replicas"], 2,
            "the reconciler's count, not spec.replicas"
        );
        assert_eq!(spec["podManagementPolicy"], "Parallel");
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            "5Gi"
        );
        let c = &spec["template"]["spec"]["containers"][0];
        assert_eq!(c["args"], json!(["run", "-f", "/etc/freshet/app.yaml"]));
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
        let env: Vec<&str> = c["env"]
            .as_array()
            .expect("env")
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert_eq!(
            env,
            [
                "POD_NAME",
                "POD_NAMESPACE",
                "POD_IP",
                "FRESHET_HTTP_ADDRESS",
                "FRESHET_STATE_DIR",
                "FRESHET_CONFIG_SASL_PASSWORD"
            ]
        );
        assert!(
            c["volumeMounts"]
                .as_array()
                .expect("mounts")
                .iter()
                .any(|m| m["mountPath"] == "/data"),
            "state volume at stateDir"
        );
        assert_eq!(
            v["metadata"]["ownerReferences"][0]["kind"], "StreamsApp",
            "owned by the StreamsApp"
        );
        assert_eq!(
            spec["template"]["metadata"]["annotations"][CONFIG_HASH],
            digest(&manifest)
        );
    }
}
