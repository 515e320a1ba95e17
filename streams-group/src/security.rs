//! How the streams-group connections are secured: the same librdkafka properties the rest of the
//! app's clients are given (`security.protocol`, `ssl.*`, `sasl.*`), read into [`Settings`]
//! without touching any file (so that validation can refuse what this client cannot do, naming
//! the property and the fix) and built into a [`Security`] (certificates read, the TLS
//! configuration made) when the member connects.
//!
//! TLS is rustls (the workspace already links it, with ring); SASL is PLAIN, SCRAM-SHA-256/512
//! and OAUTHBEARER with librdkafka's unsecured JWT (see [`crate::sasl`]). What librdkafka can
//! do and this client cannot (Kerberos, PKCS#12 key stores, encrypted keys, OIDC tokens,
//! certificate verification turned off) is an error, never a silent plaintext connection.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A security setting this client cannot honour, or cannot read.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A property or value the streams-group client does not support.
    #[error(
        "{property}={value}: the streams-group client (group.protocol=streams) does not support it; {fix}"
    )]
    Unsupported {
        /// The librdkafka property.
        property: String,
        /// Its value (never a secret's).
        value: String,
        /// What to do instead.
        fix: &'static str,
    },
    /// A property the chosen protocol or mechanism needs is missing.
    #[error("{property} is required with {with}")]
    Missing {
        /// The missing property.
        property: &'static str,
        /// The setting that needs it.
        with: String,
    },
    /// A certificate or key that cannot be read.
    #[error("{property} ({what}): {source}")]
    Pem {
        /// The property naming it.
        property: &'static str,
        /// The file, or `inline PEM`.
        what: String,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A file or directory that cannot be read.
    #[error("{property} ({path}): {source}")]
    Io {
        /// The property naming it.
        property: &'static str,
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Certificates that hold nothing usable, or a TLS configuration rustls refuses.
    #[error("{what}: {detail}")]
    Tls {
        /// What was being built.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
}

/// Where PEM comes from: a file (`*.location`) or the property's value (`*.pem`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemSource {
    /// A file or, for CA certificates, a directory of them.
    File(String),
    /// The PEM text itself.
    Inline(String),
}

/// The TLS half of the settings.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// CA certificates; `None` means the system's (librdkafka's `probe`).
    pub ca: Option<PemSource>,
    /// The client certificate (chain) and key, for mutual TLS.
    pub client: Option<(PemSource, PemSource)>,
    /// `ssl.endpoint.identification.algorithm`: whether the broker's certificate must name the
    /// host connected to (`https`, librdkafka's default) or not (`none`).
    pub verify_hostname: bool,
}

/// The SASL mechanism and its credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum Sasl {
    /// `PLAIN`.
    Plain {
        /// `sasl.username`.
        username: String,
        /// `sasl.password`.
        password: String,
    },
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    Scram {
        /// SHA-512 rather than SHA-256.
        sha512: bool,
        /// `sasl.username`.
        username: String,
        /// `sasl.password`.
        password: String,
    },
    /// `OAUTHBEARER` with librdkafka's unsecured JWT (`enable.sasl.oauthbearer.unsecure.jwt`,
    /// test brokers only): the token is made here from `sasl.oauthbearer.config`.
    OAuthUnsecured {
        /// `principal=` (the token's `sub`).
        principal: String,
        /// `scope=` (space-separated in the token), if any.
        scope: Option<String>,
        /// `lifeSeconds=` (librdkafka's default: 3600).
        life_seconds: u64,
        /// `extension_<name>=<value>`: SASL extensions sent with the token.
        extensions: Vec<(String, String)>,
    },
}

impl Sasl {
    /// The mechanism's name, as `SaslHandshake` sends it.
    pub fn mechanism(&self) -> &'static str {
        match self {
            Sasl::Plain { .. } => "PLAIN",
            Sasl::Scram { sha512: false, .. } => "SCRAM-SHA-256",
            Sasl::Scram { sha512: true, .. } => "SCRAM-SHA-512",
            Sasl::OAuthUnsecured { .. } => "OAUTHBEARER",
        }
    }
}

