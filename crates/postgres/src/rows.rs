//! Row structs, private to the crate, and their conversions to and from domain types.
//!
//! Reading a row back parses every value again (`AssetId::parse`, `SizeBytes::new`, …): a row
//! that does not parse is reported as an internal failure instead of being trusted.

use diesel::prelude::*;
use time::OffsetDateTime;

use roughy_app::ports::{GoneReason, Purge, RepoError};
use roughy_domain::{
    Account, AccountId, Asset, AssetFailure, AssetId, AssetState, Credits, DirectUpload,
    DurationMs, Language, LedgerEntry, LedgerEntryId, LedgerKind, MediaFormat, Origin, Project,
    ProjectId, ProjectName, SizeBytes, Staging, Upload, UploadId, UploadState,
};

use crate::error::corrupt;
use crate::schema::{accounts, api_keys, assets, ledger_entries, projects, uploads};

/// Parses a stored id of type `T`.
macro_rules! stored_id {
    ($ty:ty, $raw:expr) => {
        <$ty>::parse(&$raw)
            .ok_or_else(|| $crate::error::corrupt(format!("{} {:?}", stringify!($ty), $raw)))
    };
}
pub(crate) use stored_id;

/// A `u64` as stored in a `bigint` column.
pub(crate) fn to_i64(value: u64) -> Result<i64, RepoError> {
    i64::try_from(value).map_err(|_| RepoError::Conflict(format!("{value} is out of range").into()))
}

/// A `bigint` column read back as a `u64`.
fn to_u64(value: i64, what: &str) -> Result<u64, RepoError> {
    u64::try_from(value).map_err(|_| corrupt(format!("negative {what} {value}")))
}

/// A page size plus the one extra row that proves a next page exists.
pub(crate) fn overfetch(limit: usize) -> i64 {
    i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Accounts, keys, ledger
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = accounts, check_for_backend(diesel::pg::Pg))]
pub(crate) struct AccountRow {
    pub id: String,
    pub name: Option<String>,
    pub created_at: OffsetDateTime,
}

impl TryFrom<AccountRow> for Account {
    type Error = RepoError;

    fn try_from(row: AccountRow) -> Result<Self, RepoError> {
        Ok(Account {
            id: stored_id!(AccountId, row.id)?,
            name: row.name,
            created_at: row.created_at,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = accounts)]
pub(crate) struct NewAccount<'a> {
    pub id: &'a str,
    pub name: Option<&'a str>,
    pub balance: i64,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_keys)]
pub(crate) struct NewApiKey<'a> {
    pub id: &'a str,
    pub account_id: &'a str,
    pub hash: &'a str,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = ledger_entries, check_for_backend(diesel::pg::Pg))]
pub(crate) struct LedgerRow {
    pub id: String,
    pub account_id: String,
    pub kind: String,
    pub amount: i64,
    pub balance_after: i64,
    pub asset_id: Option<String>,
    pub created_at: OffsetDateTime,
}

fn kind_name(kind: LedgerKind) -> &'static str {
    kind.as_str()
}

fn parse_kind(raw: &str) -> Result<LedgerKind, RepoError> {
    [LedgerKind::TopUp, LedgerKind::AssetCharge]
        .into_iter()
        .find(|k| k.as_str() == raw)
        .ok_or_else(|| corrupt(format!("ledger kind {raw:?}")))
}

impl From<&LedgerEntry> for LedgerRow {
    fn from(entry: &LedgerEntry) -> Self {
        Self {
            id: entry.id.as_str().to_owned(),
            account_id: entry.account_id.as_str().to_owned(),
            kind: kind_name(entry.kind).to_owned(),
            amount: entry.amount,
            balance_after: entry.balance_after,
            asset_id: entry.asset_id.as_ref().map(|a| a.as_str().to_owned()),
            created_at: entry.created_at,
        }
    }
}

impl TryFrom<LedgerRow> for LedgerEntry {
    type Error = RepoError;

