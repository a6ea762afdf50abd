//! Signed download links served by this service (`GET /v1/downloads/{asset_id}`).
//!
//! The signature is HMAC-SHA256 over `"{asset_id}\n{extension}\n{expires_unix}"`, so neither
//! the asset, its format (which gives the `Content-Type`) nor the expiry can be changed.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use thiserror::Error;
use time::OffsetDateTime;

use async_trait::async_trait;

use roughy_app::ports::{BlobError, DownloadLinks, SignedDownload};
use roughy_domain::{AssetId, MediaFormat};

type HmacSha256 = Hmac<Sha256>;

/// The length of a generated signing key (32 bytes, the HMAC-SHA256 output size).
pub const KEY_LEN: usize = 32;

/// Why a signing key was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SigningKeyError {
    /// An empty key would make every signature forgeable.
    #[error("the signing key is empty")]
    Empty,
    /// The MAC refused the key.
    #[error("the signing key is not usable: {0}")]
    Invalid(String),
}

/// Download links signed with HMAC-SHA256 and a secret key.
#[derive(Clone)]
pub struct HmacDownloadLinks {
    /// The MAC keyed once; cloned for every signature.
    keyed: HmacSha256,
}

impl fmt::Debug for HmacDownloadLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("HmacDownloadLinks")
            .field("key", &"<redacted>")
            .finish()
    }
}

impl HmacDownloadLinks {
    /// Links signed with `key` (see [`generate_key`] and [`load_or_create_key`]; 32 random
    /// bytes or more is right).
    ///
    /// # Errors
    /// `SigningKeyError::Empty` for an empty key.
    pub fn new(key: Vec<u8>) -> Result<Self, SigningKeyError> {
        if key.is_empty() {
            return Err(SigningKeyError::Empty);
        }
        let keyed = HmacSha256::new_from_slice(&key)
            .map_err(|e| SigningKeyError::Invalid(e.to_string()))?;
        Ok(Self { keyed })
    }

    /// The MAC over one link's parameters.
    fn mac(&self, asset: &AssetId, extension: &str, expires: i64) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(format!("{asset}\n{extension}\n{expires}").as_bytes());
        mac
    }
}

