//! A blocking client of Confluent's schema registry REST API (served by Confluent's registry,
//! Apicurio's `ccompat` API, Karapace, Redpanda): the calls the serdes make, with their answers
//! cached for the life of the process, as Confluent's `CachedSchemaRegistryClient` does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde::Deserialize;
use thiserror::Error;

use super::RegistrySettings;

/// A registry call that failed.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The registry answered with an error (Confluent's `error_code` and message).
    #[error("the schema registry at {url} answered {status} (error code {code}): {message}")]
    Refused {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Confluent's error code (40403: schema not found, 40401: subject not found, 409:
        /// incompatible schema), or the status when the body has none.
        code: u32,
        /// The registry's message.
        message: String,
    },
    /// The registry (or the proxy in front of it) refused the call's credentials, or asked for
    /// some and none were given (HTTP 401), or refused these credentials the call (403).
    /// Retrying cannot help, so the call fails at once with the setting that fixes it; the
    /// credentials themselves are never in the message.
    #[error("{}", unauthorized_message(.url, *.status, *.given))]
    Unauthorized {
        /// The URL called.
        url: String,
        /// 401 or 403.
        status: u16,
        /// Whether the call carried credentials (`basic.auth.user.info`).
        given: bool,
    },
    /// The registry could not be reached within `task.timeout.ms`.
    #[error(
        "the schema registry at {url} was unreachable for {waited:?} (task.timeout.ms): {source}"
    )]
    Unreachable {
        /// The URL called.
        url: String,
        /// How long the call was retried.
        waited: Duration,
        /// The last transport error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The registry's TLS certificate is not signed by a CA this client trusts: retrying cannot
    /// help, so the call fails at once with the setting that fixes it.
    #[error(
        "the schema registry at {url} presented a TLS certificate that is not trusted ({source}): give the CA that signed it in schema.registry.ssl.truststore.certificates (PEM; on Kubernetes spec.schemaRegistry.tls.trustedCertificates)"
    )]
    Untrusted {
        /// The URL called.
        url: String,
        /// The TLS error.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The answer was not the JSON expected.
    #[error("the schema registry at {url} answered something unreadable: {source}")]
    Unreadable {
        /// The URL called.
        url: String,
        /// The decoding error.
        #[source]
        source: Box<ureq::Error>,
    },
}

