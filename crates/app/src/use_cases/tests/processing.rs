//! `process_next_job`: measure, then settle once; broken media fails and is never charged.

use mockall::Sequence;

use roughy_domain::{
    AccountId, Asset, AssetFailure, AssetState, DurationMs, MediaFormat, ProjectId, SizeBytes,
    Staging, Upload,
};

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    completed_upload, FakeReader, Harness, Journal, JOB_LEASE, JOB_MAX_ATTEMPTS, JOB_RETRY_DELAY,
    JOB_RETRY_MAX_DELAY, NOW,
};
use crate::error::IngestError;
use crate::ports::{
    BlobError, BlobReader, Job, JobOutcome, MediaInfo, MediaInspector, ProbeError, RepoError,
};
use crate::use_cases::processing::{PROCESSING_FAILED, REPOSITORY_RETRY_PAUSES};

/// A claimed job for a `processing` asset sniffed as `sniffed`, with its completed upload.
fn job(sniffed: Option<MediaFormat>) -> Job {
    let mut asset = Asset::new(
        AccountId::generate(),
        ProjectId::generate(),
        SizeBytes::new(4_096).expect("valid"),
        None,
        NOW,
    );
    asset.state = AssetState::Processing;
    asset.format = sniffed;
    asset.size_bytes = Some(4_096);
    let upload = Upload {
        id: asset.upload_id.clone(),
        asset_id: asset.id.clone(),
        staging: Staging::new("mpu-7;parts=1:e1,2:e2"),
        ..completed_upload(&asset.account_id, 4_096)
    };
    Job {
        asset,
        upload,
        attempts: 0,
        lease: "lease-1".into(),
    }
}

fn corrupt() -> AssetFailure {
    AssetFailure {
        code: "media_corrupt".into(),
        message: "no sync word in the first 4 KiB".into(),
    }
}

/// The job is claimed once, with the configured lease, at now.
fn expect_claim(h: &mut Harness, job: &Job) {
    let job = job.clone();
    h.jobs
        .expect_claim_job()
        .withf(|now, lease| *now == NOW && *lease == JOB_LEASE)
        .times(1)
        .returning(move |_, _| Ok(Some(job.clone())));
}

/// The job's upload is completed into the object once, then the object opens once.
fn expect_object(h: &mut Harness, job: &Job) {
    let mut seq = Sequence::new();
    let upload = job.upload.clone();
    h.blobs
        .expect_complete_upload()
        .withf(move |u| *u == upload)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|u| Ok(u.length.get()));
    let asset = job.asset.id.clone();
    h.blobs
        .expect_open_reader()
        .withf(move |a| *a == asset)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Box::new(FakeReader::default()) as Box<dyn BlobReader>));
}

/// The job's upload is completed into the object once and answers `answer`.
fn expect_completing(h: &mut Harness, job: &Job, answer: fn() -> Result<u64, BlobError>) {
    let upload = job.upload.clone();
    h.blobs
        .expect_complete_upload()
        .withf(move |u| *u == upload)
        .times(1)
        .returning(move |_| answer());
}

/// The probe runs once on the sniffed format and answers `answer`.
fn expect_probe(
    h: &mut Harness,
    sniffed: MediaFormat,
    answer: impl Fn() -> Result<MediaInfo, ProbeError> + Send + 'static,
) {
    h.media
        .expect_probe()
        .withf(move |_, format| *format == sniffed)
        .times(1)
        .returning(move |_, _| answer());
}

/// The job completes once with exactly `outcome`, and the asset ends up in `state`.
fn expect_completion(h: &mut Harness, job: &Job, outcome: JobOutcome, state: AssetState) {
    let job = job.clone();
    h.jobs
        .expect_complete_job()
        .withf(move |j, o, at| *j == job && *o == outcome && *at == NOW)
        .times(1)
        .returning(move |_, _, _| Ok(Some(state)));
    h.jobs.expect_release_job().never();
}

