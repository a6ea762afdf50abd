//! TUS 1.0.0 upload rules: offsets, lengths, the first chunk, expiry.

use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::ids::{AccountId, AssetId, UploadId};
use crate::values::SizeBytes;

/// The protocol version we speak.
pub const TUS_VERSION: &str = "1.0.0";
/// The extensions we implement.
pub const TUS_EXTENSIONS: &str = "termination,expiration";
/// The first chunk must carry at least this many bytes, so the format can be sniffed.
pub const MIN_FIRST_CHUNK: u64 = SizeBytes::MIN;
/// How long an idle upload lives by default: 48 hours.
pub const DEFAULT_UPLOAD_TTL: Duration = Duration::hours(48);

/// Whether an upload is still taking bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadState {
    /// Taking bytes.
    Active,
    /// Every byte stored; the asset was finalised.
    Completed,
}

/// Why a PATCH is refused before any byte of it is stored.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PatchRefusal {
    /// `Upload-Offset` is not the stored offset.
    #[error("Upload-Offset {claimed} does not match the stored offset {expected}")]
    OffsetMismatch {
        /// The stored offset.
        expected: u64,
        /// What the client sent.
        claimed: u64,
    },
    /// The chunk would go past `Upload-Length`.
    #[error("the chunk would end at byte {end}, past Upload-Length {length}")]
    LengthExceeded {
        /// Where the chunk would end.
        end: u64,
        /// The declared length.
        length: u64,
    },
    /// The first chunk is too short to identify the format.
    #[error("the first chunk must carry at least {MIN_FIRST_CHUNK} bytes")]
    FirstChunkTooSmall,
}

/// A TUS upload session: the bytes of one asset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// Its id (the last segment of the upload URL).
    pub id: UploadId,
    /// The asset the bytes are for.
    pub asset_id: AssetId,
    /// The owning account.
    pub account_id: AccountId,
    /// `Upload-Length`: the declared size.
    pub length: SizeBytes,
    /// Bytes durably stored.
    pub offset: u64,
    /// When it is reaped if no PATCH succeeds before.
    pub expires_at: OffsetDateTime,
    /// Active or completed.
    pub state: UploadState,
}

impl Upload {
    /// The bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.length.get().saturating_sub(self.offset)
    }

    /// Whether every byte is stored.
    pub fn is_complete(&self) -> bool {
        self.offset >= self.length.get()
    }

    /// Checks a PATCH before reading its body.
    ///
    /// `claimed` is `Upload-Offset`; `chunk_len` is `Content-Length` when the client sent one.
    /// A completed upload behaves as one whose offset is its length.
    ///
    /// # Errors
    /// `OffsetMismatch` when `claimed` is not the stored offset; `LengthExceeded` when a known
    /// chunk length would pass `Upload-Length`; `FirstChunkTooSmall` when a known first chunk
    /// is shorter than [`MIN_FIRST_CHUNK`] bytes.
    pub fn check_patch(&self, claimed: u64, chunk_len: Option<u64>) -> Result<(), PatchRefusal> {
        if claimed != self.offset {
            return Err(PatchRefusal::OffsetMismatch {
                expected: self.offset,
                claimed,
            });
        }
        if let Some(len) = chunk_len {
            let end = self.offset.saturating_add(len);
            if end > self.length.get() {
                return Err(PatchRefusal::LengthExceeded {
                    end,
                    length: self.length.get(),
                });
            }
            if self.offset == 0 && len < MIN_FIRST_CHUNK {
                return Err(PatchRefusal::FirstChunkTooSmall);
            }
        }
        Ok(())
    }

    /// Whether this PATCH is the first chunk (the one that is sniffed).
    pub fn expects_first_chunk(&self) -> bool {
        self.offset == 0
    }
}

/// The expiry a successful PATCH at `now` sets.
pub fn expiry_after(now: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    now + ttl
}

/// Parses an `Upload-Offset` header value: a non-negative decimal integer.
pub fn parse_offset(raw: &str) -> Option<u64> {
    if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn upload(length: u64, offset: u64) -> Upload {
        Upload {
            id: UploadId::generate(),
            asset_id: AssetId::generate(),
            account_id: AccountId::generate(),
            length: SizeBytes::new(length).expect("valid"),
            offset,
            expires_at: datetime!(2026-01-01 0:00 UTC),
            state: UploadState::Active,
        }
    }

    #[test]
    fn offset_must_match() {
        let u = upload(1000, 100);
        assert_eq!(u.check_patch(100, Some(10)), Ok(()));
        assert_eq!(
            u.check_patch(0, Some(10)),
            Err(PatchRefusal::OffsetMismatch {
                expected: 100,
                claimed: 0
            })
        );
    }

    #[test]
    fn nothing_past_the_length() {
        let u = upload(1000, 900);
        assert_eq!(u.check_patch(900, Some(100)), Ok(()));
        assert_eq!(
            u.check_patch(900, Some(101)),
            Err(PatchRefusal::LengthExceeded {
                end: 1001,
                length: 1000
            })
        );
    }

    #[test]
    fn first_chunk_needs_64_bytes() {
        let u = upload(1000, 0);
        assert_eq!(
            u.check_patch(0, Some(63)),
            Err(PatchRefusal::FirstChunkTooSmall)
        );
        assert_eq!(u.check_patch(0, Some(64)), Ok(()));
        assert!(u.expects_first_chunk());
        assert_eq!(upload(1000, 64).check_patch(64, Some(1)), Ok(()));
    }

    #[test]
    fn offsets_parse_strictly() {
        assert_eq!(parse_offset("0"), Some(0));
        assert_eq!(parse_offset("53687091200"), Some(53_687_091_200));
        for bad in [
            "",
            "-1",
            "+1",
            "1.0",
            " 1",
            "abc",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_offset(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn an_accepted_chunk_never_passes_the_length(len in 64u64..1_000_000, off_frac in 0.0f64..1.0, chunk in 0u64..2_000_000) {
            let offset = (len as f64 * off_frac) as u64;
            let u = upload(len, offset);
            if u.check_patch(offset, Some(chunk)).is_ok() {
                prop_assert!(offset + chunk <= len);
                prop_assert!(offset > 0 || chunk >= 64);
            }
        }

        #[test]
        fn any_other_offset_is_a_mismatch(len in 64u64..1_000_000, offset in 0u64..1_000_000, claimed in 0u64..1_000_000) {
            prop_assume!(offset <= len && claimed != offset);
            let u = upload(len, offset);
            let refused = matches!(u.check_patch(claimed, Some(1)), Err(PatchRefusal::OffsetMismatch { .. }));
            prop_assert!(refused);
        }
    }
}
