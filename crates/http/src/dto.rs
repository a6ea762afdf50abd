//! Wire types: what the API reads and writes, with their OpenAPI schemas.
//! Request bodies become domain commands through one `try_into_domain()` each.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use roughy_app::ports::{DeliveryRecord, TopUpOutcome};
use roughy_app::{CreateAsset, IngestError, Page};
use roughy_domain::time_format::rfc3339;
use roughy_domain::{
    Account, Asset, AssetState, DeliveryState, DirectUpload, EventKind, Language, LedgerEntry,
    MediaType, Origin, Project, ProjectId, ProjectName, SizeBytes, UploadTokens, Webhook,
    WebhookEvent,
};

use crate::extract::encode_cursor;

/// `POST /v1/projects`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectBody {
    /// Optional, 1 to 200 characters, without U+0000.
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00]+$")]
    pub name: Option<String>,
}

impl CreateProjectBody {
    /// The parsed name.
    pub fn try_into_domain(self) -> Result<Option<ProjectName>, IngestError> {
        Ok(self.name.as_deref().map(ProjectName::parse).transpose()?)
    }
}

/// A project.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectDto {
    /// `prj_…`.
    pub id: String,
    /// Its name.
    #[schema(required = true)]
    pub name: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<Project> for ProjectDto {
    fn from(p: Project) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.map(|n| n.as_str().to_owned()),
            created_at: rfc3339(p.created_at),
        }
    }
}

/// A page of projects.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    /// Newest first.
    pub data: Vec<ProjectDto>,
    /// Null exactly when no further item exists.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl From<Page<Project>> for ProjectList {
    fn from(page: Page<Project>) -> Self {
        Self {
            next_cursor: page.next_cursor.as_ref().map(encode_cursor),
            data: page.items.into_iter().map(Into::into).collect(),
        }
    }
}

/// Integer fields as JSON Schema reads them: JSON has one number type, and `1574.0` is the
/// integer 1574 (generated clients and Python's `json` send such numbers). A fraction, or a
/// float past 2^53 where it stops counting exactly, is refused as any non-integer is.
mod json_integer {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer};
    use serde_json::Number;

    /// The largest float that still names one integer exactly.
    const EXACT: f64 = 9_007_199_254_740_992.0;

    fn integral(n: &Number) -> Option<f64> {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (-EXACT..=EXACT).contains(f))
    }

    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "integral() allows only whole floats within 2^53, which u64/i64 hold exactly"
    )]
    pub(super) fn unsigned<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let n = Number::deserialize(d)?;
        n.as_u64()
            .or_else(|| integral(&n).filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or_else(|| D::Error::custom(format!("expected a non-negative integer, not {n}")))
    }

    #[expect(
        clippy::cast_possible_truncation,
        reason = "integral() allows only whole floats within 2^53, which i64 holds exactly"
    )]
    pub(super) fn signed<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let n = Number::deserialize(d)?;
        n.as_i64()
            .or_else(|| integral(&n).map(|f| f as i64))
            .ok_or_else(|| D::Error::custom(format!("expected an integer, not {n}")))
    }
}

/// `POST /v1/assets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAssetBody {
    /// The owning project.
    pub project_id: String,
    /// Exact byte count of the file to upload: 64 to 53687091200.
    #[schema(minimum = 64, maximum = 53_687_091_200_u64)]
    #[serde(deserialize_with = "json_integer::unsigned")]
    pub size_bytes: u64,
    /// Optional ISO 639-1 code (2 letters, normalised to lowercase); null auto-detects.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z]{2}$")]
    pub language: Option<String>,
    /// `true`: the upload URL (`Location`, `upload_url`) carries a signed token
    /// (`?token=…`), and HEAD, PATCH, DELETE and OPTIONS on that exact URL need no
    /// `Authorization`: hand it to a browser instead of the API key. Default `false`.
    #[serde(default)]
    pub direct_upload: bool,
    /// With `direct_upload` only: the one web origin (`https://app.example.com`) that gets CORS
    /// answers for the upload URL. Unset: the service's CORS settings apply.
    #[serde(default)]
    #[schema(
        example = "https://app.example.com",
        max_length = 300,
        pattern = "^[Hh][Tt][Tt][Pp][Ss]?://([0-9A-Za-z.-]{1,253}|\\[[0-9A-Fa-f:.]{1,251}\\])(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[0-5]?[0-9]{1,4}))?/?$"
    )]
    pub cors_origin: Option<String>,
}

