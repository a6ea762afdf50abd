//! The asset lifecycle state machine.
//!
//! ```text
//! pending_upload --last byte stored--> processing --measured & paid--> ready
//!                                          |--measured, balance short--> pending_payment --top-up--> ready
//!                                          '--unreadable/corrupt/no duration--> failed
//! ```
//! Each allowed transition is a method; every other one is a [`TransitionError`].

use thiserror::Error;
use time::OffsetDateTime;

use crate::billing::{self, charge_for, Credits, LedgerEntry, Settlement};
use crate::direct::DirectUpload;
use crate::ids::{AccountId, AssetId, ProjectId, UploadId};
use crate::media::MediaFormat;
use crate::values::{DurationMs, Language, SizeBytes};

/// Where an asset is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssetState {
    /// Bytes are still uploading.
    PendingUpload,
    /// Upload finished; being measured and billed.
    Processing,
    /// Measured, but the balance did not cover the charge.
    PendingPayment,
    /// Measured and paid for.
    Ready,
    /// Preparation failed for good; never charged.
    Failed,
}

impl AssetState {
    /// Every state.
    pub const ALL: [AssetState; 5] = [
        Self::PendingUpload,
        Self::Processing,
        Self::PendingPayment,
        Self::Ready,
        Self::Failed,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingUpload => "pending_upload",
            Self::Processing => "processing",
            Self::PendingPayment => "pending_payment",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// Why preparation failed: a stable machine code and a human message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetFailure {
    /// `media_unreadable`, `media_corrupt`, `media_truncated`, `media_no_duration`, …
    pub code: String,
    /// Human-readable detail.
    pub message: String,
}

/// A transition the lifecycle does not allow.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("asset in state {from:?} cannot {action}")]
pub struct TransitionError {
    /// The state the asset was in.
    pub from: AssetState,
    /// What was attempted.
    pub action: &'static str,
}

/// One piece of source media and where it is in its lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asset {
    /// Its id.
    pub id: AssetId,
    /// The owning account.
    pub account_id: AccountId,
    /// The owning project.
    pub project_id: ProjectId,
    /// Its TUS upload.
    pub upload_id: UploadId,
    /// Lifecycle state.
    pub state: AssetState,
    /// Detected from the first chunk; refined (MKV → MKA) while processing.
    pub format: Option<MediaFormat>,
    /// The size declared at create (`Upload-Length`).
    pub declared_size: SizeBytes,
    /// The stored size, once finalised.
    pub size_bytes: Option<u64>,
    /// Measured while processing.
    pub duration: Option<DurationMs>,
    /// Language hint, immutable.
    pub language: Option<Language>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Set only when failed.
    pub failure: Option<AssetFailure>,
    /// Set when its upload URL carries a token (created with `direct_upload`).
    pub direct: Option<DirectUpload>,
}

impl Asset {
    /// A new asset waiting for its bytes.
    pub fn new(
        account_id: AccountId,
        project_id: ProjectId,
        declared_size: SizeBytes,
        language: Option<Language>,
        created_at: OffsetDateTime,
    ) -> Self {
        Self {
            id: AssetId::generate(),
            account_id,
            project_id,
            upload_id: UploadId::generate(),
            state: AssetState::PendingUpload,
            format: None,
            declared_size,
            size_bytes: None,
            duration: None,
            language,
            created_at,
            failure: None,
            direct: None,
        }
    }

    fn require(&self, state: AssetState, action: &'static str) -> Result<(), TransitionError> {
        if self.state == state {
            Ok(())
        } else {
            Err(TransitionError {
                from: self.state,
                action,
            })
        }
    }

    /// Records the format sniffed from the first chunk, while uploading.
    ///
    /// A first chunk re-sent after a drop that stored nothing is sniffed again, so this may
    /// replace an earlier verdict as long as the upload has not finished.
    ///
    /// # Errors
    /// Unless `pending_upload`.
    pub fn identify(&mut self, format: MediaFormat) -> Result<(), TransitionError> {
        self.require(AssetState::PendingUpload, "identify its format")?;
        self.format = Some(format);
        Ok(())
    }

    /// The last byte is stored: `pending_upload → processing`.
    ///
    /// # Errors
    /// Unless `pending_upload` with an identified format.
    pub fn finish_upload(&mut self, size: u64) -> Result<(), TransitionError> {
        self.require(AssetState::PendingUpload, "finish its upload")?;
        if self.format.is_none() {
            return Err(TransitionError {
                from: self.state,
                action: "finish an unidentified upload",
            });
        }
        self.state = AssetState::Processing;
        self.size_bytes = Some(size);
        Ok(())
    }

