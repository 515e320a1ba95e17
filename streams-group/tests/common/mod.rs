//! What the codec tests share: the kafka-clients jar scripts/kafka.sh downloads.

use std::path::PathBuf;
use std::process::Command;

/// The repository's root.
pub fn root() -> PathBuf {
    // The directory cargo runs the test in, not the one it was compiled in: a build reused from
    // another checkout (CI shares the target cache) bakes that checkout's path into env!().
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .parent()
    .expect("the crate is in the repository")
    .to_path_buf()
}

/// The kafka-clients jar of the Kafka that scripts/kafka.sh runs.
pub fn kafka_clients_jar() -> PathBuf {
    let out = Command::new("bash")
        .arg("-c")
        .arg("source scripts/lib.sh >/dev/null 2>&1; echo \"$KAFKA_HOME\"")
        .current_dir(root())
        .output()
        .expect("running bash");
    let home = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let libs = home.join("libs");
    std::fs::read_dir(&libs)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("kafka-clients-") && n.ends_with(".jar"))
        })
        .unwrap_or_else(|| {
            panic!(
                "no kafka-clients jar in {}: run `make kafka-up` (or scripts/kafka.sh tool --version) once to download Kafka",
                libs.display()
            )
        })
}
