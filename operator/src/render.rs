//! The objects a StreamsApp becomes: a ConfigMap holding the manifest the engine runs, a
//! headless Service, a StatefulSet of engine pods and a PodDisruptionBudget, all owned by the
//! StreamsApp. Pure functions of the StreamsApp and the reconciler's decisions, so they are
//! tested without a cluster.
//!
//! The engine ↔ operator contract: the pods run `freshet-engine run -f /etc/freshet/app.yaml`,
//! the ConfigMap's `app.yaml` being the StreamsApp with the fields only the operator reads
//! removed (so scaling, a new image or new pod settings do not change it); `POD_NAME` gives each
//! instance its static membership id; credentials reach the engine from Secrets, never through
//! the ConfigMap: each Secret `spec.kafka` names is mounted at `<SECRETS_DIR>/<name>` (the
//! pods roll when one changes: [`SECRETS_HASH`]), or as environment variables (`spec.pod.env`,
//! `spec.pod.envFrom`).
//!
//! Every object is built from k8s-openapi's structs, so a misspelled field does not compile.
//! `freshet-operator render` ([`crate::render_cli`]) prints these same objects for a manifest
//! without a cluster; `tests/render_snapshots.rs` pins them for the examples.

use std::collections::BTreeMap;

use freshet_crds::{StreamsApp, StreamsAppSpec};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::digest;

/// The engine image of apps that name none, unless the operator is told another.
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/freshet/engine:", env!("CARGO_PKG_VERSION"));
/// The label every object of one StreamsApp carries; also the pods' selector.
pub const APP_LABEL: &str = "freshet.dev/app";
/// Pod template annotation whose change rolls the pods when the manifest changes.
pub const CONFIG_HASH: &str = "freshet.dev/config-hash";
/// Pod template annotation whose change rolls the pods when a Secret `spec.kafka` names changes.
pub const SECRETS_HASH: &str = "freshet.dev/secrets-hash";
/// Where each Secret `spec.kafka` names is mounted, at `<dir>/<secret name>`: the engine's
/// default secrets directory.
pub const SECRETS_DIR: &str = freshet_spec::secrets::DEFAULT_SECRETS_DIR;
/// StatefulSet annotations recording the internal topics and stores it runs with.
pub const STATE_SIGNATURE: &str = "freshet.dev/state-signature";
/// StatefulSet annotation: the internal topics, comma-separated.
pub const STATE_TOPICS: &str = "freshet.dev/internal-topics";
/// StatefulSet annotation: the stores, comma-separated.
pub const STATE_STORES: &str = "freshet.dev/stores";
/// StatefulSet annotation: the state layout the signature digests, one `<item>: <what>` line
/// per internal topic, store and the processing guarantee, so a held change names what differs.
pub const STATE_LAYOUT: &str = "freshet.dev/state-layout";
/// The engine's variable: the token of the last application reset, whose local state it wipes
/// once (`freshet-engine run` reads it).
pub const RESET_TOKEN_ENV: &str = "FRESHET_RESET_TOKEN";
/// Where the manifest is mounted, and the default state directory (a PersistentVolume).
pub const MANIFEST_DIR: &str = "/etc/freshet";
/// The state directory when `spec.stateDir` is not set: the PersistentVolume's mount.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/freshet/state";
/// Where the engine writes its termination message (Kubernetes' default, which the engine's
/// `FRESHET_TERMINATION_LOG` also defaults to).
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// The engine's HTTP port (`/healthz`, `/readyz`, `/metrics`), in the pod and the Service.
pub const HTTP_PORT: i32 = 8080;
/// Long enough for a clean close: commit, flush and checkpoint every store.
pub const TERMINATION_GRACE_SECONDS: i64 = 120;
/// The user of the engine image.
pub const ENGINE_USER: i64 = 65532;
/// The group of the engine image, which must be able to write the state volume.
pub const ENGINE_GROUP: i64 = 65532;
/// The writable scratch directory (an `emptyDir`): the root filesystem is read-only.
pub const TMP_DIR: &str = "/tmp";
/// Most the scratch directory may hold; the engine keeps nothing there itself.
pub const TMP_SIZE: &str = "64Mi";
/// The state volume's size when `spec.storage.size` is not set.
pub const DEFAULT_STORAGE_SIZE: &str = "1Gi";

