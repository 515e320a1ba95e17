//! The container's termination message: on a failure the engine's last words go to the file
//! Kubernetes reads when the container exits (`terminationMessagePath`), which the kubelet keeps
//! in the pod's status and the operator copies into the StreamsApp's `status.lastProcessingError`
//! (operators cannot reach pods over Services everywhere; the apiserver they can).

use std::io::Write;
use std::path::PathBuf;

/// The environment variable naming the file; Kubernetes' default path when unset.
pub const ENV: &str = "FRESHET_TERMINATION_LOG";
const DEFAULT: &str = "/dev/termination-log";
/// The kubelet keeps at most 4096 bytes of a termination message.
const MAX_BYTES: usize = 4096;

/// Where the termination message goes: `FRESHET_TERMINATION_LOG`, else `/dev/termination-log`.
fn path() -> PathBuf {
    std::env::var_os(ENV)
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT), PathBuf::from)
}

/// Writes `summary` as the termination message, cut to what the kubelet keeps. Only into a file
/// that exists (the kubelet creates it in the container): outside Kubernetes nothing is written,
/// and no failure here hides the one being reported.
pub fn write(summary: &str) {
    write_to(&path(), summary);
}

fn write_to(path: &std::path::Path, summary: &str) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "no termination message file");
            return;
        }
    };
    let mut end = summary.len().min(MAX_BYTES);
    while !summary.is_char_boundary(end) {
        end -= 1;
    }
    if let Err(e) = file.write_all(&summary.as_bytes()[..end]) {
        tracing::warn!(path = %path.display(), error = %e, "writing the termination message");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_message_is_cut_on_a_character_boundary_to_what_the_kubelet_keeps() {
        let dir = tempfile_dir();
        let file = dir.join("termination-log");
        std::fs::write(&file, "").unwrap();
        let long = "é".repeat(3000);
        super::write_to(&file, &long);
        let written = std::fs::read_to_string(&file).unwrap();
        assert!(written.len() <= super::MAX_BYTES && written.len() > 4000);
        std::fs::remove_file(&file).unwrap();
        super::write_to(&file, "no file, nothing written");
        assert!(!file.exists(), "the file is the kubelet's to create");
        std::fs::remove_dir(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("freshet-termination-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
