//! `spec.schemaRegistry` → the registry properties the serdes read (`schema.registry.url`,
//! `basic.auth.credentials.source`, `basic.auth.user.info`,
//! `schema.registry.ssl.truststore.certificates`), every secret read from a [`SecretSource`].

use freshet_crds::SchemaRegistrySpec;
use thiserror::Error;

use crate::secrets::{SecretError, SecretSource};

/// A `spec.schemaRegistry` that cannot be turned into properties. Messages name the field and
/// the Secret, never a value.
#[derive(Debug, Error)]
pub enum RegistrySpecError {
    /// A trusted certificate entry with both or neither of `certificate` and `pattern`.
    #[error(
        "spec.schemaRegistry.tls.trustedCertificates[{index}] (Secret '{secret}'): give either certificate or pattern"
    )]
    CertificateOrPattern {
        /// The entry's index.
        index: usize,
        /// Its Secret.
        secret: String,
    },
    /// A Secret's key that cannot be read.
    #[error("spec.schemaRegistry.{field}: {source}")]
    Secret {
        /// The field naming the Secret.
        field: String,
        /// Why it cannot be read.
        #[source]
        source: SecretError,
    },
    /// `schema.registry.url` is also in `spec.config`, with another value.
    #[error(
        "spec.schemaRegistry.url ({spec}) and spec.config[\"schema.registry.url\"] ({config}) differ: keep one"
    )]
    UrlConflict {
        /// `spec.schemaRegistry.url`.
        spec: String,
        /// The config map's.
        config: String,
    },
}

/// The properties `spec.schemaRegistry` means; `config` is the spec's `config` map, which may
/// not name another registry.
pub fn registry_properties(
    registry: &SchemaRegistrySpec,
    config: &std::collections::BTreeMap<String, String>,
    secrets: &dyn SecretSource,
) -> Result<Vec<(String, String)>, RegistrySpecError> {
    if let Some(other) = config
        .get("schema.registry.url")
        .filter(|u| **u != registry.url)
    {
        return Err(RegistrySpecError::UrlConflict {
            spec: registry.url.clone(),
            config: other.clone(),
        });
    }
    let read = |field: String, secret: &str, key: &str| {
        secrets
            .value(secret, key)
            .map_err(|source| RegistrySpecError::Secret { field, source })
    };
    let mut props = vec![("schema.registry.url".to_owned(), registry.url.clone())];
    if let Some(auth) = &registry.basic_auth {
        let user = read(
            "basicAuth.usernameKey".into(),
            &auth.secret_name,
            auth.username_key(),
        )?;
        let password = read(
            "basicAuth.passwordKey".into(),
            &auth.secret_name,
            auth.password_key(),
        )?;
        props.push((
            "basic.auth.credentials.source".to_owned(),
            "USER_INFO".to_owned(),
        ));
        props.push((
            "basic.auth.user.info".to_owned(),
            format!(
                "{}:{}",
                user.trim_end_matches('\n'),
                password.trim_end_matches('\n')
            ),
        ));
    }
    if let Some(tls) = &registry.tls {
        let mut pem = String::new();
        for (index, c) in tls.trusted_certificates.iter().enumerate() {
            let field = format!("tls.trustedCertificates[{index}]");
            let certs = match (&c.certificate, &c.pattern) {
                (Some(key), None) => vec![read(field, &c.secret_name, key)?],
                (None, Some(pattern)) => secrets
                    .matching(&c.secret_name, pattern)
                    .map_err(|source| RegistrySpecError::Secret { field, source })?,
                _ => {
                    return Err(RegistrySpecError::CertificateOrPattern {
                        index,
                        secret: c.secret_name.clone(),
                    });
                }
            };
            for cert in certs {
                pem.push_str(cert.trim_end());
                pem.push('\n');
            }
        }
        if !pem.is_empty() {
            props.push((
                "schema.registry.ssl.truststore.certificates".to_owned(),
                pem,
            ));
        }
    }
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Placeholders;

    fn spec(yaml: &str) -> SchemaRegistrySpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn url_auth_and_certificates_become_confluents_properties() {
        let s = spec(
            "url: https://r:8081\nbasicAuth: {secretName: creds}\ntls: {trustedCertificates: [{secretName: ca, certificate: ca.crt}]}",
        );
        assert_eq!(s.secret_names(), ["creds", "ca"]);
        let props = registry_properties(&s, &Default::default(), &Placeholders).unwrap();
        let keys: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "schema.registry.url",
                "basic.auth.credentials.source",
                "basic.auth.user.info",
                "schema.registry.ssl.truststore.certificates"
            ]
        );
    }

    #[test]
    fn another_url_in_config_is_a_conflict() {
        let s = spec("url: http://a");
        let config = [("schema.registry.url".to_owned(), "http://b".to_owned())].into();
        let err = registry_properties(&s, &config, &Placeholders).unwrap_err();
        assert!(err.to_string().contains("differ"), "{err}");
    }
}
