//! `append_chunk` (PATCH), `upload_status` (HEAD) and `terminate_upload` (DELETE).

use bytes::Bytes;
use futures::{executor, stream, StreamExt};
use mockall::Sequence;

use roughy_domain::tus::PatchRefusal;
use roughy_domain::{AccountId, MediaFormat, Staging, Upload};

use super::{
    active_upload, completed_upload, staged_to, FakeLease, Harness, Journal, NOW, UPLOAD_TTL,
};
use crate::error::IngestError;
use crate::ports::{
    AppendOutcome, AppendStop, BlobError, BodyError, ByteStream, GoneReason, LockError, Purge,
    RepoError, UploadLease, UploadLookup,
};
use crate::UploadView;

/// The declared length of every upload here.
const LENGTH: u64 = 1000;

fn bytes(len: usize, fill: u8) -> Bytes {
    Bytes::from(vec![fill; len])
}

fn body(parts: Vec<Result<Bytes, BodyError>>) -> ByteStream<'static> {
    Box::pin(stream::iter(parts))
}

fn dropped() -> BodyError {
    BodyError::Interrupted("connection reset by peer".into())
}

/// What a sink would read of `body`: every byte up to its end or its first error.
fn drain(mut body: ByteStream<'_>) -> Vec<u8> {
    executor::block_on(async move {
        let mut received = Vec::new();
        while let Some(Ok(part)) = body.next().await {
            received.extend_from_slice(&part);
        }
        received
    })
}

/// One PATCH (or DELETE) against one upload of one account.
struct Case {
    h: Harness,
    account: AccountId,
    upload: Upload,
}

impl Case {
    fn with(upload: impl FnOnce(&AccountId) -> Upload) -> Self {
        let account = AccountId::generate();
        let upload = upload(&account);
        Self {
            h: Harness::new(),
            account,
            upload,
        }
    }

    /// An active upload of [`LENGTH`] bytes with `offset` stored.
    fn at(offset: u64) -> Self {
        Self::with(|account| active_upload(account, LENGTH, offset))
    }

    /// Every lookup of this upload, for this account, answers `lookups` in turn.
    fn expect_lookups(&mut self, lookups: Vec<UploadLookup>) {
        let (account, id) = (self.account.clone(), self.upload.id.clone());
        let times = lookups.len();
        let mut answers = lookups.into_iter();
        self.h
            .uploads
            .expect_find_upload()
            .withf(move |a, i| *a == account && *i == id)
            .times(times)
            .returning(move |_, _| Ok(answers.next().expect("one answer per expected lookup")));
    }

    /// The upload is found live `times` times.
    fn expect_live(&mut self, times: usize) {
        self.expect_lookups(vec![UploadLookup::Live(self.upload.clone()); times]);
    }

    fn expect_lock(&mut self, lease: FakeLease) {
        let id = self.upload.id.clone();
        self.h
            .locks
            .expect_acquire()
            .withf(move |i| *i == id)
            .times(1)
            .returning(move |_| Ok(Box::new(lease) as Box<dyn UploadLease>));
    }

    /// The usual start of a PATCH: looked up, locked undisturbed, looked up again.
    fn expect_locked_lookups(&mut self) {
        self.expect_live(2);
        self.expect_lock(FakeLease::Undisturbed);
    }

    /// The sink is asked once to stream the body into the upload as stored (its offset, hence
    /// the remaining bytes, and its staging); `outcome` sees the bytes it was given.
    fn expect_append(&mut self, outcome: impl Fn(Vec<u8>) -> AppendOutcome + Send + 'static) {
        let upload = self.upload.clone();
        self.expect_append_to(upload, outcome);
    }

    /// The sink is asked once to stream the body into exactly `expected` (e.g. the upload with
    /// the staging just begun).
    fn expect_append_to(
        &mut self,
        expected: Upload,
        outcome: impl Fn(Vec<u8>) -> AppendOutcome + Send + 'static,
    ) {
        let journal = self.h.journal.clone();
        self.h
            .sink
            .expect_append()
            .withf(move |u, _| *u == expected)
            .times(1)
            .returning(move |_, body| {
                journal.push("append");
                outcome(drain(body))
            });
    }

    /// A first chunk sniffed as WAV on a sink that stages nothing (local disk): `begin`
    /// answers no staging, nothing is identified before the bytes, and every byte sent is
    /// appended.
    fn expect_wav_on_a_sink_without_staging(&mut self) {
        self.expect_locked_lookups();
        self.h
            .media
            .expect_sniff()
            .times(1)
            .returning(|_| Some(MediaFormat::Wav));
        self.h
            .sink
            .expect_begin()
            .times(1)
            .returning(|_, _| Ok(Staging::default()));
        self.h.uploads.expect_identify_upload().never();
        self.expect_append_to(self.upload.clone(), |received| AppendOutcome {
            offset: u64::try_from(received.len()).expect("small"),
            staging: Staging::default(),
            stop: None,
        });
    }

    fn expect_no_append(&mut self) {
        self.h.sink.expect_append().never();
    }

    /// The new offset is recorded once, exactly `offset` with the staging the sink reported
    /// for it ([`staged_to`]), with the expiry refreshed from now.
    fn expect_progress(&mut self, offset: u64) {
        let id = self.upload.id.clone();
        let staging = staged_to(offset);
        let journal = self.h.journal.clone();
        self.h
            .uploads
            .expect_record_progress()
            .withf(move |i, o, s, expires, identified, _| {
                *i == id
                    && *o == offset
                    && *s == staging
                    && *expires == NOW + UPLOAD_TTL
                    && identified.is_none()
            })
            .times(1)
            .returning(move |_, o, _, _, _, _| {
                journal.push(format!("record_progress({o})"));
                Ok(())
            });
    }

