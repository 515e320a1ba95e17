//! Serdes that read and write the same bytes as Kafka's own serializers, named as manifests name
//! them (`string`, `long`, `windowed-string`, ...).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

mod typed;

pub use typed::{
    BytesSerde, DefaultSerde, DoubleSerde, IntSerde, JsonSerde, LongSerde, Nullable, Serde,
    StringSerde, VoidSerde,
};

/// A serde chosen by name in a manifest or in `default.key.serde` / `default.value.serde`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerdeKind {
    /// The bytes as they are (`ByteArraySerializer`).
    Bytes,
    /// UTF-8 text (`StringSerializer`).
    String,
    /// 4-byte big-endian two's complement (`IntegerSerializer`).
    Int,
    /// 8-byte big-endian two's complement (`LongSerializer`).
    Long,
    /// IEEE 754 binary64, big-endian (`DoubleSerializer`).
    Double,
    /// A JSON document; Freshet writes it canonically (sorted keys, no whitespace).
    Json,
    /// Avro in Confluent's wire format (magic byte 0, the 4-byte big-endian schema id, the
    /// binary datum), its schemas in a schema registry (`schema.registry.url`).
    Avro,
    /// A JSON document in Confluent's wire format (magic byte 0, the 4-byte schema id of a JSON
    /// Schema in the registry, the UTF-8 JSON text), as `KafkaJsonSchemaSerializer` writes it.
    JsonSchema,
    /// A Protobuf message in Confluent's wire format (magic byte 0, the 4-byte schema id, the
    /// message-index list as zig-zag varints, the message), as `KafkaProtobufSerializer` writes it.
    Protobuf,
    /// A time-windowed key: the inner key's bytes, then the 8-byte window start
    /// (`TimeWindowedSerializer`).
    Windowed(Box<SerdeKind>),
    /// A session-windowed key: the inner key's bytes, then the 8-byte window end and start
    /// (`SessionWindowedSerializer`).
    Session(Box<SerdeKind>),
}

impl SerdeKind {
    /// Whether the serde keeps its schemas in a schema registry (`avro`, `json-schema`,
    /// `protobuf`): such serdes are bound to a registry and a topic (a store's: its changelog).
    pub fn is_registry(&self) -> bool {
        matches!(
            self,
            SerdeKind::Avro | SerdeKind::JsonSchema | SerdeKind::Protobuf
        )
    }
}

/// A serde name that is not one of the known ones.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "unknown serde '{0}': use one of bytes, string, int, long, double, json, avro, json-schema, protobuf, windowed-<inner>, session-<inner>"
)]
pub struct UnknownSerde(pub String);

impl FromStr for SerdeKind {
    type Err = UnknownSerde;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let inner = |rest: &str| rest.parse::<SerdeKind>().map(Box::new);
        Ok(match name {
            "bytes" => SerdeKind::Bytes,
            "string" => SerdeKind::String,
            "int" => SerdeKind::Int,
            "long" => SerdeKind::Long,
            "double" => SerdeKind::Double,
            "json" => SerdeKind::Json,
            "avro" => SerdeKind::Avro,
            "json-schema" => SerdeKind::JsonSchema,
            "protobuf" => SerdeKind::Protobuf,
            _ => {
                if let Some(rest) = name.strip_prefix("windowed-") {
                    SerdeKind::Windowed(inner(rest).map_err(|_| UnknownSerde(name.into()))?)
                } else if let Some(rest) = name.strip_prefix("session-") {
                    SerdeKind::Session(inner(rest).map_err(|_| UnknownSerde(name.into()))?)
                } else {
                    return Err(UnknownSerde(name.into()));
                }
            }
        })
    }
}

impl fmt::Display for SerdeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerdeKind::Bytes => f.write_str("bytes"),
            SerdeKind::String => f.write_str("string"),
            SerdeKind::Int => f.write_str("int"),
            SerdeKind::Long => f.write_str("long"),
            SerdeKind::Double => f.write_str("double"),
            SerdeKind::Json => f.write_str("json"),
            SerdeKind::Avro => f.write_str("avro"),
            SerdeKind::JsonSchema => f.write_str("json-schema"),
            SerdeKind::Protobuf => f.write_str("protobuf"),
            SerdeKind::Windowed(inner) => write!(f, "windowed-{inner}"),
            SerdeKind::Session(inner) => write!(f, "session-{inner}"),
        }
    }
}

/// Bytes that do not decode with the serde they were read with.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// A fixed-size serde (`int`, `long`, `double`) got another number of bytes.
    #[error("{serde} expects {expected} bytes, got {actual}")]
    Length {
        /// The serde's name.
        serde: &'static str,
        /// The bytes it reads.
        expected: usize,
        /// The bytes it got.
        actual: usize,
    },
    /// A windowed key is shorter than its window suffix (8 bytes for time windows, 16 for
    /// sessions).
    #[error("{serde} expects at least {minimum} bytes, got {actual}")]
    TooShort {
        /// The serde's name (`windowed` or `session`).
        serde: &'static str,
        /// The length of the window suffix alone.
        minimum: usize,
        /// The bytes it got.
        actual: usize,
    },
    /// A string that is not UTF-8; holds the offset of the first invalid byte.
    #[error("string serde: invalid UTF-8 at byte {0}")]
    Utf8(usize),
}

