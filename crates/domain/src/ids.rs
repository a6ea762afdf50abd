//! Typed identifiers: opaque, URL-safe, unguessable strings with a type prefix.

use std::fmt;

use rand::Rng;

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// 22 base62 characters carry 130 bits of randomness.
const RANDOM_LEN: usize = 22;

/// Random base62 text of `len` characters from the OS-seeded thread RNG.
pub fn random_base62(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this type starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_base62(RANDOM_LEN)))
            }

            /// Parses an id received from outside; `None` when it is not one of ours.
            pub fn parse(raw: &str) -> Option<Self> {
                let rest = raw.strip_prefix($prefix)?;
                let ok = !rest.is_empty()
                    && rest.len() <= 64
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric());
                ok.then(|| Self(raw.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

typed_id!(/// An account: the tenant every resource belongs to.
    AccountId, "acc_");
typed_id!(/// A project, grouping assets.
    ProjectId, "prj_");
typed_id!(/// An asset: one piece of source media.
    AssetId, "ast_");
typed_id!(/// An API key (its id, never its secret).
    ApiKeyId, "key_");
typed_id!(/// A credit ledger entry.
    LedgerEntryId, "led_");
typed_id!(/// A TUS upload session.
    UploadId, "upl_");
typed_id!(/// A webhook endpoint.
    WebhookId, "whk_");
typed_id!(/// A webhook event: the same in every delivery of it.
    EventId, "evt_");
typed_id!(/// One event's delivery to one webhook endpoint.
    DeliveryId, "dlv_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_parse_back() {
        let id = AssetId::generate();
        assert!(id.as_str().starts_with("ast_"));
        assert_eq!(id.as_str().len(), 4 + RANDOM_LEN);
        assert_eq!(AssetId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn foreign_or_malformed_ids_do_not_parse() {
        assert_eq!(AssetId::parse("prj_abc"), None);
        assert_eq!(AssetId::parse("ast_"), None);
        assert_eq!(AssetId::parse("ast_a/b"), None);
        assert_eq!(AssetId::parse(&format!("ast_{}", "a".repeat(65))), None);
    }

    #[test]
    fn two_generated_ids_differ() {
        assert_ne!(UploadId::generate(), UploadId::generate());
    }
}