impl CreateAssetBody {
    /// The create command.
    pub fn try_into_domain(self) -> Result<CreateAsset, IngestError> {
        let project_id = ProjectId::parse(&self.project_id).ok_or(IngestError::ProjectNotFound)?;
        let size = SizeBytes::new(self.size_bytes)?;
        let language = self.language.as_deref().map(Language::parse).transpose()?;
        let cors_origin = self
            .cors_origin
            .as_deref()
            .map(Origin::parse)
            .transpose()
            .map_err(|e| IngestError::Validation {
                field: "cors_origin",
                message: e.to_string(),
            })?;
        let direct = match (self.direct_upload, cors_origin) {
            (false, None) => None,
            (true, cors_origin) => Some(DirectUpload { cors_origin }),
            (false, Some(_)) => {
                return Err(IngestError::Validation {
                    field: "cors_origin",
                    message: "cors_origin needs direct_upload: true".to_owned(),
                })
            }
        };
        Ok(CreateAsset {
            project_id,
            size,
            language,
            direct,
        })
    }
}

/// Audio or video.
#[derive(Debug, Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum AssetTypeDto {
    /// Audio only.
    Audio,
    /// Video.
    Video,
}

/// Lifecycle state.
#[derive(Debug, Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum AssetStateDto {
    /// Bytes are uploading.
    PendingUpload,
    /// Being measured and billed.
    Processing,
    /// Measured; the balance did not cover the charge.
    PendingPayment,
    /// Measured and paid for.
    Ready,
    /// Preparation failed; never charged.
    Failed,
}

impl From<AssetState> for AssetStateDto {
    fn from(s: AssetState) -> Self {
        match s {
            AssetState::PendingUpload => Self::PendingUpload,
            AssetState::Processing => Self::Processing,
            AssetState::PendingPayment => Self::PendingPayment,
            AssetState::Ready => Self::Ready,
            AssetState::Failed => Self::Failed,
        }
    }
}

/// An asset.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetDto {
    /// `ast_…`.
    pub id: String,
    /// The owning project.
    pub project_id: String,
    /// From the bytes, once the first chunk arrived.
    #[serde(rename = "type")]
    #[schema(required = true)]
    pub media_type: Option<AssetTypeDto>,
    /// Lifecycle state.
    pub state: AssetStateDto,
    /// File extension without the dot, from the bytes.
    #[schema(required = true)]
    pub extension: Option<String>,
    /// Stored size; null while `pending_upload`.
    #[schema(required = true)]
    pub size_bytes: Option<u64>,
    /// MIME type, from the bytes.
    #[schema(required = true)]
    pub content_type: Option<String>,
    /// Seconds with exactly 3 fraction digits (`"250.480"`); set in `ready` and `pending_payment`.
    #[schema(
        required = true,
        pattern = r"^(?!^[-+.]*$)[+-]?0*\d*\.?\d*$",
        example = "250.480"
    )]
    pub duration_seconds: Option<String>,
    /// ISO 639-1, immutable.
    #[schema(required = true)]
    pub language: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// Set only when `failed`.
    #[schema(required = true)]
    pub error_code: Option<String>,
    /// Set only when `failed`.
    #[schema(required = true)]
    pub error_message: Option<String>,
    /// Absolute TUS URL while `pending_upload`; null after.
    #[schema(required = true)]
    pub upload_url: Option<String>,
}

