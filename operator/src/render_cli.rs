//! `freshet-operator render`: the objects the operator would create for a StreamsApp manifest,
//! printed without a cluster, for review (GitOps pull requests) and for tests.
//!
//! The manifest is read and checked as the reconciler checks an app: it must be a StreamsApp
//! (apiVersion and kind, unknown fields refused), its topology must compile with the engine's
//! compiler, and autoscaling settings must be usable. The objects then come from the
//! reconciler's own code ([`render::objects`], [`scaling`]) and are printed as a multi-document
//! YAML stream, in the order the operator applies them ([`render::Objects::ORDER`]).
//!
//! What only a cluster knows is assumed, and differs from the live objects in these ways:
//!
//! - **Replicas**: the reconciler caps `spec.replicas` at the instances the partitions can
//!   use, which needs Kafka. Render prints `spec.replicas` (1 when unset); with autoscaling on,
//!   the autoscaler's first decision before any offsets are measured (raised to
//!   `minReplicas`). `--replicas` overrides both.
//! - **Owner references**: they need the StreamsApp's uid, which exists only once the
//!   apiserver stored it. Render leaves `metadata.ownerReferences` out, unless `--owner-uid`
//!   gives the uid (then they are exactly the operator's).
//! - **Namespace**: `--namespace`, else the manifest's `metadata.namespace`, else `default`.
//! - **Image**: `spec.image`, else `--image` (the operator's `--engine-image` default, and the
//!   same `FRESHET_ENGINE_IMAGE` variable).
//! - **Held topology changes**: the reconciler holds back a change of internal topics or
//!   stores against a running StatefulSet; render always shows the new version.

use std::io::{Read, Write};
use std::path::PathBuf;

use freshet_crds::StreamsApp;
use kube::api::TypeMeta;
use kube::{Resource, ResourceExt};

use crate::kafka::{self, StateSignature as _};
use crate::render::{self, Decisions};
use crate::scaling;

/// The options of `freshet-operator render`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    about = "Print the objects the operator would create for a StreamsApp manifest, without a cluster",
    long_about = "Print the objects the operator would create for a StreamsApp manifest \
(ConfigMap, Service, StatefulSet, PodDisruptionBudget, in the order it applies them) as a \
multi-document YAML stream, without a cluster.\n\n\
The manifest is checked as the reconciler checks it (fields, topology, autoscaling). \
What only a cluster knows is assumed:\n\
- replicas: spec.replicas (1 when unset), not capped by the partition count the operator reads \
from Kafka; with autoscaling on, raised to minReplicas as the autoscaler's first decision does. \
--replicas overrides.\n\
- ownerReferences: left out, since the StreamsApp's uid exists only on the apiserver; \
--owner-uid fills them in.\n\
- namespace: --namespace, else metadata.namespace, else default."
)]
pub struct RenderArgs {
    /// The StreamsApp manifest (`-` reads standard input).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Namespace of the objects [default: the manifest's metadata.namespace, else `default`].
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// The engine image when the manifest sets no spec.image.
    #[arg(long, env = "FRESHET_ENGINE_IMAGE", default_value = render::DEFAULT_IMAGE)]
    pub image: String,
    /// StatefulSet replicas, in place of what the manifest asks for (the operator would also
    /// cap them at what the partitions can use).
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub replicas: Option<i32>,
    /// The StreamsApp's uid on the apiserver: with it, every object carries the operator's
    /// owner reference; without it, none.
    #[arg(long, value_name = "UID")]
    pub owner_uid: Option<String>,
}

/// Why a manifest cannot be rendered; every variant names the manifest.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The manifest could not be read.
    #[error("{source_name}: cannot read it: {cause}")]
    Read {
        /// The file's path, or `-` for standard input.
        source_name: String,
        /// The I/O error.
        #[source]
        cause: std::io::Error,
    },
    /// Not a StreamsApp: the parser's message names the field and the line.
    #[error("{source_name}: not a valid StreamsApp: {cause}")]
    Parse {
        /// The file's path, or `-` for standard input.
        source_name: String,
        /// The parser's error, with line and column.
        #[source]
        cause: serde_yaml_ng::Error,
    },
    /// Parsed, but the reconciler would refuse it; `message` starts with the field.
    #[error("{source_name}: {message}")]
    Invalid {
        /// The file's path, or `-` for standard input.
        source_name: String,
        /// What is wrong, starting with the field.
        message: String,
    },
    /// The objects could not be serialized.
    #[error("{source_name}: cannot write the objects as YAML: {cause}")]
    Yaml {
        /// The file's path, or `-` for standard input.
        source_name: String,
        /// The serializer's error.
        #[source]
        cause: serde_yaml_ng::Error,
    },
    /// Standard output could not be written.
    #[error("cannot write the output: {0}")]
    Write(#[from] std::io::Error),
}

