//! How many instances an application can use.

/// The most instances that can all hold work: each stream thread runs at least one task, and a
/// sub-topology has a task per input partition, so instances beyond
/// ceil(max tasks of any sub-topology / threads per instance) would sit idle.
pub fn max_useful_replicas(tasks_per_subtopology: &[u32], threads_per_instance: u32) -> u32 {
    let max_tasks = tasks_per_subtopology.iter().copied().max().unwrap_or(0);
    max_tasks.div_ceil(threads_per_instance.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_tasks_over_threads_rounded_up() {
        assert_eq!(max_useful_replicas(&[6], 2), 3);
        assert_eq!(max_useful_replicas(&[6, 12], 2), 6);
        assert_eq!(max_useful_replicas(&[5], 2), 3);
        assert_eq!(max_useful_replicas(&[4], 1), 4);
        assert_eq!(max_useful_replicas(&[], 1), 0);
        assert_eq!(
            max_useful_replicas(&[3], 0),
            3,
            "zero threads is treated as one"
        );
    }
}
