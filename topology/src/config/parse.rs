//! Parsing of single values. Every function here judges one value on its own, so that each value
//! of each layer can be checked (and its layer named) before precedence picks the winners.

use std::path::PathBuf;
use std::time::Duration;

use super::librdkafka::Kind;
use super::{ErrorHandler, GroupProtocol, MetricsRecordingLevel, ProcessingGuarantee};
use crate::serdes::SerdeKind;

/// What is wrong with a value; the caller adds the property, the value and the layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Not a valid value: the text says what is expected.
    Invalid(String),
    /// A valid Kafka Streams value that Freshet cannot honour yet.
    NotSupported(String),
}

pub(crate) type Parsed<T> = Result<T, Problem>;

fn invalid<T>(reason: impl Into<String>) -> Parsed<T> {
    Err(Problem::Invalid(reason.into()))
}

/// Kafka's rule for topic names, which `application.id` must follow because it prefixes every
/// internal topic, and the dead-letter topic because it is one.
pub(crate) fn legal_topic_chars(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(crate) fn application_id(value: &str) -> Parsed<String> {
    if value.is_empty() {
        return invalid(
            "application.id must not be empty: it names the consumer group and prefixes every internal topic",
        );
    }
    if !legal_topic_chars(value) {
        return invalid(
            "application.id may contain only ASCII letters, digits, '.', '_' and '-', because it prefixes topic names",
        );
    }
    if value.len() > 249 {
        return invalid("application.id is longer than a topic name may be (249 characters)");
    }
    Ok(value.to_owned())
}

/// Kafka takes `bootstrap.servers` as a list; librdkafka wants it comma-separated without blanks.
pub(crate) fn bootstrap_servers(value: &str) -> Parsed<String> {
    let servers: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        return invalid("expected host:port[,host:port...] of at least one broker");
    }
    if let Some(bad) = servers.iter().find(|s| s.contains(char::is_whitespace)) {
        return invalid(format!(
            "`{bad}` is not a broker address: separate brokers with commas, e.g. kafka-0:9092,kafka-1:9092"
        ));
    }
    Ok(servers.join(","))
}

pub(crate) fn optional_text(value: &str) -> Parsed<Option<String>> {
    let value = value.trim();
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

pub(crate) fn boolean(value: &str) -> Parsed<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => invalid("expected true or false".to_owned()),
    }
}

pub(crate) fn credentials_source(value: &str) -> Parsed<Option<String>> {
    match value.trim().to_ascii_uppercase().as_str() {
        "" => Ok(None),
        s @ ("USER_INFO" | "URL") => Ok(Some(s.to_owned())),
        "SASL_INHERIT" => invalid(
            "SASL_INHERIT is not supported: give the registry's credentials with USER_INFO and basic.auth.user.info".to_owned(),
        ),
        _ => invalid("expected USER_INFO or URL".to_owned()),
    }
}

/// Confluent's subject name strategies, by short name or class name.
pub(crate) fn subject_name_strategy(value: &str) -> Parsed<String> {
    let short = value.trim().rsplit('.').next().unwrap_or_default();
    match short {
        "TopicNameStrategy" | "RecordNameStrategy" | "TopicRecordNameStrategy" => {
            Ok(short.to_owned())
        }
        _ => invalid(
            "expected TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy (or Confluent's class name, io.confluent.kafka.serializers.subject.TopicNameStrategy)".to_owned(),
        ),
    }
}

fn whole<T: std::str::FromStr>(value: &str, what: &str) -> Parsed<T> {
    value
        .trim()
        .parse::<T>()
        .or_else(|_| invalid(format!("expected {what}")))
}

pub(crate) fn num_stream_threads(value: &str) -> Parsed<usize> {
    let n: usize = whole(value, "a whole number of threads, at least 1")?;
    if n == 0 {
        return invalid("num.stream.threads must be at least 1");
    }
    Ok(n)
}

pub(crate) fn state_dir(value: &str) -> Parsed<PathBuf> {
    if value.trim().is_empty() {
        return invalid("expected a directory for the state stores, e.g. /var/lib/freshet/state");
    }
    Ok(PathBuf::from(value))
}

