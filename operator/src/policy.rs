//! Where the operator may connect, and what its own Kafka clients may do, for apps a platform
//! team does not write itself: the operator runs each app's `bootstrapServers` and client
//! properties in its own process, with its own network position, so without limits any tenant
//! could point it at any address (a server-side request forgery) or have its librdkafka read
//! files or run commands.
//!
//! - `--allowed-bootstrap-servers`: host patterns every server of an app's `bootstrapServers`
//!   must match (none: any). Shell patterns (see [`glob`]): `*` matches any run of characters; a pattern with a port
//!   (`kafka-*.prod.svc:9093`) is matched against `host:port`, one without against the host.
//! - `--allowed-images`: patterns `spec.image` must match (none: any); the operator's own
//!   `--engine-image` is always allowed.
//! - The operator's clients never get properties that make librdkafka open files or run
//!   commands: `sasl.kerberos.kinit.cmd`, `plugin.library.paths`, `ssl.engine.location`,
//!   `ssl.providers`, and any `*.location` or `sasl.kerberos.keytab` outside the directories of
//!   `--client-file-dirs` (where the chart mounts the Secrets the operator may read).
//!
//! A refused app is told in its status (`Allowed=False`, with the reason) and the operator makes
//! no client for it, so it opens no connection.

use std::path::{Component, Path, PathBuf};

use freshet_crds::StreamsApp;
use freshet_spec::config::StreamsConfig;

/// The condition saying whether the operator may act on the app.
pub const ALLOWED: &str = "Allowed";
/// `Allowed`'s reason: a bootstrap server outside the allow-list.
pub const BOOTSTRAP_NOT_ALLOWED: &str = "BootstrapServerNotAllowed";
/// `Allowed`'s reason: an image outside the allow-list.
pub const IMAGE_NOT_ALLOWED: &str = "ImageNotAllowed";
/// `Allowed`'s reason: a client property the operator's clients may not have.
pub const PROPERTY_REFUSED: &str = "ClientPropertyRefused";

/// Properties that run a command or load code into the operator, whatever their value.
const NEVER: [&str; 4] = [
    "sasl.kerberos.kinit.cmd",
    "plugin.library.paths",
    "ssl.engine.location",
    "ssl.providers",
];

/// The operator's limits, from its flags.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Host patterns of allowed bootstrap servers; empty: any.
    pub bootstrap_servers: Vec<String>,
    /// Patterns of allowed `spec.image` values; empty: any.
    pub images: Vec<String>,
    /// Directories whose files the operator's clients may read (mounted Secrets).
    pub client_file_dirs: Vec<PathBuf>,
}

/// Why the operator will not act on an app.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// `Allowed`'s reason.
    pub reason: &'static str,
    /// What is refused, and what to do.
    pub message: String,
}

/// How patterns match: ignoring case (host names and registries do), and `*` across `.` and
/// `/` too (`ghcr.io/freshet/*` covers every image under it).
const MATCHING: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: false,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

/// Whether `text` matches the shell pattern `pattern` (`*` any run of characters, none
/// included; `?` one; `[a-z]` one of a class). An invalid pattern matches nothing; the
/// operator's flags are checked with [`valid_pattern`] at start.
pub fn glob(pattern: &str, text: &str) -> bool {
    glob::Pattern::new(pattern).is_ok_and(|p| p.matches_with(text, MATCHING))
}

/// An allow-list pattern as given, if it is a valid shell pattern (for the flags' parser).
pub fn valid_pattern(pattern: &str) -> Result<String, glob::PatternError> {
    glob::Pattern::new(pattern).map(|_| pattern.to_owned())
}

/// A bootstrap server's host and port (`host:port`, `[v6]:port`, an optional `proto://`).
fn host_port(server: &str) -> (&str, Option<&str>) {
    let server = server.rsplit("://").next().unwrap_or(server);
    if let Some(rest) = server.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return (host, after.strip_prefix(':'));
    }
    match server.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (server, None),
    }
}

/// Whether `server` matches `pattern` (see the module's rules).
fn server_matches(pattern: &str, server: &str) -> bool {
    let (host, port) = host_port(server.trim());
    let (p_host, p_port) = host_port(pattern.trim());
    glob(p_host, host)
        && match p_port {
            None => true,
            Some(p) => port.is_some_and(|port| glob(p, port)),
        }
}

/// Whether `path` lies inside one of `dirs`, by its components (no `..`).
fn inside(path: &str, dirs: &[PathBuf]) -> bool {
    let path = Path::new(path);
    path.is_absolute()
        && !path.components().any(|c| c == Component::ParentDir)
        && dirs.iter().any(|d| path.starts_with(d))
}

impl Policy {
    /// The refusals of `app`, whose configuration resolved to `config`: the operator may
    /// connect only when this is `Ok`.
    pub fn check(&self, app: &StreamsApp, config: &StreamsConfig) -> Result<(), Refusal> {
        self.check_bootstrap(&config.bootstrap_servers)?;
        self.check_image(app)?;
        self.check_client_properties(&config.admin)
    }

