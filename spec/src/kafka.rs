//! `spec.kafka` → client properties: TLS, mutual TLS, SASL/SCRAM, PLAIN and OAuth client
//! credentials, with every secret read from a [`SecretSource`] and never written back anywhere
//! but the clients' configuration.

use freshet_crds::kafka::{AuthenticationType, KafkaAuthentication, KafkaSpec};
use thiserror::Error;

use crate::secrets::{SecretError, SecretSource};

/// A `spec.kafka` that cannot be turned into client properties. Messages name the field and
/// the Secret, never a value.
#[derive(Debug, Error)]
pub enum KafkaSpecError {
    /// A field the authentication type needs is missing.
    #[error("spec.kafka.authentication: type {type_} needs {field}")]
    MissingField {
        /// The authentication type, as written.
        type_: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A field given that the type does not use (a likely mistake, e.g. a password with `tls`).
    #[error("spec.kafka.authentication: {field} is not used with type {type_}; remove it")]
    UnusedField {
        /// The authentication type, as written.
        type_: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A trusted certificate entry with both or neither of `certificate` and `pattern`.
    #[error(
        "spec.kafka.tls.trustedCertificates[{index}] (Secret '{secret}'): give either certificate or pattern"
    )]
    CertificateOrPattern {
        /// The entry's index.
        index: usize,
        /// Its Secret.
        secret: String,
    },
    /// `spec.bootstrapServers` and `spec.kafka.bootstrapServers` say different things.
    #[error(
        "spec.bootstrapServers ({top}) and spec.kafka.bootstrapServers ({kafka}) differ: keep one"
    )]
    BootstrapConflict {
        /// `spec.bootstrapServers`.
        top: String,
        /// `spec.kafka.bootstrapServers`.
        kafka: String,
    },
    /// A Secret's key that cannot be read.
    #[error("spec.kafka.{field}: {source}")]
    Secret {
        /// The field naming the Secret.
        field: String,
        /// Why it cannot be read.
        #[source]
        source: SecretError,
    },
}

/// The bootstrap servers: `spec.kafka.bootstrapServers`, else `spec.bootstrapServers`; `None`
/// when neither is written (the configuration then reports it missing, or takes it from a
/// flag or the environment).
pub fn bootstrap_servers(
    top: &str,
    kafka: Option<&KafkaSpec>,
) -> Result<Option<String>, KafkaSpecError> {
    let nested = kafka
        .and_then(|k| k.bootstrap_servers.as_deref())
        .filter(|s| !s.is_empty());
    match (top.is_empty(), nested) {
        (true, None) => Ok(None),
        (false, None) => Ok(Some(top.to_owned())),
        (true, Some(n)) => Ok(Some(n.to_owned())),
        (false, Some(n)) if n == top => Ok(Some(n.to_owned())),
        (false, Some(n)) => Err(KafkaSpecError::BootstrapConflict {
            top: top.to_owned(),
            kafka: n.to_owned(),
        }),
    }
}