impl RegistryError {
    /// Confluent's error code, when the registry answered with one.
    pub fn code(&self) -> Option<u32> {
        match self {
            RegistryError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What [`RegistryError::Unauthorized`] says: the status, whether credentials were given, and
/// where they are set.
fn unauthorized_message(url: &str, status: u16, given: bool) -> String {
    const WHERE: &str = "basic.auth.user.info (user:password, with basic.auth.credentials.source USER_INFO; on Kubernetes the Secret that spec.schemaRegistry.basicAuth names)";
    match (status, given) {
        (403, _) => format!(
            "the schema registry at {url} refused these credentials this call (HTTP 403 Forbidden): grant the user access to the subject in the registry, or give another user's credentials in {WHERE}"
        ),
        (_, true) => format!(
            "the schema registry at {url} refused the credentials (HTTP {status} Unauthorized): give a user and password it accepts in {WHERE}"
        ),
        (_, false) => format!(
            "the schema registry at {url} asks for credentials (HTTP {status} Unauthorized) and none were given: set them in {WHERE}"
        ),
    }
}

/// A schema as the registry returns it.
#[derive(Clone, Debug, Deserialize)]
pub struct RegisteredSchema {
    /// The schema's global id (what Confluent's framing carries).
    #[serde(default)]
    pub id: u32,
    /// The schema text.
    pub schema: String,
    /// `AVRO` (the default when absent), `PROTOBUF` or `JSON`.
    #[serde(rename = "schemaType", default)]
    pub schema_type: Option<String>,
    /// The schemas this one refers to by name (types defined in other subjects).
    #[serde(default)]
    pub references: Vec<SchemaReference>,
}

/// A reference of a schema to a type defined by another subject's version (Confluent's
/// `references`; Apicurio's serializers register nested named Avro types so).
#[derive(Clone, Debug, Deserialize)]
pub struct SchemaReference {
    /// The referenced type's name, as the schema uses it.
    pub name: String,
    /// The subject that defines it.
    pub subject: String,
    /// Which version of the subject.
    pub version: i64,
}

#[derive(Deserialize)]
struct IdOnly {
    id: u32,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: Option<u32>,
    #[serde(default)]
    message: Option<String>,
}

/// How long to wait between tries against an unreachable registry.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

/// A registry client with caches; cheap to share between stream threads.
pub struct RegistryClient {
    settings: RegistrySettings,
    /// `settings.url` without user info (`https://user:password@host` for
    /// `basic.auth.credentials.source: URL`): what is called, logged and named in errors, so the
    /// password never is; the credentials go in the `Authorization` header.
    base_url: String,
    agent: ureq::Agent,
    auth: Option<String>,
    by_id: Mutex<HashMap<u32, Arc<RegisteredSchema>>>,
    /// (subject, schema text) -> id, for registered or looked-up schemas.
    ids: Mutex<HashMap<(String, String), u32>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The settings only: no credentials, no caches.
        f.debug_struct("RegistryClient")
            .field("url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client of the registry `settings` names.
    pub fn new(settings: RegistrySettings) -> RegistryClient {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)));
        if let Some(pem) = &settings.trusted_pem {
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem.as_bytes())
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    Ok(_) => None,
                    Err(e) => {
                        // A broken block: the rest still counts, and the TLS handshake names a
                        // registry certificate no trusted CA signed.
                        tracing::warn!(error = %e, "schema.registry.ssl.truststore.certificates: a PEM block does not parse; skipped");
                        None
                    }
                })
                .collect();
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        let agent: ureq::Agent = config.build().into();
        let auth = settings.user_info.as_ref().map(|info| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(info)
            )
        });
        let base_url = without_user_info(&settings.url);
        RegistryClient {
            settings,
            base_url,
            agent,
            auth,
            by_id: Mutex::new(HashMap::new()),
            ids: Mutex::new(HashMap::new()),
        }
    }

    /// The settings the client was made with.
    pub fn settings(&self) -> &RegistrySettings {
        &self.settings
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.trim_end_matches('/'))
    }

    /// One call, retried while the registry cannot be reached, up to `task.timeout.ms`.
    fn call<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, RegistryError> {
        let url = self.url(path);
        let started = Instant::now();
        loop {
            let result = match body {
                None => {
                    let mut req = self.agent.get(&url);
                    if let Some(auth) = &self.auth {
                        req = req.header("Authorization", auth);
                    }
                    req.header("Accept", "application/vnd.schemaregistry.v1+json")
                        .call()
                }
                Some(body) => {
                    let mut req = self.agent.post(&url);
                    if let Some(auth) = &self.auth {
                        req = req.header("Authorization", auth);
                    }
                    req.header("Accept", "application/vnd.schemaregistry.v1+json")
                        .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                        .send(serde_json::to_vec(body).unwrap_or_default())
                }
            };
            match result {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    if (200..300).contains(&status) {
                        return response.body_mut().read_json::<T>().map_err(|source| {
                            RegistryError::Unreadable {
                                url,
                                source: Box::new(source),
                            }
                        });
                    }
                    // Wrong or missing credentials are no outage: no retries, no body (a proxy's
                    // HTML page says nothing more).
                    if status == 401 || status == 403 {
                        return Err(RegistryError::Unauthorized {
                            url,
                            status,
                            given: self.auth.is_some(),
                        });
                    }
                    let text = response.body_mut().read_to_string().unwrap_or_default();
                    let parsed: Option<ErrorBody> = serde_json::from_str(&text).ok();
                    // A registry that is starting or overloaded answers 5xx: retried as an outage.
                    if status >= 500 && started.elapsed() < self.settings.timeout {
                        tracing::warn!(%url, status, "schema registry error; retrying");
                        std::thread::sleep(RETRY_BACKOFF);
                        continue;
                    }
                    return Err(RegistryError::Refused {
                        url,
                        status,
                        code: parsed
                            .as_ref()
                            .and_then(|p| p.error_code)
                            .unwrap_or(status.into()),
                        message: parsed.and_then(|p| p.message).unwrap_or(text),
                    });
                }
                Err(e) if untrusted_certificate(&e) => {
                    return Err(RegistryError::Untrusted {
                        url,
                        source: Box::new(e),
                    });
                }
                Err(e) => {
                    let waited = started.elapsed();
                    if waited >= self.settings.timeout {
                        return Err(RegistryError::Unreachable {
                            url,
                            waited,
                            source: Box::new(e),
                        });
                    }
                    tracing::warn!(%url, error = %e, "schema registry unreachable; retrying within task.timeout.ms");
                    std::thread::sleep(RETRY_BACKOFF);
                }
            }
        }
    }

    /// The schema with global id `id` (cached).
    pub fn schema_by_id(&self, id: u32) -> Result<Arc<RegisteredSchema>, RegistryError> {
        if let Some(s) = lock(&self.by_id).get(&id) {
            return Ok(s.clone());
        }
        let mut schema: RegisteredSchema = self.call(&format!("/schemas/ids/{id}"), None)?;
        schema.id = id;
        let schema = Arc::new(schema);
        lock(&self.by_id).insert(id, schema.clone());
        Ok(schema)
    }

    /// The id of `schema` under `subject`: registered there when `auto.register.schemas` is on,
    /// else looked up (cached).
    pub fn id_for(
        &self,
        subject: &str,
        schema: &str,
        schema_type: &str,
    ) -> Result<u32, RegistryError> {
        let key = (subject.to_owned(), schema.to_owned());
        if let Some(id) = lock(&self.ids).get(&key) {
            return Ok(*id);
        }
        let mut body = serde_json::json!({ "schema": schema });
        if schema_type != "AVRO" {
            body["schemaType"] = serde_json::Value::String(schema_type.to_owned());
        }
        let subject_path = encode(subject);
        let id = if self.settings.auto_register {
            self.call::<IdOnly>(&format!("/subjects/{subject_path}/versions"), Some(&body))?
                .id
        } else {
            self.call::<IdOnly>(&format!("/subjects/{subject_path}"), Some(&body))?
                .id
        };
        lock(&self.ids).insert(key, id);
        Ok(id)
    }

    /// Version `version` of `subject` (a schema reference's target).
    pub fn version(
        &self,
        subject: &str,
        version: i64,
    ) -> Result<Arc<RegisteredSchema>, RegistryError> {
        let schema: RegisteredSchema = self.call(
            &format!("/subjects/{}/versions/{version}", encode(subject)),
            None,
        )?;
        Ok(Arc::new(schema))
    }

    /// The latest version of `subject` (for `use.latest.version`; cached once read).
    pub fn latest(&self, subject: &str) -> Result<Arc<RegisteredSchema>, RegistryError> {
        let schema: RegisteredSchema = self.call(
            &format!("/subjects/{}/versions/latest", encode(subject)),
            None,
        )?;
        let schema = Arc::new(schema);
        lock(&self.by_id).insert(schema.id, schema.clone());
        Ok(schema)
    }
}

