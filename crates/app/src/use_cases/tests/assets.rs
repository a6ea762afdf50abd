//! `create_asset`, `delete_asset`, `delete_project` and download links.

use roughy_domain::{
    AccountId, Asset, AssetId, AssetState, Language, MediaFormat, Project, ProjectId, SizeBytes,
    Staging, Upload, UploadId, UploadState,
};

use super::{Harness, DOWNLOAD_TTL, NOW, UPLOAD_TTL};
use crate::error::IngestError;
use crate::ports::{BlobError, Purge, RepoError, SignedDownload};
use crate::CreateAsset;

fn command(project: &ProjectId) -> CreateAsset {
    CreateAsset {
        project_id: project.clone(),
        size: SizeBytes::new(5_000).expect("valid"),
        language: Some(Language::parse("DE").expect("valid")),
        direct: None,
    }
}

fn project_of(account: &AccountId, id: &ProjectId) -> Project {
    Project {
        id: id.clone(),
        account_id: account.clone(),
        name: None,
        created_at: NOW,
    }
}

/// The caller's project is found (at most once: the order of the checks is free).
fn expect_project(h: &mut Harness, account: &AccountId, project: &ProjectId, found: bool) {
    let (account, id) = (account.clone(), project.clone());
    let answer = found.then(|| project_of(&account, &id));
    h.projects
        .expect_get_project()
        .withf(move |a, p| *a == account && *p == id)
        .times(0..=1)
        .returning(move |_, _| Ok(answer.clone()));
}

/// The caller's balance (read at most once).
fn expect_balance(h: &mut Harness, account: &AccountId, balance: i64) {
    let account = account.clone();
    h.accounts
        .expect_balance()
        .withf(move |a| *a == account)
        .times(0..=1)
        .returning(move |_| Ok(balance));
}

#[tokio::test]
async fn create_asset_refuses_a_zero_balance_and_creates_nothing() {
    for balance in [0, -3] {
        let mut h = Harness::new();
        let (account, project) = (AccountId::generate(), ProjectId::generate());
        expect_project(&mut h, &account, &project, true);
        expect_balance(&mut h, &account, balance);
        h.assets.expect_create_asset().never();

        let err = h
            .build()
            .create_asset(&account, command(&project))
            .await
            .expect_err("no credits");

        assert!(
            matches!(err, IngestError::InsufficientCredits),
            "balance {balance}: {err:?}"
        );
    }
}

#[tokio::test]
async fn create_asset_refuses_a_project_that_is_not_the_callers() {
    let mut h = Harness::new();
    let (account, project) = (AccountId::generate(), ProjectId::generate());
    expect_project(&mut h, &account, &project, false);
    expect_balance(&mut h, &account, 10);
    h.assets.expect_create_asset().never();

    let err = h
        .build()
        .create_asset(&account, command(&project))
        .await
        .expect_err("no such project");

    assert!(matches!(err, IngestError::ProjectNotFound), "{err:?}");
}

#[tokio::test]
async fn project_deleted_before_the_insert_answers_project_not_found() {
    let mut h = Harness::new();
    let (account, project) = (AccountId::generate(), ProjectId::generate());
    expect_project(&mut h, &account, &project, true);
    expect_balance(&mut h, &account, 10);
    h.assets
        .expect_create_asset()
        .times(1)
        .returning(|_, _, _| Err(RepoError::NotFound));

    let err = h
        .build()
        .create_asset(&account, command(&project))
        .await
        .expect_err("project deleted meanwhile");

    assert!(matches!(err, IngestError::ProjectNotFound), "{err:?}");
}

#[tokio::test]
async fn unavailable_repository_answers_unavailable() {
    let mut h = Harness::new();
    let (account, project) = (AccountId::generate(), ProjectId::generate());
    expect_project(&mut h, &account, &project, true);
    expect_balance(&mut h, &account, 10);
    h.assets
        .expect_create_asset()
        .times(1)
        .returning(|_, _, _| Err(RepoError::Unavailable("pool timed out".into())));

    let err = h
        .build()
        .create_asset(&account, command(&project))
        .await
        .expect_err("database down");

    assert!(
        matches!(&err, IngestError::Unavailable(m) if m.message() == "pool timed out"),
        "{err:?}"
    );
}

