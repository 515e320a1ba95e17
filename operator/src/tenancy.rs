//! Tenants sharing one operator and one Kafka cluster cannot touch each other's work:
//!
//! - **One owner per `applicationId`**: the id is the consumer group and the prefix of every
//!   internal topic, so two apps with one id would join one group, fence each other's
//!   producers, and one's `cleanupPolicy: Delete` would wipe the other's state. Among the apps
//!   the operator watches, the one created first (oldest `creationTimestamp`, then namespace and
//!   name) owns it; that rule needs no record of its own, so every operator replica and every
//!   restart decides alike. Any other app with the id gets a `Conflict` condition and the
//!   operator creates, changes and deletes nothing for it (not even on its deletion).
//! - **No `application.id` overrides**: `spec.config` and `spec.pod.env` may not set it (the
//!   engine reads `FRESHET_APPLICATION_ID` and `FRESHET_CONFIG_APPLICATION_ID` over the
//!   manifest), and the operator sets `FRESHET_APPLICATION_ID` itself, which wins over anything
//!   a Secret or ConfigMap in `envFrom` could hold.
//! - **Only what it made**: an object with the name of one of the app's, but without the app as
//!   its controller (owner reference by uid), is neither adopted (applied over) nor deleted: the
//!   `Conflict` condition names it, and nothing is applied until it is gone.

use std::sync::Arc;

use freshet_crds::{StreamsApp, StreamsAppSpec};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

use crate::context::{Context, Error};
use crate::render;

/// The condition of an app that may not run: its applicationId has another owner, or objects
/// it would apply were not made for it.
pub const CONFLICT: &str = "Conflict";
/// `Conflict`'s reason when another app owns the applicationId.
pub const ID_TAKEN: &str = "ApplicationIdInUse";
/// `Conflict`'s reason when objects named like the app's were not made for it.
pub const NOT_OURS: &str = "ObjectsNotOwned";
/// `TopologyValid`'s reason when the spec sets `application.id` another way.
pub const ID_OVERRIDE: &str = "ApplicationIdOverride";

/// The app that owns an applicationId, as the conflict message names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its creation time.
    pub created: Option<Timestamp>,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if let Some(t) = self.created {
            write!(f, " (created {t})")?;
        }
        Ok(())
    }
}

/// Who comes first for an applicationId: the oldest, then by namespace and name. An app
/// without a creation time (not read from the apiserver) comes last.
fn precedence(app: &StreamsApp) -> (bool, Option<Timestamp>, String, String) {
    let created = app.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        created.is_none(),
        created,
        app.namespace().unwrap_or_default(),
        app.name_any(),
    )
}

/// The owner of `app.spec.applicationId` among `others` and `app` itself; `None` when it is
/// `app`. `others` may include `app` (an older copy of it): it is recognised by namespace and
/// name.
pub fn other_owner<'a>(
    app: &StreamsApp,
    others: impl IntoIterator<Item = &'a StreamsApp>,
) -> Option<Owner> {
    let key = precedence(app);
    let id = &app.spec.application_id;
    let first = others
        .into_iter()
        .filter(|o| &o.spec.application_id == id)
        .filter(|o| (o.namespace(), o.name_any()) != (app.namespace(), app.name_any()))
        .map(|o| (precedence(o), o))
        .filter(|(p, _)| *p < key)
        .min_by(|a, b| a.0.cmp(&b.0))?;
    Some(Owner {
        namespace: first.1.namespace().unwrap_or_default(),
        name: first.1.name_any(),
        created: first.0.1,
    })
}

/// The owner of `app`'s applicationId when it is another app the operator watches. From the
/// controllers' caches once they hold a full list; for an app never reconciled (no status yet)
/// from the apiserver, since the cache of another namespace may not have seen an app created a
/// moment before it.
pub async fn owner_elsewhere(ctx: &Context, app: &StreamsApp) -> Result<Option<Owner>, Error> {
    let Some(watched) = ctx.watched.get() else {
        return live_owner(ctx, app, &[]).await;
    };
    if app.status.is_none() {
        return live_owner(ctx, app, &watched.namespaces).await;
    }
    let mut all: Vec<Arc<StreamsApp>> = Vec::new();
    for store in &watched.stores {
        if store.wait_until_ready().await.is_err() {
            return live_owner(ctx, app, &watched.namespaces).await;
        }
        let id = &app.spec.application_id;
        all.extend(store.state_filter(|a| &a.spec.application_id == id));
    }
    Ok(other_owner(app, all.iter().map(|a| a.as_ref())))
}

async fn live_owner(
    ctx: &Context,
    app: &StreamsApp,
    namespaces: &[String],
) -> Result<Option<Owner>, Error> {
    let mut all: Vec<StreamsApp> = Vec::new();
    if namespaces.is_empty() {
        let api: Api<StreamsApp> = Api::all(ctx.client.clone());
        all = api.list(&ListParams::default()).await?.items;
    } else {
        for ns in namespaces {
            let api: Api<StreamsApp> = Api::namespaced(ctx.client.clone(), ns);
            all.extend(api.list(&ListParams::default()).await?.items);
        }
    }
    Ok(other_owner(app, &all))
}

