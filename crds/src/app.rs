use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, PodSecurityContext, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kafka::KafkaSpec;
use crate::topology::TopologySpec;

/// A Kafka Streams application: its topology and how it runs.
///
/// Field names follow Kafka Streams' configuration (`applicationId` is `application.id`,
/// `numStreamThreads` is `num.stream.threads`, ...).
// Each `printcolumn(...)` repeats `type_ = ..`; clippy reads that as a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "freshet.dev",
    version = "v1alpha1",
    kind = "StreamsApp",
    namespaced,
    shortname = "sapp",
    status = "StreamsAppStatus",
    derive = "PartialEq",
    doc = "A Kafka Streams application run by the Freshet engine",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "App ID", type_ = "string", json_path = ".spec.applicationId"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Lag", type_ = "integer", json_path = ".status.lag"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.bootstrapServers) || (has(self.kafka) && has(self.kafka.bootstrapServers))",
    "message": "bootstrapServers is required (or kafka.bootstrapServers)"
}]))]
pub struct StreamsAppSpec {
    /// `application.id`: the consumer group and the prefix of every internal topic.
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "applicationId is immutable: it names the consumer group and every internal topic; to move to a new id, create a new StreamsApp"
    }]))]
    pub application_id: String,
    /// `bootstrap.servers`: where the Kafka cluster is reached (or `kafka.bootstrapServers`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bootstrap_servers: String,
    /// The Kafka cluster's TLS and the application's credentials, from Secrets (Strimzi's
    /// shape): never in `config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSpec>,
    /// The schema registry of the `avro`, `json-schema` and `protobuf` serdes, its credentials
    /// and CA certificates from Secrets: never in `config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_registry: Option<crate::registry::SchemaRegistrySpec>,
    /// `num.stream.threads`: stream threads per instance (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub num_stream_threads: Option<u32>,
    /// `state.dir`: where RocksDB state lives (a PersistentVolume in Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
    /// `processing.guarantee` (default at_least_once; `config` may also set it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_guarantee: Option<ProcessingGuarantee>,
    /// `default.key.serde`, by name: bytes, string, int, long, double, json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_key_serde: Option<String>,
    /// `default.value.serde`, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_value_serde: Option<String>,
    /// Any other Kafka Streams or librdkafka property.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Desired instances; the operator never runs more than the tasks can use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Lag-driven autoscaling of the instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// The volume behind `stateDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// The engine image; the operator's own default when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// CPU and memory of each instance's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// `true` stops every instance (autoscaling on or off) and keeps the state and the
    /// committed offsets; `false` (or unset) runs them again, from where they stopped. The
    /// `Suspended` condition says which.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// What deleting the StreamsApp does to its internal topics and consumer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_policy: Option<CleanupPolicy>,
    /// Settings of the instances' pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodSettings>,
    /// The processing topology: sources, tables and pipelines of steps.
    pub topology: TopologySpec,
}

impl StreamsAppSpec {
    /// Every Secret `spec.kafka` and `spec.schemaRegistry` name, once each, in the order
    /// written: what a pod mounts and what the operator reads (for the digest that rolls pods).
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        let kafka = self.kafka.iter().flat_map(|k| k.secret_names());
        let registry = self.schema_registry.iter().flat_map(|r| r.secret_names());
        for name in kafka.chain(registry) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// What deleting a StreamsApp does to what it left in Kafka.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CleanupPolicy {
    /// Keep the internal topics and the consumer group (a new StreamsApp with the same
    /// applicationId resumes from them).
    #[default]
    Retain,
    /// Delete them, as Kafka Streams' application reset tool does.
    Delete,
}

/// Pod settings a platform team sets on every instance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSettings {
    /// Labels added to every instance's pod (the operator's own labels win on conflict).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to every instance's pod (e.g. for a service mesh or a log shipper).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Tolerations of the instances' pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node selector of the instances' pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Affinity of the instances' pods; spread instances over nodes with pod anti-affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Security context of the instances' pods. Fields left unset get the operator's defaults
    /// (`runAsNonRoot`, user and group 65532, `fsGroup` 65532 for the state volume,
    /// `seccompProfile: RuntimeDefault`), which the Pod Security `restricted` level requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// ServiceAccount the instances run as (the engine needs no Kubernetes API access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Whether the ServiceAccount's API token is mounted into the pods. Off by default: the
    /// engine never calls the Kubernetes API, and a token it does not need is one a compromised
    /// pod could use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    /// Extra environment variables; client credentials come from Secrets here
    /// (`valueFrom.secretKeyRef`), as `FRESHET_CONFIG_*` variables the engine reads as config
    /// (for instance `FRESHET_CONFIG_SASL_PASSWORD` for `sasl.password`), never from the
    /// ConfigMap.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Whole Secrets or ConfigMaps as environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
}

