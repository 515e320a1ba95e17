//! SASL authentication of a new connection, as Kafka's clients do it: `SaslHandshake` v1 names
//! the mechanism, then `SaslAuthenticate` v2 carries the mechanism's messages.
//!
//! The mechanisms' messages: PLAIN (RFC 4616), SCRAM (RFC 5802, as Kafka's `ScramSaslClient`:
//! no channel binding, the server's signature checked) with ring's PBKDF2, HMAC and SHA-2, and
//! OAUTHBEARER (RFC 7628) with librdkafka's unsecured JWT.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use ring::{digest, hmac, pbkdf2, rand::SecureRandom};

use crate::error::GroupError;
use crate::security::Sasl;

/// A connection the SASL requests go over (the client's `Connection`; a trait so that this
/// module does not depend on the one that calls it).
pub trait Channel {
    /// Sends `request` at `version` and waits for its response.
    fn request<R: Request>(&mut self, request: &R, version: i16)
    -> Result<R::Response, GroupError>;
    /// The broker's address, for messages.
    fn peer(&self) -> &str;
}

/// `SaslHandshake` v1: the mechanism's messages then go in `SaslAuthenticate`.
const HANDSHAKE_VERSION: i16 = 1;
/// `SaslAuthenticate` v2 (flexible; carries the session lifetime).
const AUTHENTICATE_VERSION: i16 = 2;

/// Authenticates `conn` with `sasl`; returns the session's lifetime if the broker limits it
/// (`connections.max.reauth.ms`), after which the connection must be made again.
pub fn authenticate<C: Channel>(conn: &mut C, sasl: &Sasl) -> Result<Option<Duration>, GroupError> {
    let mechanism = sasl.mechanism();
    let handshake = conn.request(
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)),
        HANDSHAKE_VERSION,
    )?;
    if handshake.error_code != 0 {
        let enabled: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(GroupError::Authentication(format!(
            "the broker at {} does not enable SASL mechanism {mechanism} (it enables {}): set sasl.mechanism to one of them",
            conn.peer(),
            enabled.join(", ")
        )));
    }
    match sasl {
        Sasl::Plain { username, password } => {
            let message = format!("\0{username}\0{password}");
            exchange(conn, message.into_bytes()).map(|(_, lifetime)| lifetime)
        }
        Sasl::Scram {
            sha512,
            username,
            password,
        } => scram(conn, *sha512, username, password),
        Sasl::OAuthUnsecured {
            principal,
            scope,
            life_seconds,
            extensions,
        } => {
            let token = unsecured_jwt(principal, scope.as_deref(), *life_seconds)?;
            let mut message = format!("n,,\x01auth=Bearer {token}\x01");
            for (k, v) in extensions {
                message.push_str(&format!("{k}={v}\x01"));
            }
            message.push('\x01');
            exchange(conn, message.into_bytes()).map(|(_, lifetime)| lifetime)
        }
    }
}

/// One `SaslAuthenticate` round: the broker's answer and the session lifetime.
fn exchange<C: Channel>(
    conn: &mut C,
    message: Vec<u8>,
) -> Result<(Bytes, Option<Duration>), GroupError> {
    let response = conn.request(
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message)),
        AUTHENTICATE_VERSION,
    )?;
    if response.error_code != 0 {
        return Err(GroupError::broker(
            "SASL authentication",
            response.error_code,
            response.error_message.as_ref(),
        ));
    }
    let lifetime = u64::try_from(response.session_lifetime_ms)
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis);
    Ok((response.auth_bytes, lifetime))
}

