//! `state.dir/<application.id>/<task id>/`, one directory per task, each held under an exclusive
//! file lock so two threads or processes never open the same stores.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use super::StateError;

/// The application's directory under `state.dir`.
#[derive(Clone, Debug)]
pub struct StateDirectory {
    root: PathBuf,
}

/// A task's directory, locked while this value lives.
#[derive(Debug)]
pub struct TaskDirectory {
    path: PathBuf,
    _lock: File,
}

impl TaskDirectory {
    /// `<state.dir>/<application.id>/<task id>`: where the task's RocksDB stores (under
    /// `rocksdb/`) and its `.checkpoint` live.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn dir_error(path: &Path, e: std::io::Error) -> StateError {
    StateError::io(path, &e)
}

impl StateDirectory {
    /// `<state_dir>/<application_id>`, created if missing (Kafka Streams' `state.dir` layout).
    pub fn new(state_dir: &Path, application_id: &str) -> Result<Self, StateError> {
        let root = state_dir.join(application_id);
        std::fs::create_dir_all(&root).map_err(|e| dir_error(&root, e))?;
        Ok(StateDirectory { root })
    }

    /// Creates and locks `<state.dir>/<application.id>/<task id>`.
    pub fn lock_task(&self, task_id: &str) -> Result<TaskDirectory, StateError> {
        let path = self.root.join(task_id);
        std::fs::create_dir_all(&path).map_err(|e| dir_error(&path, e))?;
        let lock_path = path.join(".lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| dir_error(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => Ok(TaskDirectory { path, _lock: lock }),
            Err(TryLockError::WouldBlock) => Err(StateError::Locked {
                path: path.display().to_string(),
            }),
            Err(TryLockError::Error(e)) => Err(dir_error(&lock_path, e)),
        }
    }
}

/// This process's id within an application, kept in `state.dir/<application.id>/` so a restart
/// with the same state directory finds it again (Kafka Streams persists its process id there too).
/// Held under a lock while the process lives.
#[derive(Debug)]
pub struct ProcessId {
    /// The id: up to 64 ASCII letters, digits and `-` (32 hex digits when created here).
    pub id: String,
    _lock: File,
}

/// The file that holds the process id.
const PROCESS_ID_FILE: &str = "freshet-process-id";

impl ProcessId {
    /// The id stored in `state.dir/<application.id>/`, created on first use. `Ok(None)` when
    /// another process holds it: two processes share the directory, and the caller must pick an
    /// id of its own rather than take one that is in use.
    pub fn load_or_create(
        state_dir: &Path,
        application_id: &str,
    ) -> Result<Option<ProcessId>, StateError> {
        let root = state_dir.join(application_id);
        std::fs::create_dir_all(&root).map_err(|e| dir_error(&root, e))?;
        let path = root.join(PROCESS_ID_FILE);
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| dir_error(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(dir_error(&path, e)),
        }
        use std::io::{Read, Seek, Write};
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| dir_error(&path, e))?;
        let stored = text.trim();
        let valid = !stored.is_empty()
            && stored.len() <= 64
            && stored
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let id = if valid {
            stored.to_owned()
        } else {
            let id = random_id();
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| file.write_all(format!("{id}\n").as_bytes()))
                .and_then(|()| file.sync_all())
                .map_err(|e| dir_error(&path, e))?;
            id
        };
        Ok(Some(ProcessId { id, _lock: file }))
    }
}

/// 128 random bits as hex, from the standard library's randomly keyed hasher (no extra crate for
/// an id made once per process).
pub fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

impl TaskDirectory {
    /// Deletes the task's local state (its RocksDB stores and checkpoint) but keeps the directory
    /// and its lock: after a failed exactly-once transaction the stores may hold writes that were
    /// aborted, and only a restore from the read_committed changelog rebuilds them consistently.
    /// The stores must be closed first.
    pub fn wipe(&self) -> Result<(), StateError> {
        let stores = self.path.join("rocksdb");
        match std::fs::remove_dir_all(&stores) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(dir_error(&stores, e)),
        }
        super::Checkpoint::in_directory(&self.path).delete()
    }
}

