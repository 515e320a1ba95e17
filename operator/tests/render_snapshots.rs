//! The objects the operator builds, pinned: every example app and the manifests under
//! `tests/render/` are rendered with fixed decisions and compared, as JSON, with the files checked
//! in next to them (`tests/render/<name>.json`). A change of what the operator applies shows up
//! here as a diff to review.
//!
//! To accept a deliberate change, regenerate the files and review the diff:
//! `FRESHET_BLESS=1 cargo test -p freshet-operator --test render_snapshots`.

use std::path::{Path, PathBuf};

use freshet_crds::StreamsApp;
use freshet_operator::kafka::{self, StateSignature as _};
use freshet_operator::render::{self, Decisions};

fn crate_dir() -> PathBuf {
    // The directory cargo runs the test in, not the one it was compiled in: a build reused from
    // another checkout (CI shares the target cache) bakes that checkout's path into env!().
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
}

/// (snapshot name, manifest path): the examples, then the manifests of this test.
fn manifests() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let examples = crate_dir().join("../examples");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .expect("examples/")
        .map(|e| e.expect("examples/ entry").path())
        .filter(|p| p.join("app.yaml").exists())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir
            .file_name()
            .expect("example dir name")
            .to_string_lossy()
            .into_owned();
        out.push((format!("example-{name}"), dir.join("app.yaml")));
    }
    let own = crate_dir().join("tests/render");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&own)
        .expect("tests/render/")
        .map(|e| e.expect("tests/render/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let name = file
            .file_stem()
            .expect("file stem")
            .to_string_lossy()
            .into_owned();
        out.push((name, file));
    }
    out
}

/// The four objects of `path`, in the order the operator applies them, as one JSON array. The
/// decisions that need a cluster are fixed: the uid, the namespace when the manifest has none,
/// the image when it names none; replicas are `spec.replicas` (or 1).
fn rendered(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("manifest");
    let mut app: StreamsApp = serde_yaml_ng::from_str(&text).expect("a StreamsApp");
    app.metadata.uid = Some("00000000-0000-0000-0000-000000000001".into());
    if app.metadata.namespace.is_none() {
        app.metadata.namespace = Some("default".into());
    }
    let plan = kafka::plan(&app.spec).expect("the topology compiles");
    let signature = plan.state_signature();
    let layout = plan.state_layout();
    let image = app
        .spec
        .image
        .clone()
        .unwrap_or_else(|| "ghcr.io/freshet/engine:snapshot".into());
    let decisions = Decisions {
        replicas: app.spec.replicas.unwrap_or(1),
        image: &image,
        signature: &signature,
        internal_topics: &plan.internal_topics,
        stores: &plan.stores,
        layout: &layout,
        secrets_digest: None,
    };
    let manifest = render::engine_manifest(&app).expect("engine manifest");
    serde_json::json!([
        render::config_map(&app, &manifest),
        render::service(&app),
        render::stateful_set(&app, &manifest, &decisions),
        render::pod_disruption_budget(&app),
    ])
}

#[test]
fn the_rendered_objects_match_the_snapshots() {
    let bless = std::env::var_os("FRESHET_BLESS").is_some();
    let mut failed = Vec::new();
    for (name, path) in manifests() {
        let got = rendered(&path);
        let snapshot = crate_dir().join(format!("tests/render/{name}.json"));
        let text = serde_json::to_string_pretty(&got).expect("json") + "\n";
        if bless {
            std::fs::write(&snapshot, &text).expect("write the snapshot");
            continue;
        }
        let want = std::fs::read_to_string(&snapshot).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; generate it with FRESHET_BLESS=1",
                snapshot.display()
            )
        });
        let want: serde_json::Value = serde_json::from_str(&want).expect("snapshot json");
        if want != got {
            failed.push(format!(
                "{} renders differently from {}:\n{text}",
                path.display(),
                snapshot.display()
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
