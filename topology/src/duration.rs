//! Durations as Kafka, Kubernetes and Java users write them, parsed by one function everywhere
//! a duration is read: manifest fields (window sizes, grace, autoscaling intervals), `*.ms`
//! configuration properties and the CRD's schema, whose `pattern` is [`PATTERN`] itself.
//!
//! Accepted:
//! - Go and Kubernetes style: a sequence of number + unit, `500ms`, `30s`, `5m`, `1h30m`,
//!   `1.5s`, with units `ns`, `us` (`µs`), `ms`, `s`, `m`, `h`, and `d` for days, which Kafka
//!   Streams users write for retention and grace;
//! - ISO-8601 as `java.time.Duration` prints it: `PT5M`, `PT0.5S`, `P1D`, `P1DT12H`, `P2W`
//!   (no years or months: their length depends on the calendar);
//! - `0`;
//! - and, where Kafka's own configuration takes a number of milliseconds ([`parse_millis`]),
//!   that plain number.
//!
//! The syntax is checked with [`PATTERN`] before any arithmetic, so the apiserver and the engine
//! accept exactly the same texts; the ISO form's arithmetic is the `iso8601` crate's.

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

/// The accepted syntax as a regular expression, usable as an OpenAPI `pattern` (RE2 and ECMA
/// compatible: no look-around).
pub const PATTERN: &str = concat!(
    r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h|d))+",
    r"|P([0-9]+W|[0-9]+D(T([0-9]+H([0-9]+M)?([0-9]+(\.[0-9]+)?S)?|[0-9]+M([0-9]+(\.[0-9]+)?S)?|[0-9]+(\.[0-9]+)?S))?",
    r"|T([0-9]+H([0-9]+M)?([0-9]+(\.[0-9]+)?S)?|[0-9]+M([0-9]+(\.[0-9]+)?S)?|[0-9]+(\.[0-9]+)?S)))$"
);

/// What a duration should look like, for error messages and schema descriptions.
pub const EXPECTED: &str = "a duration such as 500ms, 30s, 5m, 1h30m, 1d or ISO-8601 PT5M, P1D";

static SYNTAX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(PATTERN).expect("PATTERN is a valid regular expression"));

/// A text that is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a duration: write {EXPECTED}")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
}

/// Parses a duration in any of the accepted forms (not a plain number, which is ambiguous
/// outside Kafka's `*.ms` properties: see [`parse_millis`]).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let bad = || DurationError {
        text: text.to_owned(),
    };
    if !SYNTAX.is_match(text) {
        return Err(bad());
    }
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.starts_with('P') {
        return iso8601::duration(text)
            .map(Duration::from)
            .map_err(|_| bad());
    }
    units(text).ok_or_else(bad)
}

/// A Kafka `*.ms` property's value: a whole number of milliseconds as Kafka takes it, or any
/// duration [`parse`] accepts (`30s`, `PT5M`).
pub fn parse_millis(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return trimmed
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| DurationError {
                text: text.to_owned(),
            });
    }
    parse(text)
}

/// Sums a Go-style sequence that [`SYNTAX`] has already matched; `None` on overflow.
fn units(mut rest: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return None,
        };
        total = total.checked_add(Duration::try_from_secs_f64(number * seconds_per).ok()?)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        parse(text).unwrap_or_else(|e| panic!("{text:?} refused: {e}"))
    }

    #[test]
    fn go_and_kubernetes_forms() {
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("30s"), Duration::from_secs(30));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("1d"), Duration::from_secs(86_400));
        assert_eq!(ok("2d12h"), Duration::from_secs(216_000));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("0"), Duration::ZERO);
    }

    #[test]
    fn iso_8601_forms() {
        assert_eq!(ok("PT5M"), Duration::from_secs(300));
        assert_eq!(ok("PT0.5S"), Duration::from_millis(500));
        assert_eq!(ok("P1D"), Duration::from_secs(86_400));
        assert_eq!(ok("P1DT12H"), Duration::from_secs(129_600));
        assert_eq!(ok("PT90M"), Duration::from_secs(5400));
        assert_eq!(ok("P2W"), Duration::from_secs(14 * 86_400));
    }

    #[test]
    fn everything_else_is_refused_with_the_accepted_forms() {
        for bad in [
            "", "10", "10x", "m", "1h30", "1 h", "P", "PT", "P1M", "P1Y", "PT5Mxyz", "pt5m", "-5s",
            "1w", "P1DT",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().contains("PT5M"), "{err}");
        }
    }

    #[test]
    fn kafka_millisecond_properties_take_numbers_and_durations() {
        assert_eq!(parse_millis("30000"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_millis(" 0 "), Ok(Duration::ZERO));
        assert_eq!(parse_millis("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_millis("PT1M"), Ok(Duration::from_secs(60)));
        assert!(parse_millis("-1").is_err());
        assert!(parse_millis("99999999999999999999999").is_err());
    }

    #[test]
    fn huge_values_are_refused_not_wrapped() {
        assert!(parse("99999999999999999999999d").is_err());
    }
}