/// Whether `e` is rustls refusing the server's certificate (its chain, its name, its dates):
/// ureq hands it over as rustls' error, or inside the I/O error of the handshake.
fn untrusted_certificate(e: &ureq::Error) -> bool {
    let tls = match e {
        ureq::Error::Rustls(tls) => Some(tls),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    matches!(
        tls,
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::InvalidCertRevocationList(_))
    )
}

/// `url` without the user info of its authority (`scheme://user:password@host/...` ->
/// `scheme://host/...`); other URLs as they are.
fn without_user_info(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// A subject in a URL path (record names have dots only, topics may have anything Kafka allows).
fn encode(subject: &str) -> String {
    form_urlencoded::byte_serialize(subject.as_bytes()).collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere does not make a cache wrong: entries are inserted whole.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_is_cut_from_the_url() {
        assert_eq!(
            without_user_info("https://u:p%40ss@registry:8081/apis/ccompat/v7"),
            "https://registry:8081/apis/ccompat/v7"
        );
        assert_eq!(
            without_user_info("http://registry:8081/a@b"),
            "http://registry:8081/a@b"
        );
        assert_eq!(without_user_info("registry:8081"), "registry:8081");
    }

    #[test]
    fn unauthorized_names_the_url_and_the_settings_never_a_value() {
        let refused = RegistryError::Unauthorized {
            url: "http://r/apis/ccompat/v7/schemas/ids/1".into(),
            status: 401,
            given: true,
        }
        .to_string();
        for part in [
            "http://r/apis/ccompat/v7/schemas/ids/1",
            "refused the credentials",
            "basic.auth.user.info",
            "spec.schemaRegistry.basicAuth",
        ] {
            assert!(refused.contains(part), "{part}: {refused}");
        }
        let missing = RegistryError::Unauthorized {
            url: "http://r".into(),
            status: 401,
            given: false,
        }
        .to_string();
        assert!(missing.contains("none were given"), "{missing}");
        let forbidden = RegistryError::Unauthorized {
            url: "http://r".into(),
            status: 403,
            given: true,
        }
        .to_string();
        assert!(forbidden.contains("403 Forbidden"), "{forbidden}");
    }
}