#[tokio::test]
async fn no_queued_job_means_no_work() {
    let mut h = Harness::new();
    h.jobs
        .expect_claim_job()
        .times(1)
        .returning(|_, _| Ok(None));
    h.blobs.expect_complete_upload().never();
    h.blobs.expect_open_reader().never();
    h.jobs.expect_complete_job().never();

    assert!(!h.build().process_next_job().await.expect("ran"));
}

#[tokio::test]
async fn broken_media_fails_the_asset_and_is_never_measured_so_never_charged() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Mp3));
    expect_claim(&mut h, &job);
    expect_object(&mut h, &job);
    expect_probe(&mut h, MediaFormat::Mp3, || {
        Err(ProbeError::Media(corrupt()))
    });
    expect_completion(
        &mut h,
        &job,
        JobOutcome::Failed(corrupt()),
        AssetState::Failed,
    );

    assert!(h.build().process_next_job().await.expect("ran"));
}

#[tokio::test]
async fn transient_probe_failure_gives_the_job_back_without_settling() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Wav));
    expect_claim(&mut h, &job);
    expect_object(&mut h, &job);
    expect_probe(&mut h, MediaFormat::Wav, || {
        Err(ProbeError::Transient("read timed out".into()))
    });
    let released = job.clone();
    h.jobs
        .expect_release_job()
        .withf(move |j, retry_at| *j == released && *retry_at == NOW + JOB_RETRY_DELAY)
        .times(1)
        .returning(|_, _| Ok(()));
    h.jobs.expect_complete_job().never();

    assert!(h.build().process_next_job().await.expect("ran"));
}

#[tokio::test]
async fn unavailable_blob_store_gives_the_job_back_without_probing() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Wav));
    expect_claim(&mut h, &job);
    expect_completing(&mut h, &job, || Ok(4_096));
    h.blobs
        .expect_open_reader()
        .times(1)
        .returning(|_| Err(BlobError::Unavailable("s3 down".into())));
    h.media.expect_probe().never();
    let released = job.clone();
    h.jobs
        .expect_release_job()
        .withf(move |j, retry_at| *j == released && *retry_at == NOW + JOB_RETRY_DELAY)
        .times(1)
        .returning(|_, _| Ok(()));
    h.jobs.expect_complete_job().never();

    assert!(h.build().process_next_job().await.expect("ran"));
}

#[tokio::test]
async fn missing_object_fails_the_asset_as_unreadable() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Flac));
    expect_claim(&mut h, &job);
    expect_completing(&mut h, &job, || Ok(4_096));
    h.blobs
        .expect_open_reader()
        .times(1)
        .returning(|_| Err(BlobError::NotFound));
    h.media.expect_probe().never();
    let completed = job.clone();
    h.jobs
        .expect_complete_job()
        .withf(move |j, outcome, at| {
            *j == completed
                && *at == NOW
                && matches!(outcome, JobOutcome::Failed(f) if f.code == "media_unreadable")
        })
        .times(1)
        .returning(|_, _, _| Ok(Some(AssetState::Failed)));
    h.jobs.expect_release_job().never();

    assert!(h.build().process_next_job().await.expect("ran"));
}

#[tokio::test]
async fn measured_media_settles_its_duration_without_a_format_change() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Wav));
    let duration = DurationMs::from_millis(250_480);
    expect_claim(&mut h, &job);
    expect_object(&mut h, &job);
    expect_probe(&mut h, MediaFormat::Wav, move || {
        Ok(MediaInfo {
            duration,
            format: MediaFormat::Wav,
        })
    });
    expect_completion(
        &mut h,
        &job,
        JobOutcome::Measured {
            duration,
            format: None,
        },
        AssetState::Ready,
    );

    assert!(h.build().process_next_job().await.expect("ran"));
}