// Passwords never reach a log through `Debug`.
impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sasl::Plain { username, .. } | Sasl::Scram { username, .. } => f
                .debug_struct(self.mechanism())
                .field("username", username)
                .finish_non_exhaustive(),
            Sasl::OAuthUnsecured { principal, .. } => f
                .debug_struct("OAUTHBEARER (unsecured JWT)")
                .field("principal", principal)
                .finish_non_exhaustive(),
        }
    }
}

/// The security settings of a client, as read from its properties.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Settings {
    /// TLS, when `security.protocol` is `SSL` or `SASL_SSL`.
    pub tls: Option<TlsSettings>,
    /// SASL, when `security.protocol` is `SASL_PLAINTEXT` or `SASL_SSL`.
    pub sasl: Option<Sasl>,
}

/// Properties that configure what this client does not do, and what to use instead.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "ssl.keystore.location",
        "give the certificate and key as PEM (ssl.certificate.location and ssl.key.location, or spec.kafka.authentication type tls)",
    ),
    (
        "ssl.key.password",
        "give the key unencrypted (`openssl pkcs8 -topk8 -nocrypt`), in a Secret",
    ),
    (
        "ssl.engine.location",
        "give the certificate and key as PEM files",
    ),
    (
        "ssl.providers",
        "remove it: the streams-group client's TLS is rustls",
    ),
    (
        "ssl.crl.location",
        "remove it: the streams-group client reads no certificate revocation list",
    ),
];

impl Settings {
    /// Reads the settings from a client's librdkafka properties (later entries win). No file is
    /// read: what this client cannot do is an error naming the property and the fix.
    pub fn from_properties<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Settings, SecurityError> {
        let mut map = std::collections::BTreeMap::new();
        for (k, v) in props {
            map.insert(k, v);
        }
        let get = |k: &str| map.get(k).copied().filter(|v| !v.is_empty());
        let unsupported = |property: &str, value: &str, fix| SecurityError::Unsupported {
            property: property.to_owned(),
            value: value.to_owned(),
            fix,
        };
        let protocol = get("security.protocol")
            .unwrap_or("plaintext")
            .to_ascii_lowercase();
        let (tls, sasl) = match protocol.as_str() {
            "plaintext" => (false, false),
            "ssl" => (true, false),
            "sasl_plaintext" => (false, true),
            "sasl_ssl" => (true, true),
            other => {
                return Err(unsupported(
                    "security.protocol",
                    other,
                    "use plaintext, ssl, sasl_plaintext or sasl_ssl",
                ));
            }
        };
        let mut settings = Settings::default();
        if tls {
            for (property, fix) in UNSUPPORTED {
                if let Some(v) = get(property) {
                    let shown = if property.contains("password") {
                        "<redacted>"
                    } else {
                        v
                    };
                    return Err(unsupported(property, shown, fix));
                }
            }
            if let Some(v) = get("enable.ssl.certificate.verification")
                && v.eq_ignore_ascii_case("false")
            {
                return Err(unsupported(
                    "enable.ssl.certificate.verification",
                    v,
                    "trust the broker's CA instead (ssl.ca.location or spec.kafka.tls.trustedCertificates)",
                ));
            }
            let verify_hostname = match get("ssl.endpoint.identification.algorithm")
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("https") => true,
                Some("none") => false,
                Some(other) => {
                    return Err(unsupported(
                        "ssl.endpoint.identification.algorithm",
                        other,
                        "use https or none",
                    ));
                }
            };
            let ca = match (get("ssl.ca.pem"), get("ssl.ca.location")) {
                (Some(pem), _) => Some(PemSource::Inline(pem.to_owned())),
                (None, Some("probe")) | (None, None) => None,
                (None, Some(path)) => Some(PemSource::File(path.to_owned())),
            };
            let cert = match (get("ssl.certificate.pem"), get("ssl.certificate.location")) {
                (Some(pem), _) => Some(PemSource::Inline(pem.to_owned())),
                (None, Some(path)) => Some(PemSource::File(path.to_owned())),
                (None, None) => None,
            };
            let key = match (get("ssl.key.pem"), get("ssl.key.location")) {
                (Some(pem), _) => Some(PemSource::Inline(pem.to_owned())),
                (None, Some(path)) => Some(PemSource::File(path.to_owned())),
                (None, None) => None,
            };
            let client = match (cert, key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(SecurityError::Missing {
                        property: "ssl.key.location (or ssl.key.pem)",
                        with: "a client certificate".to_owned(),
                    });
                }
                (None, Some(_)) => {
                    return Err(SecurityError::Missing {
                        property: "ssl.certificate.location (or ssl.certificate.pem)",
                        with: "a client key".to_owned(),
                    });
                }
            };
            settings.tls = Some(TlsSettings {
                ca,
                client,
                verify_hostname,
            });
        }
        if sasl {
            settings.sasl = Some(read_sasl(&|k| get(k), &protocol)?);
        }
        Ok(settings)
    }

    /// Reads the certificates and keys and makes the TLS configuration.
    pub fn build(&self) -> Result<Security, SecurityError> {
        let tls = self.tls.as_ref().map(tls_config).transpose()?;
        Ok(Security {
            tls,
            sasl: self.sasl.clone(),
        })
    }
}