    fn expect_no_progress(&mut self) {
        self.h.uploads.expect_record_progress().never();
    }

    /// Neither the repository finalises nor the blob store completes the object (a PATCH never
    /// does the latter: the processing job does).
    fn expect_no_finalisation(&mut self) {
        self.h.blobs.expect_complete_upload().never();
        self.h.uploads.expect_finalize_upload().never();
    }

    fn expect_no_sniffing(&mut self) {
        self.h.media.expect_sniff().never();
        self.h.sink.expect_begin().never();
        self.h.uploads.expect_identify_upload().never();
    }

    /// Runs the PATCH; the mocks verify their expectations before this returns.
    async fn patch(
        self,
        claimed: u64,
        chunk_len: Option<u64>,
        body: ByteStream<'static>,
    ) -> (Result<UploadView, IngestError>, Journal) {
        let journal = self.h.journal.clone();
        let ingest = self.h.build();
        let result = ingest
            .append_chunk(&self.account, &self.upload.id, claimed, chunk_len, body)
            .await;
        drop(ingest);
        (result, journal)
    }

    async fn terminate(self) -> Result<(), IngestError> {
        self.h
            .build()
            .terminate_upload(&self.account, &self.upload.id)
            .await
    }
}

// --- append_chunk: bodies that stop early ------------------------------------------------------

#[tokio::test]
async fn sink_failing_midway_records_exactly_the_durable_offset() {
    let mut case = Case::at(200);
    case.expect_locked_lookups();
    case.expect_append(|_| AppendOutcome {
        offset: 350,
        staging: staged_to(350),
        stop: Some(AppendStop::Body(dropped())),
    });
    case.expect_progress(350);
    case.expect_no_finalisation();

    let parts = vec![Ok(bytes(150, 1)), Err(dropped())];
    let (result, journal) = case.patch(200, None, body(parts)).await;

    let err = result.expect_err("a dropped body fails the PATCH");
    assert!(
        matches!(
            err,
            IngestError::BodyStopped {
                offset: 350,
                idle: false
            }
        ),
        "{err:?}"
    );
    assert_eq!(journal.count("job_queued"), 0);
}

