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

/// Lowercase hex of a hash.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// The 32 bytes of a 64-digit hex string (either case), if it is one.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhex32_inverts_hex() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37) as u8);
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
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
}
