//! The binary encoding of engine snapshots: a small serde format, compact
//! and quick to write and read, that still names every struct field so a
//! field added later (with a serde default) reads from an older snapshot.
//!
//! - integers: LEB128 varints, signed ones zigzag-encoded; `u8`, `i8` and
//!   `bool` one byte; floats their little-endian bytes;
//! - strings and byte strings: a varint length, then the bytes;
//! - `Option`: a byte 0 or 1, then the value;
//! - sequences and maps: a varint length, then the elements;
//! - tuples and arrays: the elements;
//! - structs: the number of fields written, then each as (name, value); a
//!   name is a varint: 0 for a name not seen before in the document,
//!   followed by its length and bytes, or 1 + its index among the names
//!   seen so far;
//! - enums: a varint variant index, then the variant's content.
//!
//! The format is not self-describing beyond field names: a reader must know
//! the types, and a field it does not know is an error, not skipped.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};
use std::collections::HashMap;
use std::io::Write;

/// Why a binary snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Ran out of bytes.
    #[error("unexpected end of the snapshot")]
    Eof,
    /// A value that does not fit its type.
    #[error("{0}")]
    Invalid(String),
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Error {
        Error::Invalid(msg.to_string())
    }
}

impl de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Error {
        Error::Invalid(msg.to_string())
    }
}

/// Encodes a value into `out` (best a buffered writer: the encoder writes
/// a few bytes at a time).
pub fn to_writer<T: Serialize + ?Sized, W: Write>(out: W, v: &T) -> Result<(), Error> {
    v.serialize(&mut Encoder { out, names: HashMap::default() })
}

/// Decodes a value that fills `bytes` exactly.
pub fn from_slice<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Error> {
    let mut d = Decoder { input: bytes, names: Vec::new() };
    let v = T::deserialize(&mut d)?;
    if !d.input.is_empty() {
        return Err(Error::Invalid(format!("{} bytes after the end", d.input.len())));
    }
    Ok(v)
}

struct Encoder<W> {
    out: W,
    /// Field names written so far, by the address and length of their
    /// literal (a derive passes the same literal every time: no hashing
    /// of the text).
    names: HashMap<(usize, usize), u64, foldhash::fast::RandomState>,
}

impl<W: Write> Encoder<W> {
    fn raw(&mut self, b: &[u8]) -> R {
        Ok(self.out.write_all(b)?)
    }
    fn varint(&mut self, mut v: u64) -> R {
        let mut buf = [0u8; 10];
        let mut n = 0;
        while v >= 0x80 {
            buf[n] = v as u8 | 0x80;
            v >>= 7;
            n += 1;
        }
        buf[n] = v as u8;
        self.raw(&buf[..=n])
    }
    fn signed(&mut self, v: i64) -> R {
        self.varint(((v << 1) ^ (v >> 63)) as u64)
    }
    fn bytes(&mut self, b: &[u8]) -> R {
        self.varint(b.len() as u64)?;
        self.raw(b)
    }
    fn name(&mut self, name: &'static str) -> R {
        let key = (name.as_ptr() as usize, name.len());
        match self.names.get(&key) {
            Some(&i) => self.varint(i + 1),
            None => {
                let i = self.names.len() as u64;
                self.names.insert(key, i);
                self.varint(0)?;
                self.bytes(name.as_bytes())
            }
        }
    }
}

type R = Result<(), Error>;

