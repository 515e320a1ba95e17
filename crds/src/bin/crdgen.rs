//! Prints the StreamsApp CustomResourceDefinition as YAML; `make crdgen` writes it to the chart.
use kube::CustomResourceExt;

fn main() {
    match serde_yaml_ng::to_string(&freshet_crds::StreamsApp::crd()) {
        Ok(yaml) => print!("{yaml}"),
        Err(err) => {
            eprintln!("crdgen: cannot render the CRD as YAML: {err}");
            std::process::exit(1);
        }
    }
}