/// What the reconciler decided, beyond the StreamsApp itself.
pub struct Decisions<'a> {
    /// Instances the StatefulSet runs.
    pub replicas: i32,
    /// The engine image.
    pub image: &'a str,
    /// The internal topics and stores of the topology being rolled out.
    pub signature: &'a str,
    /// The plan's internal topics, recorded on the StatefulSet.
    pub internal_topics: &'a [String],
    /// The plan's stores, recorded on the StatefulSet.
    pub stores: &'a [String],
    /// The plan's state layout (what the signature digests), recorded on the StatefulSet.
    pub layout: &'a str,
    /// A digest of the resourceVersions of the Secrets `spec.kafka` names (`None` without
    /// any): on the pod template, so that rotating a Secret rolls the pods.
    pub secrets_digest: Option<&'a str>,
}

/// Every object of one StreamsApp; [`Objects::ORDER`] is the order the operator applies them in.
pub struct Objects {
    /// `<name>-app`, holding `app.yaml`.
    pub config_map: ConfigMap,
    /// The headless Service.
    pub service: Service,
    /// The engine instances.
    pub stateful_set: StatefulSet,
    /// One instance away at a time.
    pub pod_disruption_budget: PodDisruptionBudget,
}

impl Objects {
    /// The kinds, in the order the operator applies them: the ConfigMap and Service the pods
    /// need exist before the StatefulSet that starts them.
    pub const ORDER: [&'static str; 4] =
        ["ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"];
}

/// All the objects of `app`, built from one rendering of its engine manifest.
pub fn objects(app: &StreamsApp, d: &Decisions<'_>) -> Result<Objects, serde_yaml_ng::Error> {
    let manifest = engine_manifest(app)?;
    Ok(Objects {
        config_map: config_map(app, &manifest),
        service: service(app),
        stateful_set: stateful_set(app, &manifest, d),
        pod_disruption_budget: pod_disruption_budget(app),
    })
}

/// The engine image of `app`: its own `spec.image`, else the operator's `default`.
pub fn engine_image<'a>(app: &'a StreamsApp, default: &'a str) -> &'a str {
    app.spec.image.as_deref().unwrap_or(default)
}

/// The ConfigMap holding the engine's manifest: `<app>-app`.
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

/// The pods' selector, as a LabelSelector: the app label only, so added pod labels never
/// orphan running pods.
fn pod_selector(app: &StreamsApp) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(APP_LABEL.into(), app.name_any())])),
        ..Default::default()
    }
}

/// Name, namespace, labels and the controller reference to the StreamsApp. Without a uid (an
/// app not read from the apiserver) there is no owner reference at all: a reference with an
/// empty uid would be refused.
fn metadata(app: &StreamsApp, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: app.namespace(),
        labels: Some(labels(app)),
        owner_references: app.controller_owner_ref(&()).map(|r| vec![r]),
        ..Default::default()
    }
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
        // Suspending is the operator's: the pods' manifest (and so their config hash) stays.
        suspend: None,
        pod: None,
        ..app.spec.clone()
    };
    let doc = StreamsApp::new(&app.name_any(), spec);
    // Through a JSON value, whose maps sort their keys: the text, and so the config hash that
    // rolls the pods, must not change with the order of the Rust fields.
    let value =
        serde_json::to_value(&doc).map_err(<serde_yaml_ng::Error as serde::ser::Error>::custom)?;
    serde_yaml_ng::to_string(&value)
}

/// The ConfigMap the pods mount: `app.yaml` is the engine's manifest.
pub fn config_map(app: &StreamsApp, manifest: &str) -> ConfigMap {
    ConfigMap {
        metadata: metadata(app, config_map_name(app)),
        data: Some(BTreeMap::from([("app.yaml".into(), manifest.to_owned())])),
        ..Default::default()
    }
}

/// Headless: each pod gets a stable DNS name, which `application.server` can use.
pub fn service(app: &StreamsApp) -> Service {
    Service {
        metadata: metadata(app, app.name_any()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: pod_selector(app).match_labels,
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: HTTP_PORT,
                target_port: Some(IntOrString::String("http".into())),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// One instance at a time may be evicted: its tasks move to the others while it is away.
pub fn pod_disruption_budget(app: &StreamsApp) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: metadata(app, app.name_any()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(pod_selector(app)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An environment variable from the pod's own fields (the downward API).
fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// `Some(v)` unless `v` is empty: an empty list or map is left out, as if never set.
fn non_empty<T: IsEmpty>(v: T) -> Option<T> {
    (!v.is_empty()).then_some(v)
}

trait IsEmpty {
    fn is_empty(&self) -> bool;
}

impl<T> IsEmpty for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
}

impl<K, V> IsEmpty for BTreeMap<K, V> {
    fn is_empty(&self) -> bool {
        BTreeMap::is_empty(self)
    }
}

/// The claim behind the state directory, one per instance.
fn state_claim(app: &StreamsApp) -> PersistentVolumeClaim {
    let storage = app.spec.storage.clone().unwrap_or_default();
    let size = storage
        .size
        .unwrap_or_else(|| DEFAULT_STORAGE_SIZE.to_owned());
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("state".into()),
            labels: Some(labels(app)),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity(size))])),
                ..Default::default()
            }),
            storage_class_name: storage.storage_class_name,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The engine container: `freshet-engine run` on the mounted manifest.