#[tokio::test]
async fn unavailable_balance_answers_unavailable_and_creates_nothing() {
    let mut h = Harness::new();
    let (account, project) = (AccountId::generate(), ProjectId::generate());
    expect_project(&mut h, &account, &project, true);
    h.accounts
        .expect_balance()
        .times(0..=1)
        .returning(|_| Err(RepoError::Unavailable("pool timed out".into())));
    h.assets.expect_create_asset().never();

    let err = h
        .build()
        .create_asset(&account, command(&project))
        .await
        .expect_err("database down");

    assert!(matches!(err, IngestError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn create_asset_stores_a_pending_asset_and_its_upload_together() {
    let mut h = Harness::new();
    let (account, project) = (AccountId::generate(), ProjectId::generate());
    expect_project(&mut h, &account, &project, true);
    expect_balance(&mut h, &account, 1);
    let (a, p) = (account.clone(), project.clone());
    h.assets
        .expect_create_asset()
        .withf(move |asset: &Asset, upload: &Upload, _| {
            asset.account_id == a
                && asset.project_id == p
                && asset.state == AssetState::PendingUpload
                && asset.format.is_none()
                && asset.size_bytes.is_none()
                && asset.duration.is_none()
                && asset.failure.is_none()
                && asset.declared_size.get() == 5_000
                && asset.language.as_ref().map(Language::as_str) == Some("de")
                && asset.created_at == NOW
                && upload.id == asset.upload_id
                && upload.asset_id == asset.id
                && upload.account_id == a
                && upload.length.get() == 5_000
                && upload.offset == 0
                && upload.expires_at == NOW + UPLOAD_TTL
                && upload.state == UploadState::Active
                && upload.staging.is_empty()
        })
        .times(1)
        .returning(|_, _, _| Ok(()));

    let (asset, upload) = h
        .build()
        .create_asset(&account, command(&project))
        .await
        .expect("created");

    assert_eq!(asset.state, AssetState::PendingUpload);
    assert_eq!(upload.id, asset.upload_id);
    assert_eq!(upload.expires_at, NOW + UPLOAD_TTL);
}

#[tokio::test]
async fn deleting_an_asset_purges_its_staged_bytes_and_its_object() {
    let mut h = Harness::new();
    h.uploads_unlocked();
    let (account, asset, upload) = (
        AccountId::generate(),
        AssetId::generate(),
        UploadId::generate(),
    );
    let purge = Purge {
        asset_id: asset.clone(),
        upload_id: upload.clone(),
        staging: Staging::new("mpu-1"),
    };
    h.expect_purge(&purge);
    let (a, id) = (account.clone(), asset.clone());
    h.assets
        .expect_delete_asset()
        .withf(move |acc, i, at| *acc == a && *i == id && *at == NOW)
        .times(1)
        .returning(move |_, _, _| Ok(Some(purge.clone())));

    h.build()
        .delete_asset(&account, &asset)
        .await
        .expect("deleted");
}

#[tokio::test]
async fn deleting_a_missing_asset_answers_not_found_and_purges_nothing() {
    let mut h = Harness::new();
    h.assets
        .expect_delete_asset()
        .times(1)
        .returning(|_, _, _| Ok(None));
    h.expect_no_purge();

    let err = h
        .build()
        .delete_asset(&AccountId::generate(), &AssetId::generate())
        .await
        .expect_err("missing");

    assert!(matches!(err, IngestError::NotFound), "{err:?}");
}

#[tokio::test]
async fn a_failed_purge_does_not_fail_the_delete() {
    let mut h = Harness::new();
    h.uploads_unlocked();
    let purge = Purge {
        asset_id: AssetId::generate(),
        upload_id: UploadId::generate(),
        staging: Staging::default(),
    };
    h.assets
        .expect_delete_asset()
        .times(1)
        .returning(move |_, _, _| Ok(Some(purge.clone())));
    h.blobs
        .expect_abort_upload()
        .times(1)
        .returning(|_, _| Err(crate::ports::BlobError::Unavailable("s3 down".into())));
    h.blobs
        .expect_delete_object()
        .times(1)
        .returning(|_| Err(crate::ports::BlobError::Unavailable("s3 down".into())));

    h.build()
        .delete_asset(&AccountId::generate(), &AssetId::generate())
        .await
        .expect("the rows are gone; the bytes are purged later");
}

#[tokio::test]
async fn deleting_a_project_purges_every_asset_it_deleted() {
    let mut h = Harness::new();
    h.uploads_unlocked();
    let (account, project) = (AccountId::generate(), ProjectId::generate());
    let purges: Vec<Purge> = (0..3)
        .map(|i| Purge {
            asset_id: AssetId::generate(),
            upload_id: UploadId::generate(),
            staging: Staging::new(format!("mpu-{i}")),
        })
        .collect();
    for purge in &purges {
        h.expect_purge(purge);
    }
    let (a, p) = (account.clone(), project.clone());
    h.projects
        .expect_delete_project()
        .withf(move |acc, id, at| *acc == a && *id == p && *at == NOW)
        .times(1)
        .returning(move |_, _, _| Ok(Some(purges.clone())));

    h.build()
        .delete_project(&account, &project)
        .await
        .expect("deleted");
}

#[tokio::test]
async fn deleting_a_missing_project_answers_not_found() {
    let mut h = Harness::new();
    h.projects
        .expect_delete_project()
        .times(1)
        .returning(|_, _, _| Ok(None));
    h.expect_no_purge();

    let err = h
        .build()
        .delete_project(&AccountId::generate(), &ProjectId::generate())
        .await
        .expect_err("missing");

    assert!(matches!(err, IngestError::NotFound), "{err:?}");
}

fn asset_in(state: AssetState, format: Option<MediaFormat>) -> Asset {
    Asset {
        state,
        format,
        ..Asset::new(
            AccountId::generate(),
            ProjectId::generate(),
            SizeBytes::new(64).expect("valid"),
            None,
            NOW,
        )
    }
}

#[tokio::test]
async fn download_link_is_offered_only_for_ready_assets_and_expires_after_the_download_ttl() {
    let ingest = Harness::new().build();
    let ready = asset_in(AssetState::Ready, Some(MediaFormat::Mp3));

    let link = ingest
        .download_link("https://api.example", &ready)
        .await
        .expect("signed");

    assert_eq!(
        link,
        Some(format!(
            "https://api.example/v1/downloads/{}.mp3?signed={}&expires={}",
            ready.id,
            NOW.unix_timestamp(),
            (NOW + DOWNLOAD_TTL).unix_timestamp()
        ))
    );
    for state in AssetState::ALL
        .into_iter()
        .filter(|s| *s != AssetState::Ready)
    {
        let asset = asset_in(state, Some(MediaFormat::Mp3));
        assert_eq!(
            ingest
                .download_link("https://api.example", &asset)
                .await
                .expect("nothing to sign"),
            None,
            "{state:?}"
        );
    }
}

#[tokio::test]
async fn a_link_that_cannot_be_signed_is_an_error_not_a_missing_link() {
    let mut h = Harness::new();
    h.links.failure = Some(|| BlobError::Unavailable("no credentials".into()));
    let ingest = h.build();

    let err = ingest
        .download_link(
            "https://api.example",
            &asset_in(AssetState::Ready, Some(MediaFormat::Wav)),
        )
        .await
        .expect_err("signing failed");
    assert!(
        matches!(&err, IngestError::Unavailable(m) if m.message() == "no credentials"),
        "{err:?}"
    );

    // Nothing to sign for an asset that is not ready: the adapter is not asked.
    let pending = asset_in(AssetState::Processing, Some(MediaFormat::Wav));
    assert_eq!(
        ingest
            .download_link("https://api.example", &pending)
            .await
            .expect("no link"),
        None
    );
}

#[tokio::test]
async fn tampered_or_expired_download_link_is_refused_without_touching_storage() {
    let mut h = Harness::new();
    h.links.authentic = false;
    h.blobs.expect_object_size().never();

    let link = SignedDownload {
        asset_id: AssetId::generate(),
        format: MediaFormat::Wav,
        expires: NOW.unix_timestamp(),
        signature: "forged".into(),
    };
    let err = h.build().open_download(&link).await.expect_err("forged");

    assert!(matches!(err, IngestError::InvalidSignature), "{err:?}");
}

#[tokio::test]
async fn authentic_download_link_answers_the_object_size() {
    let mut h = Harness::new();
    let asset = AssetId::generate();
    let id = asset.clone();
    h.blobs
        .expect_object_size()
        .withf(move |a| *a == id)
        .times(1)
        .returning(|_| Ok(4_096));

    let link = SignedDownload {
        asset_id: asset,
        format: MediaFormat::Wav,
        expires: NOW.unix_timestamp() + 60,
        signature: "good".into(),
    };
    let size = h.build().open_download(&link).await.expect("authentic");

    assert_eq!(size, 4_096);
}
