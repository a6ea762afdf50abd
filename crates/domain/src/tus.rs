//! TUS 1.0.0 upload rules: offsets, lengths, the first chunk, expiry.

use thiserror::Error;
use time::{Duration, OffsetDateTime};

use crate::asset::Asset;
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

/// What the upload sink keeps about an upload's staged bytes between PATCHes (for an object
/// store: the multipart upload's id and its parts' ETags). Opaque outside the sink; the
/// repository stores it with the offset in the same atomic step, so the two always agree.
/// Empty for a sink that needs nothing (local disk).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Staging(String);

impl Staging {
    /// Wraps a sink's state.
    pub fn new(state: impl Into<String>) -> Self {
        Self(state.into())
    }

    /// The state as the sink wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the sink keeps nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A TUS upload session: the bytes of one asset.
///
/// Every change is a transition below, so the repository adapters only persist what these
/// decided: [`Upload::open`], [`Upload::stage`], [`Upload::advance`], [`Upload::complete`];
/// [`Upload::check_patch`] and [`Upload::expired_before`] are the questions asked of it.
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
    /// Bytes durably stored. Equal to the length exactly when completed.
    pub offset: u64,
    /// When it is reaped if no PATCH succeeds before.
    pub expires_at: OffsetDateTime,
    /// Active or completed.
    pub state: UploadState,
    /// The sink's state for the bytes below `offset`.
    pub staging: Staging,
}

/// What a PATCH that passed [`Upload::check_patch`] has to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchStart {
    /// Stream the body into the sink.
    Append,
    /// The upload is complete and the PATCH carries nothing: answer the final offset.
    AlreadyComplete,
}

/// A transition the upload's state refuses (the adapters report it as a conflict).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum UploadTransitionError {
    /// The upload completed: nothing more is recorded.
    #[error("the upload is already complete")]
    NotActive,
    /// Offsets only move forward.
    #[error("offset {to} is not past the stored offset {from}")]
    NotForward {
        /// The stored offset.
        from: u64,
        /// The refused one.
        to: u64,
    },
    /// An offset at or past the length is reached only by completing.
    #[error("offset {to} is not below the upload length {length} (completing records the end)")]
    NotBelowLength {
        /// The refused offset.
        to: u64,
        /// The declared length.
        length: u64,
    },
    /// Staging is chosen once, before the first byte.
    #[error("the upload already holds bytes (offset {offset}): its staging is fixed")]
    AlreadyStarted {
        /// The stored offset.
        offset: u64,
    },
}

impl Upload {
    /// Opens the upload of a new asset: nothing stored, expiring `ttl` after `now`.
    pub fn open(asset: &Asset, now: OffsetDateTime, ttl: Duration) -> Self {
        Self {
            id: asset.upload_id.clone(),
            asset_id: asset.id.clone(),
            account_id: asset.account_id.clone(),
            length: asset.declared_size,
            offset: 0,
            expires_at: expiry_after(now, ttl),
            state: UploadState::Active,
            staging: Staging::default(),
        }
    }

    /// The bytes still expected.
    pub fn remaining(&self) -> u64 {
        self.length.get().saturating_sub(self.offset)
    }

    /// Checks a PATCH before reading its body, in either state.
    ///
    /// `claimed` is `Upload-Offset`; `chunk_len` is `Content-Length` when the client sent one.
    /// A completed upload accepts only an empty PATCH at its length (a client confirming the
    /// end), which has nothing to do.
    ///
    /// # Errors
    /// `OffsetMismatch` when `claimed` is not the stored offset; `LengthExceeded` when a known
    /// chunk length would pass `Upload-Length` (or any body is sent to a completed upload);
    /// `FirstChunkTooSmall` when a known first chunk is shorter than [`MIN_FIRST_CHUNK`] bytes.
    pub fn check_patch(
        &self,
        claimed: u64,
        chunk_len: Option<u64>,
    ) -> Result<PatchStart, PatchRefusal> {
        if claimed != self.offset {
            return Err(PatchRefusal::OffsetMismatch {
                expected: self.offset,
                claimed,
            });
        }
        let length = self.length.get();
        if self.state == UploadState::Completed {
            return match chunk_len {
                Some(0) => Ok(PatchStart::AlreadyComplete),
                other => Err(PatchRefusal::LengthExceeded {
                    end: length.saturating_add(other.unwrap_or(1)),
                    length,
                }),
            };
        }
        if let Some(len) = chunk_len {
            let end = self.offset.saturating_add(len);
            if end > length {
                return Err(PatchRefusal::LengthExceeded { end, length });
            }
            if self.offset == 0 && len < MIN_FIRST_CHUNK {
                return Err(PatchRefusal::FirstChunkTooSmall);
            }
        }
        Ok(PatchStart::Append)
    }

