//! Locks that survive a panic elsewhere.
//!
//! A thread that panics while holding a lock poisons it. Freshet's shared state (task lists,
//! failure slots, join times, global tables) stays consistent across such a panic — each update
//! is a single assignment or insert — and the panic itself is reported and stops the thread, so
//! the other threads go on with the data as it is rather than panicking in turn.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locking that takes over a poisoned lock's data instead of failing.
pub trait Unpoisoned {
    /// The guard [`Unpoisoned::read_unpoisoned`] returns.
    type Read<'a>
    where
        Self: 'a;
    /// The guard [`Unpoisoned::lock_unpoisoned`] returns.
    type Write<'a>
    where
        Self: 'a;

    /// The lock for reading (a `Mutex` has only one kind of guard).
    fn read_unpoisoned(&self) -> Self::Read<'_>;
    /// The lock for writing.
    fn lock_unpoisoned(&self) -> Self::Write<'_>;
}

impl<T> Unpoisoned for Mutex<T> {
    type Read<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;
    type Write<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;

    fn read_unpoisoned(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_unpoisoned(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> Unpoisoned for RwLock<T> {
    type Read<'a>
        = RwLockReadGuard<'a, T>
    where
        T: 'a;
    type Write<'a>
        = RwLockWriteGuard<'a, T>
    where
        T: 'a;

    fn read_unpoisoned(&self) -> RwLockReadGuard<'_, T> {
        self.read().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_unpoisoned(&self) -> RwLockWriteGuard<'_, T> {
        self.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::Unpoisoned;
    use std::sync::{Arc, Mutex, RwLock};

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let m = Arc::new(Mutex::new(1));
        let r = Arc::new(RwLock::new(2));
        let (m2, r2) = (m.clone(), r.clone());
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            let _w = r2.write().unwrap();
            panic!("poison both");
        })
        .join();
        assert!(m.is_poisoned() && r.is_poisoned());
        *m.lock_unpoisoned() += 1;
        assert_eq!(*m.read_unpoisoned(), 2);
        *r.lock_unpoisoned() += 1;
        assert_eq!(*r.read_unpoisoned(), 3);
    }
}