/// What absolute upload URLs are made of: the public base URL, and the tokens of direct
/// uploads.
#[derive(Clone, Copy, Debug)]
pub struct Urls<'a> {
    /// `ROUGHY_PUBLIC_URL`, or the request's.
    pub base: &'a str,
    /// Direct uploads' token minting.
    pub tokens: &'a UploadTokens,
}

impl Urls<'_> {
    /// The absolute TUS URL of an asset's upload; a direct upload's carries its token.
    pub fn upload(&self, asset: &Asset) -> String {
        let url = format!("{}/v1/uploads/{}", self.base, asset.upload_id);
        match &asset.direct {
            Some(direct) => format!("{url}?token={}", self.tokens.mint(&asset.upload_id, direct)),
            None => url,
        }
    }
}

impl AssetDto {
    /// The wire form; `urls` make `upload_url`.
    pub fn new(asset: &Asset, urls: Urls<'_>) -> Self {
        let format = asset.format;
        Self {
            id: asset.id.to_string(),
            project_id: asset.project_id.to_string(),
            media_type: format.map(|f| match f.media_type() {
                MediaType::Audio => AssetTypeDto::Audio,
                MediaType::Video => AssetTypeDto::Video,
            }),
            state: asset.state.into(),
            extension: format.map(|f| f.extension().to_owned()),
            size_bytes: asset.size_bytes,
            content_type: format.map(|f| f.content_type().to_owned()),
            duration_seconds: asset.duration.map(|d| d.to_string()),
            language: asset.language.as_ref().map(|l| l.as_str().to_owned()),
            created_at: rfc3339(asset.created_at),
            error_code: asset.failure.as_ref().map(|f| f.code.clone()),
            error_message: asset.failure.as_ref().map(|f| f.message.clone()),
            upload_url: (asset.state == AssetState::PendingUpload).then(|| urls.upload(asset)),
        }
    }
}

/// An asset with its download link (`GET /v1/assets/{id}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetDetailDto {
    /// The asset.
    #[serde(flatten)]
    pub asset: AssetDto,
    /// Short-lived signed URL; only when `ready`.
    #[schema(required = true)]
    pub download_url: Option<String>,
    /// True exactly when `ready`.
    pub cuttable: bool,
}

/// A page of assets.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetList {
    /// Newest first.
    pub data: Vec<AssetDto>,
    /// Null exactly when no further item exists.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl AssetList {
    /// The wire form of a page.
    pub fn new(page: Page<Asset>, urls: Urls<'_>) -> Self {
        Self {
            next_cursor: page.next_cursor.as_ref().map(encode_cursor),
            data: page.items.iter().map(|a| AssetDto::new(a, urls)).collect(),
        }
    }
}

/// `GET /v1/credits`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceDto {
    /// Credits available.
    pub balance: i64,
}

/// Ledger entry kind.
#[derive(Debug, Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKindDto {
    /// Credits added.
    TopUp,
    /// The one-time charge of an asset.
    AssetCharge,
}

/// A credit ledger entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerEntryDto {
    /// `led_…`.
    pub id: String,
    /// What it was.
    pub kind: LedgerKindDto,
    /// Signed: positive credits a top-up, negative a charge.
    pub amount: i64,
    /// The balance right after.
    pub balance_after: i64,
    /// The charged asset.
    #[schema(required = true)]
    pub asset_id: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<LedgerEntry> for LedgerEntryDto {
    fn from(e: LedgerEntry) -> Self {
        Self {
            id: e.id.to_string(),
            kind: match e.kind {
                roughy_domain::LedgerKind::TopUp => LedgerKindDto::TopUp,
                roughy_domain::LedgerKind::AssetCharge => LedgerKindDto::AssetCharge,
            },
            amount: e.amount,
            balance_after: e.balance_after,
            asset_id: e.asset_id.map(|a| a.to_string()),
            created_at: rfc3339(e.created_at),
        }
    }
}

impl From<TopUpOutcome> for LedgerEntryDto {
    fn from(o: TopUpOutcome) -> Self {
        o.entry.into()
    }
}

