//! Kafka Streams' `.checkpoint` file: the changelog offset each store's local state reflects, so a
//! restart restores only what came after. Same format as Kafka Streams' `OffsetCheckpoint`:
//! a version line (`0`), a count line, then `<topic> <partition> <offset>` per line; written to a
//! temporary file and renamed, so a crash never leaves half a checkpoint.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::StateError;

const VERSION: &str = "0";

/// Offsets per (changelog topic, partition).
pub type Offsets = BTreeMap<(String, i32), i64>;

/// The checkpoint file of one task directory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    path: PathBuf,
}

fn error(path: &Path, message: impl Into<String>) -> StateError {
    StateError::Directory {
        path: path.display().to_string(),
        message: message.into(),
    }
}

impl Checkpoint {
    /// The `.checkpoint` file of the task directory `task_dir`; nothing is read or created
    /// until [`read`](Self::read) or [`write`](Self::write).
    pub fn in_directory(task_dir: &Path) -> Self {
        Checkpoint {
            path: task_dir.join(".checkpoint"),
        }
    }

    /// The offsets written last; empty when there is no checkpoint. A malformed file is an
    /// error: the caller then restores from the changelog's start rather than trusting it.
    pub fn read(&self) -> Result<Offsets, StateError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Offsets::new()),
            Err(e) => return Err(StateError::io(&self.path, &e)),
        };
        let mut lines = text.lines();
        match lines.next() {
            Some(VERSION) => {}
            other => {
                return Err(error(
                    &self.path,
                    format!("unknown checkpoint version {other:?}"),
                ));
            }
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| error(&self.path, "missing entry count"))?;
        let mut offsets = Offsets::new();
        for (i, line) in lines.enumerate() {
            let mut parts = line.split_whitespace();
            let entry = (
                parts.next(),
                parts.next().and_then(|p| p.parse().ok()),
                parts.next().and_then(|o| o.parse().ok()),
            );
            match entry {
                (Some(topic), Some(partition), Some(offset)) if parts.next().is_none() => {
                    offsets.insert((topic.to_owned(), partition), offset);
                }
                _ => {
                    return Err(error(
                        &self.path,
                        format!("malformed entry on line {}: {line:?}", i + 3),
                    ));
                }
            }
        }
        if offsets.len() != count {
            return Err(error(
                &self.path,
                format!("{count} entries announced, {} found", offsets.len()),
            ));
        }
        Ok(offsets)
    }

    /// Replaces the checkpoint atomically.
    pub fn write(&self, offsets: &Offsets) -> Result<(), StateError> {
        let tmp = self.path.with_extension("tmp");
        let mut text = format!("{VERSION}\n{}\n", offsets.len());
        for ((topic, partition), offset) in offsets {
            text.push_str(&format!("{topic} {partition} {offset}\n"));
        }
        // A full volume fails the write or the sync: the error says so (StateError::VolumeFull).
        let mut file = std::fs::File::create(&tmp).map_err(|e| StateError::io(&tmp, &e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| StateError::io(&tmp, &e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| StateError::io(&self.path, &e))
    }

    /// Removes the checkpoint: under exactly-once a task deletes it when it starts processing, so
    /// a crash always restores from the changelog.
    pub fn delete(&self) -> Result<(), StateError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StateError::io(&self.path, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_in_kafka_streams_format() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = Checkpoint::in_directory(dir.path());
        assert!(
            checkpoint.read().unwrap().is_empty(),
            "no file: nothing checkpointed"
        );
        let mut offsets = Offsets::new();
        offsets.insert(("app-counts-changelog".into(), 3), 1042);
        offsets.insert(("app-sums-changelog".into(), 3), 7);
        checkpoint.write(&offsets).unwrap();
        let text = std::fs::read_to_string(dir.path().join(".checkpoint")).unwrap();
        assert_eq!(
            text,
            "0\n2\napp-counts-changelog 3 1042\napp-sums-changelog 3 7\n"
        );
        assert_eq!(checkpoint.read().unwrap(), offsets);
        checkpoint.delete().unwrap();
        assert!(checkpoint.read().unwrap().is_empty());
        checkpoint.delete().unwrap();
    }

    #[test]
    fn a_malformed_checkpoint_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = Checkpoint::in_directory(dir.path());
        for bad in ["1\n0\n", "0\n2\nt 0 5\n", "0\n1\nt zero 5\n", "0\n"] {
            std::fs::write(dir.path().join(".checkpoint"), bad).unwrap();
            assert!(checkpoint.read().is_err(), "{bad:?} accepted");
        }
    }
}