    /// Records the measured duration (and a refined format). Stays `processing`.
    ///
    /// # Errors
    /// Unless `processing`.
    pub fn measure(
        &mut self,
        duration: DurationMs,
        format: Option<MediaFormat>,
    ) -> Result<Credits, TransitionError> {
        self.require(AssetState::Processing, "be measured")?;
        self.duration = Some(duration);
        if let Some(format) = format {
            self.format = Some(format);
        }
        Ok(charge_for(duration))
    }

    /// The charge for this asset, once measured.
    pub fn charge(&self) -> Option<Credits> {
        self.duration.map(charge_for)
    }

    /// Applies a settlement: `processing → ready` (debited) or `→ pending_payment`.
    ///
    /// # Errors
    /// Unless `processing` and measured.
    pub fn settle(&mut self, settlement: Settlement) -> Result<(), TransitionError> {
        self.require(AssetState::Processing, "settle its charge")?;
        if self.duration.is_none() {
            return Err(TransitionError {
                from: self.state,
                action: "settle before it is measured",
            });
        }
        self.state = match settlement {
            Settlement::Debit { .. } => AssetState::Ready,
            Settlement::Insufficient { .. } => AssetState::PendingPayment,
        };
        Ok(())
    }

    /// Records the measured duration and settles its charge against `balance` in one step:
    /// `processing → ready`, returning the charge entry to post, or `→ pending_payment`,
    /// returning nothing (no entry, nothing debited).
    ///
    /// # Errors
    /// Unless `processing`; a refusal changes nothing.
    pub fn settle_measured(
        &mut self,
        duration: DurationMs,
        format: Option<MediaFormat>,
        balance: Credits,
        at: OffsetDateTime,
    ) -> Result<Option<LedgerEntry>, TransitionError> {
        self.require(AssetState::Processing, "be measured")?;
        let charge = self.measure(duration, format)?;
        let settlement = billing::settle(balance, charge);
        self.settle(settlement)?;
        Ok(match settlement {
            Settlement::Debit {
                charge,
                balance_after,
            } => Some(LedgerEntry::charge(
                self.account_id.clone(),
                self.id.clone(),
                charge,
                balance_after,
                at,
            )),
            Settlement::Insufficient { .. } => None,
        })
    }

    /// A top-up covered the charge: `pending_payment → ready`.
    ///
    /// # Errors
    /// Unless `pending_payment`.
    pub fn activate(&mut self) -> Result<(), TransitionError> {
        self.require(AssetState::PendingPayment, "be activated")?;
        self.state = AssetState::Ready;
        Ok(())
    }

    /// Preparation failed for good: `processing → failed`. Nothing is charged.
    ///
    /// # Errors
    /// Unless `processing`.
    pub fn fail(&mut self, failure: AssetFailure) -> Result<(), TransitionError> {
        self.require(AssetState::Processing, "fail")?;
        self.state = AssetState::Failed;
        self.duration = None;
        self.failure = Some(failure);
        Ok(())
    }