#[tokio::test]
async fn matroska_without_video_is_settled_with_the_refined_audio_format() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Mkv));
    let duration = DurationMs::from_millis(61_000);
    expect_claim(&mut h, &job);
    expect_object(&mut h, &job);
    expect_probe(&mut h, MediaFormat::Mkv, move || {
        Ok(MediaInfo {
            duration,
            format: MediaFormat::Mka,
        })
    });
    // The object is given the refined Content-Type before the asset is settled.
    let mut seq = mockall::Sequence::new();
    let asset = job.asset.id.clone();
    h.blobs
        .expect_retype()
        .withf(move |id, format| *id == asset && *format == MediaFormat::Mka)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(()));
    h.jobs
        .expect_complete_job()
        .withf(move |_, outcome, _| {
            *outcome
                == JobOutcome::Measured {
                    duration,
                    format: Some(MediaFormat::Mka),
                }
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _, _| Ok(Some(AssetState::PendingPayment)));

    assert!(h.build().process_next_job().await.expect("ran"));
}

#[tokio::test]
async fn a_refined_format_that_cannot_be_written_onto_the_object_is_retried_unsettled() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Mkv));
    expect_claim(&mut h, &job);
    expect_object(&mut h, &job);
    expect_probe(&mut h, MediaFormat::Mkv, || {
        Ok(MediaInfo {
            duration: DurationMs::from_millis(1_000),
            format: MediaFormat::Mka,
        })
    });
    h.blobs
        .expect_retype()
        .times(1)
        .returning(|_, _| Err(BlobError::Unavailable("bucket down".into())));
    h.jobs.expect_complete_job().never();
    h.jobs
        .expect_release_job()
        .times(1)
        .returning(|_, _| Ok(()));

    assert!(h.build().process_next_job().await.expect("ran"));
}

#[tokio::test]
async fn asset_deleted_while_processing_is_dropped_without_an_error() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Ogg));
    expect_claim(&mut h, &job);
    expect_object(&mut h, &job);
    expect_probe(&mut h, MediaFormat::Ogg, || {
        Ok(MediaInfo {
            duration: DurationMs::from_millis(1_000),
            format: MediaFormat::Ogg,
        })
    });
    h.jobs
        .expect_complete_job()
        .times(1)
        .returning(|_, _, _| Ok(None));
    h.jobs.expect_release_job().never();

    assert!(h.build().process_next_job().await.expect("ran"));
}

#[tokio::test]
async fn draining_runs_jobs_until_none_is_due() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Aac));
    let mut queued = vec![job.clone(), job.clone()];
    h.jobs
        .expect_claim_job()
        .times(3)
        .returning(move |_, _| Ok(queued.pop()));
    h.blobs
        .expect_complete_upload()
        .times(2)
        .returning(|u| Ok(u.length.get()));
    h.blobs
        .expect_open_reader()
        .times(2)
        .returning(|_| Ok(Box::new(FakeReader::default()) as Box<dyn BlobReader>));
    h.media.expect_probe().times(2).returning(|_, _| {
        Ok(MediaInfo {
            duration: DurationMs::from_millis(1_000),
            format: MediaFormat::Aac,
        })
    });
    h.jobs
        .expect_complete_job()
        .times(2)
        .returning(|_, _, _| Ok(Some(AssetState::Ready)));

    assert_eq!(h.build().drain_jobs().await.expect("drained"), 2);
}

#[tokio::test]
async fn unavailable_queue_is_reported_unavailable() {
    let mut h = Harness::new();
    h.jobs
        .expect_claim_job()
        .times(1)
        .returning(|_, _| Err(crate::ports::RepoError::Unavailable("pool".into())));

    let err = h.build().process_next_job().await.expect_err("down");

    assert!(matches!(err, IngestError::Unavailable(_)), "{err:?}");
}

// --- completing the staged bytes into the object (the job's first step) -----------------------