pub(crate) fn processing_guarantee(value: &str) -> Parsed<ProcessingGuarantee> {
    match value.trim() {
        "at_least_once" => Ok(ProcessingGuarantee::AtLeastOnce),
        "exactly_once_v2" => Ok(ProcessingGuarantee::ExactlyOnceV2),
        old @ ("exactly_once" | "exactly_once_beta") => invalid(format!(
            "{old} was removed in Kafka Streams 4; use exactly_once_v2"
        )),
        _ => invalid("expected at_least_once or exactly_once_v2"),
    }
}

/// Milliseconds as Kafka writes them (a whole number, never negative), or a duration as users
/// write it elsewhere (`30s`, `PT5M`).
pub(crate) fn millis(value: &str) -> Parsed<Duration> {
    crate::duration::parse_millis(value).or_else(|_| {
        invalid(format!(
            "expected a whole number of milliseconds, e.g. 30000, or {}",
            crate::duration::EXPECTED
        ))
    })
}

/// `max.task.idle.ms`: milliseconds, or Kafka Streams' -1 that skips even the wait for partitions
/// known to be caught up, which Freshet always does (KIP-695).
pub(crate) fn max_task_idle(value: &str) -> Parsed<Duration> {
    if value.trim() == "-1" {
        return Err(Problem::NotSupported(
            "Freshet always waits for partitions known to be caught up before processing (KIP-695); use 0 or more milliseconds".into(),
        ));
    }
    millis(value)
}

pub(crate) fn bytes(value: &str) -> Parsed<u64> {
    whole(value, "a whole number of bytes, e.g. 10485760")
}

pub(crate) fn replication_factor(value: &str) -> Parsed<i32> {
    let n: i32 = whole(
        value,
        "a whole number: -1 for the broker's default, or 1 or more",
    )?;
    if n == 0 || n < -1 {
        return invalid("expected -1 for the broker's default replication factor, or 1 or more");
    }
    Ok(n)
}

/// Any whole number; whether above 0 is accepted depends on `group.protocol` (the resolver's
/// `check_standby_replicas`).
pub(crate) fn num_standby_replicas(value: &str) -> Parsed<u32> {
    whole(value, "a whole number of replicas")
}

pub(crate) fn buffered_records(value: &str) -> Parsed<usize> {
    let n: usize = whole(value, "a whole number of records, at least 1")?;
    if n == 0 {
        return invalid(
            "buffered.records.per.partition must be at least 1, or no record is ever buffered",
        );
    }
    Ok(n)
}

pub(crate) fn group_instance_id(value: &str) -> Parsed<String> {
    if value.is_empty() {
        return invalid(
            "group.instance.id must not be empty: remove it to derive the id from POD_NAME",
        );
    }
    if !legal_topic_chars(value) || value.len() > 249 {
        return invalid(
            "group.instance.id may contain only ASCII letters, digits, '.', '_' and '-' (at most 249)",
        );
    }
    Ok(value.to_owned())
}

/// `application.server` is `host:port`, or empty for none, as in Kafka Streams.
pub(crate) fn application_server(value: &str) -> Parsed<Option<String>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(Some(value.to_owned()))
        }
        _ => invalid("expected host:port, e.g. orders-0.orders:8080"),
    }
}

pub(crate) fn metrics_recording_level(value: &str) -> Parsed<MetricsRecordingLevel> {
    match value.trim().to_ascii_uppercase().as_str() {
        "INFO" => Ok(MetricsRecordingLevel::Info),
        "DEBUG" => Ok(MetricsRecordingLevel::Debug),
        "TRACE" => Ok(MetricsRecordingLevel::Trace),
        _ => invalid("expected INFO, DEBUG or TRACE"),
    }
}

pub(crate) fn group_protocol(value: &str) -> Parsed<GroupProtocol> {
    match value.trim().to_ascii_lowercase().as_str() {
        "classic" => Ok(GroupProtocol::Classic),
        "consumer" => Ok(GroupProtocol::Consumer),
        "streams" => Ok(GroupProtocol::Streams),
        "auto" => Ok(GroupProtocol::Auto),
        _ => invalid("expected classic, consumer, streams or auto"),
    }
}

