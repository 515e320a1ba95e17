//! `freshet-test-node --namespace a,b [--name N]`: the test node (`freshet_tests::test_node`) as a
//! process, for `make demo`: it runs the pods of those namespaces as local processes until
//! SIGTERM or SIGINT. Uses `KUBECONFIG` (default `.freshet/kubeconfig`).
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let mut namespaces = Vec::new();
    let mut name = "freshet-node".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--namespace", Some(v)) => namespaces.extend(v.split(',').map(str::to_owned)),
            ("--name", Some(v)) => name = v,
            _ => {
                eprintln!("usage: freshet-test-node --namespace a,b [--name node-name]");
                return ExitCode::from(2);
            }
        }
    }
    if namespaces.is_empty() {
        eprintln!("freshet-test-node: give the namespaces whose pods it runs: --namespace a,b");
        return ExitCode::from(2);
    }
    let client = freshet_tests::kube_client().await;
    let refs: Vec<&str> = namespaces.iter().map(String::as_str).collect();
    let node = freshet_tests::test_node::TestNode::start(client, &name, &refs).await;
    eprintln!(
        "freshet-test-node {}: running the pods of {namespaces:?} (logs under {})",
        node.name,
        node.dir.path().display()
    );
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("freshet-test-node: cannot wait for SIGTERM: {e}");
            return ExitCode::from(2);
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(node);
    ExitCode::SUCCESS
}