#[tokio::test]
async fn the_job_completes_its_upload_into_the_object_before_opening_it() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Wav));
    expect_claim(&mut h, &job);
    let journal = Journal::default();
    let (upload, seen) = (job.upload.clone(), journal.clone());
    h.blobs
        .expect_complete_upload()
        .withf(move |u| *u == upload)
        .times(1)
        .returning(move |u| {
            seen.push(format!("complete_upload({})", u.staging.as_str()));
            Ok(u.length.get())
        });
    let (asset, seen) = (job.asset.id.clone(), journal.clone());
    h.blobs
        .expect_open_reader()
        .withf(move |a| *a == asset)
        .times(1)
        .returning(move |_| {
            seen.push("open_reader");
            Ok(Box::new(FakeReader::default()) as Box<dyn BlobReader>)
        });
    let seen = journal.clone();
    h.media.expect_probe().times(1).returning(move |_, _| {
        seen.push("probe");
        Ok(MediaInfo {
            duration: DurationMs::from_millis(2_000),
            format: MediaFormat::Wav,
        })
    });
    h.jobs
        .expect_complete_job()
        .times(1)
        .returning(|_, _, _| Ok(Some(AssetState::Ready)));

    assert!(h.build().process_next_job().await.expect("ran"));
    assert_eq!(
        journal.entries(),
        [
            "complete_upload(mpu-7;parts=1:e1,2:e2)",
            "open_reader",
            "probe"
        ]
    );
}

#[tokio::test]
async fn staged_bytes_missing_at_completion_fail_the_asset_as_unreadable_never_charged() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Mp3));
    expect_claim(&mut h, &job);
    expect_completing(&mut h, &job, || Err(BlobError::NotFound));
    h.blobs.expect_open_reader().never();
    h.media.expect_probe().never();
    let completed = job.clone();
    h.jobs
        .expect_complete_job()
        .withf(move |j, outcome, at| {
            *j == completed
                && *at == NOW
                && matches!(outcome, JobOutcome::Failed(f) if f.code == "media_unreadable")
        })
        .times(1)
        .returning(|_, _, _| Ok(Some(AssetState::Failed)));
    h.jobs.expect_release_job().never();

    assert!(h.build().process_next_job().await.expect("ran"));
}

#[tokio::test]
async fn unavailable_blob_store_at_completion_gives_the_job_back_for_a_retry() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Flac));
    expect_claim(&mut h, &job);
    expect_completing(&mut h, &job, || {
        Err(BlobError::Unavailable("s3 down".into()))
    });
    h.blobs.expect_open_reader().never();
    h.media.expect_probe().never();
    let released = job.clone();
    h.jobs
        .expect_release_job()
        .withf(move |j, retry_at| *j == released && *retry_at == NOW + JOB_RETRY_DELAY)
        .times(1)
        .returning(|_, _| Ok(()));
    h.jobs.expect_complete_job().never();

    assert!(h.build().process_next_job().await.expect("ran"));
}

/// A job claimed `attempts` times before this claim.
fn retried_job(attempts: u32) -> Job {
    Job {
        attempts,
        ..job(Some(MediaFormat::Wav))
    }
}

#[tokio::test]
async fn each_retry_waits_twice_as_long_as_the_last_up_to_the_maximum() {
    // Attempts 1..=4 of 5 give the job back; the waits double from the retry delay.
    let cases = [
        (0, JOB_RETRY_DELAY),
        (1, JOB_RETRY_DELAY * 2),
        (2, JOB_RETRY_DELAY * 4),
        (3, JOB_RETRY_MAX_DELAY),
    ];
    assert!(
        JOB_RETRY_DELAY * 8 > JOB_RETRY_MAX_DELAY,
        "the last case is capped"
    );
    for (attempts, wait) in cases {
        let mut h = Harness::new();
        let job = retried_job(attempts);
        expect_claim(&mut h, &job);
        expect_object(&mut h, &job);
        expect_probe(&mut h, MediaFormat::Wav, || {
            Err(ProbeError::Transient("read timed out".into()))
        });
        let released = job.clone();
        h.jobs
            .expect_release_job()
            .withf(move |j, retry_at| *j == released && *retry_at == NOW + wait)
            .times(1)
            .returning(|_, _| Ok(()));
        h.jobs.expect_complete_job().never();
        assert!(h.build().process_next_job().await.expect("ran"));
    }
}