pub(crate) fn http_port(value: &str) -> Parsed<u16> {
    whole(value, "a TCP port, 0 to 65535")
}

pub(crate) fn dead_letter_topic(value: &str) -> Parsed<Option<String>> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if !legal_topic_chars(value) || value.len() > 249 || value == "." || value == ".." {
        return invalid(
            "not a legal topic name: use ASCII letters, digits, '.', '_' and '-' (at most 249)",
        );
    }
    Ok(Some(value.to_owned()))
}

/// Kafka's built-in serdes that have a Freshet name; the Java class is accepted so that a
/// Kafka Streams configuration runs unchanged.
const JAVA_SERDES: &[(&str, &str)] = &[
    ("ByteArraySerde", "bytes"),
    ("BytesSerde", "bytes"),
    ("ByteBufferSerde", "bytes"),
    ("StringSerde", "string"),
    ("IntegerSerde", "int"),
    ("LongSerde", "long"),
    ("DoubleSerde", "double"),
];

const SERDE_NAMES: &str =
    "bytes, string, int, long, double, json, windowed-<inner> or session-<inner>";

/// A serde name, returned in Freshet's canonical spelling.
pub(crate) fn serde(value: &str) -> Parsed<String> {
    let value = value.trim();
    let looks_like_java = value.contains('$') || value.contains('.') || value.ends_with("Serde");
    if looks_like_java {
        let (package, simple) = match value.rfind(['$', '.']) {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => ("", value),
        };
        let known_package = matches!(
            package,
            "" | "Serdes" | "org.apache.kafka.common.serialization.Serdes"
        );
        if let Some((_, name)) = JAVA_SERDES
            .iter()
            .find(|(class, _)| known_package && *class == simple)
        {
            return Ok((*name).to_owned());
        }
        if simple.contains("Windowed") {
            return invalid(format!(
                "windowed serdes are named windowed-<inner> or session-<inner>, e.g. windowed-string; expected {SERDE_NAMES}"
            ));
        }
        return invalid(format!(
            "Java serde classes other than Kafka's byte-array, string, integer, long and double serdes cannot run in Freshet; expected {SERDE_NAMES}"
        ));
    }
    value
        .parse::<SerdeKind>()
        .map(|kind| kind.to_string())
        .or_else(|_| invalid(format!("expected {SERDE_NAMES}")))
}

/// Which of Kafka Streams' three handlers a value is for: each accepts its own Java classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandlerKind {
    Deserialization,
    Processing,
    Production,
}

pub(crate) fn error_handler(value: &str, kind: HandlerKind) -> Parsed<ErrorHandler> {
    let value = value.trim();
    match value {
        "fail" | "log-and-fail" => return Ok(ErrorHandler::Fail),
        "log-and-continue" => return Ok(ErrorHandler::LogAndContinue),
        _ => {}
    }
    let simple = value
        .strip_prefix("org.apache.kafka.streams.errors.")
        .unwrap_or(value);
    let classes: &[(&str, ErrorHandler)] = match kind {
        HandlerKind::Deserialization => &[
            ("LogAndFailExceptionHandler", ErrorHandler::Fail),
            (
                "LogAndContinueExceptionHandler",
                ErrorHandler::LogAndContinue,
            ),
        ],
        HandlerKind::Processing => &[
            ("LogAndFailProcessingExceptionHandler", ErrorHandler::Fail),
            (
                "LogAndContinueProcessingExceptionHandler",
                ErrorHandler::LogAndContinue,
            ),
            ("LogAndFailExceptionHandler", ErrorHandler::Fail),
            (
                "LogAndContinueExceptionHandler",
                ErrorHandler::LogAndContinue,
            ),
        ],
        // KIP-1348's names for the two built-in production handlers, besides Kafka's default.
        HandlerKind::Production => &[
            ("DefaultProductionExceptionHandler", ErrorHandler::Fail),
            ("LogAndFailProductionExceptionHandler", ErrorHandler::Fail),
            (
                "LogAndContinueProductionExceptionHandler",
                ErrorHandler::LogAndContinue,
            ),
        ],
    };
    if let Some((_, handler)) = classes.iter().find(|(class, _)| *class == simple) {
        return Ok(*handler);
    }
    let java: Vec<&str> = classes.iter().map(|(class, _)| *class).collect();
    invalid(format!(
        "expected fail or log-and-continue (or {}); custom handler classes cannot run in Freshet, and errors.dead.letter.queue.topic.name keeps the records a handler skips",
        java.join(", ")
    ))
}