#[async_trait]
impl DownloadLinks for HmacDownloadLinks {
    /// `{base}/v1/downloads/{asset_id}?ext={extension}&expires={unix}&sig={hex}`.
    async fn link(
        &self,
        base: &str,
        asset: &AssetId,
        format: MediaFormat,
        _now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<String, BlobError> {
        let extension = format.extension();
        let expires = expires_at.unix_timestamp();
        let signature = hex::encode(self.mac(asset, extension, expires).finalize().into_bytes());
        // Ids and extensions are URL-safe, so nothing needs escaping.
        Ok(format!(
            "{}/v1/downloads/{asset}?ext={extension}&expires={expires}&sig={signature}",
            base.trim_end_matches('/')
        ))
    }

    fn verify(&self, link: &SignedDownload, now: OffsetDateTime) -> bool {
        if now.unix_timestamp() > link.expires {
            return false;
        }
        let Ok(signature) = hex::decode(&link.signature) else {
            return false;
        };
        // verify_slice compares in constant time and refuses truncated tags.
        self.mac(&link.asset_id, link.format.extension(), link.expires)
            .verify_slice(&signature)
            .is_ok()
    }
}

/// A new random signing key of [`KEY_LEN`] bytes from the operating system's generator.
pub fn generate_key() -> Vec<u8> {
    let mut key = vec![0; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

/// Loads the signing key kept as hex text at `path`, or creates one there (mode 0600 on
/// unix) if there is none. Safe when several processes start at once: one key wins and all
/// of them load it.
///
/// # Errors
/// I/O errors; `InvalidData` when the file does not hold a non-empty hex key.
pub fn load_or_create_key(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read_to_string(path) {
        Ok(text) => decode_key(path, &text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_key(path),
        Err(e) => Err(e),
    }
}

fn decode_key(path: &Path, text: &str) -> io::Result<Vec<u8>> {
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("signing key file {}: {why}", path.display()),
        )
    };
    let key = hex::decode(text.trim()).map_err(|e| invalid(&format!("not hex ({e})")))?;
    if key.is_empty() {
        return Err(invalid("empty"));
    }
    Ok(key)
}

fn create_key(path: &Path) -> io::Result<Vec<u8>> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let key = generate_key();
    // Written whole under a temporary name, then linked into place: a concurrent reader never
    // sees a half-written key, and a link never replaces another process's key.
    let name = path
        .file_name()
        .map_or_else(|| "key".into(), |n| n.to_string_lossy().into_owned());
    let temp = path.with_file_name(format!(
        ".{name}.{}.tmp",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    let written = write_private(&temp, format!("{}\n", hex::encode(&key)).as_bytes())
        .and_then(|()| fs::hard_link(&temp, path));
    // The temporary name goes in every case; a failure to remove it changes nothing.
    let _ = fs::remove_file(&temp);
    match written {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            decode_key(path, &fs::read_to_string(path)?)
        }
        Err(e) => Err(e),
    }
}

/// Creates `path` readable by its owner only and writes `contents` durably.
fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn links() -> HmacDownloadLinks {
        HmacDownloadLinks::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
    }

    /// Parses a link back the way the HTTP adapter would.
    fn parse(url: &str) -> SignedDownload {
        let (path, query) = url.split_once('?').unwrap();
        let asset_id = AssetId::parse(path.rsplit('/').next().unwrap()).unwrap();
        let mut format = None;
        let mut expires = None;
        let mut signature = None;
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap();
            match k {
                "ext" => format = MediaFormat::from_extension(v),
                "expires" => expires = v.parse().ok(),
                "sig" => signature = Some(v.to_owned()),
                other => panic!("unexpected parameter {other}"),
            }
        }
        SignedDownload {
            asset_id,
            format: format.unwrap(),
            expires: expires.unwrap(),
            signature: signature.unwrap(),
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    const NOW: OffsetDateTime = datetime!(2030-01-01 12:00 UTC);

    #[test]
    fn a_link_has_the_documented_shape() {
        let asset = AssetId::parse("ast_abc123").unwrap();
        let expires = NOW + time::Duration::seconds(300);
        let url = block_on(links().link("https://x.test/", &asset, MediaFormat::Mp3, NOW, expires))
            .unwrap();
        let prefix = format!(
            "https://x.test/v1/downloads/ast_abc123?ext=mp3&expires={}&sig=",
            expires.unix_timestamp()
        );
        assert!(url.starts_with(&prefix), "{url}");
        let sig = &url[prefix.len()..];
        assert_eq!(sig.len(), 64);
        assert!(sig.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn an_authentic_link_verifies_until_it_expires() {
        let asset = AssetId::generate();
        let expires = NOW + time::Duration::seconds(300);
        let link = parse(
            &block_on(links().link("http://h", &asset, MediaFormat::Webm, NOW, expires)).unwrap(),
        );
        assert_eq!(link.asset_id, asset);
        assert!(links().verify(&link, NOW));
        // Valid through its expiry second, refused after it.
        assert!(links().verify(&link, expires));
        assert!(!links().verify(&link, expires + time::Duration::seconds(1)));
    }

    #[test]
    fn tampering_with_any_parameter_is_refused() {
        let asset = AssetId::generate();
        let expires = NOW + time::Duration::seconds(300);
        let good = parse(
            &block_on(links().link("http://h", &asset, MediaFormat::Mp4, NOW, expires)).unwrap(),
        );

        let mut sig = good.clone();
        let flipped = if sig.signature.starts_with('0') {
            "1"
        } else {
            "0"
        };
        sig.signature.replace_range(..1, flipped);
        assert!(!links().verify(&sig, NOW));

        let ext = SignedDownload {
            format: MediaFormat::Mov,
            ..good.clone()
        };
        assert!(!links().verify(&ext, NOW));

        let later = SignedDownload {
            expires: good.expires + 3600,
            ..good.clone()
        };
        assert!(!links().verify(&later, NOW));

        let other = SignedDownload {
            asset_id: AssetId::generate(),
            ..good.clone()
        };
        assert!(!links().verify(&other, NOW));

        let truncated = SignedDownload {
            signature: good.signature[..32].to_owned(),
            ..good.clone()
        };
        assert!(!links().verify(&truncated, NOW));

        let not_hex = SignedDownload {
            signature: "zz".repeat(32),
            ..good.clone()
        };
        assert!(!links().verify(&not_hex, NOW));

        let other_key = HmacDownloadLinks::new(generate_key()).unwrap();
        assert!(!other_key.verify(&good, NOW));
        assert!(links().verify(&good, NOW));
    }

    #[test]
    fn an_empty_key_is_refused_and_keys_are_never_printed() {
        assert_eq!(
            HmacDownloadLinks::new(Vec::new()).unwrap_err(),
            SigningKeyError::Empty
        );
        let printed = format!("{:?}", links());
        assert!(!printed.contains("0123456789abcdef"), "{printed}");
    }

    #[test]
    fn generated_keys_are_random() {
        let (a, b) = (generate_key(), generate_key());
        assert_eq!(a.len(), KEY_LEN);
        assert_ne!(a, b);
    }

    #[test]
    fn a_key_file_is_created_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("signing.key");
        let created = load_or_create_key(&path).unwrap();
        assert_eq!(created.len(), KEY_LEN);
        assert_eq!(load_or_create_key(&path).unwrap(), created);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), hex::encode(&created));
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("signing.key")]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_corrupt_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        fs::write(&path, "not hex\n").unwrap();
        let err = load_or_create_key(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        fs::write(&path, "\n").unwrap();
        assert_eq!(
            load_or_create_key(&path).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