/// A SCRAM name: `=` and `,` escaped (RFC 5802 `saslname`).
fn sasl_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn scram<C: Channel>(
    conn: &mut C,
    sha512: bool,
    username: &str,
    password: &str,
) -> Result<Option<Duration>, GroupError> {
    let (hmac_alg, digest_alg, pbkdf2_alg, len) = if sha512 {
        (
            hmac::HMAC_SHA512,
            &digest::SHA512,
            pbkdf2::PBKDF2_HMAC_SHA512,
            64,
        )
    } else {
        (
            hmac::HMAC_SHA256,
            &digest::SHA256,
            pbkdf2::PBKDF2_HMAC_SHA256,
            32,
        )
    };
    let failed = |detail: String| GroupError::Authentication(format!("SCRAM: {detail}"));
    let mut nonce = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| failed("no random bytes for the nonce".to_owned()))?;
    let client_nonce = URL_SAFE_NO_PAD.encode(nonce);
    let client_first_bare = format!("n={},r={client_nonce}", sasl_name(username));
    let (server_first, _) = exchange(conn, format!("n,,{client_first_bare}").into_bytes())?;
    let server_first = String::from_utf8(server_first.to_vec())
        .map_err(|_| failed("the server's first message is not UTF-8".to_owned()))?;
    let field = |key: &str| {
        server_first
            .split(',')
            .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
    };
    let nonce = field("r")
        .filter(|r| r.starts_with(&client_nonce) && r.len() > client_nonce.len())
        .ok_or_else(|| failed("the server's nonce does not extend the client's".to_owned()))?;
    let salt = field("s")
        .and_then(|s| STANDARD.decode(s).ok())
        .ok_or_else(|| failed("the server's first message has no salt".to_owned()))?;
    let iterations = field("i")
        .and_then(|i| i.parse::<u32>().ok())
        .and_then(std::num::NonZeroU32::new)
        .ok_or_else(|| failed("the server's first message has no iteration count".to_owned()))?;
    let mut salted = vec![0u8; len];
    pbkdf2::derive(
        pbkdf2_alg,
        iterations,
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    let salted = hmac::Key::new(hmac_alg, &salted);
    let client_key = hmac::sign(&salted, b"Client Key");
    let stored_key = digest::digest(digest_alg, client_key.as_ref());
    // "biws" is base64("n,,"): no channel binding, no authorization id.
    let client_final_bare = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{client_final_bare}");
    let client_signature = hmac::sign(
        &hmac::Key::new(hmac_alg, stored_key.as_ref()),
        auth_message.as_bytes(),
    );
    let proof: Vec<u8> = client_key
        .as_ref()
        .iter()
        .zip(client_signature.as_ref())
        .map(|(a, b)| a ^ b)
        .collect();
    let client_final = format!("{client_final_bare},p={}", STANDARD.encode(proof));
    let (server_final, lifetime) = exchange(conn, client_final.into_bytes())?;
    let server_final = String::from_utf8_lossy(&server_final);
    let server_key = hmac::sign(&salted, b"Server Key");
    let expected = hmac::sign(
        &hmac::Key::new(hmac_alg, server_key.as_ref()),
        auth_message.as_bytes(),
    );
    match server_final.strip_prefix("v=") {
        Some(v) if STANDARD.decode(v).ok().as_deref() == Some(expected.as_ref()) => Ok(lifetime),
        _ => Err(failed(format!(
            "the broker at {} did not prove it knows the password ({server_final})",
            conn.peer()
        ))),
    }
}

/// librdkafka's unsecured JWT (`alg: none`, empty signature) for `principal`.
fn unsecured_jwt(
    principal: &str,
    scope: Option<&str>,
    life_seconds: u64,
) -> Result<String, GroupError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| GroupError::Authentication("the clock is before 1970".to_owned()))?
        .as_secs();
    let mut claims = serde_json::json!({
        "sub": principal,
        "iat": now,
        "exp": now + life_seconds,
    });
    if let Some(scope) = scope {
        claims["scope"] = serde_json::json!(scope.split(' ').collect::<Vec<_>>());
    }
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    Ok(format!("{header}.{claims}."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped() {
        assert_eq!(sasl_name("a=b,c"), "a=3Db=2Cc");
    }

    #[test]
    fn unsecured_jwt_has_the_principal_and_no_signature() {
        let token = unsecured_jwt("app", Some("a b"), 60).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "app");
        assert_eq!(claims["scope"], serde_json::json!(["a", "b"]));
    }
}