#[tokio::test]
async fn a_transient_failure_on_the_last_attempt_fails_the_asset_uncharged() {
    let mut h = Harness::new();
    let job = retried_job(JOB_MAX_ATTEMPTS - 1);
    expect_claim(&mut h, &job);
    expect_object(&mut h, &job);
    expect_probe(&mut h, MediaFormat::Wav, || {
        Err(ProbeError::Transient("read timed out".into()))
    });
    let failed = JobOutcome::Failed(AssetFailure {
        code: PROCESSING_FAILED.into(),
        message: format!("the media could not be processed after {JOB_MAX_ATTEMPTS} attempts"),
    });
    expect_completion(&mut h, &job, failed, AssetState::Failed);

    assert!(h.build().process_next_job().await.expect("ran"));
}

#[tokio::test]
async fn a_job_whose_workers_kept_dying_fails_without_running_again() {
    let mut h = Harness::new();
    // Every earlier claim ended without settling or giving the job back.
    let job = retried_job(JOB_MAX_ATTEMPTS);
    expect_claim(&mut h, &job);
    h.blobs.expect_complete_upload().never();
    h.media.expect_probe().never();
    let failed = JobOutcome::Failed(AssetFailure {
        code: PROCESSING_FAILED.into(),
        message: format!("the media could not be processed after {JOB_MAX_ATTEMPTS} attempts"),
    });
    expect_completion(&mut h, &job, failed, AssetState::Failed);

    assert!(h.build().process_next_job().await.expect("ran"));
}

/// A probe that takes `takes` of (virtual) time, then measures one minute.
#[derive(Debug)]
struct SlowProbe {
    takes: std::time::Duration,
}

#[async_trait]
impl MediaInspector for SlowProbe {
    fn sniff(&self, _head: &[u8]) -> Option<MediaFormat> {
        Some(MediaFormat::Wav)
    }

    async fn probe(
        &self,
        _reader: Box<dyn BlobReader>,
        sniffed: MediaFormat,
    ) -> Result<MediaInfo, ProbeError> {
        tokio::time::sleep(self.takes).await;
        Ok(MediaInfo {
            duration: DurationMs::from_millis(60_000),
            format: sniffed,
        })
    }
}

/// The lease is four minutes; the probe takes `lease_multiple` leases.
fn slow_probe(h: &mut Harness, lease_multiple: u32) {
    let takes = std::time::Duration::try_from(JOB_LEASE * lease_multiple).expect("positive");
    h.slow_media = Some(Arc::new(SlowProbe { takes }));
}

#[tokio::test(start_paused = true)]
async fn a_probe_longer_than_the_lease_keeps_its_job_by_renewing_it() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Wav));
    expect_claim(&mut h, &job);
    expect_object(&mut h, &job);
    slow_probe(&mut h, 3);
    // Renewed every third of the lease while it runs: 8 renewals in 3 leases (the 9th tick
    // comes with the probe's end).
    let renewed = job.clone();
    h.jobs
        .expect_renew_job()
        .withf(move |j, _| *j == renewed)
        .times(8..=9)
        .returning(|_, _| Ok(true));
    expect_completion(
        &mut h,
        &job,
        JobOutcome::Measured {
            duration: DurationMs::from_millis(60_000),
            format: None,
        },
        AssetState::Ready,
    );

    assert!(h.build().process_next_job().await.expect("ran"));
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_lease_was_lost_stops_without_settling() {
    let mut h = Harness::new();
    let job = job(Some(MediaFormat::Wav));
    expect_claim(&mut h, &job);
    expect_object(&mut h, &job);
    slow_probe(&mut h, 3);
    // Taken over (or its asset deleted): the first renewal finds the claim gone.
    h.jobs
        .expect_renew_job()
        .times(1)
        .returning(|_, _| Ok(false));
    h.jobs.expect_complete_job().never();
    h.jobs.expect_release_job().never();

    assert!(h.build().process_next_job().await.expect("ran"));
}

