//! `freshet-operator`: reconciles StreamsApp resources into StatefulSets of the engine.
//!
//! This first version checks that the StreamsApp CRD is installed and reachable; the
//! reconciler itself is built in the operator issues.
use std::process::ExitCode;

use kube::{Api, Client, CustomResourceExt, api::ListParams};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let client = match Client::try_default().await {
        Ok(c) => c,
        Err(err) => {
            tracing::error!(%err, "cannot build a Kubernetes client: set KUBECONFIG or run in a pod with a ServiceAccount");
            return ExitCode::from(2);
        }
    };
    let apps: Api<freshet_crds::StreamsApp> = Api::all(client);
    match apps.list(&ListParams::default().limit(1)).await {
        Ok(list) => {
            tracing::info!(count = list.items.len(), crd = %freshet_crds::StreamsApp::crd_name(), "StreamsApp API reachable");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(%err, "cannot list StreamsApps: is the CRD installed (helm install freshet charts/freshet) and the apiserver reachable?");
            ExitCode::from(2)
        }
    }
}
