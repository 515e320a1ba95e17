//! The Secrets an app's `spec.kafka` and `spec.schemaRegistry` name, read with `get` (the only verb the operator has on
//! Secrets) for its own admin client, and digested by resourceVersion into the pod template so
//! that rotating one rolls the pods. Values stay in memory: never logged, never in the status,
//! an Event or the ConfigMap.

use std::collections::BTreeMap;

use freshet_crds::{KafkaSpec, StreamsAppSpec};
use freshet_spec::secrets::{SecretError, SecretSource, glob_matches};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::status::{self, Judged};

/// A Secret named by `spec.kafka` that the operator cannot read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// No such Secret in the app's namespace.
    #[error(
        "Secret '{name}' named by spec.kafka or spec.schemaRegistry does not exist in namespace {namespace}"
    )]
    NotFound {
        /// The Secret.
        name: String,
        /// The app's namespace.
        namespace: String,
    },
    /// The API refused or failed (a missing `get` on Secrets in the operator's role, say).
    #[error("Secret '{name}' named by spec.kafka or spec.schemaRegistry cannot be read: {source}")]
    Read {
        /// The Secret.
        name: String,
        /// The API's error.
        #[source]
        source: kube::Error,
    },
}

impl SecretsError {
    /// Whether the Secret may yet appear (it is created after the app): then the reconcile is
    /// retried instead of waiting for a change of the app.
    pub fn is_missing(&self) -> bool {
        matches!(self, SecretsError::NotFound { .. })
    }
}

/// The Secrets of one app, by name: their keys' values and their resourceVersions.
#[derive(Default)]
pub struct AppSecrets {
    data: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    versions: Vec<(String, String)>,
}

impl AppSecrets {
    /// Reads every Secret `spec.kafka` and `spec.schemaRegistry` name from `api` (the app's namespace).
    pub async fn read(
        api: &Api<Secret>,
        namespace: &str,
        spec: &StreamsAppSpec,
    ) -> Result<AppSecrets, SecretsError> {
        let mut out = AppSecrets::default();
        for name in spec.secret_names() {
            let secret = match api.get(name).await {
                Ok(s) => s,
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    return Err(SecretsError::NotFound {
                        name: name.to_owned(),
                        namespace: namespace.to_owned(),
                    });
                }
                Err(source) => {
                    return Err(SecretsError::Read {
                        name: name.to_owned(),
                        source,
                    });
                }
            };
            let version = secret.metadata.resource_version.clone().unwrap_or_default();
            let mut keys: BTreeMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in secret.string_data.unwrap_or_default() {
                keys.entry(k).or_insert_with(|| v.into_bytes());
            }
            out.data.insert(name.to_owned(), keys);
            out.versions.push((name.to_owned(), version));
        }
        Ok(out)
    }

    /// A digest of the Secrets' names and resourceVersions, `None` without Secrets: the pod
    /// template carries it, so a rotated Secret rolls the pods.
    pub fn digest(&self) -> Option<String> {
        (!self.versions.is_empty()).then(|| {
            let text: Vec<String> = self
                .versions
                .iter()
                .map(|(name, version)| format!("{name}={version}"))
                .collect();
            crate::digest(&text.join("\n"))
        })
    }
}

impl SecretSource for AppSecrets {
    fn value(&self, secret: &str, key: &str) -> Result<String, SecretError> {
        let bytes = self
            .data
            .get(secret)
            .and_then(|keys| keys.get(key))
            .ok_or_else(|| SecretError::NoKey {
                secret: secret.to_owned(),
                key: key.to_owned(),
            })?;
        String::from_utf8(bytes.clone()).map_err(|_| SecretError::NotText {
            secret: secret.to_owned(),
            key: key.to_owned(),
        })
    }

    fn matching(&self, secret: &str, pattern: &str) -> Result<Vec<String>, SecretError> {
        let keys: Vec<&String> = self
            .data
            .get(secret)
            .map(|keys| keys.keys().filter(|k| glob_matches(pattern, k)).collect())
            .unwrap_or_default();
        if keys.is_empty() {
            return Err(SecretError::NoKeyMatches {
                secret: secret.to_owned(),
                pattern: pattern.to_owned(),
            });
        }
        keys.into_iter().map(|k| self.value(secret, k)).collect()
    }
}

/// The conditions of an app whose Secrets cannot be read: the configuration's, naming the
/// Secret, and not Ready.
pub fn unavailable(error: &SecretsError) -> [Judged; 2] {
    [
        Judged::new(
            status::CONFIG_VALID,
            false,
            "SecretUnavailable",
            error.to_string(),
        ),
        Judged::new(
            status::READY,
            false,
            "SecretUnavailable",
            "a Secret spec.kafka names cannot be read; the running version (if any) is kept",
        ),
    ]
}

/// Where `spec.kafka`'s credentials come from, for messages: the field and the Secret.
fn credentials_source(kafka: &KafkaSpec) -> Option<String> {
    let auth = kafka.authentication.as_ref()?;
    if let Some(p) = &auth.password_secret {
        return Some(format!(
            "spec.kafka.authentication.passwordSecret (Secret '{}', key '{}')",
            p.secret_name, p.password
        ));
    }
    if let Some(c) = &auth.certificate_and_key {
        return Some(format!(
            "spec.kafka.authentication.certificateAndKey (Secret '{}')",
            c.secret_name
        ));
    }
    auth.client_secret.as_ref().map(|c| {
        format!(
            "spec.kafka.authentication.clientSecret (Secret '{}', key '{}')",
            c.secret_name, c.key
        )
    })
}

/// What a message about a cluster that does not answer adds when `spec.kafka` has credentials:
/// a refused password looks the same to the client, so it names the Secret they came from
/// (never what they are). Empty without credentials.
pub fn credentials_hint(spec: &StreamsAppSpec) -> String {
    spec.kafka
        .as_ref()
        .and_then(credentials_source)
        .map(|c| format!("; if the broker refuses the credentials, check {c}"))
        .unwrap_or_default()
}
