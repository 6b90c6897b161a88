//! API keys are kept in the inventory only as `sha256:<64 hex digits>`.
//!
//! Keys are long random strings (see `failover-notify keys new`), so a plain SHA-256 is
//! enough: there is nothing to brute-force that a slow hash would protect.

use std::fmt;

use sha2::{Digest, Sha256};

/// The SHA-256 of an API key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

/// A `hash = "..."` value that is not `sha256:` followed by 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "key hash must be `sha256:` followed by 64 hexadecimal digits (run `failover-notify keys new`)"
)]
pub struct KeyHashError;

impl KeyHash {
    /// The hash of `key`.
    pub fn of(key: &str) -> KeyHash {
        KeyHash(Sha256::digest(key.as_bytes()).into())
    }

    /// Parses `sha256:<hex>`.
    ///
    /// # Errors
    /// [`KeyHashError`] when the prefix, length or digits are wrong.
    pub fn parse(s: &str) -> Result<KeyHash, KeyHashError> {
        let hex = s.strip_prefix("sha256:").ok_or(KeyHashError)?;
        if hex.len() != 64 {
            return Err(KeyHashError);
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let digit = |b: u8| (b as char).to_digit(16).ok_or(KeyHashError);
            out[i] =
                u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).map_err(|_| KeyHashError)?;
        }
        Ok(KeyHash(out))
    }

    /// Whether `key` hashes to this value, compared in constant time.
    pub fn matches(&self, key: &str) -> bool {
        self.same(&KeyHash::of(key))
    }

    /// Whether two hashes are equal, compared in constant time (hash the presented key once,
    /// then compare it with every configured hash).
    pub fn same(&self, other: &KeyHash) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

// Never print a key's hash by accident in a `{:?}` of the inventory.
impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_match() {
        let h = KeyHash::of("secret");
        let parsed = KeyHash::parse(&h.to_string()).expect("own output parses");
        assert_eq!(parsed, h);
        assert!(parsed.matches("secret"));
        assert!(!parsed.matches("secreT"));
        assert_eq!(
            h.to_string(),
            "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "sha256:",
            "md5:00",
            "sha256:zz",
            &format!("sha256:{}", "g".repeat(64)),
        ] {
            assert_eq!(KeyHash::parse(bad), Err(KeyHashError), "{bad}");
        }
    }
}