    /// Whether a cut can be produced now.
    pub fn cuttable(&self) -> bool {
        self.state == AssetState::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn fresh() -> Asset {
        Asset::new(
            AccountId::generate(),
            ProjectId::generate(),
            SizeBytes::new(1000).expect("valid"),
            None,
            datetime!(2026-01-01 0:00 UTC),
        )
    }

    fn failure() -> AssetFailure {
        AssetFailure {
            code: "media_corrupt".into(),
            message: "bad".into(),
        }
    }

    #[test]
    fn happy_path_reaches_ready() {
        let mut a = fresh();
        a.identify(MediaFormat::Wav).expect("identify");
        a.finish_upload(1000).expect("finish");
        assert_eq!(a.state, AssetState::Processing);
        let charge = a
            .measure(DurationMs::from_millis(250_000), None)
            .expect("measure");
        assert_eq!(charge, 5);
        a.settle(Settlement::Debit {
            charge,
            balance_after: 0,
        })
        .expect("settle");
        assert_eq!(a.state, AssetState::Ready);
        assert!(a.cuttable());
    }

    #[test]
    fn settling_a_measurement_debits_when_covered_and_waits_when_short() {
        let at = datetime!(2026-01-01 0:00 UTC);
        let mut paid = fresh();
        paid.identify(MediaFormat::Wav).expect("identify");
        paid.finish_upload(1000).expect("finish");
        let entry = paid
            .settle_measured(DurationMs::from_millis(250_000), None, 7, at)
            .expect("settle");
        let entry = entry.expect("a charge entry");
        assert_eq!(
            (entry.amount, entry.balance_after, entry.asset_id),
            (-5, 2, Some(paid.id.clone()))
        );
        assert_eq!(paid.state, AssetState::Ready);

        let mut short = fresh();
        short.identify(MediaFormat::Wav).expect("identify");
        short.finish_upload(1000).expect("finish");
        assert_eq!(
            short.settle_measured(DurationMs::from_millis(250_000), None, 4, at),
            Ok(None)
        );
        assert_eq!(short.state, AssetState::PendingPayment);
        assert!(short.duration.is_some());

        let before = fresh();
        let mut refused = before.clone();
        assert!(refused
            .settle_measured(DurationMs::from_millis(1), None, 9, at)
            .is_err());
        assert_eq!(refused, before, "a refusal changes nothing");
    }

    #[test]
    fn short_balance_waits_then_activates() {
        let mut a = fresh();
        a.identify(MediaFormat::Mkv).expect("identify");
        a.finish_upload(1000).expect("finish");
        a.measure(DurationMs::from_millis(1), Some(MediaFormat::Mka))
            .expect("measure");
        assert_eq!(a.format, Some(MediaFormat::Mka));
        a.settle(Settlement::Insufficient { charge: 1 })
            .expect("settle");
        assert_eq!(a.state, AssetState::PendingPayment);
        a.activate().expect("activate");
        assert_eq!(a.state, AssetState::Ready);
    }

    #[test]
    fn failure_clears_the_duration() {
        let mut a = fresh();
        a.identify(MediaFormat::Wav).expect("identify");
        a.finish_upload(1000).expect("finish");
        a.measure(DurationMs::from_millis(5), None)
            .expect("measure");
        a.fail(failure()).expect("fail");
        assert_eq!(a.state, AssetState::Failed);
        assert_eq!(a.duration, None);
        assert_eq!(a.charge(), None);
    }

    #[test]
    fn cannot_finish_unidentified_or_settle_unmeasured() {
        let mut a = fresh();
        assert!(a.finish_upload(1000).is_err());
        a.identify(MediaFormat::Wav).expect("identify");
        a.identify(MediaFormat::Mp3)
            .expect("a re-sent first chunk is sniffed again");
        a.finish_upload(1000).expect("finish");
        assert!(a.identify(MediaFormat::Wav).is_err());
        assert!(a.settle(Settlement::Insufficient { charge: 1 }).is_err());
    }

    #[derive(Clone, Copy, Debug)]
    enum Step {
        Identify,
        Finish,
        Measure,
        Debit,
        Short,
        Activate,
        Fail,
    }

    fn apply(a: &mut Asset, step: Step) -> Result<(), TransitionError> {
        match step {
            Step::Identify => a.identify(MediaFormat::Wav),
            Step::Finish => a.finish_upload(1000),
            Step::Measure => a.measure(DurationMs::from_millis(61_000), None).map(|_| ()),
            Step::Debit => a.settle(Settlement::Debit {
                charge: 2,
                balance_after: 0,
            }),
            Step::Short => a.settle(Settlement::Insufficient { charge: 2 }),
            Step::Activate => a.activate(),
            Step::Fail => a.fail(failure()),
        }
    }

    fn allowed(from: AssetState, to: AssetState) -> bool {
        use AssetState::*;
        from == to
            || matches!(
                (from, to),
                (PendingUpload, Processing)
                    | (Processing, Ready)
                    | (Processing, PendingPayment)
                    | (Processing, Failed)
                    | (PendingPayment, Ready)
            )
    }

    proptest! {
        #[test]
        fn only_the_documented_transitions_ever_happen(steps in proptest::collection::vec(0usize..7, 0..20)) {
            let all = [Step::Identify, Step::Finish, Step::Measure, Step::Debit, Step::Short, Step::Activate, Step::Fail];
            let mut a = fresh();
            for i in steps {
                let before = a.clone();
                match apply(&mut a, all[i]) {
                    Ok(()) => prop_assert!(allowed(before.state, a.state), "{:?} -> {:?}", before.state, a.state),
                    Err(_) => prop_assert_eq!(&before, &a, "a refused transition changes nothing"),
                }
                if a.state == AssetState::Ready || a.state == AssetState::PendingPayment {
                    prop_assert!(a.duration.is_some());
                }
                if a.state == AssetState::Failed {
                    prop_assert!(a.duration.is_none() && a.failure.is_some());
                }
            }
        }
    }
}
