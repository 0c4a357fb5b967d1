//! Applicant ids are personal data (ID-card and credit-code numbers): they are
//! replaced at decode time by HMAC-SHA256 under `privacy.applicant_key`, and
//! only the hash travels further.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A keyed hasher for applicant ids; cloning the keyed state per call avoids
/// re-deriving the HMAC pads.
#[derive(Clone)]
pub struct ApplicantHasher {
    keyed: Hmac<Sha256>,
}

impl ApplicantHasher {
    /// Keys the hasher.
    pub fn new(key: &str) -> ApplicantHasher {
        ApplicantHasher {
            keyed: Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length"),
        }
    }

    /// The 32-byte HMAC of the raw UTF-8 value.
    pub fn hash(&self, raw: &str) -> [u8; 32] {
        let mut m = self.keyed.clone();
        m.update(raw.as_bytes());
        m.finalize().into_bytes().into()
    }
}

/// A 32-byte hash in serialized state (checkpoints): lowercase hex, a
/// quarter of the JSON array of numbers serde gives an array by default,
/// and read either way (checkpoints written before it carry arrays).
pub mod hex32 {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    /// Serializes as lowercase hex, or as 32 bytes in a binary format.
    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return s.serialize_bytes(bytes);
        }
        s.serialize_str(super::hex32_in(bytes, &mut [0; 64]))
    }

    /// Reads hex, or an array of 32 numbers, or 32 bytes in a binary format.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = [u8; 32];
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("32 bytes as 64 hex digits or an array")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<[u8; 32], E> {
                super::unhex32(v).ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<[u8; 32], E> {
                v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 32], A::Error> {
                let mut out = [0u8; 32];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = seq.next_element()?.ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(A::Error::invalid_length(33, &self));
                }
                Ok(out)
            }
        }
        if !d.is_human_readable() {
            return d.deserialize_bytes(V);
        }
        d.deserialize_any(V)
    }
}

/// Lowercase hex of a 32-byte hash, written into `buf` (no allocation).
pub fn hex32_in<'b>(bytes: &[u8; 32], buf: &'b mut [u8; 64]) -> &'b str {
    hex::encode_to_slice(bytes, buf).expect("64 digits for 32 bytes");
    std::str::from_utf8(buf).expect("hex is ASCII")
}

/// Lowercase hex of a hash.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// The 32 bytes of a 64-digit hex string (either case), if it is one.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhex32_inverts_hex() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
        assert_eq!(hex32_in(&bytes, &mut [0; 64]), hex(&bytes));
        assert_eq!(unhex32(&hex(&bytes).to_uppercase()), Some(bytes));
        assert_eq!(unhex32("abc"), None);
        assert_eq!(unhex32(&"g".repeat(64)), None);
    }

    #[test]
    fn rfc4231_test_case_2() {
        // HMAC-SHA256 with key "Jefe" over "what do ya want for nothing?" (RFC 4231 §4.3).
        let h = ApplicantHasher::new("Jefe");
        assert_eq!(
            hex(&h.hash("what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct H(#[serde(with = "super::hex32")] [u8; 32]);

    #[test]
    fn a_hash_in_state_is_hex_and_arrays_of_older_checkpoints_still_read() {
        let mut b = [0u8; 32];
        b[0] = 0xab;
        b[31] = 0x07;
        let json = serde_json::to_string(&H(b)).unwrap();
        assert_eq!(json, format!("\"ab{}07\"", "0".repeat(60)));
        assert_eq!(serde_json::from_str::<H>(&json).unwrap(), H(b));
        let old = serde_json::to_string(&b).unwrap();
        assert!(old.starts_with("[171,0,"));
        assert_eq!(serde_json::from_str::<H>(&old).unwrap(), H(b));
        assert!(serde_json::from_str::<H>("\"zz\"").is_err());
        assert!(serde_json::from_str::<H>(&format!("\"{}\"", "g".repeat(64))).is_err());
        assert!(serde_json::from_str::<H>("[1,2]").is_err());
    }
}