fn read_sasl<'a>(
    get: &dyn Fn(&str) -> Option<&'a str>,
    protocol: &str,
) -> Result<Sasl, SecurityError> {
    let with = |mechanism: &str| format!("sasl.mechanism={mechanism}");
    let mechanism = get("sasl.mechanism")
        .or_else(|| get("sasl.mechanisms"))
        // librdkafka's default mechanism is Kerberos.
        .unwrap_or("GSSAPI")
        .to_ascii_uppercase();
    let credentials = || -> Result<(String, String), SecurityError> {
        let username = get("sasl.username").ok_or_else(|| SecurityError::Missing {
            property: "sasl.username",
            with: with(&mechanism),
        })?;
        let password = get("sasl.password").ok_or_else(|| SecurityError::Missing {
            property: "sasl.password",
            with: with(&mechanism),
        })?;
        Ok((username.to_owned(), password.to_owned()))
    };
    match mechanism.as_str() {
        "PLAIN" => {
            let (username, password) = credentials()?;
            Ok(Sasl::Plain { username, password })
        }
        "SCRAM-SHA-256" | "SCRAM-SHA-512" => {
            let (username, password) = credentials()?;
            Ok(Sasl::Scram {
                sha512: mechanism == "SCRAM-SHA-512",
                username,
                password,
            })
        }
        "OAUTHBEARER" => {
            let method = get("sasl.oauthbearer.method").unwrap_or("default");
            if !method.eq_ignore_ascii_case("default") {
                return Err(SecurityError::Unsupported {
                    property: "sasl.oauthbearer.method".to_owned(),
                    value: method.to_owned(),
                    fix: "the streams-group client does not fetch OIDC tokens yet: use SCRAM or mutual TLS for this app, or group.protocol=classic",
                });
            }
            let unsecured = get("enable.sasl.oauthbearer.unsecure.jwt")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if !unsecured {
                return Err(SecurityError::Missing {
                    property: "enable.sasl.oauthbearer.unsecure.jwt=true (test brokers) or sasl.oauthbearer.method=oidc",
                    with: format!("sasl.mechanism=OAUTHBEARER over {protocol}"),
                });
            }
            let config = get("sasl.oauthbearer.config").unwrap_or("");
            unsecured_jwt_settings(config)
        }
        other => Err(SecurityError::Unsupported {
            property: "sasl.mechanism".to_owned(),
            value: other.to_owned(),
            fix: "use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (Kerberos is not supported by the streams-group client; use group.protocol=classic)",
        }),
    }
}

