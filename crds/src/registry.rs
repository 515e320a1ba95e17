//! `spec.schemaRegistry`: the schema registry of the `avro`, `json-schema` and `protobuf` serdes
//! (a registry with Confluent's REST API), with its credentials and CA certificates named by
//! Secret and key, mounted into the pods as `spec.kafka`'s are. Nothing here holds a secret.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::kafka::KafkaTls;

/// Where the schema registry is and how the application reaches it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchemaRegistrySpec {
    /// `schema.registry.url`: the base URL of its Confluent-compatible REST API (for Apicurio
    /// Registry, `.../apis/ccompat/v7`).
    pub url: String,
    /// HTTP basic auth (`basic.auth.credentials.source: USER_INFO`), the user and password from
    /// a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<RegistryBasicAuth>,
    /// The CA certificates (PEM) an `https` registry's certificate is checked against; none
    /// means the system's trusted CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<KafkaTls>,
}

/// Basic-auth credentials in a Secret (a `kubernetes.io/basic-auth` Secret has them under
/// `username` and `password`, the defaults).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryBasicAuth {
    /// The Secret.
    pub secret_name: String,
    /// The key holding the user name (default `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_key: Option<String>,
    /// The key holding the password (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_key: Option<String>,
}

impl RegistryBasicAuth {
    /// The key of the user name.
    pub fn username_key(&self) -> &str {
        self.username_key.as_deref().unwrap_or("username")
    }

    /// The key of the password.
    pub fn password_key(&self) -> &str {
        self.password_key.as_deref().unwrap_or("password")
    }
}

impl SchemaRegistrySpec {
    /// Every Secret the block names, once each, in the order written.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        let trusted = self.tls.iter().flat_map(|t| {
            t.trusted_certificates
                .iter()
                .map(|c| c.secret_name.as_str())
        });
        let auth = self.basic_auth.iter().map(|a| a.secret_name.as_str());
        for name in auth.chain(trusted) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}