/// A page of ledger entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerList {
    /// Newest first.
    pub data: Vec<LedgerEntryDto>,
    /// Null exactly when no further item exists.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl From<Page<LedgerEntry>> for LedgerList {
    fn from(page: Page<LedgerEntry>) -> Self {
        Self {
            next_cursor: page.next_cursor.as_ref().map(encode_cursor),
            data: page.items.into_iter().map(Into::into).collect(),
        }
    }
}

/// `POST /admin/v1/accounts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountBody {
    /// Optional display name.
    pub name: Option<String>,
}

/// An account.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDto {
    /// `acc_…`.
    pub id: String,
    /// Display name.
    #[schema(required = true)]
    pub name: Option<String>,
    /// Credits.
    pub balance: i64,
    /// RFC 3339.
    pub created_at: String,
}

impl AccountDto {
    /// The wire form.
    pub fn new(a: Account, balance: i64) -> Self {
        Self {
            id: a.id.to_string(),
            name: a.name,
            balance,
            created_at: rfc3339(a.created_at),
        }
    }
}

/// A minted API key: the secret is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyDto {
    /// `key_…` (use it to revoke).
    pub id: String,
    /// The secret `sk_…`.
    pub key: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /admin/v1/accounts/{id}/top-ups`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUpBody {
    /// 1 to 10^9.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "json_integer::signed")]
    pub credits: i64,
}

// ---------------------------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------------------------

/// An event a webhook can subscribe to.
#[derive(Debug, Serialize, Deserialize, ToSchema, Clone, Copy)]
pub enum EventKindDto {
    /// Measured and paid for.
    #[serde(rename = "asset.ready")]
    AssetReady,
    /// Measured; waiting for credits.
    #[serde(rename = "asset.pending_payment")]
    AssetPendingPayment,
    /// Preparation failed for good.
    #[serde(rename = "asset.failed")]
    AssetFailed,
    /// Deleted (itself, with its project, or its upload terminated).
    #[serde(rename = "asset.deleted")]
    AssetDeleted,
    /// Its upload stayed idle past its expiry; the asset is gone.
    #[serde(rename = "upload.expired")]
    UploadExpired,
    /// Its first chunk was not audio or video; the asset is gone.
    #[serde(rename = "upload.rejected")]
    UploadRejected,
}

/// `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookBody {
    /// Where deliveries are POSTed: an absolute http or https URL without credentials, at most
    /// 2048 bytes, that does not resolve to a private, loopback or link-local address.
    #[schema(
        max_length = 2048,
        format = "uri",
        example = "https://app.example.com/hooks/roughy"
    )]
    pub url: String,
    /// One or more events to receive.
    #[schema(value_type = Vec<EventKindDto>, min_items = 1)]
    pub events: Vec<String>,
}

/// A webhook endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDto {
    /// `whk_…`.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// What it receives.
    #[schema(value_type = Vec<EventKindDto>)]
    pub events: Vec<&'static str>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&Webhook> for WebhookDto {
    fn from(w: &Webhook) -> Self {
        Self {
            id: w.id.to_string(),
            url: w.url.as_str().to_owned(),
            events: w.events.iter().map(|e| e.as_str()).collect(),
            created_at: rfc3339(w.created_at),
        }
    }
}

/// A webhook endpoint just registered, with its signing secret (shown only here).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhookDto {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: WebhookDto,
    /// `whsec_…`: the HMAC-SHA256 key of the `Roughy-Signature` header. Store it; it is not
    /// shown again.
    pub secret: String,
}

/// The caller's webhook endpoints, oldest first (at most 20).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub data: Vec<WebhookDto>,
}

/// Where a delivery is.
#[derive(Debug, Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStateDto {
    /// Waiting for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// 24 hours of retries passed without a 2xx.
    Failed,
}

