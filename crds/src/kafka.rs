//! `spec.kafka`: how an application reaches a secured Kafka cluster, written as Strimzi's Kafka
//! clients (Kafka Connect, MirrorMaker 2, the Bridge) write it, so that a Strimzi `KafkaUser`'s
//! Secret and a cluster's CA Secret are used as they are.
//!
//! Nothing here holds a secret: credentials are named by Secret and key. In Kubernetes the pods
//! mount those Secrets; locally `freshet-engine run` reads them from files or environment
//! variables (docs/security.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Kafka cluster: where it is, how its certificates are trusted, how the application logs in.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaSpec {
    /// `bootstrap.servers`; `spec.bootstrapServers` may say it instead (not both, unless equal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// TLS to the brokers (`security.protocol` SSL, or SASL_SSL with a SASL authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
    /// How the application authenticates; none means anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<KafkaAuthentication>,
}

/// TLS settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaTls {
    /// CA certificates (PEM) the brokers' certificates are checked against; none means the
    /// system's trusted CAs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_certificates: Vec<CertSecretSource>,
}

/// Certificates in a Secret: one key, or every key matching a pattern (`*.crt`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.certificate) != has(self.pattern)",
    "message": "give either certificate (a key of the Secret) or pattern (a glob over its keys)"
}]))]
pub struct CertSecretSource {
    /// The Secret.
    pub secret_name: String,
    /// The key holding the certificate(s), PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// A glob (`*` and `?`) over the Secret's keys: every matching key's certificates are trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// The authentication types, as Strimzi spells them.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AuthenticationType {
    /// Mutual TLS: a client certificate and key (`certificateAndKey`).
    #[serde(rename = "tls")]
    Tls,
    /// SASL/SCRAM-SHA-256 with `username` and `passwordSecret`.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// SASL/SCRAM-SHA-512 with `username` and `passwordSecret`.
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// SASL/PLAIN with `username` and `passwordSecret` (only over TLS in production).
    #[serde(rename = "plain")]
    Plain,
    /// SASL/OAUTHBEARER with OAuth 2 client credentials from `tokenEndpointUri`.
    #[serde(rename = "oauth")]
    OAuth,
}

impl AuthenticationType {
    /// The type as written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthenticationType::Tls => "tls",
            AuthenticationType::ScramSha256 => "scram-sha-256",
            AuthenticationType::ScramSha512 => "scram-sha-512",
            AuthenticationType::Plain => "plain",
            AuthenticationType::OAuth => "oauth",
        }
    }
}

/// How the application logs in; which fields are needed depends on `type`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KafkaAuthentication {
    /// `tls`, `scram-sha-256`, `scram-sha-512`, `plain` or `oauth`.
    #[serde(rename = "type")]
    pub type_: AuthenticationType,
    /// The SASL user (`scram-*`, `plain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The SASL password (`scram-*`, `plain`): a Strimzi KafkaUser's Secret has it under `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<PasswordSecretSource>,
    /// The client certificate and key (`tls`): a Strimzi KafkaUser's Secret has `user.crt` and `user.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_and_key: Option<CertAndKeySecretSource>,
    /// The OAuth token endpoint (`oauth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_uri: Option<String>,
    /// The OAuth client id (`oauth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The OAuth client secret (`oauth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<GenericSecretSource>,
    /// The OAuth scope requested (`oauth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// A password in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordSecretSource {
    /// The Secret.
    pub secret_name: String,
    /// The key holding the password.
    pub password: String,
}

/// A certificate and its private key in a Secret, both PEM.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertAndKeySecretSource {
    /// The Secret.
    pub secret_name: String,
    /// The key holding the certificate (chain).
    pub certificate: String,
    /// The key holding the private key (unencrypted PEM).
    pub key: String,
}

/// Any value in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenericSecretSource {
    /// The Secret.
    pub secret_name: String,
    /// The key holding the value.
    pub key: String,
}

impl KafkaSpec {
    /// Every Secret the block names, once each, in the order written: what a pod must mount and
    /// what the operator may read.
    pub fn secret_names(&self) -> Vec<&str> {
        let trusted = self.tls.iter().flat_map(|t| {
            t.trusted_certificates
                .iter()
                .map(|c| c.secret_name.as_str())
        });
        let credentials = self.authentication.iter().flat_map(|a| {
            a.password_secret
                .iter()
                .map(|p| p.secret_name.as_str())
                .chain(a.certificate_and_key.iter().map(|c| c.secret_name.as_str()))
                .chain(a.client_secret.iter().map(|s| s.secret_name.as_str()))
        });
        let mut names: Vec<&str> = Vec::new();
        for name in trusted.chain(credentials) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}