#[tokio::test]
async fn idle_body_timeout_is_reported_as_idle_with_the_durable_offset() {
    let mut case = Case::at(200);
    case.expect_locked_lookups();
    case.expect_append(|_| AppendOutcome {
        offset: 264,
        staging: staged_to(264),
        stop: Some(AppendStop::Body(BodyError::IdleTimeout)),
    });
    case.expect_progress(264);
    case.expect_no_finalisation();

    let parts = vec![Ok(bytes(64, 1)), Err(BodyError::IdleTimeout)];
    let (result, _) = case.patch(200, None, body(parts)).await;

    let err = result.expect_err("an idle body fails the PATCH");
    assert!(
        matches!(
            err,
            IngestError::BodyStopped {
                offset: 264,
                idle: true
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn body_stopping_before_any_durable_byte_records_nothing() {
    let mut case = Case::at(200);
    case.expect_locked_lookups();
    case.expect_append(|_| AppendOutcome {
        offset: 200,
        staging: staged_to(200),
        stop: Some(AppendStop::Body(dropped())),
    });
    case.expect_no_progress();
    case.expect_no_finalisation();

    let (result, _) = case.patch(200, None, body(vec![Err(dropped())])).await;

    let err = result.expect_err("a dropped body fails the PATCH");
    assert!(
        matches!(
            err,
            IngestError::BodyStopped {
                offset: 200,
                idle: false
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn sink_storage_failure_records_only_the_durable_bytes_and_fails() {
    let mut case = Case::at(200);
    case.expect_locked_lookups();
    case.expect_append(|_| AppendOutcome {
        offset: 300,
        staging: staged_to(300),
        stop: Some(AppendStop::Storage(BlobError::Unavailable(
            "disk full".into(),
        ))),
    });
    case.expect_progress(300);
    case.expect_no_finalisation();

    let (result, _) = case.patch(200, None, body(vec![Ok(bytes(500, 1))])).await;

    let err = result.expect_err("a storage failure fails the PATCH");
    assert!(
        matches!(&err, IngestError::Unavailable(m) if m.message() == "disk full"),
        "{err:?}"
    );
}

#[tokio::test]
async fn sink_storage_failure_before_any_durable_byte_records_nothing() {
    let mut case = Case::at(200);
    case.expect_locked_lookups();
    case.expect_append(|_| AppendOutcome {
        offset: 200,
        staging: staged_to(200),
        stop: Some(AppendStop::Storage(BlobError::Internal("EIO".into()))),
    });
    case.expect_no_progress();
    case.expect_no_finalisation();

    let (result, _) = case.patch(200, None, body(vec![Ok(bytes(500, 1))])).await;

    let err = result.expect_err("a storage failure fails the PATCH");
    assert!(
        matches!(&err, IngestError::Internal(m) if m.message() == "EIO"),
        "{err:?}"
    );
}

#[tokio::test]
async fn request_asked_to_stop_keeps_what_it_stored_and_reports_interrupted() {
    let mut case = Case::at(200);
    case.expect_live(2);
    case.expect_lock(FakeLease::StopRequested);
    case.expect_append(|_| AppendOutcome {
        offset: 250,
        staging: staged_to(250),
        stop: None,
    });
    case.expect_progress(250);
    case.expect_no_finalisation();

    let (result, _) = case.patch(200, None, body(vec![Ok(bytes(500, 1))])).await;

    let err = result.expect_err("a stopped PATCH is interrupted");
    assert!(
        matches!(err, IngestError::UploadInterrupted { offset: 250 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn request_asked_to_stop_stops_reading_its_body() {
    let mut case = Case::at(200);
    case.expect_live(2);
    case.expect_lock(FakeLease::StopRequested);
    case.expect_append(|received| {
        assert!(
            received.is_empty(),
            "read {} bytes after the stop",
            received.len()
        );
        AppendOutcome {
            offset: 200,
            staging: staged_to(200),
            stop: None,
        }
    });
    case.expect_no_progress();
    case.expect_no_finalisation();

    let (result, _) = case.patch(200, None, body(vec![Ok(bytes(500, 1))])).await;

    let err = result.expect_err("a stopped PATCH is interrupted");
    assert!(
        matches!(err, IngestError::UploadInterrupted { offset: 200 }),
        "{err:?}"
    );
}

// --- append_chunk: refusals before or instead of storing ---------------------------------------

#[tokio::test]
async fn body_longer_than_the_remaining_length_is_refused_without_moving_the_offset() {
    let mut case = Case::at(200);
    case.expect_locked_lookups();
    // The sink stored up to the limit before it saw the extra bytes: none of them counts.
    case.expect_append(|_| AppendOutcome {
        offset: LENGTH,
        staging: staged_to(LENGTH),
        stop: Some(AppendStop::TooLong),
    });
    case.expect_no_progress();
    case.expect_no_finalisation();

    let (result, journal) = case.patch(200, None, body(vec![Ok(bytes(801, 1))])).await;

    let err = result.expect_err("bytes past the length are refused");
    assert!(
        matches!(
            err,
            IngestError::Patch(PatchRefusal::LengthExceeded { length: LENGTH, .. })
        ),
        "{err:?}"
    );
    assert_eq!(journal.count("job_queued"), 0);
}

#[tokio::test]
async fn declared_chunk_past_the_length_is_refused_before_the_sink_is_called() {
    let mut case = Case::at(200);
    case.expect_locked_lookups();
    case.expect_no_append();
    case.expect_no_progress();

    let (result, _) = case
        .patch(200, Some(801), body(vec![Ok(bytes(801, 1))]))
        .await;

    let err = result.expect_err("a chunk past the length is refused");
    assert!(
        matches!(
            err,
            IngestError::Patch(PatchRefusal::LengthExceeded {
                end: 1001,
                length: LENGTH
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn offset_mismatch_is_refused_and_the_sink_is_never_called() {
    let mut case = Case::at(200);
    case.expect_locked_lookups();
    case.expect_no_append();
    case.expect_no_progress();
    case.expect_no_sniffing();

    let (result, _) = case.patch(0, None, body(vec![Ok(bytes(100, 1))])).await;

    let err = result.expect_err("a stale offset is refused");
    assert!(
        matches!(
            err,
            IngestError::Patch(PatchRefusal::OffsetMismatch {
                expected: 200,
                claimed: 0
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn offset_is_checked_against_the_offset_read_under_the_lock() {
    // The previous holder stored up to 300 while this request waited for the lock.
    let mut case = Case::at(200);
    let moved = Upload {
        offset: 300,
        ..case.upload.clone()
    };
    case.expect_lookups(vec![
        UploadLookup::Live(case.upload.clone()),
        UploadLookup::Live(moved),
    ]);
    case.expect_lock(FakeLease::Undisturbed);
    case.expect_no_append();
    case.expect_no_progress();

    let (result, _) = case.patch(200, None, body(vec![Ok(bytes(100, 1))])).await;

    let err = result.expect_err("the offset moved meanwhile");
    assert!(
        matches!(
            err,
            IngestError::Patch(PatchRefusal::OffsetMismatch {
                expected: 300,
                claimed: 200
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn lock_that_cannot_be_acquired_answers_upload_locked() {
    let mut case = Case::at(200);
    case.expect_live(1);
    case.h
        .locks
        .expect_acquire()
        .times(1)
        .returning(|_| Err(LockError::Locked));
    case.expect_no_append();
    case.expect_no_progress();

    let (result, _) = case.patch(200, None, body(vec![Ok(bytes(100, 1))])).await;

    let err = result.expect_err("a held lock refuses the PATCH");
    assert!(matches!(err, IngestError::UploadLocked), "{err:?}");
}

#[tokio::test]
async fn gone_upload_answers_upload_gone_without_taking_the_lock() {
    let mut case = Case::at(200);
    case.expect_lookups(vec![UploadLookup::Gone(GoneReason::Expired)]);
    case.h.locks.expect_acquire().never();
    case.expect_no_append();

    let (result, _) = case.patch(200, None, body(vec![Ok(bytes(100, 1))])).await;

    let err = result.expect_err("a gone upload refuses the PATCH");
    assert!(matches!(err, IngestError::UploadGone(_)), "{err:?}");
}

#[tokio::test]
async fn unknown_upload_answers_not_found_without_taking_the_lock() {
    let mut case = Case::at(200);
    case.expect_lookups(vec![UploadLookup::Unknown]);
    case.h.locks.expect_acquire().never();
    case.expect_no_append();

    let (result, _) = case.patch(200, None, body(vec![Ok(bytes(100, 1))])).await;

    let err = result.expect_err("an unknown upload refuses the PATCH");
    assert!(matches!(err, IngestError::NotFound), "{err:?}");
}

#[tokio::test]
async fn upload_gone_while_waiting_for_the_lock_answers_upload_gone() {
    let mut case = Case::at(200);
    case.expect_lookups(vec![
        UploadLookup::Live(case.upload.clone()),
        UploadLookup::Gone(GoneReason::Terminated),
    ]);
    case.expect_lock(FakeLease::Undisturbed);
    case.expect_no_append();

    let (result, _) = case.patch(200, None, body(vec![Ok(bytes(100, 1))])).await;

    let err = result.expect_err("the upload was terminated meanwhile");
    assert!(matches!(err, IngestError::UploadGone(_)), "{err:?}");
}

// --- append_chunk: the first chunk -------------------------------------------------------------

#[tokio::test]
async fn first_chunk_body_shorter_than_64_bytes_stores_nothing() {
    let mut case = Case::at(0);
    case.expect_locked_lookups();
    case.expect_no_sniffing();
    case.expect_no_append();
    case.expect_no_progress();
    case.h.uploads.expect_discard_upload().never();

    let (result, _) = case
        .patch(0, None, body(vec![Ok(bytes(40, 1)), Ok(bytes(23, 2))]))
        .await;

    let err = result.expect_err("63 bytes cannot be sniffed");
    assert!(
        matches!(err, IngestError::Patch(PatchRefusal::FirstChunkTooSmall)),
        "{err:?}"
    );
}

#[tokio::test]
async fn first_chunk_declared_shorter_than_64_bytes_is_refused_before_reading() {
    let mut case = Case::at(0);
    case.expect_locked_lookups();
    case.expect_no_sniffing();
    case.expect_no_append();
    case.expect_no_progress();

    let (result, _) = case.patch(0, Some(63), body(vec![Ok(bytes(63, 1))])).await;

    let err = result.expect_err("63 bytes cannot be sniffed");
    assert!(
        matches!(err, IngestError::Patch(PatchRefusal::FirstChunkTooSmall)),
        "{err:?}"
    );
}

#[tokio::test]
async fn first_chunk_dropped_before_its_head_arrived_stores_nothing() {
    let mut case = Case::at(0);
    case.expect_locked_lookups();
    case.expect_no_sniffing();
    case.expect_no_append();
    case.expect_no_progress();

    let parts = vec![Ok(bytes(30, 1)), Err(BodyError::IdleTimeout)];
    let (result, _) = case.patch(0, None, body(parts)).await;

    let err = result.expect_err("the body stopped before 64 bytes");
    assert!(
        matches!(
            err,
            IngestError::BodyStopped {
                offset: 0,
                idle: true
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn first_chunk_stopped_for_a_newer_request_before_its_head_arrived_is_interrupted() {
    let mut case = Case::at(0);
    case.expect_live(2);
    case.expect_lock(FakeLease::StopRequested);
    case.expect_no_sniffing();
    case.expect_no_append();
    case.expect_no_progress();

    let (result, _) = case
        .patch(0, Some(500), body(vec![Ok(bytes(500, 1))]))
        .await;

    let err = result.expect_err("a stopped PATCH is interrupted");
    assert!(
        matches!(err, IngestError::UploadInterrupted { offset: 0 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn unsupported_first_chunk_discards_the_upload_and_purges_its_bytes() {
    let mut case = Case::at(0);
    case.expect_locked_lookups();
    case.h
        .media
        .expect_sniff()
        .withf(|head| head.len() >= 64)
        .times(1)
        .returning(|_| None);
    let id = case.upload.id.clone();
    let purge = Purge {
        asset_id: case.upload.asset_id.clone(),
        upload_id: id.clone(),
        staging: case.upload.staging.clone(),
    };
    case.h.expect_purge(&purge);
    let expected_id = id.clone();
    case.h
        .uploads
        .expect_discard_upload()
        .withf(move |i, reason, before, at, _| {
            *i == expected_id && *reason == GoneReason::Rejected && before.is_none() && *at == NOW
        })
        .times(1)
        .returning(move |_, _, _, _, _| Ok(Some(purge.clone())));
    case.h.sink.expect_begin().never();
    case.h.uploads.expect_identify_upload().never();
    case.expect_no_append();
    case.expect_no_progress();
    case.expect_no_finalisation();

    let (result, _) = case.patch(0, None, body(vec![Ok(bytes(200, b'x'))])).await;

    let err = result.expect_err("text is not media");
    assert!(matches!(err, IngestError::UnsupportedMedia), "{err:?}");
}

#[tokio::test]
async fn supported_first_chunk_is_identified_and_staged_before_any_byte_is_stored() {
    let mut case = Case::at(0);
    case.expect_locked_lookups();
    let mut seq = Sequence::new();
    case.h
        .media
        .expect_sniff()
        .withf(|head| head.len() >= 64 && head.starts_with(b"RIFF"))
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Some(MediaFormat::Wav));
    // The sink begins staging once, for the upload as stored, with the sniffed format.
    let journal = case.h.journal.clone();
    let fresh = case.upload.clone();
    case.h
        .sink
        .expect_begin()
        .withf(move |u, format| *u == fresh && *format == MediaFormat::Wav)
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _| {
            journal.push("begin");
            Ok(Staging::new("mpu-wav"))
        });
    // Its staging is recorded with the format ...
    let id = case.upload.id.clone();
    let journal = case.h.journal.clone();
    case.h
        .uploads
        .expect_identify_upload()
        .withf(move |i, format, staging, _| {
            *i == id && *format == MediaFormat::Wav && *staging == Staging::new("mpu-wav")
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _, _, _| {
            journal.push("identify_upload");
            Ok(())
        });
    // ... and the append starts from it, at offset 0, limited to the whole length.
    let staged = Upload {
        staging: Staging::new("mpu-wav"),
        ..case.upload.clone()
    };
    assert_eq!(staged.remaining(), LENGTH);
    case.expect_append_to(staged, |received| {
        let offset = u64::try_from(received.len()).expect("small");
        AppendOutcome {
            offset,
            staging: staged_to(offset),
            stop: None,
        }
    });
    // The progress carries the staging the append returned, not the one begun.
    case.expect_progress(300);
    case.expect_no_finalisation();

    // The head arrives in pieces: the sniffer sees at least 64 bytes of it.
    let mut head = b"RIFF".to_vec();
    head.resize(40, 0);
    let parts = vec![Ok(Bytes::from(head)), Ok(bytes(40, 1)), Ok(bytes(220, 2))];
    let (result, journal) = case.patch(0, None, body(parts)).await;

    assert_eq!(
        result.expect("a WAV first chunk is stored"),
        UploadView {
            offset: 300,
            length: LENGTH,
            expires_at: Some(NOW + UPLOAD_TTL),
        }
    );
    assert_eq!(
        journal.entries(),
        ["begin", "identify_upload", "append", "record_progress(300)"]
    );
}

/// A sink without staging (local disk) has nothing to put on record before the bytes: the
/// format goes with the first chunk's progress, one commit instead of two.
#[tokio::test]
async fn on_a_sink_without_staging_the_format_is_recorded_with_the_first_progress() {
    let mut case = Case::at(0);
    case.expect_wav_on_a_sink_without_staging();
    let id = case.upload.id.clone();
    let journal = case.h.journal.clone();
    case.h
        .uploads
        .expect_record_progress()
        .withf(move |i, o, s, _, identified, _| {
            *i == id && *o == 300 && s.is_empty() && *identified == Some(MediaFormat::Wav)
        })
        .times(1)
        .returning(move |_, o, _, _, _, _| {
            journal.push(format!("record_progress({o}) with the format"));
            Ok(())
        });
    case.expect_no_finalisation();

    let mut head = b"RIFF".to_vec();
    head.resize(300, 0);
    let (result, journal) = case.patch(0, None, body(vec![Ok(Bytes::from(head))])).await;

    assert_eq!(result.expect("stored").offset, 300);
    assert_eq!(
        journal.entries(),
        ["append", "record_progress(300) with the format"]
    );
}

/// An upload whose first chunk is its last, on a sink without staging: one commit identifies,
/// completes and queues the job.
#[tokio::test]
async fn on_a_sink_without_staging_a_single_chunk_upload_is_identified_by_its_finalisation() {
    let mut case = Case::at(0);
    case.expect_wav_on_a_sink_without_staging();
    expect_finalisation_of(
        &mut case,
        Staging::default(),
        Some(MediaFormat::Wav),
        || Ok(()),
    );

    let mut whole = b"RIFF".to_vec();
    whole.resize(usize::try_from(LENGTH).expect("small"), 0);
    let (result, journal) = case
        .patch(0, None, body(vec![Ok(Bytes::from(whole))]))
        .await;

    assert_eq!(result.expect("completed").offset, LENGTH);
    assert_eq!(
        journal.entries(),
        ["append", "finalize_upload", "job_queued"]
    );
}

#[tokio::test]
async fn a_first_chunk_resent_after_a_drop_that_stored_nothing_reuses_the_staging_begun() {
    // A previous first chunk began staging and was identified, then dropped before a byte
    // was durable: offset 0, staging already chosen.
    let mut case = Case::with(|account| Upload {
        staging: Staging::new("mpu-earlier"),
        ..active_upload(account, LENGTH, 0)
    });
    case.expect_locked_lookups();
    case.h
        .media
        .expect_sniff()
        .times(1)
        .returning(|_| Some(MediaFormat::Mp4));
    case.h.sink.expect_begin().never();
    let id = case.upload.id.clone();
    case.h
        .uploads
        .expect_identify_upload()
        .withf(move |i, format, staging, _| {
            *i == id && *format == MediaFormat::Mp4 && *staging == Staging::new("mpu-earlier")
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    case.expect_append(|received| {
        let offset = u64::try_from(received.len()).expect("small");
        AppendOutcome {
            offset,
            staging: staged_to(offset),
            stop: None,
        }
    });
    case.expect_progress(100);
    case.expect_no_finalisation();

    let (result, _) = case.patch(0, None, body(vec![Ok(bytes(100, 1))])).await;

    assert_eq!(result.expect("stored").offset, 100);
}

#[tokio::test]
async fn staging_that_cannot_begin_stores_and_records_nothing() {
    let mut case = Case::at(0);
    case.expect_locked_lookups();
    case.h
        .media
        .expect_sniff()
        .times(1)
        .returning(|_| Some(MediaFormat::Wav));
    case.h
        .sink
        .expect_begin()
        .times(1)
        .returning(|_, _| Err(BlobError::Unavailable("s3 down".into())));
    case.h.uploads.expect_identify_upload().never();
    case.h.uploads.expect_discard_upload().never();
    case.expect_no_append();
    case.expect_no_progress();
    case.expect_no_finalisation();

    let (result, _) = case.patch(0, None, body(vec![Ok(bytes(100, 1))])).await;

    let err = result.expect_err("staging could not begin");
    assert!(
        matches!(&err, IngestError::Unavailable(m) if m.message() == "s3 down"),
        "{err:?}"
    );
}

#[tokio::test]
async fn sniffed_head_reaches_the_sink_in_order_followed_by_the_rest_of_the_body() {
    let mut case = Case::at(0);
    case.expect_locked_lookups();
    case.h
        .media
        .expect_sniff()
        .times(1)
        .returning(|_| Some(MediaFormat::Flac));
    case.h
        .sink
        .expect_begin()
        .times(1)
        .returning(|_, _| Ok(Staging::new("mpu-flac")));
    case.h
        .uploads
        .expect_identify_upload()
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let parts: Vec<Bytes> = (0u8..5).map(|i| bytes(50, i)).collect();
    let sent: Vec<u8> = parts.concat();
    let staged = Upload {
        staging: Staging::new("mpu-flac"),
        ..case.upload.clone()
    };
    case.expect_append_to(staged, move |received| {
        assert_eq!(received, sent, "the sink must get every byte, head first");
        AppendOutcome {
            offset: 250,
            staging: staged_to(250),
            stop: None,
        }
    });
    case.expect_progress(250);
    case.expect_no_finalisation();

    let (result, _) = case
        .patch(0, None, body(parts.into_iter().map(Ok).collect()))
        .await;

    assert_eq!(result.expect("stored").offset, 250);
}

// --- append_chunk: success and the last byte ---------------------------------------------------

#[tokio::test]
async fn stored_chunk_records_the_new_offset_and_refreshes_the_expiry() {
    let mut case = Case::at(200);
    case.expect_locked_lookups();
    case.expect_no_sniffing();
    case.expect_append(|received| {
        let offset = 200 + u64::try_from(received.len()).expect("small");
        AppendOutcome {
            offset,
            staging: staged_to(offset),
            stop: None,
        }
    });
    case.expect_progress(700);
    case.expect_no_finalisation();

    let (result, journal) = case
        .patch(200, Some(500), body(vec![Ok(bytes(500, 1))]))
        .await;

    assert_eq!(
        result.expect("stored"),
        UploadView {
            offset: 700,
            length: LENGTH,
            expires_at: Some(NOW + UPLOAD_TTL),
        }
    );
    assert_eq!(journal.count("job_queued"), 0);
}

/// Expects the finalisation of `case`'s upload: the repository finalises once, at `NOW`, with
/// the staging the final append returned ([`staged_to`] the length), answering `answer`. The
/// PATCH never completes the object (the processing job does) and never records the length
/// as progress (only finalisation reaches it).
fn expect_finalisation(case: &mut Case, answer: fn() -> Result<(), RepoError>) {
    let staging = staged_to(case.upload.length.get());
    expect_finalisation_of(case, staging, None, answer);
}

/// [`expect_finalisation`] with this final staging and this identification of the first
/// chunk's format (an upload finalised by its first chunk, on a sink without staging).
fn expect_finalisation_of(
    case: &mut Case,
    staging: Staging,
    format: Option<MediaFormat>,
    answer: fn() -> Result<(), RepoError>,
) {
    let id = case.upload.id.clone();
    let journal = case.h.journal.clone();
    case.h
        .uploads
        .expect_finalize_upload()
        .withf(move |i, s, identified, at, _| {
            *i == id && *s == staging && *identified == format && *at == NOW
        })
        .times(1)
        .returning(move |_, _, _, _, _| {
            let answer = answer();
            journal.push(match &answer {
                Ok(()) => "finalize_upload",
                Err(_) => "finalize_upload failed",
            });
            answer
        });
    case.h.blobs.expect_complete_upload().never();
    case.expect_no_progress();
}

#[tokio::test]
async fn storing_the_last_byte_finalises_then_signals_a_job_without_completing_the_object() {
    let mut case = Case::at(900);
    case.expect_locked_lookups();
    case.expect_append(|_| AppendOutcome {
        offset: LENGTH,
        staging: staged_to(LENGTH),
        stop: None,
    });
    expect_finalisation(&mut case, || Ok(()));

    let (result, journal) = case
        .patch(900, Some(100), body(vec![Ok(bytes(100, 1))]))
        .await;

    assert_eq!(
        result.expect("the last chunk finalises"),
        UploadView {
            offset: LENGTH,
            length: LENGTH,
            expires_at: None,
        }
    );
    assert_eq!(
        journal.entries(),
        ["append", "finalize_upload", "job_queued"]
    );
}

#[tokio::test]
async fn a_single_chunk_upload_is_sniffed_staged_stored_and_finalised_in_one_patch() {
    let mut case = Case::with(|account| active_upload(account, 64, 0));
    case.expect_locked_lookups();
    case.h
        .media
        .expect_sniff()
        .times(1)
        .returning(|_| Some(MediaFormat::Mp3));
    let fresh = case.upload.clone();
    case.h
        .sink
        .expect_begin()
        .withf(move |u, format| *u == fresh && *format == MediaFormat::Mp3)
        .times(1)
        .returning(|_, _| Ok(Staging::new("mpu-mp3")));
    let id = case.upload.id.clone();
    case.h
        .uploads
        .expect_identify_upload()
        .withf(move |i, format, staging, _| {
            *i == id && *format == MediaFormat::Mp3 && *staging == Staging::new("mpu-mp3")
        })
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let staged = Upload {
        staging: Staging::new("mpu-mp3"),
        ..case.upload.clone()
    };
    case.expect_append_to(staged, |received| {
        let offset = u64::try_from(received.len()).expect("small");
        AppendOutcome {
            offset,
            staging: staged_to(offset),
            stop: None,
        }
    });
    // Finalised with the staging the append returned (staged_to(64)), not the one begun.
    expect_finalisation(&mut case, || Ok(()));

    let (result, journal) = case.patch(0, Some(64), body(vec![Ok(bytes(64, 1))])).await;

    assert_eq!(result.expect("finalised").offset, 64);
    assert_eq!(journal.count("job_queued"), 1);
}

#[tokio::test]
async fn a_failed_finalising_commit_fails_the_patch_and_signals_no_job() {
    let mut case = Case::at(900);
    case.expect_locked_lookups();
    case.expect_append(|_| AppendOutcome {
        offset: LENGTH,
        staging: staged_to(LENGTH),
        stop: None,
    });
    expect_finalisation(&mut case, || {
        Err(RepoError::Unavailable("commit failed".into()))
    });

    let (result, journal) = case.patch(900, None, body(vec![Ok(bytes(100, 1))])).await;

    let err = result.expect_err("the upload could not be finalised");
    assert!(
        matches!(&err, IngestError::Unavailable(m) if m.message() == "commit failed"),
        "{err:?}"
    );
    assert_eq!(journal.entries(), ["append", "finalize_upload failed"]);
}

#[tokio::test]
async fn a_failed_finalising_commit_leaves_the_last_chunk_resendable_and_the_resend_completes() {
    let account = AccountId::generate();
    let upload = active_upload(&account, LENGTH, 900);
    let id = upload.id.clone();
    let mut h = Harness::new();
    let journal = h.journal.clone();
    // The failed PATCH recorded nothing: every lookup (PATCH, HEAD, PATCH: two each) still
    // finds offset 900 with its staging.
    let stored = upload.clone();
    h.uploads
        .expect_find_upload()
        .times(6)
        .returning(move |_, _| Ok(UploadLookup::Live(stored.clone())));
    h.locks
        .expect_acquire()
        .times(3)
        .returning(|_| Ok(Box::new(FakeLease::Undisturbed) as Box<dyn UploadLease>));
    h.media.expect_sniff().never();
    h.sink.expect_begin().never();
    h.uploads.expect_identify_upload().never();
    h.uploads.expect_record_progress().never();
    h.uploads.expect_discard_upload().never();
    h.blobs.expect_complete_upload().never();
    h.expect_no_purge();
    // Both PATCHes stream from the previous offset and staging, the last 100 bytes each time.
    let (expected, seen) = (upload.clone(), journal.clone());
    h.sink
        .expect_append()
        .withf(move |u, _| *u == expected)
        .times(2)
        .returning(move |_, body| {
            let received = drain(body);
            assert_eq!(received.len(), 100, "the tail, again");
            seen.push("append");
            AppendOutcome {
                offset: LENGTH,
                staging: staged_to(LENGTH),
                stop: None,
            }
        });
    let mut seq = Sequence::new();
    for answer in [Err(RepoError::Unavailable("commit failed".into())), Ok(())] {
        let (id, seen) = (id.clone(), journal.clone());
        let mut answer = Some(answer);
        h.uploads
            .expect_finalize_upload()
            .withf(move |i, s, identified, at, _| {
                *i == id && *s == staged_to(LENGTH) && identified.is_none() && *at == NOW
            })
            .times(1)
            .in_sequence(&mut seq)
            .returning(move |_, _, _, _, _| {
                let answer = answer.take().expect("answered once");
                seen.push(match &answer {
                    Ok(()) => "finalize_upload",
                    Err(_) => "finalize_upload failed",
                });
                answer
            });
    }
    let ingest = h.build();

    let failed = ingest
        .append_chunk(&account, &id, 900, Some(100), body(vec![Ok(bytes(100, 1))]))
        .await;
    let err = failed.expect_err("the finalising commit failed");
    assert!(matches!(err, IngestError::Unavailable(_)), "{err:?}");

    // HEAD still answers the previous offset: the client resends from there.
    let head = ingest.upload_status(&account, &id).await.expect("live");
    assert_eq!(head.offset, 900);

    let resent = ingest
        .append_chunk(&account, &id, 900, Some(100), body(vec![Ok(bytes(100, 1))]))
        .await;
    assert_eq!(
        resent.expect("the resend completes"),
        UploadView {
            offset: LENGTH,
            length: LENGTH,
            expires_at: None,
        }
    );
    drop(ingest);
    assert_eq!(
        journal.entries(),
        [
            "append",
            "finalize_upload failed",
            "append",
            "finalize_upload",
            "job_queued"
        ]
    );
}

#[tokio::test]
async fn completed_upload_answers_an_empty_patch_at_its_length_with_completion() {
    let mut case = Case::with(|account| completed_upload(account, LENGTH));
    case.expect_locked_lookups();
    case.expect_no_append();
    case.expect_no_progress();
    case.expect_no_finalisation();

    let (result, journal) = case.patch(LENGTH, Some(0), body(vec![])).await;

    assert_eq!(
        result.expect("nothing to add"),
        UploadView {
            offset: LENGTH,
            length: LENGTH,
            expires_at: None,
        }
    );
    assert_eq!(journal.count("job_queued"), 0);
}

#[tokio::test]
async fn completed_upload_refuses_more_bytes_without_touching_storage() {
    let mut case = Case::with(|account| completed_upload(account, LENGTH));
    case.expect_locked_lookups();
    case.expect_no_append();
    case.expect_no_progress();
    case.expect_no_finalisation();

    let (result, _) = case.patch(LENGTH, None, body(vec![Ok(bytes(1, 1))])).await;

    let err = result.expect_err("the upload is complete");
    assert!(
        matches!(
            err,
            IngestError::Patch(PatchRefusal::LengthExceeded { length: LENGTH, .. })
        ),
        "{err:?}"
    );
}

// --- upload_status (HEAD) ----------------------------------------------------------------------

#[tokio::test]
async fn status_of_a_pending_upload_reports_its_offset_and_expiry() {
    let mut case = Case::at(200);
    // Looked up, locked (a stale PATCH is asked to record what it stored), looked up again.
    case.expect_locked_lookups();
    let expected = UploadView {
        offset: 200,
        length: LENGTH,
        expires_at: Some(case.upload.expires_at),
    };

    let view = case
        .h
        .build()
        .upload_status(&case.account, &case.upload.id)
        .await
        .expect("live");

    assert_eq!(view, expected);
}

#[tokio::test]
async fn status_of_a_finalised_upload_reports_offset_equal_to_length() {
    let mut case = Case::with(|account| Upload {
        offset: 0, // whatever the row says, completion answers offset = length
        ..completed_upload(account, LENGTH)
    });
    case.expect_live(1);

    let view = case
        .h
        .build()
        .upload_status(&case.account, &case.upload.id)
        .await
        .expect("live");

    assert_eq!(
        view,
        UploadView {
            offset: LENGTH,
            length: LENGTH,
            expires_at: None,
        }
    );
}

#[tokio::test]
async fn status_tells_gone_from_unknown() {
    let mut gone = Case::at(0);
    gone.expect_lookups(vec![UploadLookup::Gone(GoneReason::Rejected)]);
    let err = gone
        .h
        .build()
        .upload_status(&gone.account, &gone.upload.id)
        .await
        .expect_err("gone");
    assert!(matches!(err, IngestError::UploadGone(_)), "{err:?}");

    let mut unknown = Case::at(0);
    unknown.expect_lookups(vec![UploadLookup::Unknown]);
    let err = unknown
        .h
        .build()
        .upload_status(&unknown.account, &unknown.upload.id)
        .await
        .expect_err("unknown");
    assert!(matches!(err, IngestError::NotFound), "{err:?}");
}

// --- terminate_upload (DELETE) -----------------------------------------------------------------

#[tokio::test]
async fn terminating_a_completed_upload_answers_upload_complete_and_changes_nothing() {
    let mut case = Case::with(|account| completed_upload(account, LENGTH));
    case.expect_live(1);
    case.h.locks.expect_acquire().never();
    case.h.uploads.expect_discard_upload().never();
    case.h.expect_no_purge();

    let err = case.terminate().await.expect_err("complete");
    assert!(matches!(err, IngestError::UploadComplete), "{err:?}");
}

#[tokio::test]
async fn terminating_a_gone_upload_succeeds_again() {
    let mut case = Case::at(200);
    case.expect_lookups(vec![UploadLookup::Gone(GoneReason::Terminated)]);
    case.h.locks.expect_acquire().never();
    case.h.uploads.expect_discard_upload().never();
    case.h.expect_no_purge();

    case.terminate().await.expect("idempotent");
}

#[tokio::test]
async fn terminating_an_unknown_upload_answers_not_found() {
    let mut case = Case::at(200);
    case.expect_lookups(vec![UploadLookup::Unknown]);
    case.h.locks.expect_acquire().never();
    case.h.uploads.expect_discard_upload().never();
    case.h.expect_no_purge();

    let err = case.terminate().await.expect_err("unknown");
    assert!(matches!(err, IngestError::NotFound), "{err:?}");
}

#[tokio::test]
async fn terminating_a_pending_upload_stops_its_writer_discards_it_and_purges_its_bytes() {
    let mut case = Case::at(200);
    case.expect_live(1);
    let mut seq = Sequence::new();
    let id = case.upload.id.clone();
    case.h
        .locks
        .expect_acquire()
        .withf(move |i| *i == id)
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Box::new(FakeLease::Undisturbed) as Box<dyn UploadLease>));
    let id = case.upload.id.clone();
    let purge = Purge {
        asset_id: case.upload.asset_id.clone(),
        upload_id: id.clone(),
        staging: case.upload.staging.clone(),
    };
    case.h.expect_purge(&purge);
    let expected_id = id.clone();
    case.h
        .uploads
        .expect_discard_upload()
        .withf(move |i, reason, before, at, _| {
            *i == expected_id && *reason == GoneReason::Terminated && before.is_none() && *at == NOW
        })
        .times(1)
        .in_sequence(&mut seq)
        .returning(move |_, _, _, _, _| Ok(Some(purge.clone())));

    case.terminate().await.expect("terminated");
}

#[tokio::test]
async fn terminating_while_racing_with_finalisation_answers_upload_complete() {
    let mut case = Case::at(900);
    let finalised = Upload {
        state: roughy_domain::UploadState::Completed,
        offset: LENGTH,
        ..case.upload.clone()
    };
    case.expect_lookups(vec![
        UploadLookup::Live(case.upload.clone()),
        UploadLookup::Live(finalised),
    ]);
    case.expect_lock(FakeLease::Undisturbed);
    case.h
        .uploads
        .expect_discard_upload()
        .times(1)
        .returning(|_, _, _, _, _| Ok(None));
    case.h.expect_no_purge();

    let err = case.terminate().await.expect_err("finalised meanwhile");
    assert!(matches!(err, IngestError::UploadComplete), "{err:?}");
}

#[tokio::test]
async fn terminating_while_a_writer_keeps_the_lock_answers_upload_locked() {
    let mut case = Case::at(200);
    case.expect_live(1);
    case.h
        .locks
        .expect_acquire()
        .times(1)
        .returning(|_| Err(LockError::Locked));
    case.h.uploads.expect_discard_upload().never();
    case.h.expect_no_purge();

    let err = case.terminate().await.expect_err("locked");
    assert!(matches!(err, IngestError::UploadLocked), "{err:?}");
}