fn fixed<const N: usize>(serde: &'static str, bytes: &[u8]) -> Result<[u8; N], DecodeError> {
    bytes.try_into().map_err(|_| DecodeError::Length {
        serde,
        expected: N,
        actual: bytes.len(),
    })
}

/// `IntegerSerializer` bytes.
pub fn encode_int(v: i32) -> [u8; 4] {
    v.to_be_bytes()
}

/// `IntegerDeserializer`.
pub fn decode_int(bytes: &[u8]) -> Result<i32, DecodeError> {
    fixed::<4>("int", bytes).map(i32::from_be_bytes)
}

/// `LongSerializer` bytes.
pub fn encode_long(v: i64) -> [u8; 8] {
    v.to_be_bytes()
}

/// `LongDeserializer`.
pub fn decode_long(bytes: &[u8]) -> Result<i64, DecodeError> {
    fixed::<8>("long", bytes).map(i64::from_be_bytes)
}

/// `DoubleSerializer` bytes.
pub fn encode_double(v: f64) -> [u8; 8] {
    v.to_bits().to_be_bytes()
}

/// `DoubleDeserializer`.
pub fn decode_double(bytes: &[u8]) -> Result<f64, DecodeError> {
    fixed::<8>("double", bytes).map(|b| f64::from_bits(u64::from_be_bytes(b)))
}

/// `StringDeserializer` (UTF-8).
pub fn decode_string(bytes: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|e| DecodeError::Utf8(e.valid_up_to()))
}

/// `TimeWindowedSerializer`: the inner key's bytes followed by the window start.
pub fn encode_windowed(inner_key: &[u8], window_start_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner_key.len() + 8);
    out.extend_from_slice(inner_key);
    out.extend_from_slice(&window_start_ms.to_be_bytes());
    out
}

/// `TimeWindowedDeserializer`: (inner key bytes, window start).
pub fn decode_windowed(bytes: &[u8]) -> Result<(&[u8], i64), DecodeError> {
    let split = bytes.len().checked_sub(8).ok_or(DecodeError::TooShort {
        serde: "windowed",
        minimum: 8,
        actual: bytes.len(),
    })?;
    let (key, start) = bytes.split_at(split);
    Ok((key, decode_long(start)?))
}

/// `SessionWindowedSerializer`: the inner key's bytes, then the session's end, then its start.
pub fn encode_session(inner_key: &[u8], start_ms: i64, end_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(inner_key.len() + 16);
    out.extend_from_slice(inner_key);
    out.extend_from_slice(&end_ms.to_be_bytes());
    out.extend_from_slice(&start_ms.to_be_bytes());
    out
}

/// `SessionWindowedDeserializer`: (inner key bytes, start, end).
pub fn decode_session(bytes: &[u8]) -> Result<(&[u8], i64, i64), DecodeError> {
    let split = bytes.len().checked_sub(16).ok_or(DecodeError::TooShort {
        serde: "session",
        minimum: 16,
        actual: bytes.len(),
    })?;
    let (key, times) = bytes.split_at(split);
    let end = decode_long(&times[..8])?;
    let start = decode_long(&times[8..])?;
    Ok((key, start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_parse_and_print_back() {
        for name in [
            "bytes",
            "string",
            "int",
            "long",
            "double",
            "json",
            "windowed-string",
            "session-long",
        ] {
            let kind: SerdeKind = name.parse().unwrap();
            assert_eq!(kind.to_string(), name);
        }
        assert_eq!(
            "windowed-strnig".parse::<SerdeKind>(),
            Err(UnknownSerde("windowed-strnig".into()))
        );
    }

    #[test]
    fn bytes_match_kafkas_serializers() {
        // Values as Java's IntegerSerializer, LongSerializer and DoubleSerializer write them.
        assert_eq!(encode_int(-2), [0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(encode_long(258), [0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(encode_double(1.5), [0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            encode_windowed(b"k", 1000),
            [b'k', 0, 0, 0, 0, 0, 0, 0x03, 0xe8]
        );
        assert_eq!(
            encode_session(b"k", 1, 2),
            [b'k', 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1]
        );
    }

    #[test]
    fn wrong_lengths_are_reported_not_guessed() {
        assert_eq!(
            decode_long(&[1, 2, 3]),
            Err(DecodeError::Length {
                serde: "long",
                expected: 8,
                actual: 3
            })
        );
        assert!(decode_windowed(&[1]).is_err());
        assert_eq!(decode_string(&[b'a', 0xff]), Err(DecodeError::Utf8(1)));
    }

    proptest! {
        #[test]
        fn fixed_width_serdes_round_trip(i in any::<i32>(), l in any::<i64>(), d in any::<f64>()) {
            prop_assert_eq!(decode_int(&encode_int(i)).unwrap(), i);
            prop_assert_eq!(decode_long(&encode_long(l)).unwrap(), l);
            prop_assert_eq!(decode_double(&encode_double(d)).unwrap().to_bits(), d.to_bits());
        }

        #[test]
        fn windowed_keys_round_trip(key in proptest::collection::vec(any::<u8>(), 0..32), s in any::<i64>(), e in any::<i64>()) {
            let windowed = encode_windowed(&key, s);
            prop_assert_eq!(decode_windowed(&windowed).unwrap(), (&key[..], s));
            let session = encode_session(&key, s, e);
            prop_assert_eq!(decode_session(&session).unwrap(), (&key[..], s, e));
        }
    }
}
