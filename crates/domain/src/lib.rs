#![doc = include_str!("../README.md")]

pub mod account;
pub mod asset;
pub mod billing;
pub mod direct;
pub mod idempotency;
pub mod ids;
pub mod media;
pub mod project;
pub mod time_format;
pub mod tus;
pub mod values;
pub mod webhook;

pub use account::{AdminToken, ApiKeySecret, KeyHash};
pub use asset::{Asset, AssetFailure, AssetState, TransitionError};
pub use billing::{Credits, LedgerEntry, LedgerKind, Settlement};
pub use direct::{DirectUpload, Origin, UploadTokens};
pub use idempotency::{ClaimId, Fingerprint, IdempotencyKey, KeyRecord, StoredResponse, Verdict};
pub use ids::{
    AccountId, ApiKeyId, AssetId, DeliveryId, EventId, LedgerEntryId, ProjectId, UploadId,
    WebhookId,
};
pub use media::{MediaFormat, MediaType};
pub use project::{Account, ApiKey, Project};
pub use tus::{PatchStart, Staging, Upload, UploadState, UploadTransitionError};
pub use values::{DurationMs, Language, ProjectName, SizeBytes, ValueError};
pub use webhook::{
    Attempt, Delivery, DeliveryState, EventKind, Webhook, WebhookError, WebhookEvent,
    WebhookSecret, WebhookUrl,
};
