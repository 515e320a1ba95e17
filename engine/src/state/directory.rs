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
}