/// The manifest's name in messages: its path, or `<stdin>`.
fn source_name(args: &RenderArgs) -> String {
    if args.file.as_os_str() == "-" {
        "<stdin>".to_owned()
    } else {
        args.file.display().to_string()
    }
}

/// Reads the manifest of `args` (from `stdin` for `-f -`) and writes its objects to `out`.
pub fn run(args: &RenderArgs, stdin: impl Read, mut out: impl Write) -> Result<(), RenderError> {
    let name = source_name(args);
    let read = |cause| RenderError::Read {
        source_name: name.clone(),
        cause,
    };
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        let mut stdin = stdin;
        stdin.read_to_string(&mut text).map_err(read)?;
        text
    } else {
        std::fs::read_to_string(&args.file).map_err(read)?
    };
    out.write_all(render_yaml(&text, &name, args)?.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The objects of the manifest `text` (named `source_name` in errors), as YAML documents.
pub fn render_yaml(
    text: &str,
    source_name: &str,
    args: &RenderArgs,
) -> Result<String, RenderError> {
    let objects = render_objects(text, source_name, args)?;
    let yaml = |cause| RenderError::Yaml {
        source_name: source_name.to_owned(),
        cause,
    };
    let documents = [
        serde_yaml_ng::to_string(&objects.config_map).map_err(yaml)?,
        serde_yaml_ng::to_string(&objects.service).map_err(yaml)?,
        serde_yaml_ng::to_string(&objects.stateful_set).map_err(yaml)?,
        serde_yaml_ng::to_string(&objects.pod_disruption_budget).map_err(yaml)?,
    ];
    Ok(documents
        .iter()
        .map(|d| format!("---\n{d}"))
        .collect::<String>())
}

/// The objects of the manifest `text`, after the reconciler's checks.
pub fn render_objects(
    text: &str,
    source_name: &str,
    args: &RenderArgs,
) -> Result<render::Objects, RenderError> {
    let invalid = |message: String| RenderError::Invalid {
        source_name: source_name.to_owned(),
        message,
    };
    let parse = |cause| RenderError::Parse {
        source_name: source_name.to_owned(),
        cause,
    };
    // The StreamsApp type reads no apiVersion or kind: another resource would render as if it
    // were one.
    let types: TypeMeta = serde_yaml_ng::from_str(text).map_err(parse)?;
    let (api_version, kind) = (StreamsApp::api_version(&()), StreamsApp::kind(&()));
    if types.api_version != api_version || types.kind != kind {
        return Err(invalid(format!(
            "apiVersion and kind: {} {}, not a {api_version} {kind}",
            types.api_version, types.kind
        )));
    }
    let mut app: StreamsApp = serde_yaml_ng::from_str(text).map_err(parse)?;
    if app.metadata.name.as_deref().is_none_or(str::is_empty) {
        return Err(invalid(
            "metadata.name: missing; it names every object".into(),
        ));
    }
    app.metadata.namespace = Some(
        args.namespace
            .clone()
            .or_else(|| app.metadata.namespace.clone())
            .unwrap_or_else(|| "default".to_owned()),
    );
    app.metadata.uid = args.owner_uid.clone();
    // As the reconciler does before it applies anything: refuse application.id overrides and
    // compile with the engine's compiler.
    let overrides = crate::tenancy::id_overrides(&app.spec);
    if !overrides.is_empty() {
        return Err(invalid(crate::tenancy::id_override_message(&overrides)));
    }
    let plan = kafka::plan(&app.spec).map_err(|m| invalid(format!("spec: {m}")))?;
    let policy = scaling::autoscaling(&app.spec)
        .map(|a| scaling::autoscaling_policy(a, plan.config.commit_interval))
        .transpose()
        .map_err(|e| invalid(e.to_string()))?;
    let replicas = args
        .replicas
        .unwrap_or_else(|| scaling::replicas_without_partitions(&app.spec, policy.as_ref()));
    let signature = plan.state_signature();
    let layout = plan.state_layout();
    let decisions = Decisions {
        replicas,
        image: render::engine_image(&app, &args.image),
        signature: &signature,
        internal_topics: &plan.internal_topics,
        stores: &plan.stores,
        layout: &layout,
        secrets_digest: None,
    };
    tracing::debug!(app = %app.name_any(), replicas, "rendering");
    render::objects(&app, &decisions).map_err(|cause| RenderError::Yaml {
        source_name: source_name.to_owned(),
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> RenderArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            render: RenderArgs,
        }
        let mut all = vec!["render", "-f", "-"];
        all.extend(extra);
        <Cli as clap::Parser>::try_parse_from(all)
            .expect("arguments")
            .render
    }

    const APP: &str = r#"
apiVersion: freshet.dev/v1alpha1
kind: StreamsApp
metadata: { name: orders }
spec:
  applicationId: orders-app
  bootstrapServers: kafka:9092
  replicas: 3
  topology:
    streams: [{ name: orders, topic: orders }]
    pipelines: [{ name: p, from: orders, steps: [{ groupByKey: {} }, { count: { store: c } }, { toStream: {} }, { to: { topic: out } }] }]
"#;

    fn documents(yaml: &str) -> Vec<serde_json::Value> {
        yaml.split("---\n")
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_yaml_ng::from_str(d).expect("a YAML document"))
            .collect()
    }

    #[test]
    fn prints_the_objects_in_apply_order_with_kinds_and_namespace() {
        let mut out = Vec::new();
        run(&args(&["--image", "e:1"]), APP.as_bytes(), &mut out).expect("render");
        let docs = documents(&String::from_utf8(out).expect("utf-8"));
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert_eq!(kinds, render::Objects::ORDER);
        for d in &docs {
            assert_eq!(d["metadata"]["namespace"], "default", "{d}");
            assert!(d["apiVersion"].is_string(), "{d}");
            assert!(d["metadata"].get("ownerReferences").is_none(), "{d}");
        }
        let sts = &docs[2]["spec"];
        assert_eq!(sts["replicas"], 3);
        assert_eq!(sts["template"]["spec"]["containers"][0]["image"], "e:1");
        assert_eq!(
            docs[2]["metadata"]["annotations"][render::STATE_STORES],
            "c"
        );
    }

    #[test]
    fn flags_override_namespace_replicas_and_the_owner() {
        let a = args(&["-n", "shop", "--replicas", "7", "--owner-uid", "u-1"]);
        let objects = render_objects(APP, "app.yaml", &a).expect("render");
        let sts = objects.stateful_set;
        assert_eq!(sts.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(sts.spec.as_ref().and_then(|s| s.replicas), Some(7));
        let owner = &sts.metadata.owner_references.expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("StreamsApp", "u-1")
        );
    }

    #[test]
    fn a_bad_manifest_is_refused_naming_the_file_and_field() {
        let a = args(&[]);
        let typo = APP.replace("replicas: 3", "replica: 3");
        let err = render_objects(&typo, "app.yaml", &a)
            .err()
            .expect("unknown field")
            .to_string();
        assert!(
            err.starts_with("app.yaml: ") && err.contains("replica"),
            "{err}"
        );
        let not_an_app = APP.replace("kind: StreamsApp", "kind: Deployment");
        let err = render_objects(&not_an_app, "app.yaml", &a)
            .err()
            .expect("another kind")
            .to_string();
        assert!(
            err.starts_with("app.yaml: apiVersion and kind: ") && err.contains("Deployment"),
            "{err}"
        );
        let bad_step = APP.replace("groupByKey: {}", "groupByKee: {}");
        let err = render_objects(&bad_step, "app.yaml", &a)
            .err()
            .expect("an unknown step")
            .to_string();
        assert!(
            err.starts_with("app.yaml: ")
                && err.contains("spec.topology.pipelines[0].steps[0]")
                && err.contains("did you mean 'groupByKey'"),
            "{err}"
        );
        let bad_autoscaling = APP.replace(
            "replicas: 3",
            "autoscaling: { enabled: true, window: forever }",
        );
        let err = render_objects(&bad_autoscaling, "app.yaml", &a)
            .err()
            .expect("an unusable duration")
            .to_string();
        assert!(err.contains("spec.autoscaling.window"), "{err}");
        let id_override = APP.replace("replicas: 3", "config: { application.id: someone-else }");
        let err = render_objects(&id_override, "app.yaml", &a)
            .err()
            .expect("an application.id override")
            .to_string();
        assert!(err.contains("spec.config[application.id]"), "{err}");
        let err = run(
            &RenderArgs {
                file: "/nonexistent/app.yaml".into(),
                ..a
            },
            std::io::empty(),
            Vec::new(),
        )
        .expect_err("no such file")
        .to_string();
        assert!(err.starts_with("/nonexistent/app.yaml: "), "{err}");
    }
}