impl<W: Write> ser::Serializer for &mut Encoder<W> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }
    fn serialize_bool(self, v: bool) -> R {
        self.raw(&[v as u8])
    }
    fn serialize_i8(self, v: i8) -> R {
        self.raw(&[v as u8])
    }
    fn serialize_i16(self, v: i16) -> R {
        self.signed(v as i64)
    }
    fn serialize_i32(self, v: i32) -> R {
        self.signed(v as i64)
    }
    fn serialize_i64(self, v: i64) -> R {
        self.signed(v)
    }
    fn serialize_u8(self, v: u8) -> R {
        self.raw(&[v])
    }
    fn serialize_u16(self, v: u16) -> R {
        self.varint(v as u64)
    }
    fn serialize_u32(self, v: u32) -> R {
        self.varint(v as u64)
    }
    fn serialize_u64(self, v: u64) -> R {
        self.varint(v)
    }
    fn serialize_f32(self, v: f32) -> R {
        self.raw(&v.to_le_bytes())
    }
    fn serialize_f64(self, v: f64) -> R {
        self.raw(&v.to_le_bytes())
    }
    fn serialize_char(self, v: char) -> R {
        self.varint(v as u64)
    }
    fn serialize_str(self, v: &str) -> R {
        self.bytes(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        self.bytes(v)
    }
    fn serialize_none(self) -> R {
        self.raw(&[0])
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
        self.raw(&[1])?;
        v.serialize(self)
    }
    fn serialize_unit(self) -> R {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> R {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, i: u32, _: &'static str) -> R {
        self.varint(i as u64)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> R {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, i: u32, _: &'static str, v: &T) -> R {
        self.varint(i as u64)?;
        v.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Error> {
        let len = len.ok_or_else(|| Error::Invalid("a sequence of unknown length".into()))?;
        self.varint(len as u64)?;
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_tuple_variant(self, _: &'static str, i: u32, _: &'static str, _: usize) -> Result<Self, Error> {
        self.varint(i as u64)?;
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self, Error> {
        let len = len.ok_or_else(|| Error::Invalid("a map of unknown length".into()))?;
        self.varint(len as u64)?;
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Self, Error> {
        self.varint(len as u64)?;
        Ok(self)
    }
    fn serialize_struct_variant(self, _: &'static str, i: u32, _: &'static str, len: usize) -> Result<Self, Error> {
        self.varint(i as u64)?;
        self.varint(len as u64)?;
        Ok(self)
    }
}

/// The compound serializers whose elements are just written in turn.
macro_rules! elements {
    ($($trait:ident :: $method:ident),*) => {$(
        impl<W: Write> ser::$trait for &mut Encoder<W> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
                v.serialize(&mut **self)
            }
            fn end(self) -> R {
                Ok(())
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// The struct serializers: each field named, then written.
macro_rules! fields {
    ($($trait:ident),*) => {$(
        impl<W: Write> ser::$trait for &mut Encoder<W> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, name: &'static str, v: &T) -> R {
                self.name(name)?;
                v.serialize(&mut **self)
            }
            fn end(self) -> R {
                Ok(())
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

impl<W: Write> ser::SerializeMap for &mut Encoder<W> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> R {
        k.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> R {
        v.serialize(&mut **self)
    }
    fn end(self) -> R {
        Ok(())
    }
}

struct Decoder<'de> {
    input: &'de [u8],
    names: Vec<&'de str>,
}

impl<'de> Decoder<'de> {
    fn byte(&mut self) -> Result<u8, Error> {
        let (&b, rest) = self.input.split_first().ok_or(Error::Eof)?;
        self.input = rest;
        Ok(b)
    }
    fn varint(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Error::Invalid("a varint longer than 64 bits".into()))
    }
    fn signed(&mut self) -> Result<i64, Error> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }
    fn take(&mut self, n: usize) -> Result<&'de [u8], Error> {
        if self.input.len() < n {
            return Err(Error::Eof);
        }
        let (a, b) = self.input.split_at(n);
        self.input = b;
        Ok(a)
    }
    fn len(&mut self) -> Result<usize, Error> {
        let n = self.varint()?;
        // Every element takes at least a byte, except units: a length
        // beyond the input is corrupt, and must not be allocated for.
        usize::try_from(n).ok().filter(|&n| n <= self.input.len()).ok_or_else(|| Error::Invalid(format!("length {n}")))
    }
    fn bytes(&mut self) -> Result<&'de [u8], Error> {
        let n = self.len()?;
        self.take(n)
    }
    fn str(&mut self) -> Result<&'de str, Error> {
        std::str::from_utf8(self.bytes()?).map_err(|e| Error::Invalid(e.to_string()))
    }
    fn int<T: TryFrom<i64>>(&mut self) -> Result<T, Error> {
        let v = self.signed()?;
        T::try_from(v).map_err(|_| Error::Invalid(format!("{v} out of range")))
    }
    fn uint<T: TryFrom<u64>>(&mut self) -> Result<T, Error> {
        let v = self.varint()?;
        T::try_from(v).map_err(|_| Error::Invalid(format!("{v} out of range")))
    }
    fn name(&mut self) -> Result<&'de str, Error> {
        match self.varint()? {
            0 => {
                let s = self.str()?;
                self.names.push(s);
                Ok(s)
            }
            i => self.names.get(i as usize - 1).copied().ok_or_else(|| Error::Invalid(format!("field name #{i}"))),
        }
    }
}

type D<T> = Result<T, Error>;

impl<'de> de::Deserializer<'de> for &mut Decoder<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> D<V::Value> {
        Err(Error::Invalid("the binary snapshot format needs the type to read".into()))
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        match self.byte()? {
            0 => v.visit_bool(false),
            1 => v.visit_bool(true),
            b => Err(Error::Invalid(format!("bool {b}"))),
        }
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_i8(self.byte()? as i8)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_i16(self.int()?)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_i32(self.int()?)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_i64(self.signed()?)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_u8(self.byte()?)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_u16(self.uint()?)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_u32(self.uint()?)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_u64(self.varint()?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        let b = self.take(4)?;
        v.visit_f32(f32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        let b = self.take(8)?;
        v.visit_f64(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        let c: u32 = self.uint()?;
        v.visit_char(char::from_u32(c).ok_or_else(|| Error::Invalid(format!("char {c}")))?)
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_borrowed_str(self.str()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        self.deserialize_str(v)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_borrowed_bytes(self.bytes()?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        self.deserialize_bytes(v)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        match self.byte()? {
            0 => v.visit_none(),
            1 => v.visit_some(self),
            b => Err(Error::Invalid(format!("option tag {b}"))),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> D<V::Value> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, v: V) -> D<V::Value> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        let n = self.len()?;
        v.visit_seq(Counted { d: self, left: n })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, n: usize, v: V) -> D<V::Value> {
        v.visit_seq(Counted { d: self, left: n })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, n: usize, v: V) -> D<V::Value> {
        v.visit_seq(Counted { d: self, left: n })
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        let n = self.len()?;
        v.visit_map(Counted { d: self, left: n })
    }
    fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, _: &'static [&'static str], v: V) -> D<V::Value> {
        let n = self.len()?;
        v.visit_map(Fields { d: self, left: n })
    }
    fn deserialize_enum<V: Visitor<'de>>(self, _: &'static str, _: &'static [&'static str], v: V) -> D<V::Value> {
        v.visit_enum(self)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> D<V::Value> {
        v.visit_borrowed_str(self.name()?)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> D<V::Value> {
        Err(Error::Invalid("a field this version does not know".into()))
    }
}

/// Elements of a sequence, tuple or map of known length.
struct Counted<'a, 'de> {
    d: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Counted<'_, 'de> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> D<Option<T::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.d).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> de::MapAccess<'de> for Counted<'_, 'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> D<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.d).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> D<V::Value> {
        seed.deserialize(&mut *self.d)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The fields of a struct: (name, value) pairs.
struct Fields<'a, 'de> {
    d: &'a mut Decoder<'de>,
    left: usize,
}

impl<'de> de::MapAccess<'de> for Fields<'_, 'de> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> D<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let name = self.d.name()?;
        seed.deserialize(de::value::BorrowedStrDeserializer::new(name)).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> D<V::Value> {
        seed.deserialize(&mut *self.d)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Decoder<'de> {
    type Error = Error;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> D<(V::Value, Self)> {
        let i: u32 = self.uint()?;
        let v = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(i))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Decoder<'de> {
    type Error = Error;
    fn unit_variant(self) -> D<()> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> D<T::Value> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, n: usize, v: V) -> D<V::Value> {
        v.visit_seq(Counted { d: self, left: n })
    }
    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], v: V) -> D<V::Value> {
        let n = self.len()?;
        v.visit_map(Fields { d: self, left: n })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Kind {
        A,
        B(u32),
        C { x: i64 },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Old {
        a: i64,
        name: Arc<str>,
        kinds: Vec<Kind>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct New {
        a: i64,
        name: Arc<str>,
        kinds: Vec<Kind>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        added: Option<u8>,
        #[serde(default)]
        map: BTreeMap<String, (u64, f64)>,
    }

    #[test]
    fn values_round_trip_and_a_field_added_later_reads_from_older_bytes() {
        let mut map = BTreeMap::new();
        map.insert("k".to_string(), (u64::MAX, -1.5));
        let v = New {
            a: i64::MIN,
            name: Arc::from("案件"),
            kinds: vec![Kind::A, Kind::B(7), Kind::C { x: -3 }],
            added: None,
            map,
        };
        let mut b = Vec::new();
        to_writer(&mut b, &v).unwrap();
        assert_eq!(from_slice::<New>(&b).unwrap(), v);

        let old = Old { a: 5, name: Arc::from("x"), kinds: vec![Kind::B(1)] };
        let mut b = Vec::new();
        to_writer(&mut b, &old).unwrap();
        let new: New = from_slice(&b).unwrap();
        assert_eq!((new.a, new.added, new.map.len()), (5, None, 0));
    }

    #[test]
    fn corrupt_bytes_are_an_error_not_a_panic() {
        let v =
            New { a: 1, name: Arc::from("abc"), kinds: vec![Kind::C { x: 9 }], added: Some(2), map: BTreeMap::new() };
        let mut b = Vec::new();
        to_writer(&mut b, &v).unwrap();
        for cut in 0..b.len() {
            assert!(from_slice::<New>(&b[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..b.len() {
            for x in [0u8, 0x7f, 0x80, 0xff] {
                let mut c = b.clone();
                c[i] = x;
                let _ = from_slice::<New>(&c);
            }
        }
        let mut long = b.clone();
        long.push(0);
        assert!(from_slice::<New>(&long).is_err());
    }
}
