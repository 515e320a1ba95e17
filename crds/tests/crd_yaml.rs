//! The CRD checked into the chart is exactly what the Rust types generate.
use kube::CustomResourceExt;

#[test]
fn the_checked_in_crd_matches_the_types() {
    // The manifest dir as cargo gives it at run time: the target dir is shared between clones,
    // so a path baked in at compile time may name another clone.
    let dir =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let path = format!("{dir}/../charts/freshet/crds/streamsapps.yaml");
    let checked_in =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let generated =
        serde_yaml_ng::to_string(&freshet_crds::StreamsApp::crd()).expect("render the CRD");
    assert!(
        checked_in == generated,
        "{path} is stale: regenerate it with `make crdgen` and commit the result"
    );
}