/// The client properties (librdkafka names) that `spec.kafka` means, secrets read from
/// `secrets`. Reaches every client: the stream threads' consumers and producers and the admin
/// client alike.
pub fn client_properties(
    kafka: &KafkaSpec,
    secrets: &dyn SecretSource,
) -> Result<Vec<(String, String)>, KafkaSpecError> {
    let mut props: Vec<(String, String)> = Vec::new();
    let read = |field: String, secret: &str, key: &str| {
        secrets
            .value(secret, key)
            .map_err(|source| KafkaSpecError::Secret { field, source })
    };
    let tls = kafka.tls.is_some();
    if let Some(t) = &kafka.tls {
        let mut pem = String::new();
        for (index, c) in t.trusted_certificates.iter().enumerate() {
            let field = format!("tls.trustedCertificates[{index}]");
            let certs = match (&c.certificate, &c.pattern) {
                (Some(key), None) => vec![read(field, &c.secret_name, key)?],
                (None, Some(pattern)) => secrets
                    .matching(&c.secret_name, pattern)
                    .map_err(|source| KafkaSpecError::Secret { field, source })?,
                _ => {
                    return Err(KafkaSpecError::CertificateOrPattern {
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
            props.push(("ssl.ca.pem".into(), pem));
        }
    }
    let Some(auth) = &kafka.authentication else {
        if tls {
            props.push(("security.protocol".into(), "SSL".into()));
        }
        return Ok(props);
    };
    check_fields(auth)?;
    let type_ = auth.type_.as_str();
    let sasl = |mechanism: &str| {
        vec![
            (
                "security.protocol".to_owned(),
                if tls { "SASL_SSL" } else { "SASL_PLAINTEXT" }.to_owned(),
            ),
            ("sasl.mechanisms".to_owned(), mechanism.to_owned()),
        ]
    };
    match auth.type_ {
        AuthenticationType::Tls => {
            // Mutual TLS is TLS whether or not `tls` is written (Strimzi requires it be).
            props.push(("security.protocol".into(), "SSL".into()));
            let ck = auth
                .certificate_and_key
                .as_ref()
                .ok_or(KafkaSpecError::MissingField {
                    type_,
                    field: "certificateAndKey",
                })?;
            let field = || "authentication.certificateAndKey".to_owned();
            props.push((
                "ssl.certificate.pem".into(),
                read(field(), &ck.secret_name, &ck.certificate)?,
            ));
            props.push((
                "ssl.key.pem".into(),
                read(field(), &ck.secret_name, &ck.key)?,
            ));
        }
        AuthenticationType::ScramSha256
        | AuthenticationType::ScramSha512
        | AuthenticationType::Plain => {
            let mechanism = match auth.type_ {
                AuthenticationType::ScramSha256 => "SCRAM-SHA-256",
                AuthenticationType::ScramSha512 => "SCRAM-SHA-512",
                _ => "PLAIN",
            };
            props.extend(sasl(mechanism));
            let username = auth.username.as_ref().ok_or(KafkaSpecError::MissingField {
                type_,
                field: "username",
            })?;
            let secret = auth
                .password_secret
                .as_ref()
                .ok_or(KafkaSpecError::MissingField {
                    type_,
                    field: "passwordSecret",
                })?;
            props.push(("sasl.username".into(), username.clone()));
            let password = read(
                "authentication.passwordSecret".into(),
                &secret.secret_name,
                &secret.password,
            )?;
            // A password file written with `echo` ends in a newline that is no part of it.
            props.push((
                "sasl.password".into(),
                password.trim_end_matches(['\n', '\r']).to_owned(),
            ));
        }
        AuthenticationType::OAuth => {
            props.extend(sasl("OAUTHBEARER"));
            props.push(("sasl.oauthbearer.method".into(), "oidc".into()));
            let endpoint =
                auth.token_endpoint_uri
                    .as_ref()
                    .ok_or(KafkaSpecError::MissingField {
                        type_,
                        field: "tokenEndpointUri",
                    })?;
            let client_id = auth
                .client_id
                .as_ref()
                .ok_or(KafkaSpecError::MissingField {
                    type_,
                    field: "clientId",
                })?;
            let secret = auth
                .client_secret
                .as_ref()
                .ok_or(KafkaSpecError::MissingField {
                    type_,
                    field: "clientSecret",
                })?;
            props.push((
                "sasl.oauthbearer.token.endpoint.url".into(),
                endpoint.clone(),
            ));
            props.push(("sasl.oauthbearer.client.id".into(), client_id.clone()));
            let value = read(
                "authentication.clientSecret".into(),
                &secret.secret_name,
                &secret.key,
            )?;
            props.push((
                "sasl.oauthbearer.client.secret".into(),
                value.trim_end_matches(['\n', '\r']).to_owned(),
            ));
            if let Some(scope) = &auth.scope {
                props.push(("sasl.oauthbearer.scope".into(), scope.clone()));
            }
        }
    }
    Ok(props)
}

/// Refuses fields the type does not use: a password next to `type: tls` means a mistake, and
/// silently ignoring it would hide one.
fn check_fields(auth: &KafkaAuthentication) -> Result<(), KafkaSpecError> {
    let type_ = auth.type_.as_str();
    let sasl_user = matches!(
        auth.type_,
        AuthenticationType::ScramSha256
            | AuthenticationType::ScramSha512
            | AuthenticationType::Plain
    );
    let oauth = auth.type_ == AuthenticationType::OAuth;
    let tls = auth.type_ == AuthenticationType::Tls;
    let given: [(&'static str, bool, bool); 7] = [
        ("username", auth.username.is_some(), sasl_user),
        ("passwordSecret", auth.password_secret.is_some(), sasl_user),
        ("certificateAndKey", auth.certificate_and_key.is_some(), tls),
        ("tokenEndpointUri", auth.token_endpoint_uri.is_some(), oauth),
        ("clientId", auth.client_id.is_some(), oauth),
        ("clientSecret", auth.client_secret.is_some(), oauth),
        ("scope", auth.scope.is_some(), oauth),
    ];
    match given.iter().find(|(_, set, used)| *set && !*used) {
        Some((field, _, _)) => Err(KafkaSpecError::UnusedField { type_, field }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::{PLACEHOLDER, Placeholders, SecretFiles};

    fn kafka(yaml: &str) -> KafkaSpec {
        serde_yaml_ng::from_str(yaml).expect("a kafka block")
    }

    fn get<'a>(props: &'a [(String, String)], name: &str) -> Option<&'a str> {
        props
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn scram_over_tls_reads_the_password_and_the_ca_from_secrets() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (secret, key, value) in [
            ("cluster-ca", "ca.crt", "-----CA-----\n"),
            ("app-user", "password", "s3cret\n"),
        ] {
            std::fs::create_dir_all(dir.path().join(secret)).expect("mkdir");
            std::fs::write(dir.path().join(secret).join(key), value).expect("write");
        }
        let k = kafka(
            "tls: { trustedCertificates: [{ secretName: cluster-ca, certificate: ca.crt }] }\nauthentication: { type: scram-sha-512, username: app, passwordSecret: { secretName: app-user, password: password } }",
        );
        let props = client_properties(&k, &SecretFiles::new(dir.path())).expect("props");
        assert_eq!(get(&props, "security.protocol"), Some("SASL_SSL"));
        assert_eq!(get(&props, "sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(get(&props, "sasl.username"), Some("app"));
        assert_eq!(get(&props, "sasl.password"), Some("s3cret"));
        assert_eq!(get(&props, "ssl.ca.pem"), Some("-----CA-----\n"));
        assert_eq!(k.secret_names(), ["cluster-ca", "app-user"]);

        let missing = kafka(
            "authentication: { type: scram-sha-512, username: app, passwordSecret: { secretName: other, password: password } }",
        );
        let err = client_properties(&missing, &SecretFiles::new(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("spec.kafka.authentication.passwordSecret") && err.contains("'other'"),
            "{err}"
        );
    }

    #[test]
    fn each_type_sets_its_protocol_and_refuses_fields_of_another() {
        let tls = kafka(
            "authentication: { type: tls, certificateAndKey: { secretName: u, certificate: user.crt, key: user.key } }",
        );
        let props = client_properties(&tls, &Placeholders).expect("props");
        assert_eq!(get(&props, "security.protocol"), Some("SSL"));
        assert_eq!(get(&props, "ssl.key.pem"), Some(PLACEHOLDER));
        let plain = kafka(
            "authentication: { type: plain, username: u, passwordSecret: { secretName: u, password: p } }",
        );
        let props = client_properties(&plain, &Placeholders).expect("props");
        assert_eq!(get(&props, "security.protocol"), Some("SASL_PLAINTEXT"));
        let oauth = kafka(
            "tls: {}\nauthentication: { type: oauth, tokenEndpointUri: 'https://sso/token', clientId: app, clientSecret: { secretName: s, key: secret }, scope: kafka }",
        );
        let props = client_properties(&oauth, &Placeholders).expect("props");
        assert_eq!(get(&props, "security.protocol"), Some("SASL_SSL"));
        assert_eq!(get(&props, "sasl.oauthbearer.method"), Some("oidc"));
        assert_eq!(get(&props, "sasl.oauthbearer.scope"), Some("kafka"));
        assert_eq!(get(&props, "ssl.ca.pem"), None);

        let wrong = kafka(
            "authentication: { type: tls, username: u, certificateAndKey: { secretName: u, certificate: c, key: k } }",
        );
        let err = client_properties(&wrong, &Placeholders).unwrap_err();
        assert!(
            matches!(
                err,
                KafkaSpecError::UnusedField {
                    field: "username",
                    ..
                }
            ),
            "{err}"
        );
        let missing = kafka("authentication: { type: scram-sha-256, username: u }");
        let err = client_properties(&missing, &Placeholders).unwrap_err();
        assert!(err.to_string().contains("passwordSecret"), "{err}");
    }

    #[test]
    fn bootstrap_servers_come_from_either_place_but_must_agree() {
        let k = kafka("bootstrapServers: b:9093");
        assert_eq!(
            bootstrap_servers("", Some(&k)).expect("ok").as_deref(),
            Some("b:9093")
        );
        assert_eq!(
            bootstrap_servers("a:9092", None).expect("ok").as_deref(),
            Some("a:9092")
        );
        assert!(bootstrap_servers("a:9092", Some(&k)).is_err());
        assert_eq!(bootstrap_servers("", None).expect("ok"), None);
    }
}