/// Checks a value against librdkafka's type for the property and returns it as librdkafka
/// should receive it. Numbers are rewritten in plain decimal because librdkafka reads integers
/// with `strtol(.., 0)`, which would take `010` for eight and ignore trailing text such as `ms`.
pub(crate) fn librdkafka_value(name: &str, kind: Kind, value: &str) -> Parsed<String> {
    let trimmed = value.trim();
    match kind {
        Kind::Integer(min, max) => {
            if name == "request.required.acks" && trimmed.eq_ignore_ascii_case("all") {
                return Ok("all".into());
            }
            match trimmed.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
                _ => invalid(format!("expected a whole number from {min} to {max}")),
            }
        }
        Kind::Float(min, max) => match trimmed.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= min && x <= max => Ok(trimmed.to_owned()),
            _ => invalid(format!("expected a number from {min} to {max}")),
        },
        Kind::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" | "t" | "1" => Ok("true".into()),
            "false" | "f" | "0" => Ok("false".into()),
            _ => invalid("expected true or false"),
        },
        Kind::Enum(values) => values
            .iter()
            .find(|v| v.eq_ignore_ascii_case(trimmed))
            .map(|v| (*v).to_owned())
            .map_or_else(
                || invalid(format!("expected one of {}", values.join(", "))),
                Ok,
            ),
        Kind::Text | Kind::Api => Ok(value.to_owned()),
    }
}

/// Why GSSAPI (Kerberos) is refused: librdkafka does it through Cyrus SASL, which Freshet's build
/// leaves out (docs/security.md says why).
const NO_KERBEROS: &str = "Freshet's librdkafka is built without Cyrus SASL, so SASL/GSSAPI (Kerberos) is not available; use SCRAM-SHA-512, SCRAM-SHA-256, PLAIN, OAUTHBEARER or mutual TLS (see docs/security.md)";

/// Java values that librdkafka spells differently, for properties both share. Runs before
/// [`librdkafka_value`], whose check then applies to the translated value.
pub(crate) fn java_value(name: &str, value: &str) -> Parsed<String> {
    let trimmed = value.trim();
    match name {
        "auto.offset.reset" => {
            if trimmed.eq_ignore_ascii_case("none") {
                Ok("error".into())
            } else if trimmed.starts_with("by_duration") {
                Err(Problem::NotSupported(
                    "librdkafka cannot reset to an offset by duration; use earliest, latest or none"
                        .into(),
                ))
            } else {
                Ok(value.to_owned())
            }
        }
        "ssl.endpoint.identification.algorithm" if trimmed.is_empty() => Ok("none".into()),
        "sasl.mechanisms" if trimmed.eq_ignore_ascii_case("GSSAPI") => {
            Err(Problem::NotSupported(NO_KERBEROS.into()))
        }
        _ => Ok(value.to_owned()),
    }
}

/// `buffer.memory` in bytes → `queue.buffering.max.kbytes`, rounded up so a small buffer does not
/// become none.
pub(crate) fn buffer_memory_kbytes(value: &str) -> Parsed<String> {
    let bytes: u64 = whole(value, "a whole number of bytes, e.g. 33554432")?;
    let kbytes = bytes.div_ceil(1024).max(1);
    if kbytes > i32::MAX as u64 {
        return invalid("larger than librdkafka's queue.buffering.max.kbytes allows");
    }
    Ok(kbytes.to_string())
}