fn engine_container(app: &StreamsApp, image: &str, state_dir: &str) -> Container {
    let pod = app.spec.pod.clone().unwrap_or_default();
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_IP", "status.podIP"),
        // The endpoints bind the pod's own address.
        field_env("FRESHET_HTTP_ADDRESS", "status.podIP"),
        EnvVar {
            name: "FRESHET_STATE_DIR".into(),
            value: Some(state_dir.to_owned()),
            ..Default::default()
        },
        // The manifest's own id, as the variable the engine reads over every other source but
        // its flags: an `envFrom` Secret or ConfigMap holding another cannot redirect the pods
        // to another application's group and topics (`env` wins over `envFrom`).
        EnvVar {
            name: "FRESHET_APPLICATION_ID".into(),
            value: Some(app.spec.application_id.clone()),
            ..Default::default()
        },
    ];
    let secrets: Vec<String> = secret_names(app);
    if !secrets.is_empty() {
        // Said explicitly, though it is the engine's default, so that the directory is visible
        // in the pod spec.
        env.push(EnvVar {
            name: "FRESHET_SECRETS_DIR".into(),
            value: Some(SECRETS_DIR.to_owned()),
            ..Default::default()
        });
    }
    // After an application reset, each instance wipes its local state once (the PVC outlives
    // the pods): the engine compares the token with the one it recorded in its state directory.
    if let Some(done) = freshet_crds::ResetStatus::done(app.status.as_ref()) {
        env.push(EnvVar {
            name: RESET_TOKEN_ENV.into(),
            value: Some(done.token.clone()),
            ..Default::default()
        });
    }
    env.extend(pod.env);
    let mut mounts = vec![
        VolumeMount {
            name: "manifest".into(),
            mount_path: MANIFEST_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "state".into(),
            mount_path: state_dir.to_owned(),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: TMP_DIR.into(),
            ..Default::default()
        },
    ];
    mounts.extend(secrets.iter().enumerate().map(|(i, name)| VolumeMount {
        name: secret_volume(i),
        mount_path: format!("{SECRETS_DIR}/{name}"),
        read_only: Some(true),
        ..Default::default()
    }));
    Container {
        name: "engine".into(),
        image: Some(image.to_owned()),
        args: Some(vec![
            "run".into(),
            "-f".into(),
            format!("{MANIFEST_DIR}/app.yaml"),
        ]),
        env: Some(env),
        env_from: non_empty(pod.env_from),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: HTTP_PORT,
            ..Default::default()
        }]),
        resources: Some(crate::resources::engine_resources(&app.spec)),
        security_context: Some(container_security_context()),
        // On a failure the engine writes a summary (the failed record's place when a handler
        // said fail) to the termination message file, else the end of its log is taken; the
        // operator reports it as the app's last processing error.
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        // Restoring a large store can take minutes; /healthz stays up meanwhile.
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// The Secrets `spec.kafka` and `spec.schemaRegistry` name, in the order written.
fn secret_names(app: &StreamsApp) -> Vec<String> {
    app.spec
        .secret_names()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The pod volume of the `i`th Secret (Secret names can be longer than a volume name may be).
fn secret_volume(i: usize) -> String {
    format!("kafka-secret-{i}")
}

/// What the Pod Security `restricted` level asks of a container, and a read-only root
/// filesystem: the engine writes only to its state volume and the scratch volume at
/// [`TMP_DIR`] (the termination message file is the kubelet's own mount).
fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        read_only_root_filesystem: Some(true),
        ..Default::default()
    }
}

