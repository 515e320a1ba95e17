//! What can go wrong talking to a broker, for every module of the client.

use kafka_protocol::protocol::StrBytes;

/// What can go wrong talking to a broker.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// The broker could not be reached, or the connection broke.
    #[error("{what} ({address}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The broker's address.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A request could not be encoded or a response decoded.
    #[error("{what}: {source}")]
    Codec {
        /// The request or response.
        what: String,
        /// The cause.
        #[source]
        source: anyhow::Error,
    },
    /// The broker answered with an error code.
    #[error("{what}: the broker answered {code} ({name}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        /// The request.
        what: &'static str,
        /// Kafka's error code.
        code: i16,
        /// Kafka's name of the error.
        name: String,
        /// The broker's message, if any.
        message: Option<String>,
    },
    /// A response that does not fit the request.
    #[error("{0}")]
    Protocol(String),
    /// The TLS handshake failed for a reason retrying does not change (an untrusted or
    /// misnamed certificate, a refused client certificate).
    #[error("TLS with the broker at {address}: {source}")]
    Tls {
        /// The broker's address.
        address: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// SASL authentication could not be completed (no such mechanism, a server that failed
    /// SCRAM's proof); the broker's own refusal is a [`GroupError::Broker`].
    #[error("SASL authentication: {0}")]
    Authentication(String),
}

/// The coordinator's answer to a static member joining while an earlier member with its
/// instance id has neither left nor timed out.
pub const UNRELEASED_INSTANCE_ID: i16 = 111;

impl GroupError {
    /// The broker's error code, if the broker answered with one.
    pub fn code(&self) -> Option<i16> {
        match self {
            GroupError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether trying again (after finding the coordinator again) can succeed: a lost
    /// connection, or a coordinator that moved, is loading or is not available yet; or a static
    /// member's instance id still held by its previous incarnation (killed without leaving),
    /// which the coordinator releases when that one's session times out
    /// (`group.streams.session.timeout.ms`).
    pub fn is_retriable(&self) -> bool {
        match self {
            GroupError::Io { .. } => true,
            GroupError::Broker { code, .. } => {
                *code == UNRELEASED_INSTANCE_ID
                    || kafka_protocol::ResponseError::try_from_code(*code)
                        .is_some_and(|e| e.is_retriable())
            }
            _ => false,
        }
    }

    /// The error for a non-zero `code` answered to `what`.
    pub fn broker(what: &'static str, code: i16, message: Option<&StrBytes>) -> GroupError {
        let name = kafka_protocol::ResponseError::try_from_code(code)
            .map(|e| format!("{e:?}"))
            .unwrap_or_else(|| "unknown error".to_owned());
        GroupError::Broker {
            what,
            code,
            name,
            message: message.map(|m| m.as_str().to_owned()),
        }
    }
}
