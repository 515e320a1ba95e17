//! The tasks of one stream thread (Kafka Streams' `TaskManager`): by id, and by the partitions
//! they read, so a fetched record finds its task with one lookup.

use std::collections::{BTreeMap, HashMap};

use super::task::Task;

/// A thread's tasks, with the partition → task map kept in step with them.
#[derive(Default)]
pub(crate) struct TaskManager {
    tasks: BTreeMap<String, Task>,
    /// (topic, partition) → id of the task that reads it.
    by_partition: HashMap<(String, i32), String>,
}

impl TaskManager {
    /// Adds a created task; its input partitions now route to it.
    pub fn insert(&mut self, id: String, task: Task) {
        for (topic, partition) in task.inputs() {
            self.by_partition
                .insert((topic.to_owned(), partition), id.clone());
        }
        self.tasks.insert(id, task);
    }

    /// Takes a task out (to close it); its partitions route nowhere until reassigned.
    pub fn remove(&mut self, id: &str) -> Option<Task> {
        let task = self.tasks.remove(id)?;
        self.by_partition.retain(|_, owner| owner != id);
        Some(task)
    }

    /// The task reading `partition` of `topic`.
    pub fn for_partition(&mut self, topic: &str, partition: i32) -> Option<&mut Task> {
        let id = self.by_partition.get(&(topic.to_owned(), partition))?;
        self.tasks.get_mut(id)
    }

    /// The ids of the tasks that read any of `partitions` (to close on revocation).
    pub fn reading_any(&self, partitions: &[(String, i32)]) -> Vec<String> {
        let mut ids: Vec<String> = partitions
            .iter()
            .filter_map(|p| self.by_partition.get(p).cloned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.tasks.contains_key(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Task> {
        self.tasks.get_mut(id)
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.tasks.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Task> {
        self.tasks.values_mut()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Takes every task out, for closing them all.
    pub fn take_all(&mut self) -> std::collections::btree_map::IntoIter<String, Task> {
        self.by_partition.clear();
        std::mem::take(&mut self.tasks).into_iter()
    }

    /// Forgets every task (after they were closed in place).
    pub fn clear(&mut self) {
        self.by_partition.clear();
        self.tasks.clear();
    }
}
