//! The compact (flexible-version) encodings of Kafka's primitive types, which the generated
//! [`crate::messages`] use field by field: `kafka-protocol` has them too, but keeps its encoder
//! traits private.
//!
//! Compact strings and arrays carry their length plus one as an unsigned varint (0 = null);
//! a nullable struct is a signed byte (-1 = null, 1 = present) before its fields.

use anyhow::{Result, bail};
use bytes::{Buf, BufMut};
use kafka_protocol::protocol::buf::{ByteBuf, ByteBufMut};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// A field of a message: encoded, sized and decoded at the message's version.
pub trait Field: Sized {
    /// Writes the field.
    fn put<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()>;
    /// The bytes [`Field::put`] writes.
    fn size(&self, version: i16) -> Result<usize>;
    /// Reads the field.
    fn get<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self>;
}

/// Writes an unsigned varint.
pub fn put_varint<B: BufMut>(buf: &mut B, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// The length of an unsigned varint.
pub fn varint_size(v: u32) -> usize {
    match v {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        0x20_0000..0x1000_0000 => 4,
        _ => 5,
    }
}

/// Reads an unsigned varint.
pub fn get_varint<B: Buf>(buf: &mut B) -> Result<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = buf.try_get_u8()?;
        v |= u32::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    bail!("an unsigned varint longer than 5 bytes")
}

/// Reads past a tagged-field section (none of the generated messages has a tagged field, so any
/// there is one a newer broker added).
pub fn skip_tagged_fields<B: ByteBuf>(buf: &mut B) -> Result<()> {
    let n = get_varint(buf)?;
    for _ in 0..n {
        let _tag = get_varint(buf)?;
        let size = get_varint(buf)?;
        buf.try_get_bytes(size as usize)?;
    }
    Ok(())
}

/// The length prefix of a compact string or array of `len` items (`None`: null).
fn put_len<B: BufMut>(buf: &mut B, len: Option<usize>) -> Result<()> {
    let v = match len {
        None => 0,
        Some(n) => u32::try_from(n + 1).map_err(|_| anyhow::anyhow!("{n} items do not fit"))?,
    };
    put_varint(buf, v);
    Ok(())
}

fn len_size(len: Option<usize>) -> usize {
    varint_size(len.map_or(0, |n| n as u32 + 1))
}

/// Reads a compact length prefix: `None` for null.
fn get_len<B: Buf>(buf: &mut B) -> Result<Option<usize>> {
    Ok(match get_varint(buf)? {
        0 => None,
        n => Some(n as usize - 1),
    })
}

macro_rules! fixed {
    ($($t:ty: $put:ident, $get:ident;)*) => {$(
        impl Field for $t {
            fn put<B: ByteBufMut>(&self, buf: &mut B, _version: i16) -> Result<()> {
                buf.$put(*self);
                Ok(())
            }
            fn size(&self, _version: i16) -> Result<usize> {
                Ok(std::mem::size_of::<$t>())
            }
            fn get<B: ByteBuf>(buf: &mut B, _version: i16) -> Result<Self> {
                Ok(buf.$get()?)
            }
        }
    )*};
}

fixed! {
    i8: put_i8, try_get_i8;
    i16: put_i16, try_get_i16;
    u16: put_u16, try_get_u16;
    i32: put_i32, try_get_i32;
    i64: put_i64, try_get_i64;
}

impl Field for bool {
    fn put<B: ByteBufMut>(&self, buf: &mut B, _version: i16) -> Result<()> {
        buf.put_u8(u8::from(*self));
        Ok(())
    }
    fn size(&self, _version: i16) -> Result<usize> {
        Ok(1)
    }
    fn get<B: ByteBuf>(buf: &mut B, _version: i16) -> Result<Self> {
        Ok(buf.try_get_u8()? != 0)
    }
}

