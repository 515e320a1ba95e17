//! Messages about a condition that lasts (the brokers away, a topic missing), logged when they
//! first appear and then only now and then while they repeat: once a poll would flood the log.

use std::time::{Duration, Instant};

/// Decides which occurrences of a repeated message are logged: a message differing from the
/// last one logged always is, the same message again only `every` after it was last logged.
#[derive(Debug)]
pub struct Repeats {
    every: Duration,
    last: Option<(String, Instant)>,
}

impl Repeats {
    /// Logs a repeated message again at most once per `every`.
    pub fn every(every: Duration) -> Repeats {
        Repeats { every, last: None }
    }

    /// Whether `message` is to be logged now; if so, it counts as logged.
    pub fn should_log(&mut self, message: &str) -> bool {
        let quiet =
            matches!(&self.last, Some((last, at)) if last == message && at.elapsed() < self.every);
        if !quiet {
            self.last = Some((message.to_owned(), Instant::now()));
        }
        !quiet
    }

    /// The last message logged, if any: what the condition was, once it has passed.
    pub fn last_logged(&self) -> Option<&str> {
        self.last.as_ref().map(|(message, _)| message.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Repeats;
    use std::time::Duration;

    #[test]
    fn a_repeated_message_is_logged_once_per_period_and_a_new_one_at_once() {
        let mut repeats = Repeats::every(Duration::from_secs(3600));
        assert!(repeats.should_log("brokers away"));
        assert!(!repeats.should_log("brokers away"));
        assert!(repeats.should_log("topic missing"));
        assert!(repeats.should_log("brokers away"));
        assert_eq!(repeats.last_logged(), Some("brokers away"));
        let mut often = Repeats::every(Duration::ZERO);
        assert!(often.should_log("x") && often.should_log("x"));
    }
}
