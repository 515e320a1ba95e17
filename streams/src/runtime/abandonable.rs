//! Calls into librdkafka that may never return, made on a thread of their own so that the
//! stream thread can give up on them.
//!
//! `rd_kafka_send_offsets_to_transaction()` ignores its timeout when the group coordinator is
//! away (confluentinc/librdkafka#5456), and may wait for good when that coordinator's broker was
//! decommissioned (#5511): a broker restart under exactly-once would otherwise stall the thread
//! with its transaction open. Given up on, the call keeps its own thread and its handle on the
//! client until librdkafka lets it go; the caller replaces the client, fencing the stuck one.

use std::sync::mpsc;
use std::time::Duration;

/// Runs `call` on a thread of its own and waits up to `deadline` for its result; `None` when it
/// did not return by then (it then runs on, detached, and its result is dropped).
pub(crate) fn call_within<T, F>(what: &str, deadline: Duration, call: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (sender, receiver) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("freshet-txn-call".to_owned())
        .spawn(move || {
            // The receiver is gone when the call was given up on: nothing to tell.
            let _ = sender.send(call());
        });
    if let Err(e) = spawned {
        tracing::warn!(what, error = %e, "no thread for the call: it is not made");
        return None;
    }
    receiver.recv_timeout(deadline).ok()
}

#[cfg(test)]
mod tests {
    use super::call_within;
    use std::time::{Duration, Instant};

    #[test]
    fn a_call_that_returns_gives_its_result() {
        assert_eq!(
            call_within("adding", Duration::from_secs(5), || 2 + 2),
            Some(4)
        );
    }

    #[test]
    fn a_call_that_hangs_is_given_up_on_at_the_deadline() {
        let started = Instant::now();
        let result = call_within("sleeping", Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(30));
            1
        });
        assert_eq!(result, None);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}