impl Field for Option<StrBytes> {
    fn put<B: ByteBufMut>(&self, buf: &mut B, _version: i16) -> Result<()> {
        put_len(buf, self.as_ref().map(|s| s.len()))?;
        if let Some(s) = self {
            buf.put_slice(s.as_bytes());
        }
        Ok(())
    }
    fn size(&self, _version: i16) -> Result<usize> {
        let len = self.as_ref().map(|s| s.len());
        Ok(len_size(len) + len.unwrap_or(0))
    }
    fn get<B: ByteBuf>(buf: &mut B, _version: i16) -> Result<Self> {
        match get_len(buf)? {
            None => Ok(None),
            Some(n) => Ok(Some(StrBytes::from_utf8(buf.try_get_bytes(n)?)?)),
        }
    }
}

impl Field for StrBytes {
    fn put<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        put_len(buf, Some(self.len()))?;
        buf.put_slice(self.as_bytes());
        let _ = version;
        Ok(())
    }
    fn size(&self, _version: i16) -> Result<usize> {
        Ok(len_size(Some(self.len())) + self.len())
    }
    fn get<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {
        match Option::<StrBytes>::get(buf, version)? {
            Some(s) => Ok(s),
            None => bail!("a null string where the schema allows none"),
        }
    }
}

impl<T: Field> Field for Vec<T> {
    fn put<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        put_len(buf, Some(self.len()))?;
        for item in self {
            item.put(buf, version)?;
        }
        Ok(())
    }
    fn size(&self, version: i16) -> Result<usize> {
        let mut size = len_size(Some(self.len()));
        for item in self {
            size += item.size(version)?;
        }
        Ok(size)
    }
    fn get<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {
        match Option::<Vec<T>>::get(buf, version)? {
            Some(v) => Ok(v),
            None => bail!("a null array where the schema allows none"),
        }
    }
}

impl<T: Field> Field for Option<Vec<T>> {
    fn put<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> Result<()> {
        match self {
            None => put_len(buf, None),
            Some(v) => v.put(buf, version),
        }
    }
    fn size(&self, version: i16) -> Result<usize> {
        match self {
            None => Ok(len_size(None)),
            Some(v) => v.size(version),
        }
    }
    fn get<B: ByteBuf>(buf: &mut B, version: i16) -> Result<Self> {
        let Some(n) = get_len(buf)? else {
            return Ok(None);
        };
        // Each item takes a byte at least: a length beyond the buffer is a broken message, not
        // an allocation to make.
        if n > buf.remaining() {
            bail!("an array of {n} items in {} bytes", buf.remaining());
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::get(buf, version)?);
        }
        Ok(Some(v))
    }
}

/// Writes a nullable struct.
pub fn put_option<T: Encodable, B: ByteBufMut>(
    value: &Option<T>,
    buf: &mut B,
    version: i16,
) -> Result<()> {
    match value {
        None => buf.put_i8(-1),
        Some(v) => {
            buf.put_i8(1);
            v.encode(buf, version)?;
        }
    }
    Ok(())
}

/// The size of a nullable struct.
pub fn option_size<T: Encodable>(value: &Option<T>, version: i16) -> Result<usize> {
    Ok(1 + match value {
        None => 0,
        Some(v) => v.compute_size(version)?,
    })
}

/// Reads a nullable struct.
pub fn get_option<T: Decodable, B: ByteBuf>(buf: &mut B, version: i16) -> Result<Option<T>> {
    if buf.try_get_i8()? < 0 {
        return Ok(None);
    }
    Ok(Some(T::decode(buf, version)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_their_boundaries() {
        for v in [
            0u32,
            1,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            u32::MAX,
        ] {
            let mut buf = bytes::BytesMut::new();
            put_varint(&mut buf, v);
            assert_eq!(buf.len(), varint_size(v), "size of {v}");
            assert_eq!(get_varint(&mut buf.freeze()).unwrap(), v);
        }
    }

    #[test]
    fn null_and_empty_differ() {
        let mut buf = bytes::BytesMut::new();
        Option::<Vec<i32>>::None.put(&mut buf, 0).unwrap();
        Some(Vec::<i32>::new()).put(&mut buf, 0).unwrap();
        assert_eq!(&buf[..], &[0, 1]);
        let mut b = buf.freeze();
        assert_eq!(Option::<Vec<i32>>::get(&mut b, 0).unwrap(), None);
        assert_eq!(Option::<Vec<i32>>::get(&mut b, 0).unwrap(), Some(vec![]));
    }
}
