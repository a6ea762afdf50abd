//! Billing: one credit per started source minute, charged once, never below a zero balance.

use time::OffsetDateTime;

use crate::ids::{AccountId, AssetId, LedgerEntryId};
use crate::values::DurationMs;

/// A signed number of credits.
pub type Credits = i64;

/// The charge for a source of this duration: ceil(minutes), at least 1.
///
/// A 4 m 10 s file costs 5 credits; a 0.2 s file costs 1.
pub fn charge_for(duration: DurationMs) -> Credits {
    let minutes = duration.millis().div_ceil(60_000).max(1);
    Credits::try_from(minutes).unwrap_or(Credits::MAX)
}

/// What settling a charge against a balance decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// The balance covers the charge: debit it; the asset becomes `ready`.
    Debit {
        /// The charge.
        charge: Credits,
        /// The balance after the debit (never negative).
        balance_after: Credits,
    },
    /// The balance does not cover it: nothing is debited; the asset waits in `pending_payment`.
    Insufficient {
        /// The charge that could not be covered.
        charge: Credits,
    },
}

/// Settles `charge` against `balance`.
pub fn settle(balance: Credits, charge: Credits) -> Settlement {
    if balance >= charge {
        Settlement::Debit {
            charge,
            balance_after: balance - charge,
        }
    } else {
        Settlement::Insufficient { charge }
    }
}

/// Which pending-payment assets a balance activates, oldest first.
///
/// `pending` must be ordered oldest first, each with its charge. Each one the remaining
/// balance covers is activated (debited); one it cannot cover is skipped and the next tried.
/// Returns the activated ones with the balance after each debit.
pub fn activation_plan<I>(balance: Credits, pending: I) -> Vec<(AssetId, Credits, Credits)>
where
    I: IntoIterator<Item = (AssetId, Credits)>,
{
    let mut remaining = balance;
    let mut activated = Vec::new();
    for (asset, charge) in pending {
        if let Settlement::Debit { balance_after, .. } = settle(remaining, charge) {
            remaining = balance_after;
            activated.push((asset, charge, balance_after));
        }
    }
    activated
}

/// The timestamp of the `n`-th ledger entry posted together at `at` (0 is the first).
///
/// Entries of one atomic step (a top-up and the charges of the assets it activates) are one
/// microsecond apart, so newest-first order reads them exactly as they were posted and each
/// `balance_after` reads as a running balance.
pub fn posted_at(at: OffsetDateTime, n: usize) -> OffsetDateTime {
    at + time::Duration::microseconds(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Whether a new upload may start: the balance must be positive.
pub fn may_start_upload(balance: Credits) -> bool {
    balance > 0
}

/// The largest single top-up.
pub const MAX_TOP_UP: Credits = 1_000_000_000;

/// Kinds of ledger entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerKind {
    /// Credits added by the operator.
    TopUp,
    /// The one-time charge for an asset.
    AssetCharge,
}

impl LedgerKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TopUp => "top_up",
            Self::AssetCharge => "asset_charge",
        }
    }
}

/// One entry of an account's credit ledger. The balance is the sum of the amounts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Its id.
    pub id: LedgerEntryId,
    /// The account.
    pub account_id: AccountId,
    /// Top-up or charge.
    pub kind: LedgerKind,
    /// Signed: positive for a top-up, negative for a charge.
    pub amount: Credits,
    /// The balance right after this entry.
    pub balance_after: Credits,
    /// The charged asset, for a charge.
    pub asset_id: Option<AssetId>,
    /// When.
    pub created_at: OffsetDateTime,
}

impl LedgerEntry {
    /// A top-up entry.
    pub fn top_up(
        account_id: AccountId,
        amount: Credits,
        balance_after: Credits,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            id: LedgerEntryId::generate(),
            account_id,
            kind: LedgerKind::TopUp,
            amount,
            balance_after,
            asset_id: None,
            created_at: at,
        }
    }

    /// A charge entry (the amount is stored negative).
    pub fn charge(
        account_id: AccountId,
        asset_id: AssetId,
        charge: Credits,
        balance_after: Credits,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            id: LedgerEntryId::generate(),
            account_id,
            kind: LedgerKind::AssetCharge,
            amount: -charge,
            balance_after,
            asset_id: Some(asset_id),
            created_at: at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn charge_is_per_started_minute_and_at_least_one() {
        assert_eq!(charge_for(DurationMs::from_millis(250_000)), 5);
        assert_eq!(charge_for(DurationMs::from_millis(60_000)), 1);
        assert_eq!(charge_for(DurationMs::from_millis(60_001)), 2);
        assert_eq!(charge_for(DurationMs::from_millis(1)), 1);
        assert_eq!(charge_for(DurationMs::from_millis(0)), 1);
    }

    #[test]
    fn settlement_debits_only_when_covered() {
        assert_eq!(
            settle(5, 5),
            Settlement::Debit {
                charge: 5,
                balance_after: 0
            }
        );
        assert_eq!(settle(4, 5), Settlement::Insufficient { charge: 5 });
    }

    #[test]
    fn activation_skips_what_it_cannot_cover_and_tries_the_next() {
        let a = AssetId::generate();
        let b = AssetId::generate();
        let c = AssetId::generate();
        let plan = activation_plan(6, [(a.clone(), 4), (b, 5), (c.clone(), 2)]);
        assert_eq!(plan, vec![(a, 4, 2), (c, 2, 0)]);
    }

    #[test]
    fn uploads_need_a_positive_balance() {
        assert!(!may_start_upload(0));
        assert!(!may_start_upload(-1));
        assert!(may_start_upload(1));
    }

    proptest! {
        #[test]
        fn charge_covers_the_duration_by_less_than_a_minute(ms in 1u64..100_000_000_000) {
            let c = charge_for(DurationMs::from_millis(ms)) as u64;
            prop_assert!(c * 60_000 >= ms);
            prop_assert!((c - 1) * 60_000 < ms);
        }

        #[test]
        fn settlement_never_goes_negative(balance in 0i64..1_000_000, charge in 1i64..1_000_000) {
            match settle(balance, charge) {
                Settlement::Debit { balance_after, .. } => {
                    prop_assert!(balance_after >= 0);
                    prop_assert_eq!(balance_after, balance - charge);
                }
                Settlement::Insufficient { .. } => prop_assert!(balance < charge),
            }
        }

        #[test]
        fn activation_spends_at_most_the_balance(balance in 0i64..1000, charges in proptest::collection::vec(1i64..100, 0..20)) {
            let pending: Vec<_> = charges.iter().map(|c| (AssetId::generate(), *c)).collect();
            let plan = activation_plan(balance, pending.clone());
            let spent: i64 = plan.iter().map(|p| p.1).sum();
            prop_assert!(spent <= balance);
            prop_assert_eq!(plan.last().map_or(balance, |p| p.2), balance - spent);
            // Greedy in order: every skipped asset cost more than what remained when it was tried.
            let mut remaining = balance;
            for (id, charge) in &pending {
                let taken = plan.iter().any(|p| &p.0 == id);
                prop_assert_eq!(taken, *charge <= remaining);
                if taken { remaining -= charge; }
            }
        }
    }
}