    /// Whether this PATCH is the first chunk (the one that is sniffed).
    pub fn expects_first_chunk(&self) -> bool {
        self.state == UploadState::Active && self.offset == 0
    }

    fn require_active(&self) -> Result<(), UploadTransitionError> {
        match self.state {
            UploadState::Active => Ok(()),
            UploadState::Completed => Err(UploadTransitionError::NotActive),
        }
    }

    /// The sink prepared staging for the first byte (after the first chunk was identified).
    ///
    /// # Errors
    /// Unless active with nothing stored.
    pub fn stage(&mut self, staging: Staging) -> Result<(), UploadTransitionError> {
        self.require_active()?;
        if self.offset != 0 {
            return Err(UploadTransitionError::AlreadyStarted {
                offset: self.offset,
            });
        }
        self.staging = staging;
        Ok(())
    }

    /// Bytes up to `offset` are durably stored, as `staging` describes: the offset moves
    /// forward and the expiry is refreshed to `expires_at`.
    ///
    /// # Errors
    /// Unless active, with `offset` past the stored offset and below the length (the last
    /// byte is recorded only by [`Upload::complete`], atomically with the asset's change).
    pub fn advance(
        &mut self,
        offset: u64,
        staging: Staging,
        expires_at: OffsetDateTime,
    ) -> Result<(), UploadTransitionError> {
        self.require_active()?;
        if offset <= self.offset {
            return Err(UploadTransitionError::NotForward {
                from: self.offset,
                to: offset,
            });
        }
        if offset >= self.length.get() {
            return Err(UploadTransitionError::NotBelowLength {
                to: offset,
                length: self.length.get(),
            });
        }
        self.offset = offset;
        self.staging = staging;
        self.expires_at = expires_at;
        Ok(())
    }

    /// Every byte is durably stored, as `staging` describes: `active → completed`, offset =
    /// length.
    ///
    /// # Errors
    /// Unless active.
    pub fn complete(&mut self, staging: Staging) -> Result<(), UploadTransitionError> {
        self.require_active()?;
        self.offset = self.length.get();
        self.staging = staging;
        self.state = UploadState::Completed;
        Ok(())
    }

    /// Whether the upload is active and its expiry is before `instant`: the reaper's test,
    /// asked again under the row lock (a PATCH may have refreshed the expiry since listing).
    pub fn expired_before(&self, instant: OffsetDateTime) -> bool {
        self.state == UploadState::Active && self.expires_at < instant
    }
}

/// The expiry a successful PATCH at `now` sets. Saturates at the latest representable
/// instant rather than overflowing (a panic inside a request handler) on a huge `ttl`.
pub fn expiry_after(now: OffsetDateTime, ttl: Duration) -> OffsetDateTime {
    now.saturating_add(ttl)
}