/// `processing.guarantee`, spelled as Kafka Streams spells it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingGuarantee {
    /// `at_least_once`: outputs and offsets are committed separately; after a crash some records are processed again.
    #[default]
    AtLeastOnce,
    /// `exactly_once_v2`: outputs, changelogs and offsets commit in one Kafka transaction per thread.
    ExactlyOnceV2,
}

/// Lag-driven autoscaling; `spec.replicas` is then only the starting point.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",
    "message": "minReplicas must not exceed maxReplicas"
}]))]
pub struct AutoscalingSpec {
    /// The operator sizes the StatefulSet itself.
    #[serde(default)]
    pub enabled: bool,
    /// Fewest instances (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_replicas: Option<i32>,
    /// Most instances (never more than the tasks can use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replicas: Option<i32>,
    /// Share of the measured capacity the input may use (default 0.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.05, max = 1.0))]
    pub target_utilization: Option<f64>,
    /// How soon the lag must be drained (a duration such as `5m`, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::duration::optional_duration_schema")]
    pub catch_up_duration: Option<String>,
    /// How long recommendations must stay lower before scaling down (default `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::duration::optional_duration_schema")]
    pub scale_down_stabilization: Option<String>,
    /// How often lag and rates are measured (default `15s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::duration::optional_duration_schema")]
    pub metrics_interval: Option<String>,
    /// Over how long rates are measured (default `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::duration::optional_duration_schema")]
    pub window: Option<String>,
    /// No change this long after one, so its rebalance is not read as load (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::duration::optional_duration_schema")]
    pub cooldown: Option<String>,
    /// Most instances added at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_scale_up_step: Option<i32>,
    /// Before any capacity is measured: one instance per this much lag (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_lag_per_replica: Option<i64>,
}

/// The autoscaler's last look at an app.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalingStatus {
    /// Records waiting: the lag the autoscaler scales on (`rawLag` less the offsets of
    /// transaction markers and aborted records no consumer reads).
    pub lag: i64,
    /// Log-end minus committed offsets, summed over the input partitions, as Kafka's tools show.
    #[serde(default)]
    pub raw_lag: i64,
    /// Records/s arriving on the inputs, over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_rate: Option<f64>,
    /// Records/s the app committed, over the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_rate: Option<f64>,
    /// Instances the autoscaler runs.
    pub desired_replicas: i32,
    /// When the autoscaler last changed the instances (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    /// Why it chose `desiredReplicas`.
    pub reason: String,
}

/// The PersistentVolumeClaim behind `stateDir`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, a Kubernetes quantity such as `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// StorageClass of the state volumes (the cluster's default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// What the operator observed; written through the status subresource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamsAppStatus {
    /// The `metadata.generation` these conditions and fields describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `ConfigValid`, `TopologyValid`, `TopicsReady`, `Scaling`, `Degraded` and `Ready`, with reasons and messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Instances the StatefulSet runs (the scale subresource's status replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Instances ready (passing `/readyz`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Label selector of the pods, for the scale subresource (HPA, KEDA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The most instances that can all hold work: ceil(most tasks of a sub-topology / threads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_useful_replicas: Option<i32>,
    /// Tasks of the largest sub-topology (its input partitions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<i32>,
    /// Records waiting on the input topics (sources and repartition topics), summed over
    /// partitions: log-end minus committed offsets, less the tail offsets that hold no record
    /// (transaction markers, aborted records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// The repartition, changelog and subscription topics the application uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub internal_topics: Vec<String>,
    /// The last error an instance reported, with the pod that reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_processing_error: Option<String>,
    /// What the autoscaler measured and decided, when it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingStatus>,
    /// The last application reset the `freshet.dev/reset` annotation asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset: Option<ResetStatus>,
    /// Under `group.protocol=streams`: the active, standby and warm-up tasks of each pod, as the
    /// streams group's coordinator assigned them (StreamsGroupDescribe), pods sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignment: Vec<PodTasks>,
}