/// librdkafka's `sasl.oauthbearer.config` for its unsecured JWT:
/// `principal=<p> [scope=<s>] [lifeSeconds=<n>] [extension_<k>=<v>]...`.
fn unsecured_jwt_settings(config: &str) -> Result<Sasl, SecurityError> {
    let mut principal = None;
    let mut scope = None;
    let mut life_seconds = 3600;
    let mut extensions = Vec::new();
    let bad = |value: &str| SecurityError::Unsupported {
        property: "sasl.oauthbearer.config".to_owned(),
        value: value.to_owned(),
        fix: "write principal=<name> and optionally scope=<s>, lifeSeconds=<n>, extension_<key>=<value>",
    };
    for item in config.split_whitespace() {
        let (k, v) = item.split_once('=').ok_or_else(|| bad(item))?;
        match k {
            "principal" => principal = Some(v.to_owned()),
            "scope" => scope = Some(v.replace(',', " ")),
            "lifeSeconds" => life_seconds = v.parse().map_err(|_| bad(item))?,
            _ => match k.strip_prefix("extension_") {
                Some(name) => extensions.push((name.to_owned(), v.to_owned())),
                None => return Err(bad(item)),
            },
        }
    }
    let principal = principal.ok_or(SecurityError::Missing {
        property: "sasl.oauthbearer.config principal=<name>",
        with: "enable.sasl.oauthbearer.unsecure.jwt=true".to_owned(),
    })?;
    Ok(Sasl::OAuthUnsecured {
        principal,
        scope,
        life_seconds,
        extensions,
    })
}

/// The security of the member's connections, ready to connect with.
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// TLS, if the connections use it.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// SASL, if the connections authenticate with it.
    pub sasl: Option<Sasl>,
}

impl Security {
    /// Plaintext, no authentication.
    pub fn plaintext() -> Security {
        Security::default()
    }

    /// Reads `props` (a client's librdkafka properties) and builds the security they mean.
    pub fn from_properties<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Security, SecurityError> {
        Settings::from_properties(props)?.build()
    }
}

fn certificates(
    property: &'static str,
    source: &PemSource,
) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let pem = |what: String| {
        move |source| SecurityError::Pem {
            property,
            what: what.clone(),
            source,
        }
    };
    let certs: Vec<CertificateDer<'static>> = match source {
        PemSource::Inline(text) => CertificateDer::pem_slice_iter(text.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(pem("inline PEM".to_owned()))?,
        PemSource::File(path) if Path::new(path).is_dir() => {
            // A directory of CA certificates (librdkafka hands it to OpenSSL as CApath): every
            // file in it that holds PEM certificates.
            let entries = std::fs::read_dir(path).map_err(|source| SecurityError::Io {
                property,
                path: path.clone(),
                source,
            })?;
            let mut out = Vec::new();
            for entry in entries.flatten() {
                if let Ok(bytes) = std::fs::read(entry.path()) {
                    out.extend(CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok));
                }
            }
            out
        }
        PemSource::File(path) => {
            let bytes = std::fs::read(path).map_err(|source| SecurityError::Io {
                property,
                path: path.clone(),
                source,
            })?;
            CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(pem(path.clone()))?
        }
    };
    if certs.is_empty() {
        return Err(SecurityError::Tls {
            what: property,
            detail: format!("{} holds no PEM certificate", describe(source)),
        });
    }
    Ok(certs)
}

fn describe(source: &PemSource) -> String {
    match source {
        PemSource::File(path) => path.clone(),
        PemSource::Inline(_) => "the inline PEM".to_owned(),
    }
}

fn private_key(source: &PemSource) -> Result<PrivateKeyDer<'static>, SecurityError> {
    const PROPERTY: &str = "ssl.key.location";
    let pem = |what: String| {
        move |source| SecurityError::Pem {
            property: PROPERTY,
            what,
            source,
        }
    };
    match source {
        PemSource::Inline(text) => {
            PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(pem("inline PEM".to_owned()))
        }
        PemSource::File(path) => {
            let bytes = std::fs::read(path).map_err(|source| SecurityError::Io {
                property: PROPERTY,
                path: path.clone(),
                source,
            })?;
            PrivateKeyDer::from_pem_slice(&bytes).map_err(pem(path.clone()))
        }
    }
}

