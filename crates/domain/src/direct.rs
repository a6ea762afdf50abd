//! Direct uploads: an asset created with `direct_upload` gets an upload URL that carries a
//! signed token (`?token=…`), so a browser can upload with that URL alone, without the
//! account's API key (as Mux direct uploads and Cloudflare Stream direct creator uploads do).
//!
//! The token is `<origin>.<mac>`: the CORS origin the upload is bound to (base64url, empty when
//! none) and the HMAC-SHA256, keyed by the service's signing key, of the upload id and that
//! origin. It is bound to its one upload, cannot be forged without the key, names its own CORS
//! origin (so a preflight needs no lookup), and lives as long as the upload does: every
//! process holding the same key verifies it.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

use crate::ids::UploadId;

/// Why a CORS origin was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("cors_origin must be an origin: http or https, a host and an optional port, without a path (e.g. https://app.example.com)")]
pub struct OriginError;

/// A web origin (RFC 6454 serialisation): `scheme://host[:port]`, lowercase, no path.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    /// Parses an origin a client gave (one trailing `/` is tolerated).
    ///
    /// # Errors
    /// [`OriginError`] unless it is `http(s)://host[:port]`.
    pub fn parse(raw: &str) -> Result<Self, OriginError> {
        let raw = raw.strip_suffix('/').unwrap_or(raw).to_ascii_lowercase();
        let rest = raw
            .strip_prefix("https://")
            .or_else(|| raw.strip_prefix("http://"))
            .ok_or(OriginError)?;
        let (host, port) = if rest.starts_with('[') {
            let end = rest.find(']').ok_or(OriginError)?;
            let (host, after) = rest.split_at(end + 1);
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or(OriginError)?)),
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        // A name or IPv4 address of letters, digits, `.` and `-`; or an IPv6 address in brackets.
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
                Some(v6) => {
                    !v6.is_empty()
                        && v6
                            .bytes()
                            .all(|b| b.is_ascii_hexdigit() || b":.".contains(&b))
                }
                None => host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)),
            };
        let port_ok =
            port.is_none_or(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok());
        (host_ok && port_ok)
            .then_some(Self(raw.clone()))
            .ok_or(OriginError)
    }

    /// The origin, as browsers send it in `Origin`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What makes an asset's upload direct: its URL carries a token, and optionally only one web
/// origin gets CORS answers for it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DirectUpload {
    /// The only origin allowed to use the URL from a browser; `None`: the service's CORS
    /// settings apply.
    pub cors_origin: Option<Origin>,
}

/// Mints and checks upload tokens with the service's signing key.
#[derive(Clone)]
pub struct UploadTokens {
    key: Vec<u8>,
}

impl fmt::Debug for UploadTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UploadTokens(…)")
    }
}

impl UploadTokens {
    /// Tokens keyed by `key` (the signing key, ≥ 32 bytes by configuration).
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self, upload: &UploadId, origin: &str) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(b"roughy-direct-upload\n");
        mac.update(upload.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(origin.as_bytes());
        mac
    }

    /// The token of `upload`'s URL.
    pub fn mint(&self, upload: &UploadId, direct: &DirectUpload) -> String {
        let origin = direct.cors_origin.as_ref().map_or("", Origin::as_str);
        let mac = self.mac(upload, origin).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(origin),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// What `token` grants for `upload`: `None` unless it was minted for that upload with
    /// this key (constant-time comparison).
    pub fn verify(&self, upload: &UploadId, token: &str) -> Option<DirectUpload> {
        let (origin, mac) = token.split_once('.')?;
        let origin = String::from_utf8(URL_SAFE_NO_PAD.decode(origin).ok()?).ok()?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        self.mac(upload, &origin).verify_slice(&mac).ok()?;
        let cors_origin = if origin.is_empty() {
            None
        } else {
            Some(Origin::parse(&origin).ok()?)
        };
        Some(DirectUpload { cors_origin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        for (raw, parsed) in [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://App.Example.com/", "https://app.example.com"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
            ("http://[::1]:8081", "http://[::1]:8081"),
        ] {
            assert_eq!(
                Origin::parse(raw).map(|o| o.0),
                Ok(parsed.to_owned()),
                "{raw}"
            );
        }
        for bad in [
            "",
            "app.example.com",
            "ftp://app.example.com",
            "https://",
            "https://app.example.com/path",
            "https://app.example.com:99999",
            "https://app.example.com:",
            "https://user@app.example.com",
            "https://app.example.com?x",
            "*",
            "null",
            "https://a]b",
            "https://[]",
            "https://[zz::1]",
            "https://a_b.example",
        ] {
            assert_eq!(Origin::parse(bad), Err(OriginError), "{bad:?}");
        }
    }

    #[test]
    fn a_token_opens_its_own_upload_only_and_names_its_origin() {
        let tokens = UploadTokens::new(vec![7; 32]);
        let upload = UploadId::generate();
        let bound = DirectUpload {
            cors_origin: Some(
                Origin::parse("https://app.example.com").unwrap_or_else(|_| unreachable!()),
            ),
        };
        let token = tokens.mint(&upload, &bound);
        assert_eq!(tokens.verify(&upload, &token), Some(bound.clone()));
        let open = tokens.mint(&upload, &DirectUpload::default());
        assert_eq!(tokens.verify(&upload, &open), Some(DirectUpload::default()));
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));

        assert_eq!(
            tokens.verify(&UploadId::generate(), &token),
            None,
            "another upload"
        );
        assert_eq!(
            UploadTokens::new(vec![8; 32]).verify(&upload, &token),
            None,
            "another key"
        );
        // Another origin with the same MAC, a flipped character, garbage.
        let (_, mac) = token.split_once('.').unwrap_or_else(|| unreachable!());
        let moved = format!("{}.{mac}", URL_SAFE_NO_PAD.encode("https://evil.example"));
        assert_eq!(tokens.verify(&upload, &moved), None);
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap_or_else(|_| unreachable!());
        assert_eq!(tokens.verify(&upload, &flipped), None);
        for junk in ["", ".", "abc", "a.b.c", "%%%.%%%"] {
            assert_eq!(tokens.verify(&upload, junk), None, "{junk:?}");
        }
    }
}