/// What in `spec` would set `application.id` other than `spec.applicationId`: `config` keys and
/// `pod.env` variables, named as written. Empty when nothing does.
pub fn id_overrides(spec: &StreamsAppSpec) -> Vec<String> {
    const ID: &str = "application.id";
    let mut found: Vec<String> = spec
        .config
        .keys()
        .filter(|k| k.as_str() == ID)
        .map(|k| format!("spec.config[{k}]"))
        .collect();
    for var in spec.pod.iter().flat_map(|p| &p.env) {
        // The engine's own reading of its environment decides which variables set it.
        let read = freshet_spec::config::layers_from_env([(var.name.clone(), String::new())]);
        if read.iter().any(|(property, _)| property == ID) {
            found.push(format!("spec.pod.env[{}]", var.name));
        }
    }
    found
}

/// The message of a refused override.
pub fn id_override_message(found: &[String]) -> String {
    format!(
        "{} would set application.id, which is spec.applicationId only: the consumer group and internal topics of another application must not be reachable by overriding it; remove {}",
        found.join(", "),
        if found.len() == 1 { "it" } else { "them" }
    )
}

/// Whether an object with `meta` was made for `app`: it names `app` (by uid) as its controller.
pub fn made_for(meta: &ObjectMeta, app: &StreamsApp) -> bool {
    let Some(uid) = app.metadata.uid.as_deref() else {
        return false;
    };
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

/// The objects named like `app`'s that exist without `app` as their controller, as
/// `Kind namespace/name`.
pub async fn foreign_objects(app: &StreamsApp, ctx: &Context) -> Result<Vec<String>, Error> {
    let ns = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let client = ctx.client.clone();
    let metas = [
        (
            "ConfigMap",
            render::config_map_name(app),
            Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get_metadata_opt(&render::config_map_name(app))
                .await?
                .map(|m| m.metadata),
        ),
        (
            "Service",
            name.clone(),
            Api::<Service>::namespaced(client.clone(), &ns)
                .get_metadata_opt(&name)
                .await?
                .map(|m| m.metadata),
        ),
        (
            "StatefulSet",
            name.clone(),
            Api::<StatefulSet>::namespaced(client.clone(), &ns)
                .get_metadata_opt(&name)
                .await?
                .map(|m| m.metadata),
        ),
        (
            "PodDisruptionBudget",
            name.clone(),
            Api::<PodDisruptionBudget>::namespaced(client, &ns)
                .get_metadata_opt(&name)
                .await?
                .map(|m| m.metadata),
        ),
    ];
    Ok(metas
        .into_iter()
        .filter_map(|(kind, name, meta)| {
            let meta = meta?;
            (!made_for(&meta, app)).then(|| format!("{kind} {ns}/{name}"))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn app(ns: &str, name: &str, id: &str, created: Option<&str>) -> StreamsApp {
        let mut a: StreamsApp = serde_yaml_ng::from_str(&format!(
            r#"
apiVersion: freshet.dev/v1alpha1
kind: StreamsApp
metadata: {{ name: {name}, namespace: {ns} }}
spec:
  applicationId: {id}
  bootstrapServers: k:9092
  topology:
    streams: [{{ name: s, topic: t }}]
    pipelines: [{{ name: p, from: s, steps: [{{ to: {{ topic: o }} }}] }}]
"#
        ))
        .expect("app");
        a.metadata.creation_timestamp =
            created.map(|c| Time(c.parse::<Timestamp>().expect("timestamp")));
        a
    }

    #[test]
    fn the_oldest_app_owns_an_id_then_namespace_and_name_decide() {
        let first = app("team-b", "orders", "orders", Some("2026-01-01T00:00:00Z"));
        let second = app("team-a", "orders", "orders", Some("2026-01-02T00:00:00Z"));
        let other_id = app("team-c", "x", "other", Some("2025-01-01T00:00:00Z"));
        let all = [first.clone(), second.clone(), other_id];
        assert_eq!(other_owner(&first, &all), None, "the oldest owns it");
        let owner = other_owner(&second, &all).expect("the second conflicts");
        assert_eq!(
            (owner.namespace.as_str(), owner.name.as_str()),
            ("team-b", "orders")
        );
        // Same second: namespace, then name.
        let tie_a = app("a", "z", "same", Some("2026-01-01T00:00:00Z"));
        let tie_b = app("b", "a", "same", Some("2026-01-01T00:00:00Z"));
        let ties = [tie_a.clone(), tie_b.clone()];
        assert_eq!(other_owner(&tie_a, &ties), None);
        assert!(other_owner(&tie_b, &ties).is_some());
        // Not yet stored: it comes after every stored app.
        let unsaved = app("a", "a", "orders", None);
        assert!(other_owner(&unsaved, &all).is_some());
    }

    #[test]
    fn config_and_env_overrides_of_the_id_are_found() {
        let mut a = app("ns", "n", "id", None);
        assert!(id_overrides(&a.spec).is_empty());
        a.spec
            .config
            .insert("application.id".into(), "someone-else".into());
        a.spec
            .config
            .insert("commit.interval.ms".into(), "100".into());
        let env = |name: &str| k8s_openapi::api::core::v1::EnvVar {
            name: name.into(),
            value: Some("x".into()),
            ..Default::default()
        };
        a.spec.pod = Some(freshet_crds::PodSettings {
            env: vec![
                env("FRESHET_APPLICATION_ID"),
                env("FRESHET_CONFIG_APPLICATION_ID"),
                env("FRESHET_CONFIG_SASL_PASSWORD"),
                env("RUST_LOG"),
            ],
            ..Default::default()
        });
        assert_eq!(
            id_overrides(&a.spec),
            [
                "spec.config[application.id]",
                "spec.pod.env[FRESHET_APPLICATION_ID]",
                "spec.pod.env[FRESHET_CONFIG_APPLICATION_ID]"
            ]
        );
    }
}
