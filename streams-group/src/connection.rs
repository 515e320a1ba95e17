//! One blocking connection to a broker: requests framed with Kafka's request header (size,
//! header, body), responses read back and matched by correlation id.
//!
//! Blocking on purpose: a stream thread runs a synchronous loop, and its heartbeats are sent from
//! that loop (as a Java `StreamThread` polls its consumer). Secured as the app's other clients
//! are ([`Security`]): TLS through rustls, then SASL ([`crate::sasl`]) before the first request.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

pub use crate::error::GroupError;
use crate::security::Security;

/// The byte stream under a connection: TCP, or TLS over TCP.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A connection to one broker.
pub struct Connection {
    address: String,
    stream: Stream,
    client_id: String,
    correlation_id: i32,
    /// When the SASL session ends (the broker's `connections.max.reauth.ms`), if it does.
    session_ends: Option<Instant>,
}

impl crate::sasl::Channel for Connection {
    fn request<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, GroupError> {
        self.send(request, version)
    }

    fn peer(&self) -> &str {
        &self.address
    }
}

impl Connection {
    /// Connects to `address` (`host:port`) in plaintext; `timeout` bounds the connect and each
    /// read and write.
    pub fn connect(address: &str, client_id: &str, timeout: Duration) -> Result<Self, GroupError> {
        Self::connect_with(address, client_id, timeout, &Security::plaintext())
    }

    /// Connects to the first reachable broker of `bootstrap` (a comma-separated list, as
    /// `bootstrap.servers`) with `security`. A broker that answers with an error, or refuses
    /// the certificate or the password, ends the search: every broker would.
    pub fn connect_first(
        bootstrap: &str,
        client_id: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<Self, GroupError> {
        let mut last = None;
        for address in bootstrap
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match Self::connect_with(address, client_id, timeout, security) {
                Ok(c) => return Ok(c),
                Err(e @ (GroupError::Tls { .. } | GroupError::Authentication(_))) => return Err(e),
                Err(e) if e.code().is_some() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            GroupError::Protocol(format!("bootstrap.servers `{bootstrap}` names no broker"))
        }))
    }

    /// Connects to `address` with `security`: the TLS handshake, then SASL authentication.
    pub fn connect_with(
        address: &str,
        client_id: &str,
        timeout: Duration,
        security: &Security,
    ) -> Result<Self, GroupError> {
        let tcp = Self::tcp(address, timeout)?;
        let stream = match &security.tls {
            None => Stream::Plain(tcp),
            Some(config) => Stream::Tls(Box::new(tls(address, tcp, config.clone())?)),
        };
        let mut conn = Connection {
            address: address.to_owned(),
            stream,
            client_id: client_id.to_owned(),
            correlation_id: 0,
            session_ends: None,
        };
        if let Some(sasl) = &security.sasl {
            let started = Instant::now();
            if let Some(lifetime) = crate::sasl::authenticate(&mut conn, sasl)? {
                // Made again a little before the broker closes it (Java re-authenticates at
                // 85-95% of the lifetime).
                conn.session_ends = Some(started + lifetime.mul_f64(0.85));
            }
        }
        Ok(conn)
    }

    /// Whether the SASL session is over or about to be: the connection must be made again.
    pub fn session_expired(&self) -> bool {
        self.session_ends.is_some_and(|t| Instant::now() >= t)
    }

    fn tcp(address: &str, timeout: Duration) -> Result<TcpStream, GroupError> {
        let io = |what, source| GroupError::Io {
            what,
            address: address.to_owned(),
            source,
        };
        let mut last = None;
        let addrs = address
            .to_socket_addrs()
            .map_err(|e| io("resolving the broker's address", e))?;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(timeout))
                        .and_then(|()| stream.set_write_timeout(Some(timeout)))
                        .and_then(|()| stream.set_nodelay(true))
                        .map_err(|e| io("configuring the connection", e))?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(io(
            "connecting to the broker",
            last.unwrap_or_else(|| std::io::Error::other("the address resolved to nothing")),
        ))
    }

    /// The broker's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends `request` at `version` and waits for its response.
    pub fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, GroupError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let bytes = encode_request(&header, request, version)?;
        let io = |what, source| GroupError::Io {
            what,
            address: self.address.clone(),
            source,
        };
        self.stream
            .write_all(&bytes)
            .map_err(|e| io("sending a request", e))?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| io("reading a response", e))?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .map_err(|_| GroupError::Protocol(format!("a response of negative size {size}")))?;
        let mut body = vec![0u8; size];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| io("reading a response", e))?;
        let (correlation_id, response) = decode_response::<R>(Bytes::from(body), version)?;
        if correlation_id != self.correlation_id {
            return Err(GroupError::Protocol(format!(
                "response with correlation id {correlation_id} to request {}",
                self.correlation_id
            )));
        }
        Ok(response)
    }
}

/// `tcp` wrapped in TLS with `config`, the handshake done (so that a certificate problem is
/// reported as one, not as a failed request).
fn tls(
    address: &str,
    mut tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, GroupError> {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| GroupError::Protocol(format!("`{host}` is not a host name for TLS: {e}")))?;
    let mut session = rustls::ClientConnection::new(config, name).map_err(|e| GroupError::Tls {
        address: address.to_owned(),
        source: std::io::Error::other(e),
    })?;
    while session.is_handshaking() {
        if let Err(e) = session.complete_io(&mut tcp) {
            // rustls reports its own errors (certificates, alerts) as invalid data; anything
            // else is the connection's, which trying again may cure.
            return Err(if e.kind() == std::io::ErrorKind::InvalidData {
                GroupError::Tls {
                    address: address.to_owned(),
                    source: e,
                }
            } else {
                GroupError::Io {
                    what: "the TLS handshake",
                    address: address.to_owned(),
                    source: e,
                }
            });
        }
    }
    Ok(rustls::StreamOwned::new(session, tcp))
}

/// A request framed for the wire: size, header, body.
pub fn encode_request<R: Request>(
    header: &RequestHeader,
    request: &R,
    version: i16,
) -> Result<Bytes, GroupError> {
    let codec = |source| GroupError::Codec {
        what: format!("encoding request {} v{version}", R::KEY),
        source,
    };
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(codec)?;
    request.encode(&mut buf, version).map_err(codec)?;
    let size = i32::try_from(buf.len() - 4)
        .map_err(|_| GroupError::Protocol("a request over 2 GiB".to_owned()))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// A response body (after the size): its correlation id and the response.
pub fn decode_response<R: Request>(
    mut body: Bytes,
    version: i16,
) -> Result<(i32, R::Response), GroupError> {
    let codec = |source| GroupError::Codec {
        what: format!("decoding the response to request {} v{version}", R::KEY),
        source,
    };
    let header = ResponseHeader::decode(
        &mut body,
        <R::Response as HeaderVersion>::header_version(version),
    )
    .map_err(codec)?;
    let response = R::Response::decode(&mut body, version).map_err(codec)?;
    Ok((header.correlation_id, response))
}
