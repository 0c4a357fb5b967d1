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

#[cfg(test)]
mod tests {
    use super::*;

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