/// The job measured as one minute of WAV: claimed, completed into its object and probed.
fn measured_job(h: &mut Harness) -> Job {
    let job = job(Some(MediaFormat::Wav));
    expect_claim(h, &job);
    expect_object(h, &job);
    expect_probe(h, MediaFormat::Wav, || {
        Ok(MediaInfo {
            duration: DurationMs::from_millis(60_000),
            format: MediaFormat::Wav,
        })
    });
    job
}

/// A repository call that answers "unavailable" `failures` times, then `answer`.
fn unavailable_then<T: Clone>(failures: usize, answer: T) -> impl FnMut() -> Result<T, RepoError> {
    let mut calls = 0;
    move || {
        calls += 1;
        if calls <= failures {
            Err(RepoError::Unavailable("connection terminated".into()))
        } else {
            Ok(answer.clone())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_settlement_that_finds_the_repository_unavailable_is_tried_again() {
    let mut h = Harness::new();
    let job = measured_job(&mut h);
    let settled = job.clone();
    let mut answer = unavailable_then(REPOSITORY_RETRY_PAUSES.len(), Some(AssetState::Ready));
    h.jobs
        .expect_complete_job()
        .withf(move |j, _, at| *j == settled && *at == NOW)
        .times(REPOSITORY_RETRY_PAUSES.len() + 1)
        .returning(move |_, _, _| answer());
    // The measurement is kept: settled on the last try, never given back.
    h.jobs.expect_release_job().never();

    let started = tokio::time::Instant::now();
    assert!(h.build().process_next_job().await.expect("ran"));
    let paused: std::time::Duration = REPOSITORY_RETRY_PAUSES.iter().sum();
    assert_eq!(started.elapsed(), paused);
}

#[tokio::test(start_paused = true)]
async fn a_settlement_that_keeps_failing_gives_the_job_back_at_once() {
    let mut h = Harness::new();
    let job = measured_job(&mut h);
    h.jobs
        .expect_complete_job()
        .times(REPOSITORY_RETRY_PAUSES.len() + 1)
        .returning(|_, _, _| Err(RepoError::Unavailable("connection terminated".into())));
    // Not left leased until the lease runs out: retried after the first retry delay. The
    // release finds the repository unavailable too, and is tried again until it is back.
    let released = job.clone();
    let mut answer = unavailable_then(2, ());
    h.jobs
        .expect_release_job()
        .withf(move |j, retry_at| *j == released && *retry_at == NOW + JOB_RETRY_DELAY)
        .times(3)
        .returning(move |_, _| answer());

    let err = h
        .build()
        .process_next_job()
        .await
        .expect_err("the settlement failed");
    assert!(matches!(err, IngestError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_settlement_refused_for_another_reason_is_not_tried_again() {
    let mut h = Harness::new();
    let job = measured_job(&mut h);
    h.jobs
        .expect_complete_job()
        .times(1)
        .returning(|_, _, _| Err(RepoError::Internal("constraint broken".into())));
    let released = job.clone();
    h.jobs
        .expect_release_job()
        .withf(move |j, _| *j == released)
        .times(1)
        .returning(|_, _| Ok(()));

    let err = h
        .build()
        .process_next_job()
        .await
        .expect_err("the settlement failed");
    assert!(matches!(err, IngestError::Internal(_)), "{err:?}");
}