/// The pod's security context: the app's own, its unset fields filled with what the
/// `restricted` level requires (non-root, the RuntimeDefault seccomp profile) and the engine
/// image's user and group, the group owning the state volume (`fsGroup`).
fn pod_security_context(own: Option<PodSecurityContext>) -> PodSecurityContext {
    let mut sc = own.unwrap_or_default();
    sc.run_as_non_root.get_or_insert(true);
    // The image's user and group, unless the app names a user of its own (whose group the
    // image, or the app, decides).
    if sc.run_as_user.is_none() {
        sc.run_as_user = Some(ENGINE_USER);
        sc.run_as_group.get_or_insert(ENGINE_GROUP);
    }
    sc.fs_group.get_or_insert(ENGINE_GROUP);
    sc.seccomp_profile.get_or_insert_with(|| SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    });
    sc
}

/// The engine pods: `d.replicas` of them, each with a state volume, rolled when the manifest
/// (its digest in the pod template) changes.
pub fn stateful_set(app: &StreamsApp, manifest: &str, d: &Decisions<'_>) -> StatefulSet {
    let spec = &app.spec;
    let pod = spec.pod.clone().unwrap_or_default();
    let state_dir = spec
        .state_dir
        .clone()
        .unwrap_or_else(|| DEFAULT_STATE_DIR.to_owned());
    let mut pod_labels = pod.labels;
    pod_labels.extend(labels(app));
    let mut pod_annotations = pod.annotations;
    // For annotation-based scrapers (Prometheus' `kubernetes-pods` example job, Datadog,
    // OpenTelemetry's receiver); spec.pod.annotations may say otherwise, e.g. scrape: "false".
    for (key, value) in [
        ("prometheus.io/scrape", "true".to_owned()),
        ("prometheus.io/port", HTTP_PORT.to_string()),
        ("prometheus.io/path", "/metrics".to_owned()),
    ] {
        pod_annotations.entry(key.into()).or_insert(value);
    }
    pod_annotations.insert(CONFIG_HASH.into(), digest(manifest));
    if let Some(secrets) = d.secrets_digest {
        pod_annotations.insert(SECRETS_HASH.into(), secrets.to_owned());
    }
    let mut volumes = vec![
        Volume {
            name: "manifest".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(app),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity(TMP_SIZE.into())),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    volumes.extend(
        secret_names(app)
            .into_iter()
            .enumerate()
            .map(|(i, name)| Volume {
                name: secret_volume(i),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(name),
                    ..Default::default()
                }),
                ..Default::default()
            }),
    );
    let pod_spec = PodSpec {
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
        containers: vec![engine_container(app, d.image, &state_dir)],
        volumes: Some(volumes),
        tolerations: non_empty(pod.tolerations),
        node_selector: non_empty(pod.node_selector),
        affinity: pod.affinity,
        security_context: Some(pod_security_context(pod.security_context)),
        service_account_name: pod.service_account_name,
        // The engine never calls the Kubernetes API.
        automount_service_account_token: Some(pod.automount_service_account_token.unwrap_or(false)),
        ..Default::default()
    };
    let mut meta = metadata(app, app.name_any());
    meta.annotations = Some(BTreeMap::from([
        (STATE_SIGNATURE.into(), d.signature.to_owned()),
        (STATE_TOPICS.into(), d.internal_topics.join(",")),
        (STATE_STORES.into(), d.stores.join(",")),
        (STATE_LAYOUT.into(), d.layout.to_owned()),
    ]));
    StatefulSet {
        metadata: meta,
        spec: Some(StatefulSetSpec {
            service_name: Some(app.name_any()),
            replicas: Some(d.replicas),
            pod_management_policy: Some("Parallel".into()),
            selector: pod_selector(app),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(pod_spec),
            },
            volume_claim_templates: Some(vec![state_claim(app)]),
            ..Default::default()
        }),
        ..Default::default()
    }
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
            layout: "store counts: key-value",
            secrets_digest: None,
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
    fn secrets_of_spec_schema_registry_are_mounted_beside_spec_kafkas() {
        // `user` is named by both blocks: mounted once.
        let a = app(
            "  kafka:\n    authentication: { type: scram-sha-512, username: u, passwordSecret: { secretName: user, password: password } }\n  schemaRegistry:\n    url: https://registry:8081\n    basicAuth: { secretName: user }\n    tls: { trustedCertificates: [{ secretName: registry-ca, certificate: ca.crt }] }",
        );
        let (topics, stores) = (vec![], vec![]);
        let sts = stateful_set(&a, "m", &decisions(&topics, &stores));
        let pod = sts.spec.expect("spec").template.spec.expect("pod");
        let mounted: Vec<String> = pod.containers[0]
            .volume_mounts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.name.starts_with("kafka-secret-"))
            .map(|m| m.mount_path)
            .collect();
        assert_eq!(
            mounted,
            [
                format!("{SECRETS_DIR}/user"),
                format!("{SECRETS_DIR}/registry-ca")
            ]
        );
    }

    #[test]
    fn secrets_of_spec_kafka_are_mounted_and_their_versions_roll_the_pods() {
        let a = app(
            "  kafka:\n    tls: { trustedCertificates: [{ secretName: cluster-ca, pattern: '*.crt' }] }\n    authentication: { type: scram-sha-512, username: u, passwordSecret: { secretName: user, password: password } }",
        );
        let (topics, stores) = (vec![], vec![]);
        let mut d = decisions(&topics, &stores);
        d.secrets_digest = Some("v1");
        let sts = stateful_set(&a, "m", &d);
        let template = sts.spec.expect("spec").template;
        let pod = template.spec.expect("pod");
        let mounted: Vec<(String, String)> = pod.containers[0]
            .volume_mounts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.name.starts_with("kafka-secret-"))
            .map(|m| (m.name, m.mount_path))
            .collect();
        assert_eq!(
            mounted,
            [
                (
                    "kafka-secret-0".to_owned(),
                    format!("{SECRETS_DIR}/cluster-ca")
                ),
                ("kafka-secret-1".to_owned(), format!("{SECRETS_DIR}/user")),
            ]
        );
        let volumes = pod.volumes.unwrap_or_default();
        assert!(volumes.iter().any(|v| v.name == "kafka-secret-1"
            && v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("user")));
        let annotations = template
            .metadata
            .and_then(|m| m.annotations)
            .expect("annotations");
        assert_eq!(
            annotations.get(SECRETS_HASH).map(String::as_str),
            Some("v1")
        );
        // The manifest names the Secrets only: a rotation changes the digest, not the ConfigMap.
        let manifest = engine_manifest(&a).expect("manifest");
        assert!(manifest.contains("secretName: user"), "{manifest}");
        // Without spec.kafka, nothing of it.
        let plain = stateful_set(&app(""), "m", &decisions(&topics, &stores));
        let pod = plain.spec.expect("spec").template;
        assert!(
            !pod.metadata
                .and_then(|m| m.annotations)
                .unwrap_or_default()
                .contains_key(SECRETS_HASH)
        );
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
        assert_eq!(
            c["args"],
            serde_json::json!(["run", "-f", "/etc/freshet/app.yaml"])
        );
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
                "FRESHET_APPLICATION_ID",
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

    #[test]
    fn the_pods_fit_the_restricted_pod_security_level() {
        let a = app("  resources: { limits: { memory: 1Gi } }");
        let manifest = engine_manifest(&a).expect("yaml");
        let sts = stateful_set(&a, &manifest, &decisions(&[], &[]));
        let v = serde_json::to_value(&sts).expect("json");
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(
            pod["securityContext"],
            serde_json::json!({ "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                "fsGroup": 65532, "seccompProfile": { "type": "RuntimeDefault" } })
        );
        let c = &pod["containers"][0];
        assert_eq!(
            c["securityContext"],
            serde_json::json!({ "allowPrivilegeEscalation": false,
                "capabilities": { "drop": ["ALL"] }, "readOnlyRootFilesystem": true })
        );
        let mounts: Vec<(&str, bool)> = c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .map(|m| {
                (
                    m["mountPath"].as_str().unwrap_or_default(),
                    m["readOnly"] == true,
                )
            })
            .collect();
        assert_eq!(
            mounts,
            [
                (MANIFEST_DIR, true),
                (DEFAULT_STATE_DIR, false),
                (TMP_DIR, false)
            ]
        );
        assert!(pod["volumes"][1]["emptyDir"].is_object(), "{pod}");
        // The app's memory (Kubernetes requests what it limits), the default CPU.
        assert_eq!(
            c["resources"],
            serde_json::json!({ "requests": { "cpu": "250m" },
                "limits": { "cpu": "1", "memory": "1Gi" } })
        );
        // An app's own settings win; what it leaves unset is filled in.
        let own = app(
            "  pod: { automountServiceAccountToken: true, securityContext: { runAsUser: 1000, fsGroup: 2000 } }",
        );
        let sts = stateful_set(&own, &manifest, &decisions(&[], &[]));
        let pod = serde_json::to_value(&sts).expect("json")["spec"]["template"]["spec"].clone();
        assert_eq!(pod["automountServiceAccountToken"], true);
        assert_eq!(pod["securityContext"]["runAsUser"], 1000);
        assert_eq!(pod["securityContext"]["fsGroup"], 2000);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    }
}