    fn try_from(row: LedgerRow) -> Result<Self, RepoError> {
        Ok(LedgerEntry {
            id: stored_id!(LedgerEntryId, row.id)?,
            account_id: stored_id!(AccountId, row.account_id)?,
            kind: parse_kind(&row.kind)?,
            amount: row.amount as Credits,
            balance_after: row.balance_after,
            asset_id: row.asset_id.map(|a| stored_id!(AssetId, a)).transpose()?,
            created_at: row.created_at,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Projects
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = projects, check_for_backend(diesel::pg::Pg))]
pub(crate) struct ProjectRow {
    pub id: String,
    pub account_id: String,
    pub name: Option<String>,
    pub created_at: OffsetDateTime,
}

impl From<&Project> for ProjectRow {
    fn from(p: &Project) -> Self {
        Self {
            id: p.id.as_str().to_owned(),
            account_id: p.account_id.as_str().to_owned(),
            name: p.name.as_ref().map(|n| n.as_str().to_owned()),
            created_at: p.created_at,
        }
    }
}

impl TryFrom<ProjectRow> for Project {
    type Error = RepoError;

    fn try_from(row: ProjectRow) -> Result<Self, RepoError> {
        Ok(Project {
            id: stored_id!(ProjectId, row.id)?,
            account_id: stored_id!(AccountId, row.account_id)?,
            name: row
                .name
                .map(|n| ProjectName::parse(&n).map_err(corrupt))
                .transpose()?,
            created_at: row.created_at,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Assets
// ---------------------------------------------------------------------------------------------

/// Also the JSON snapshot of an asset in a webhook delivery (`webhook_deliveries.asset`).
#[derive(Clone, Debug, Queryable, Selectable, Insertable, serde::Serialize, serde::Deserialize)]
#[diesel(table_name = assets, check_for_backend(diesel::pg::Pg))]
pub(crate) struct AssetRow {
    pub id: String,
    pub account_id: String,
    pub project_id: String,
    pub upload_id: String,
    pub state: String,
    pub format: Option<String>,
    pub declared_size: i64,
    pub size_bytes: Option<i64>,
    pub duration_ms: Option<i64>,
    pub language: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `NULL`: not direct; `''`: direct; an origin: direct, CORS for that origin only.
    #[serde(default)]
    pub direct_upload: Option<String>,
}

/// The columns of an asset that its lifecycle changes.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = assets, treat_none_as_null = true)]
pub(crate) struct AssetChanges {
    pub state: String,
    pub format: Option<String>,
    pub size_bytes: Option<i64>,
    pub duration_ms: Option<i64>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
}

impl TryFrom<&Asset> for AssetRow {
    type Error = RepoError;

    fn try_from(a: &Asset) -> Result<Self, RepoError> {
        let changes = AssetChanges::try_from(a)?;
        Ok(Self {
            id: a.id.as_str().to_owned(),
            account_id: a.account_id.as_str().to_owned(),
            project_id: a.project_id.as_str().to_owned(),
            upload_id: a.upload_id.as_str().to_owned(),
            state: changes.state,
            format: changes.format,
            declared_size: to_i64(a.declared_size.get())?,
            size_bytes: changes.size_bytes,
            duration_ms: changes.duration_ms,
            language: a.language.as_ref().map(|l| l.as_str().to_owned()),
            failure_code: changes.failure_code,
            failure_message: changes.failure_message,
            created_at: a.created_at,
            direct_upload: a.direct.as_ref().map(|d| {
                d.cors_origin
                    .as_ref()
                    .map_or_else(String::new, |o| o.as_str().to_owned())
            }),
        })
    }
}

impl TryFrom<&Asset> for AssetChanges {
    type Error = RepoError;

    fn try_from(a: &Asset) -> Result<Self, RepoError> {
        Ok(Self {
            state: a.state.as_str().to_owned(),
            format: a.format.map(|f| f.extension().to_owned()),
            size_bytes: a.size_bytes.map(to_i64).transpose()?,
            duration_ms: a.duration.map(|d| to_i64(d.millis())).transpose()?,
            failure_code: a.failure.as_ref().map(|f| f.code.clone()),
            failure_message: a.failure.as_ref().map(|f| f.message.clone()),
        })
    }
}

impl TryFrom<AssetRow> for Asset {
    type Error = RepoError;

    fn try_from(row: AssetRow) -> Result<Self, RepoError> {
        let state = AssetState::parse(&row.state)
            .ok_or_else(|| corrupt(format!("asset state {:?}", row.state)))?;
        let format = row
            .format
            .map(|f| {
                MediaFormat::from_extension(&f).ok_or_else(|| corrupt(format!("format {f:?}")))
            })
            .transpose()?;
        let failure = match (row.failure_code, row.failure_message) {
            (Some(code), Some(message)) => Some(AssetFailure { code, message }),
            (None, None) => None,
            _ => return Err(corrupt("half a failure")),
        };
        Ok(Asset {
            id: stored_id!(AssetId, row.id)?,
            account_id: stored_id!(AccountId, row.account_id)?,
            project_id: stored_id!(ProjectId, row.project_id)?,
            upload_id: stored_id!(UploadId, row.upload_id)?,
            state,
            format,
            declared_size: SizeBytes::new(to_u64(row.declared_size, "declared size")?)
                .map_err(corrupt)?,
            size_bytes: row.size_bytes.map(|s| to_u64(s, "size")).transpose()?,
            duration: row
                .duration_ms
                .map(|d| to_u64(d, "duration").map(DurationMs::from_millis))
                .transpose()?,
            language: row
                .language
                .map(|l| Language::parse(&l).map_err(corrupt))
                .transpose()?,
            created_at: row.created_at,
            failure,
            direct: match row.direct_upload.as_deref() {
                None => None,
                Some("") => Some(DirectUpload::default()),
                Some(origin) => Some(DirectUpload {
                    cors_origin: Some(Origin::parse(origin).map_err(corrupt)?),
                }),
            },
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Uploads and tombstones
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = uploads, check_for_backend(diesel::pg::Pg))]
pub(crate) struct UploadRow {
    pub id: String,
    pub asset_id: String,
    pub account_id: String,
    pub length: i64,
    pub upload_offset: i64,
    pub expires_at: OffsetDateTime,
    pub state: String,
    pub staging: String,
}

/// The stored name of an upload state.
pub(crate) fn upload_state_name(state: UploadState) -> &'static str {
    match state {
        UploadState::Active => "active",
        UploadState::Completed => "completed",
    }
}

impl TryFrom<&Upload> for UploadRow {
    type Error = RepoError;

    fn try_from(u: &Upload) -> Result<Self, RepoError> {
        Ok(Self {
            id: u.id.as_str().to_owned(),
            asset_id: u.asset_id.as_str().to_owned(),
            account_id: u.account_id.as_str().to_owned(),
            length: to_i64(u.length.get())?,
            upload_offset: to_i64(u.offset)?,
            expires_at: u.expires_at,
            state: upload_state_name(u.state).to_owned(),
            staging: u.staging.as_str().to_owned(),
        })
    }
}

impl TryFrom<UploadRow> for Upload {
    type Error = RepoError;

    fn try_from(row: UploadRow) -> Result<Self, RepoError> {
        let state = match row.state.as_str() {
            "active" => UploadState::Active,
            "completed" => UploadState::Completed,
            other => return Err(corrupt(format!("upload state {other:?}"))),
        };
        Ok(Upload {
            id: stored_id!(UploadId, row.id)?,
            asset_id: stored_id!(AssetId, row.asset_id)?,
            account_id: stored_id!(AccountId, row.account_id)?,
            length: SizeBytes::new(to_u64(row.length, "length")?).map_err(corrupt)?,
            offset: to_u64(row.upload_offset, "offset")?,
            expires_at: row.expires_at,
            state,
            staging: Staging::new(row.staging),
        })
    }
}

/// The stored name of why an upload is gone.
pub(crate) fn gone_reason_name(reason: GoneReason) -> &'static str {
    match reason {
        GoneReason::Terminated => "terminated",
        GoneReason::Expired => "expired",
        GoneReason::Rejected => "rejected",
        GoneReason::AssetDeleted => "asset_deleted",
    }
}

/// Parses a stored tombstone reason.
pub(crate) fn parse_gone_reason(raw: &str) -> Result<GoneReason, RepoError> {
    [
        GoneReason::Terminated,
        GoneReason::Expired,
        GoneReason::Rejected,
        GoneReason::AssetDeleted,
    ]
    .into_iter()
    .find(|r| gone_reason_name(*r) == raw)
    .ok_or_else(|| corrupt(format!("tombstone reason {raw:?}")))
}

/// A purge read back from the outbox (or a deletion's `RETURNING`).
pub(crate) fn purge(
    asset_id: String,
    upload_id: String,
    staging: String,
) -> Result<Purge, RepoError> {
    Ok(Purge {
        asset_id: stored_id!(AssetId, asset_id)?,
        upload_id: stored_id!(UploadId, upload_id)?,
        staging: Staging::new(staging),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use roughy_app::ports::GoneReason;

    #[test]
    fn names_round_trip() {
        for reason in [
            GoneReason::Terminated,
            GoneReason::Expired,
            GoneReason::Rejected,
            GoneReason::AssetDeleted,
        ] {
            assert_eq!(
                parse_gone_reason(gone_reason_name(reason)).ok(),
                Some(reason)
            );
        }
        for kind in [LedgerKind::TopUp, LedgerKind::AssetCharge] {
            assert_eq!(parse_kind(kind_name(kind)).ok(), Some(kind));
        }
    }
}
