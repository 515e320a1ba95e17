//! What tests against the control plane share: the StreamsApp CRD installed, and namespaces of
//! their own.

use std::time::Duration;

use freshet_crds::StreamsApp;
use k8s_openapi::api::core::v1::{Event, Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, CustomResourceExt};
use serde_json::json;

use crate::{eventually, kubelet, unique_name};

/// Applies the StreamsApp CRD from the Rust types and waits until it is Established.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        StreamsApp::crd_name(),
        &PatchParams::apply("freshet-tests").force(),
        &Patch::Apply(StreamsApp::crd()),
    )
    .await
    .expect("apply the StreamsApp CRD");
    eventually(Duration::from_secs(60), "CRD Established", || async {
        let crd = crds.get(StreamsApp::crd_name()).await.ok()?;
        crd.status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;
}

/// The label every test namespace carries, so `make test` can delete those an interrupted run
/// left behind (their pods would otherwise take the real node's room).
pub const TEST_NAMESPACE_LABEL: &str = "freshet.dev/test-namespace";

/// A fresh namespace `<prefix>-...` labelled [`TEST_NAMESPACE_LABEL`], once its default
/// ServiceAccount exists (pods are admitted only then). With the real node, closed to it until a test's [`crate::node::Node`] opens it
/// (see [`crate::kubelet`]): a test that starts no node sees its pods Pending.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = unique_name(prefix);
    let mut meta = json!({"name": name, "labels": { TEST_NAMESPACE_LABEL: "true" }});
    if kubelet::selected() {
        meta["annotations"] = json!({ kubelet::NODE_SELECTOR_ANNOTATION: kubelet::NO_NODE });
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": meta})).expect("namespace");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
    eventually(
        Duration::from_secs(60),
        "default ServiceAccount",
        || async { sas.get_opt("default").await.ok().flatten() },
    )
    .await;
    name
}

/// The Events of namespace `ns` with `reason`, oldest first.
pub async fn events(client: &Client, ns: &str, reason: &str) -> Vec<Event> {
    let mut found: Vec<Event> = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect();
    found.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
    found
}
