//! Accounts, API keys and projects: the tenancy around assets.

use time::OffsetDateTime;

use crate::account::KeyHash;
use crate::ids::{AccountId, ApiKeyId, ProjectId};
use crate::values::ProjectName;

/// A tenant. Its balance lives in the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Optional display name.
    pub name: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// An API key: stored as the hash of its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The account it acts for.
    pub account_id: AccountId,
    /// SHA-256 of the secret.
    pub hash: KeyHash,
    /// Creation time.
    pub created_at: OffsetDateTime,
}

/// A project: groups an account's assets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// The owning account.
    pub account_id: AccountId,
    /// Optional name.
    pub name: Option<ProjectName>,
    /// Creation time.
    pub created_at: OffsetDateTime,
}
