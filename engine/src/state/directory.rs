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
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn dir_error(path: &Path, e: std::io::Error) -> StateError {
    StateError::Directory {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl StateDirectory {
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