/// One pod's tasks in a streams group.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTasks {
    /// The pod (from its members' `group.instance.id`, `<pod>-<thread>`), or the member's
    /// client host when it has none.
    pub pod: String,
    /// Its active tasks, `<subtopology>_<partition>`, over all its stream threads.
    pub tasks: Vec<String>,
    /// Its standby tasks (kept current from their changelogs to take over without a full
    /// restore; the group's `streams.num.standby.replicas`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standby_tasks: Vec<String>,
    /// Its warm-up tasks (restoring until caught up, when the broker moves the active task).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warmup_tasks: Vec<String>,
}

/// An application reset asked for with `kubectl annotate sapp X freshet.dev/reset=<token>[:<mode>]`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetStatus {
    /// The annotation's token: a new token asks for a new reset.
    pub token: String,
    /// Where the input offsets go: `to-earliest` (the default), `to-latest`,
    /// `to-datetime=<ISO-8601>`, `by-duration=<duration>` or `to-offset=<n>`.
    pub mode: String,
    /// `Stopping` (the instances), `Resetting` (waiting for the group to empty, then resetting),
    /// `Done` or `Failed`.
    pub phase: String,
    /// What was done, or why not.
    pub message: String,
    /// The state signature of the topology the reset was done for: a held change of the state
    /// with this signature rolls out after the reset (reset and apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl ResetStatus {
    /// The phase of a reset done.
    pub const DONE: &'static str = "Done";
    /// The phase of a reset that failed for good (a new token tries again).
    pub const FAILED: &'static str = "Failed";

    /// The last reset of `status`, if it is done.
    pub fn done(status: Option<&StreamsAppStatus>) -> Option<&ResetStatus> {
        status?.reset.as_ref().filter(|r| r.phase == Self::DONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::{CustomResourceExt, Resource};

    const EXAMPLE: &str = r#"
apiVersion: freshet.dev/v1alpha1
kind: StreamsApp
metadata:
  name: orders
spec:
  applicationId: orders-app
  bootstrapServers: kafka:9092
  numStreamThreads: 2
  processingGuarantee: exactly_once_v2
  config:
    commit.interval.ms: "100"
  replicas: 2
  autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 8 }
  storage: { size: 1Gi }
  topology:
    streams:
      - { name: orders, topic: orders }
    pipelines:
      - name: big-orders
        from: orders
        steps:
          - filter: "value.amount >= 100"
          - to: { topic: big-orders }
"#;

    #[test]
    fn the_design_manifest_parses_into_the_typed_spec() {
        let app: StreamsApp = serde_yaml_ng::from_str(EXAMPLE).expect("example manifest parses");
        assert_eq!(app.spec.application_id, "orders-app");
        assert_eq!(app.spec.num_stream_threads, Some(2));
        assert_eq!(
            app.spec.processing_guarantee,
            Some(ProcessingGuarantee::ExactlyOnceV2)
        );
        assert_eq!(app.spec.config["commit.interval.ms"], "100");
        assert_eq!(app.spec.autoscaling.as_ref().unwrap().max_replicas, Some(8));
        assert_eq!(app.spec.topology.pipelines.len(), 1);
    }

    #[test]
    fn an_unknown_spec_field_is_refused_with_its_name() {
        let bad = EXAMPLE.replace("numStreamThreads: 2", "numStreamThread: 2");
        let err = serde_yaml_ng::from_str::<StreamsApp>(&bad).unwrap_err();
        assert!(
            err.to_string().contains("numStreamThread"),
            "error should name the field: {err}"
        );
    }

    #[test]
    fn the_crd_has_the_names_and_subresources_kubectl_and_an_hpa_need() {
        let crd = StreamsApp::crd();
        assert_eq!(crd.spec.group, crate::GROUP);
        assert_eq!(StreamsApp::kind(&()), "StreamsApp");
        assert_eq!(crd.spec.names.short_names, Some(vec!["sapp".to_string()]));
        let version = &crd.spec.versions[0];
        let sub = version.subresources.as_ref().expect("subresources");
        assert!(sub.status.is_some());
        let scale = sub.scale.as_ref().expect("scale subresource");
        assert_eq!(scale.spec_replicas_path, ".spec.replicas");
        assert_eq!(scale.status_replicas_path, ".status.replicas");
        assert_eq!(
            scale.label_selector_path.as_deref(),
            Some(".status.selector")
        );
        let columns: Vec<_> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            columns,
            ["App ID", "Replicas", "Ready", "Lag", "Suspended", "Age"]
        );
    }
}