fn tls_config(settings: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, SecurityError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca {
        Some(source) => {
            for cert in certificates("ssl.ca.location", source)? {
                roots.add(cert).map_err(|e| SecurityError::Tls {
                    what: "ssl.ca.location",
                    detail: format!("{}: {e}", describe(source)),
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(SecurityError::Tls {
                    what: "ssl.ca.location",
                    detail: "no CA certificate given and the system has none: set ssl.ca.location (or spec.kafka.tls.trustedCertificates)".to_owned(),
                });
            }
        }
    }
    let roots = Arc::new(roots);
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SecurityError::Tls {
            what: "TLS versions",
            detail: e.to_string(),
        })?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| SecurityError::Tls {
                what: "ssl.ca.location",
                detail: e.to_string(),
            })?;
    let builder = if settings.verify_hostname {
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyHostname(verifier)))
    };
    let config = match &settings.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let key = provider
                .key_provider
                .load_private_key(private_key(key)?)
                .map_err(|e| SecurityError::Tls {
                    what: "ssl.key.location",
                    detail: e.to_string(),
                })?;
            let certified = rustls::sign::CertifiedKey::new(
                certificates("ssl.certificate.location", cert)?,
                key,
            );
            builder.with_client_cert_resolver(Arc::new(ClientCertificate(Arc::new(certified))))
        }
    };
    Ok(Arc::new(config))
}

/// The client certificate, always offered when the broker asks for one. Not rustls'
/// `with_client_auth_cert`, which parses the certificate and refuses X.509 v1 ones (what
/// `openssl x509 -req` makes without extensions), which the broker (Java) accepts, as
/// librdkafka (OpenSSL) offers them.
#[derive(Debug)]
struct ClientCertificate(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// `ssl.endpoint.identification.algorithm=none`: the broker's certificate chain is verified
/// against the trusted CAs as always, but may name another host than the one connected to.
#[derive(Debug)]
struct AnyHostname(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(props: &[(&str, &str)]) -> Result<Settings, SecurityError> {
        Settings::from_properties(props.iter().copied())
    }

    #[test]
    fn plaintext_by_default() {
        assert_eq!(settings(&[]).unwrap(), Settings::default());
    }

    #[test]
    fn scram_over_ssl() {
        let s = settings(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanisms", "SCRAM-SHA-512"),
            ("sasl.username", "app"),
            ("sasl.password", "pw"),
            ("ssl.ca.location", "/ca.crt"),
        ])
        .unwrap();
        assert_eq!(
            s.tls.unwrap().ca,
            Some(PemSource::File("/ca.crt".to_owned()))
        );
        assert_eq!(s.sasl.unwrap().mechanism(), "SCRAM-SHA-512");
    }

    #[test]
    fn unsupported_combinations_name_the_property_and_the_fix() {
        for (props, expected) in [
            (
                vec![("security.protocol", "SASL_SSL")],
                "sasl.mechanism=GSSAPI",
            ),
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("ssl.keystore.location", "/k.p12"),
                ],
                "ssl.keystore.location=/k.p12",
            ),
            (
                vec![
                    ("security.protocol", "SASL_SSL"),
                    ("sasl.mechanism", "OAUTHBEARER"),
                    ("sasl.oauthbearer.method", "oidc"),
                ],
                "sasl.oauthbearer.method=oidc",
            ),
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("enable.ssl.certificate.verification", "false"),
                ],
                "enable.ssl.certificate.verification=false",
            ),
        ] {
            let e = settings(&props).unwrap_err().to_string();
            assert!(e.contains(expected), "{e}");
            assert!(e.contains("streams-group client"), "{e}");
        }
        let e = settings(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "u"),
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(e, "sasl.password is required with sasl.mechanism=PLAIN");
    }

    #[test]
    fn passwords_stay_out_of_debug() {
        let s = settings(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            ("sasl.username", "app"),
            ("sasl.password", "s3cret"),
        ])
        .unwrap();
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn unsecured_jwt_config() {
        let s = settings(&[
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
            (
                "sasl.oauthbearer.config",
                "principal=app-oauth scope=a,b extension_traceId=1",
            ),
        ])
        .unwrap();
        assert_eq!(
            s.sasl,
            Some(Sasl::OAuthUnsecured {
                principal: "app-oauth".to_owned(),
                scope: Some("a b".to_owned()),
                life_seconds: 3600,
                extensions: vec![("traceId".to_owned(), "1".to_owned())],
            })
        );
    }
}