    /// Every server of `servers` (comma-separated) must match an allowed pattern.
    pub fn check_bootstrap(&self, servers: &str) -> Result<(), Refusal> {
        if self.bootstrap_servers.is_empty() {
            return Ok(());
        }
        let outside: Vec<&str> = servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter(|s| !self.bootstrap_servers.iter().any(|p| server_matches(p, s)))
            .collect();
        if outside.is_empty() {
            return Ok(());
        }
        Err(Refusal {
            reason: BOOTSTRAP_NOT_ALLOWED,
            message: format!(
                "bootstrapServers {} {} not among the servers this operator may connect to ({}): the operator does not connect, and runs nothing for this app. Use an allowed cluster, or ask the platform team to allow it (chart value allowedBootstrapServers)",
                outside.join(", "),
                if outside.len() == 1 { "is" } else { "are" },
                self.bootstrap_servers.join(", ")
            ),
        })
    }

    fn check_image(&self, app: &StreamsApp) -> Result<(), Refusal> {
        let Some(image) = app.spec.image.as_deref() else {
            return Ok(());
        };
        if self.images.is_empty() || self.images.iter().any(|p| glob(p, image)) {
            return Ok(());
        }
        Err(Refusal {
            reason: IMAGE_NOT_ALLOWED,
            message: format!(
                "spec.image {image} is not among the allowed images ({}): nothing runs for this app. Use an allowed image, or leave spec.image out for the operator's own (chart value allowedImages)",
                self.images.join(", ")
            ),
        })
    }

    /// The operator's clients get `properties` (the app's admin client settings).
    fn check_client_properties(&self, properties: &[(String, String)]) -> Result<(), Refusal> {
        let refused: Vec<String> = properties
            .iter()
            .filter(|(k, v)| {
                NEVER.contains(&k.as_str())
                    || ((k.ends_with(".location") || k == "sasl.kerberos.keytab")
                        && !inside(v, &self.client_file_dirs))
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        let dirs: Vec<String> = self
            .client_file_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        Err(Refusal {
            reason: PROPERTY_REFUSED,
            message: format!(
                "{} would make the operator's own Kafka clients read files or run commands in its pod; it uses no command or plugin properties, and files only under {}. The operator makes no client for this app: put the files in a Secret the operator mounts (chart value kafkaClientSecrets) or pass credentials as values",
                refused.join(", "),
                if dirs.is_empty() {
                    "no directory (none configured)".to_owned()
                } else {
                    dirs.join(", ")
                }
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob("*.kafka.svc", "a.b.kafka.svc"));
        assert!(glob("kafka-*.prod", "KAFKA-1.prod"));
        assert!(glob("*", "anything"));
        assert!(glob("a*b*c", "abc"));
        assert!(!glob("a*b*c", "acb"));
        assert!(!glob("*.kafka.svc", "kafka.svc.evil"));
        assert!(!glob("kafka", "kafka2"));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob("kafka-[0-2].prod", "kafka-1.prod"));
        assert!(!glob("kafka-[0-2].prod", "kafka-7.prod"));
        assert!(
            valid_pattern("[oops").is_err(),
            "an unclosed class is refused at start"
        );
        assert!(!glob("[oops", "[oops"));
    }

    #[test]
    fn bootstrap_servers_must_all_match() {
        let p = Policy {
            bootstrap_servers: vec!["*.kafka.svc:9092".into(), "10.0.0.1".into()],
            ..Default::default()
        };
        assert!(
            p.check_bootstrap("b-0.kafka.svc:9092, b-1.kafka.svc:9092")
                .is_ok()
        );
        assert!(p.check_bootstrap("10.0.0.1:1234").is_ok());
        assert!(p.check_bootstrap("SSL://b-0.kafka.svc:9092").is_ok());
        let refused = p
            .check_bootstrap("b-0.kafka.svc:9092,169.254.169.254:80")
            .expect_err("metadata service");
        assert_eq!(refused.reason, BOOTSTRAP_NOT_ALLOWED);
        assert!(refused.message.contains("169.254.169.254:80"), "{refused}");
        assert!(!refused.message.contains("b-0"), "{refused}");
        assert!(p.check_bootstrap("b-0.kafka.svc:9093").is_err(), "port");
        assert!(p.check_bootstrap("[::1]:9092").is_err());
        assert!(Policy::default().check_bootstrap("anywhere:1").is_ok());
    }

    #[test]
    fn file_and_command_properties_are_refused_outside_the_mounted_dirs() {
        let p = Policy {
            client_file_dirs: vec!["/etc/freshet/kafka".into()],
            ..Default::default()
        };
        let props = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert!(
            p.check_client_properties(&props("ssl.ca.location", "/etc/freshet/kafka/a/ca.crt"))
                .is_ok()
        );
        for (k, v) in [
            ("ssl.ca.location", "/etc/passwd"),
            ("ssl.key.location", "/etc/freshet/kafka/../../../root/key"),
            ("ssl.certificate.location", "relative.crt"),
            (
                "sasl.kerberos.keytab",
                "/var/run/secrets/kubernetes.io/token",
            ),
            ("sasl.kerberos.kinit.cmd", "curl evil"),
            ("plugin.library.paths", "/etc/freshet/kafka/a/lib.so"),
        ] {
            let refused = p
                .check_client_properties(&props(k, v))
                .expect_err("refused");
            assert_eq!(refused.reason, PROPERTY_REFUSED);
            assert!(refused.message.contains(k), "{refused}");
        }
        assert!(
            p.check_client_properties(&props("security.protocol", "SSL"))
                .is_ok()
        );
    }
}
