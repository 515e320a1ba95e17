//! Typed serdes for the Rust DSL: each turns a Rust type into Kafka's bytes for it and back.

use std::sync::Arc;

use super::{decode_double, decode_int, decode_long, decode_string};

/// Converts one Rust type to and from Kafka record bytes; a null (`None`) is a Kafka null.
pub trait Serde<T>: Send + Sync {
    /// The serde's manifest name (`string`, `long`, ...), for descriptions and errors.
    fn name(&self) -> String;
    /// The bytes Kafka's serializer for the type would write; `None` writes a Kafka null.
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, String>;
    /// Reads the bytes back; `None` is a Kafka null, which only nullable types (`Option<_>`, `()`)
    /// accept.
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, String>;
}

/// Types with an obvious serde, so `builder.stream::<String, i64>(topic)` needs no `Consumed`.
pub trait DefaultSerde: Sized + 'static {
    /// The type's serde, as Kafka Streams' `Serdes.String()`, `Serdes.Long()`...
    fn default_serde() -> Arc<dyn Serde<Self>>;
}

fn null(what: &str) -> String {
    format!(
        "{what} serde cannot read a null: declare the type as Option<_> (or () for keys that are always null)"
    )
}

macro_rules! fixed_serde {
    ($serde:ident, $ty:ty, $name:literal, $decode:expr, $encode:expr) => {
        #[doc = concat!("Kafka's `", $name, "` serde.")]
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $serde;

        impl Serde<$ty> for $serde {
            fn name(&self) -> String {
                $name.to_owned()
            }
            fn serialize(&self, value: &$ty) -> Result<Option<Vec<u8>>, String> {
                Ok(Some(($encode)(value)))
            }
            fn deserialize(&self, bytes: Option<&[u8]>) -> Result<$ty, String> {
                let bytes = bytes.ok_or_else(|| null($name))?;
                ($decode)(bytes).map_err(|e| e.to_string())
            }
        }

        impl DefaultSerde for $ty {
            fn default_serde() -> Arc<dyn Serde<Self>> {
                Arc::new($serde)
            }
        }
    };
}

fixed_serde!(
    StringSerde,
    String,
    "string",
    |b| decode_string(b).map(str::to_owned),
    |v: &String| v.as_bytes().to_vec()
);
fixed_serde!(IntSerde, i32, "int", decode_int, |v: &i32| v
    .to_be_bytes()
    .to_vec());
fixed_serde!(LongSerde, i64, "long", decode_long, |v: &i64| v
    .to_be_bytes()
    .to_vec());
fixed_serde!(DoubleSerde, f64, "double", decode_double, |v: &f64| v
    .to_bits()
    .to_be_bytes()
    .to_vec());
fixed_serde!(
    BytesSerde,
    Vec<u8>,
    "bytes",
    |b: &[u8]| Ok::<_, std::convert::Infallible>(b.to_vec()),
    |v: &Vec<u8>| v.clone()
);

/// JSON documents as `serde_json::Value`, written canonically (sorted keys, no whitespace).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonSerde;

impl Serde<serde_json::Value> for JsonSerde {
    fn name(&self) -> String {
        "json".to_owned()
    }
    fn serialize(&self, value: &serde_json::Value) -> Result<Option<Vec<u8>>, String> {
        // serde_json's Map is a BTreeMap without the preserve_order feature: keys come out sorted.
        serde_json::to_vec(value)
            .map(Some)
            .map_err(|e| e.to_string())
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<serde_json::Value, String> {
        match bytes {
            None => Ok(serde_json::Value::Null),
            Some(b) => serde_json::from_slice(b).map_err(|e| format!("invalid JSON: {e}")),
        }
    }
}

impl DefaultSerde for serde_json::Value {
    fn default_serde() -> Arc<dyn Serde<Self>> {
        Arc::new(JsonSerde)
    }
}

/// Kafka's `Serdes.Void()`: always null, for streams without keys.
#[derive(Clone, Copy, Debug, Default)]
pub struct VoidSerde;

impl Serde<()> for VoidSerde {
    fn name(&self) -> String {
        "void".to_owned()
    }
    fn serialize(&self, _: &()) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<(), String> {
        match bytes {
            None => Ok(()),
            Some(b) => Err(format!("void serde expects a null, got {} bytes", b.len())),
        }
    }
}

impl DefaultSerde for () {
    fn default_serde() -> Arc<dyn Serde<Self>> {
        Arc::new(VoidSerde)
    }
}

/// `Option<T>`: a Kafka null is `None`, anything else goes through the inner serde.
pub struct Nullable<T>(pub Arc<dyn Serde<T>>);

impl<T> Serde<Option<T>> for Nullable<T> {
    fn name(&self) -> String {
        self.0.name()
    }
    fn serialize(&self, value: &Option<T>) -> Result<Option<Vec<u8>>, String> {
        match value {
            None => Ok(None),
            Some(v) => self.0.serialize(v),
        }
    }
    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Option<T>, String> {
        bytes.map(|b| self.0.deserialize(Some(b))).transpose()
    }
}

impl<T: DefaultSerde + Send + Sync> DefaultSerde for Option<T> {
    fn default_serde() -> Arc<dyn Serde<Self>> {
        Arc::new(Nullable(T::default_serde()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_serdes_write_kafkas_bytes_and_read_them_back() {
        let s = String::default_serde();
        assert_eq!(
            s.serialize(&"é".to_owned()).unwrap(),
            Some("é".as_bytes().to_vec())
        );
        assert_eq!(
            i64::default_serde().serialize(&1).unwrap(),
            Some(vec![0, 0, 0, 0, 0, 0, 0, 1])
        );
        assert_eq!(
            i32::default_serde()
                .deserialize(Some(&[0, 0, 1, 0]))
                .unwrap(),
            256
        );
        let json = serde_json::json!({"b": 1, "a": [true, null]});
        assert_eq!(
            JsonSerde.serialize(&json).unwrap().unwrap(),
            br#"{"a":[true,null],"b":1}"#.to_vec()
        );
        assert_eq!(
            Option::<String>::default_serde().deserialize(None).unwrap(),
            None
        );
        assert!(s.deserialize(None).unwrap_err().contains("Option<_>"));
        assert!(VoidSerde.deserialize(Some(b"x")).is_err());
    }
}