/// Parses an `Upload-Offset` header value: a non-negative decimal integer (leading zeros
/// allowed) that fits 64 bits.
pub fn parse_offset(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
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
            staging: Staging::default(),
        }
    }

    #[test]
    fn offset_must_match() {
        let u = upload(1000, 100);
        assert_eq!(u.check_patch(100, Some(10)), Ok(PatchStart::Append));
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
        assert_eq!(u.check_patch(900, Some(100)), Ok(PatchStart::Append));
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
        assert_eq!(u.check_patch(0, Some(64)), Ok(PatchStart::Append));
        assert!(u.expects_first_chunk());
        assert_eq!(
            upload(1000, 64).check_patch(64, Some(1)),
            Ok(PatchStart::Append)
        );
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

    #[test]
    fn offsets_may_carry_leading_zeros() {
        // Found by the parser fuzz: 21 digits were refused whatever their value.
        assert_eq!(parse_offset("000000000000000000000"), Some(0));
        assert_eq!(parse_offset(&format!("{}1", "0".repeat(40))), Some(1));
        assert_eq!(parse_offset("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_offset("18446744073709551616"), None);
    }

    #[test]
    fn a_completed_upload_takes_only_an_empty_patch_at_its_length() {
        let mut u = upload(1000, 900);
        u.complete(Staging::new("final")).expect("active");
        assert_eq!(u.offset, 1000);
        assert_eq!(u.state, UploadState::Completed);
        assert_eq!(u.staging.as_str(), "final");
        assert_eq!(
            u.check_patch(1000, Some(0)),
            Ok(PatchStart::AlreadyComplete)
        );
        assert_eq!(
            u.check_patch(1000, Some(5)),
            Err(PatchRefusal::LengthExceeded {
                end: 1005,
                length: 1000
            })
        );
        assert_eq!(
            u.check_patch(1000, None),
            Err(PatchRefusal::LengthExceeded {
                end: 1001,
                length: 1000
            })
        );
        assert!(matches!(
            u.check_patch(900, Some(0)),
            Err(PatchRefusal::OffsetMismatch { .. })
        ));
        assert!(!u.expects_first_chunk());
        assert_eq!(
            u.complete(Staging::default()),
            Err(UploadTransitionError::NotActive)
        );
    }

    #[test]
    fn offsets_move_forward_and_stay_below_the_length() {
        let mut u = upload(1000, 100);
        let later = datetime!(2026-01-02 0:00 UTC);
        assert_eq!(
            u.advance(100, Staging::default(), later),
            Err(UploadTransitionError::NotForward { from: 100, to: 100 })
        );
        assert_eq!(
            u.advance(1000, Staging::default(), later),
            Err(UploadTransitionError::NotBelowLength {
                to: 1000,
                length: 1000
            })
        );
        // A refused transition changes nothing.
        assert_eq!(u, upload_like(&u, 100));
        u.advance(999, Staging::new("s"), later).expect("forward");
        assert_eq!((u.offset, u.expires_at), (999, later));
        assert_eq!(u.staging.as_str(), "s");
    }

    fn upload_like(u: &Upload, offset: u64) -> Upload {
        Upload {
            offset,
            ..u.clone()
        }
    }

    #[test]
    fn staging_is_chosen_before_the_first_byte() {
        let mut u = upload(1000, 0);
        u.stage(Staging::new("mpu")).expect("nothing stored yet");
        assert_eq!(u.staging.as_str(), "mpu");
        let mut started = upload(1000, 10);
        assert_eq!(
            started.stage(Staging::new("other")),
            Err(UploadTransitionError::AlreadyStarted { offset: 10 })
        );
    }

    #[test]
    fn only_an_active_upload_expires() {
        let mut u = upload(1000, 10);
        let after = datetime!(2026-01-01 0:00:01 UTC);
        assert!(u.expired_before(after));
        assert!(!u.expired_before(u.expires_at));
        u.complete(Staging::default()).expect("active");
        assert!(!u.expired_before(after));
    }

    #[test]
    fn open_takes_the_asset_declared_size() {
        let asset = Asset::new(
            AccountId::generate(),
            crate::ids::ProjectId::generate(),
            SizeBytes::new(5000).expect("valid"),
            None,
            datetime!(2026-01-01 0:00 UTC),
        );
        let u = Upload::open(&asset, asset.created_at, Duration::hours(1));
        assert_eq!(u.id, asset.upload_id);
        assert_eq!(u.asset_id, asset.id);
        assert_eq!(u.length.get(), 5000);
        assert_eq!(u.offset, 0);
        assert_eq!(u.expires_at, asset.created_at + Duration::hours(1));
        assert!(u.staging.is_empty());
        assert!(u.expects_first_chunk());
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
