//! API key secrets: shown once at minting, stored only as a SHA-256 hash.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ids::random_base62;

/// The secret of an API key (`sk_…`). Its `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

/// The stored form of an API key: hex SHA-256 of the secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyHash(String);

impl ApiKeySecret {
    /// The prefix of every secret.
    pub const PREFIX: &'static str = "sk_";

    /// Mints a fresh random secret (190 bits).
    pub fn generate() -> Self {
        Self(format!("{}{}", Self::PREFIX, random_base62(32)))
    }

    /// Parses a bearer credential; `None` unless it has our shape.
    pub fn parse(raw: &str) -> Option<Self> {
        let rest = raw.strip_prefix(Self::PREFIX)?;
        let ok = !rest.is_empty()
            && rest.len() <= 128
            && rest.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| Self(raw.to_owned()))
    }

    /// The secret, to show once at minting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash under which the key is stored and looked up.
    pub fn hash(&self) -> KeyHash {
        KeyHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecret(sk_…)")
    }
}

impl KeyHash {
    /// Wraps a stored hash read back from a repository.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The operator token guarding `/admin/v1`. Compared in constant time.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// Wraps the configured token; `None` when empty.
    pub fn new(token: String) -> Option<Self> {
        (!token.is_empty()).then_some(Self(token))
    }

    /// Whether `presented` is the token, without leaking where they differ through timing.
    pub fn matches(&self, presented: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(presented.as_bytes());
        a.as_slice().ct_eq(b.as_slice()).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_is_stable_and_hides_the_secret() {
        let s = ApiKeySecret::generate();
        assert_eq!(
            s.hash(),
            ApiKeySecret::parse(s.expose())
                .map(|p| p.hash())
                .unwrap_or_else(|| KeyHash::from_stored(String::new()))
        );
        assert!(!s.hash().as_str().contains(s.expose()));
        assert!(!format!("{s:?}").contains(&s.expose()[3..]));
    }

    #[test]
    fn malformed_bearer_secrets_do_not_parse() {
        assert!(ApiKeySecret::parse("pk_abc").is_none());
        assert!(ApiKeySecret::parse("sk_").is_none());
        assert!(ApiKeySecret::parse("sk_a b").is_none());
    }

    #[test]
    fn admin_token_matches_only_itself() {
        let t = AdminToken::new("secret".into()).expect("non-empty");
        assert!(t.matches("secret"));
        assert!(!t.matches("secreT"));
        assert!(!t.matches(""));
        assert!(AdminToken::new(String::new()).is_none());
    }
}