impl From<DeliveryState> for DeliveryStateDto {
    fn from(s: DeliveryState) -> Self {
        match s {
            DeliveryState::Pending => Self::Pending,
            DeliveryState::Delivered => Self::Delivered,
            DeliveryState::Failed => Self::Failed,
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptDto {
    /// RFC 3339: when it started.
    pub at: String,
    /// The receiver's status code; null when it did not answer.
    #[schema(required = true)]
    pub status: Option<u16>,
    /// Why it did not answer (refused, timed out, …); null when it answered.
    #[schema(required = true)]
    pub error: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
}

/// An event's delivery to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDto {
    /// `dlv_…`.
    pub id: String,
    /// `evt_…`: the event's id, the same in every attempt (the body's `id`).
    pub event_id: String,
    /// The event.
    pub event_type: EventKindDto,
    /// The asset it is about.
    pub asset_id: String,
    /// RFC 3339: when the event happened.
    pub created_at: String,
    /// Where it is.
    pub state: DeliveryStateDto,
    /// RFC 3339: when the next attempt is due; null unless `pending`.
    #[schema(required = true)]
    pub next_attempt_at: Option<String>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptDto>,
}

fn event_kind_dto(kind: EventKind) -> EventKindDto {
    match kind {
        EventKind::AssetReady => EventKindDto::AssetReady,
        EventKind::AssetPendingPayment => EventKindDto::AssetPendingPayment,
        EventKind::AssetFailed => EventKindDto::AssetFailed,
        EventKind::AssetDeleted => EventKindDto::AssetDeleted,
        EventKind::UploadExpired => EventKindDto::UploadExpired,
        EventKind::UploadRejected => EventKindDto::UploadRejected,
    }
}

impl From<&DeliveryRecord> for DeliveryDto {
    fn from(r: &DeliveryRecord) -> Self {
        let d = &r.delivery;
        Self {
            id: d.id.to_string(),
            event_id: d.event.id.to_string(),
            event_type: event_kind_dto(d.event.kind),
            asset_id: d.event.asset.id.to_string(),
            created_at: rfc3339(d.event.created_at),
            state: d.state.into(),
            next_attempt_at: (d.state == DeliveryState::Pending)
                .then(|| rfc3339(d.next_attempt_at)),
            attempts: r
                .attempts
                .iter()
                .map(|a| AttemptDto {
                    at: rfc3339(a.at),
                    status: a.status,
                    error: a.error.clone(),
                    duration_ms: a.duration_ms,
                })
                .collect(),
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest event first.
    pub data: Vec<DeliveryDto>,
    /// Null exactly when no further item exists.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl From<Page<DeliveryRecord>> for DeliveryList {
    fn from(page: Page<DeliveryRecord>) -> Self {
        Self {
            next_cursor: page.next_cursor.as_ref().map(encode_cursor),
            data: page.items.iter().map(DeliveryDto::from).collect(),
        }
    }
}

/// The asset in an event: as `GET /v1/assets/{id}` shows it, without `download_url`.
/// `upload_url` is always null: no event is about an upload that can still be written.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventAssetDto {
    /// The asset.
    #[serde(flatten)]
    pub asset: AssetDto,
    /// True exactly when `ready`.
    pub cuttable: bool,
}

/// The JSON body of every delivery: the same bytes in every attempt of one event.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEventDto {
    /// `evt_…`: dedupe on it (a delivery may arrive more than once).
    pub id: String,
    /// The event.
    #[serde(rename = "type")]
    pub kind: EventKindDto,
    /// RFC 3339: when the change happened.
    pub created_at: String,
    /// The asset right after the change (right before it, for a deletion).
    pub asset: EventAssetDto,
}

impl From<&WebhookEvent> for WebhookEventDto {
    fn from(e: &WebhookEvent) -> Self {
        let mut asset = AssetDto::new(
            &e.asset,
            Urls {
                base: "",
                tokens: &UploadTokens::new(Vec::new()),
            },
        );
        // No event is about an upload that can still be written.
        asset.upload_url = None;
        Self {
            id: e.id.to_string(),
            kind: event_kind_dto(e.kind),
            created_at: rfc3339(e.created_at),
            asset: EventAssetDto {
                asset,
                cuttable: e.asset.cuttable(),
            },
        }
    }
}