impl StateDirectory {
    /// Deletes the directories of tasks no thread or process holds whose contents have not
    /// changed for `older_than` (Kafka Streams' `state.cleanup.delay.ms`): the state of tasks that
    /// moved to another instance. Returns the task ids removed.
    pub fn clean_unowned(
        &self,
        older_than: std::time::Duration,
    ) -> Result<Vec<String>, StateError> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| dir_error(&self.root, e))?;
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_task = name
                .split_once('_')
                .is_some_and(|(s, p)| s.parse::<u32>().is_ok() && p.parse::<u32>().is_ok());
            if !is_task || !entry.path().is_dir() {
                continue;
            }
            let idle = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            if idle < older_than {
                continue;
            }
            // Held while deleting, so no task opens it meanwhile.
            let Ok(task) = self.lock_task(&name) else {
                continue;
            };
            std::fs::remove_dir_all(task.path()).map_err(|e| dir_error(task.path(), e))?;
            removed.push(name);
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_id_survives_a_restart_and_is_never_shared() {
        let dir = tempfile::tempdir().unwrap();
        let first = ProcessId::load_or_create(dir.path(), "app")
            .unwrap()
            .unwrap();
        assert_eq!(first.id.len(), 32, "{}", first.id);
        // A second process on the same directory while the first runs gets nothing to share.
        assert!(
            ProcessId::load_or_create(dir.path(), "app")
                .unwrap()
                .is_none()
        );
        let id = first.id.clone();
        drop(first);
        let again = ProcessId::load_or_create(dir.path(), "app")
            .unwrap()
            .unwrap();
        assert_eq!(again.id, id, "the restart finds the same id");
        let other_app = ProcessId::load_or_create(dir.path(), "other")
            .unwrap()
            .unwrap();
        assert_ne!(other_app.id, id);
    }

    #[test]
    fn wiping_a_task_deletes_its_stores_and_checkpoint_and_keeps_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDirectory::new(dir.path(), "app").unwrap();
        let task = state.lock_task("0_1").unwrap();
        std::fs::create_dir_all(task.path().join("rocksdb/counts")).unwrap();
        std::fs::write(task.path().join("rocksdb/counts/000001.sst"), b"x").unwrap();
        let checkpoint = crate::state::Checkpoint::in_directory(task.path());
        let mut offsets = crate::state::Offsets::new();
        offsets.insert(("app-counts-changelog".into(), 1), 41);
        checkpoint.write(&offsets).unwrap();
        task.wipe().unwrap();
        assert!(!task.path().join("rocksdb").exists());
        assert!(checkpoint.read().unwrap().is_empty());
        assert!(matches!(
            state.lock_task("0_1"),
            Err(StateError::Locked { .. })
        ));
        task.wipe().unwrap();
    }

    #[test]
    fn a_task_directory_is_held_by_one_owner_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDirectory::new(dir.path(), "app").unwrap();
        let held = state.lock_task("0_1").unwrap();
        assert_eq!(held.path(), dir.path().join("app").join("0_1"));
        let err = state.lock_task("0_1").unwrap_err();
        assert!(matches!(err, StateError::Locked { .. }), "{err}");
        assert!(
            state.lock_task("0_2").is_ok(),
            "other tasks are independent"
        );
        drop(held);
        assert!(
            state.lock_task("0_1").is_ok(),
            "released when the owner drops it"
        );
    }

    #[test]
    fn only_unowned_task_directories_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDirectory::new(dir.path(), "app").unwrap();
        let owned = state.lock_task("0_0").unwrap();
        drop(state.lock_task("0_1").unwrap());
        std::fs::create_dir_all(dir.path().join("app").join("not-a-task")).unwrap();
        let recent = state
            .clean_unowned(std::time::Duration::from_secs(60))
            .unwrap();
        assert!(recent.is_empty(), "recently used directories stay");
        let removed = state.clean_unowned(std::time::Duration::ZERO).unwrap();
        assert_eq!(removed, vec!["0_1".to_owned()]);
        assert!(owned.path().exists(), "a held task directory stays");
        assert!(dir.path().join("app").join("not-a-task").exists());
    }
}
