//! Where the values of the Secrets `spec.kafka` names come from: in a pod, the files of the
//! Secrets the operator mounts; locally, files laid out the same way or environment variables;
//! for `validate` without a broker, nowhere (placeholders: the manifest is checked, not the
//! credentials).

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where the engine finds a Secret's keys by default: one directory per Secret, one file per
/// key, as the operator mounts each Secret `spec.kafka` names (a Secret volume at
/// `<dir>/<secret>`).
pub const DEFAULT_SECRETS_DIR: &str = "/var/run/secrets/freshet";

/// A Secret's key that cannot be had. The message names the Secret, the key and where they were
/// looked for; never a value.
#[derive(Debug, Error)]
pub enum SecretError {
    /// Neither the environment variable nor the file exists.
    #[error("Secret '{secret}' has no key '{key}': neither {variable} nor {} exists", .path.display())]
    Missing {
        /// The Secret.
        secret: String,
        /// The key.
        key: String,
        /// The environment variable that could give it.
        variable: String,
        /// The file that could give it.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("Secret '{secret}', key '{key}': cannot read {}: {source}", .path.display())]
    Read {
        /// The Secret.
        secret: String,
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The value is not text (certificates, keys and passwords are).
    #[error("Secret '{secret}', key '{key}' is not UTF-8 text")]
    NotText {
        /// The Secret.
        secret: String,
        /// The key.
        key: String,
    },
    /// The Secret, as the Kubernetes API gave it, has no such key.
    #[error("Secret '{secret}' has no key '{key}'")]
    NoKey {
        /// The Secret.
        secret: String,
        /// The key.
        key: String,
    },
    /// No key of the Secret, as the Kubernetes API gave it, matches a pattern.
    #[error("no key of Secret '{secret}' matches '{pattern}'")]
    NoKeyMatches {
        /// The Secret.
        secret: String,
        /// The glob.
        pattern: String,
    },
    /// No key of the Secret matches a pattern.
    #[error("no key of Secret '{secret}' matches '{pattern}' (looked in {})", .dir.display())]
    NoMatch {
        /// The Secret.
        secret: String,
        /// The glob.
        pattern: String,
        /// The Secret's directory.
        dir: PathBuf,
    },
}

/// Gives the values of Secrets' keys.
pub trait SecretSource {
    /// The value of `key` in Secret `secret`.
    fn value(&self, secret: &str, key: &str) -> Result<String, SecretError>;
    /// The values of every key of Secret `secret` matching the glob `pattern`, by key name.
    fn matching(&self, secret: &str, pattern: &str) -> Result<Vec<String>, SecretError>;
}

/// Secrets as files, `<dir>/<secret>/<key>` (a mounted Secret volume), each key overridable by
/// the environment variable `FRESHET_SECRET_<SECRET>_<KEY>` (upper case, every character other
/// than a letter or digit written `_`).
#[derive(Clone, Debug)]
pub struct SecretFiles {
    dir: PathBuf,
}

impl SecretFiles {
    /// Secrets under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> SecretFiles {
        SecretFiles { dir: dir.into() }
    }

    /// The directory of the Secrets.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The environment variable that gives `key` of Secret `secret`.
pub fn secret_variable(secret: &str, key: &str) -> String {
    let part = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    };
    format!("FRESHET_SECRET_{}_{}", part(secret), part(key))
}

impl SecretSource for SecretFiles {
    fn value(&self, secret: &str, key: &str) -> Result<String, SecretError> {
        let variable = secret_variable(secret, key);
        match std::env::var(&variable) {
            Ok(value) => return Ok(value),
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(SecretError::NotText {
                    secret: secret.to_owned(),
                    key: key.to_owned(),
                });
            }
            Err(std::env::VarError::NotPresent) => {}
        }
        let path = self.dir.join(secret).join(key);
        match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| SecretError::NotText {
                secret: secret.to_owned(),
                key: key.to_owned(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SecretError::Missing {
                secret: secret.to_owned(),
                key: key.to_owned(),
                variable,
                path,
            }),
            Err(source) => Err(SecretError::Read {
                secret: secret.to_owned(),
                key: key.to_owned(),
                path,
                source,
            }),
        }
    }

    fn matching(&self, secret: &str, pattern: &str) -> Result<Vec<String>, SecretError> {
        let dir = self.dir.join(secret);
        let entries = std::fs::read_dir(&dir).map_err(|source| SecretError::Read {
            secret: secret.to_owned(),
            key: pattern.to_owned(),
            path: dir.clone(),
            source,
        })?;
        // A mounted Secret volume holds each key twice over (`..data/` and a link per key):
        // only plain names that match count.
        let mut keys: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|k| !k.starts_with(".."))
            .filter(|k| glob_matches(pattern, k))
            .collect();
        keys.sort();
        if keys.is_empty() {
            return Err(SecretError::NoMatch {
                secret: secret.to_owned(),
                pattern: pattern.to_owned(),
                dir,
            });
        }
        keys.iter().map(|k| self.value(secret, k)).collect()
    }
}

/// Stands in for every Secret: `validate` without a broker checks the manifest, not credentials
/// it may not have.
#[derive(Clone, Copy, Debug, Default)]
pub struct Placeholders;

/// The value [`Placeholders`] gives.
pub const PLACEHOLDER: &str = "<from a Secret>";

impl SecretSource for Placeholders {
    fn value(&self, _secret: &str, _key: &str) -> Result<String, SecretError> {
        Ok(PLACEHOLDER.to_owned())
    }

    fn matching(&self, _secret: &str, _pattern: &str) -> Result<Vec<String>, SecretError> {
        Ok(vec![PLACEHOLDER.to_owned()])
    }
}

/// Whether `name` matches the glob `pattern` (`*` any run of characters, `?` one character), as
/// Strimzi's certificate patterns (`*.crt`) are written.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point for the last `*`.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_strimzi_patterns_do() {
        assert!(glob_matches("*.crt", "ca.crt"));
        assert!(glob_matches("*.crt", ".crt"));
        assert!(!glob_matches("*.crt", "ca.key"));
        assert!(glob_matches("ca-?.crt", "ca-1.crt"));
        assert!(!glob_matches("ca-?.crt", "ca-12.crt"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(!glob_matches("a*b*c", "aXXbYY"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
    }

    #[test]
    fn files_are_read_per_secret_and_key_and_errors_say_where_they_looked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("app-user");
        std::fs::create_dir_all(&secret).expect("mkdir");
        std::fs::write(secret.join("password"), "from-file").expect("write");
        std::fs::write(secret.join("b.crt"), "B").expect("write");
        std::fs::write(secret.join("a.crt"), "A").expect("write");
        std::fs::write(secret.join("user.key"), "K").expect("write");
        let files = SecretFiles::new(dir.path());
        assert_eq!(
            files.value("app-user", "password").expect("read"),
            "from-file"
        );
        assert_eq!(
            files.matching("app-user", "*.crt").expect("matches"),
            ["A", "B"]
        );
        let err = files.value("app-user", "nope").unwrap_err().to_string();
        assert!(
            err.contains("app-user")
                && err.contains("nope")
                && err.contains("FRESHET_SECRET_APP_USER_NOPE"),
            "{err}"
        );
        let err = files.matching("app-user", "*.pem").unwrap_err().to_string();
        assert!(err.contains("*.pem"), "{err}");
        assert_eq!(
            secret_variable("my-cluster-cluster-ca-cert", "ca.crt"),
            "FRESHET_SECRET_MY_CLUSTER_CLUSTER_CA_CERT_CA_CRT"
        );
    }
}