/// Java's socket buffer sizes: -1 means the operating system's default, which librdkafka writes 0.
pub(crate) fn socket_buffer(value: &str) -> Parsed<String> {
    let n: i64 = whole(
        value,
        "a whole number of bytes, or -1 for the system default",
    )?;
    match n {
        -1 => Ok("0".into()),
        0..=100_000_000 => Ok(n.to_string()),
        _ => invalid("expected -1 (the system default) or 0 to 100000000 bytes"),
    }
}

/// `ssl.keystore.type`: librdkafka's `ssl.keystore.location` is PKCS#12, and PEM material goes
/// through ssl.keystore.key / ssl.keystore.certificate.chain, so only JKS has no translation.
pub(crate) fn keystore_type(value: &str) -> Parsed<()> {
    match value.trim().to_ascii_uppercase().as_str() {
        "PKCS12" | "PEM" => Ok(()),
        "JKS" => invalid(
            "librdkafka reads PKCS#12 keystores only: convert it (`keytool -importkeystore -deststoretype PKCS12`) and set ssl.keystore.location",
        ),
        _ => invalid("expected PKCS12 or PEM"),
    }
}

/// Username and password of a `PlainLoginModule` or `ScramLoginModule` JAAS line, which is how
/// Java clients carry SASL credentials; librdkafka takes them as `sasl.username`/`sasl.password`.
pub(crate) fn jaas(value: &str) -> Parsed<(String, String)> {
    let mut tokens = JaasTokens {
        rest: value.trim_start(),
    };
    let module = tokens.word().unwrap_or_default();
    let simple = module.rsplit('.').next().unwrap_or(module);
    match simple {
        "PlainLoginModule" | "ScramLoginModule" => {}
        "OAuthBearerLoginModule" => {
            return invalid(
                "OAUTHBEARER is configured with librdkafka's sasl.oauthbearer.* properties (e.g. sasl.oauthbearer.method=oidc, sasl.oauthbearer.client.id, sasl.oauthbearer.client.secret, sasl.oauthbearer.token.endpoint.url)",
            );
        }
        "Krb5LoginModule" => return Err(Problem::NotSupported(NO_KERBEROS.into())),
        _ => {
            return invalid(
                "expected `org.apache.kafka.common.security.plain.PlainLoginModule required username=\"...\" password=\"...\";` (or ScramLoginModule)",
            );
        }
    }
    let _flag = tokens.word();
    let mut username = None;
    let mut password = None;
    while let Some((key, val)) = tokens.option()? {
        match key.as_str() {
            "username" => username = Some(val),
            "password" => password = Some(val),
            _ => {}
        }
    }
    match (username, password) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => invalid("the login module needs both username=\"...\" and password=\"...\""),
    }
}

struct JaasTokens<'a> {
    rest: &'a str,
}

impl<'a> JaasTokens<'a> {
    fn word(&mut self) -> Option<&'a str> {
        let rest = self.rest.trim_start();
        let end = rest
            .find(|c: char| c.is_whitespace() || c == ';')
            .unwrap_or(rest.len());
        if end == 0 {
            self.rest = rest;
            return None;
        }
        self.rest = &rest[end..];
        Some(&rest[..end])
    }

    /// The next `key=value` (value bare or double-quoted with backslash escapes), or `None` at
    /// the closing `;` or the end.
    fn option(&mut self) -> Parsed<Option<(String, String)>> {
        let rest = self.rest.trim_start();
        if rest.is_empty() || rest.starts_with(';') {
            self.rest = "";
            return Ok(None);
        }
        let Some(eq) = rest.find('=') else {
            return invalid("expected key=value options after the login module and its flag");
        };
        let key = rest[..eq].trim().to_owned();
        let after = rest[eq + 1..].trim_start();
        if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            out.push(escaped);
                        }
                    }
                    '"' => {
                        self.rest = &quoted[i + 1..];
                        return Ok(Some((key, out)));
                    }
                    c => out.push(c),
                }
            }
            invalid("a quoted value is not closed")
        } else {
            let end = after
                .find(|c: char| c.is_whitespace() || c == ';')
                .unwrap_or(after.len());
            self.rest = &after[end..];
            Ok(Some((key, after[..end].to_owned())))
        }
    }
}
