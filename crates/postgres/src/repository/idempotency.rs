//! `IdempotencyKeys`: keyed creates' records, judged by `roughy_domain::idempotency`.
//!
//! A claim is one transaction: the record is read `FOR UPDATE` and judged by the domain's
//! rule; a missing key is inserted `ON CONFLICT DO NOTHING`, so of two first claims one
//! inserts and the other (waiting for it to commit) reads its record and is told it is in
//! flight.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use time::OffsetDateTime;

use roughy_app::ports::{Claim, IdempotencyKeys, RepoError};
use roughy_domain::idempotency::{IN_FLIGHT_LEASE, KEY_TTL};
use roughy_domain::{AccountId, ClaimId, Fingerprint, IdempotencyKey, KeyRecord, StoredResponse};

use super::PgRepository;
use crate::error::{corrupt, db_error, StoreError};
use crate::schema::idempotency_keys as keys;

/// The columns a claim reads.
type RecordColumns = (
    String,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<i16>,
    Vec<Option<String>>,
    Vec<Option<String>>,
    Option<Vec<u8>>,
);

fn record(row: RecordColumns) -> Result<KeyRecord, RepoError> {
    let (fingerprint, expires_at, in_flight_until, status, names, values, body) = row;
    let response = match (status, body) {
        (Some(status), Some(body)) => {
            let headers = names
                .into_iter()
                .zip(values)
                .map(|pair| match pair {
                    (Some(name), Some(value)) => Ok((name, value)),
                    _ => Err(corrupt("idempotency key with a null response header")),
                })
                .collect::<Result<_, _>>()?;
            Some(StoredResponse {
                status: u16::try_from(status).map_err(corrupt)?,
                headers,
                body,
            })
        }
        (None, None) => None,
        _ => return Err(corrupt("idempotency key with half a response")),
    };
    Ok(KeyRecord {
        fingerprint: Fingerprint::from_stored(fingerprint),
        expires_at,
        in_flight_until,
        response,
    })
}

#[async_trait]
impl IdempotencyKeys for PgRepository {
    #[tracing::instrument(skip_all, fields(account = %account))]
    async fn claim_key(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        fingerprint: &Fingerprint,
        now: OffsetDateTime,
    ) -> Result<Claim, RepoError> {
        let mut conn = self.conn().await?;
        let claim = ClaimId::generate();
        let expires_at = now + KEY_TTL;
        let in_flight_until = now + IN_FLIGHT_LEASE;
        let this = keys::table
            .filter(keys::account_id.eq(account.as_str()))
            .filter(keys::key.eq(key.as_str()));
        let outcome = conn
            .transaction::<_, StoreError, _>(async |conn| {
                // Twice at most: a key inserted concurrently is read on the second pass.
                for _ in 0..2 {
                    let found: Option<RecordColumns> = this
                        .select((
                            keys::fingerprint,
                            keys::expires_at,
                            keys::in_flight_until,
                            keys::response_status,
                            keys::response_header_names,
                            keys::response_header_values,
                            keys::response_body,
                        ))
                        .for_update()
                        .first(conn)
                        .await
                        .optional()?;
                    match found.map(record).transpose()? {
                        Some(existing) => {
                            if let Some(answer) = Claim::judged(&existing, fingerprint, now) {
                                return Ok(answer);
                            }
                            diesel::update(this)
                                .set((
                                    keys::fingerprint.eq(fingerprint.as_str()),
                                    keys::claim.eq(claim.as_str()),
                                    keys::expires_at.eq(expires_at),
                                    keys::in_flight_until.eq(Some(in_flight_until)),
                                    keys::response_status.eq(None::<i16>),
                                    keys::response_header_names.eq(Vec::<String>::new()),
                                    keys::response_header_values.eq(Vec::<String>::new()),
                                    keys::response_body.eq(None::<Vec<u8>>),
                                ))
                                .execute(conn)
                                .await?;
                            return Ok(Claim::Claimed(claim.clone()));
                        }
                        None => {
                            let inserted = diesel::insert_into(keys::table)
                                .values((
                                    keys::account_id.eq(account.as_str()),
                                    keys::key.eq(key.as_str()),
                                    keys::fingerprint.eq(fingerprint.as_str()),
                                    keys::claim.eq(claim.as_str()),
                                    keys::expires_at.eq(expires_at),
                                    keys::in_flight_until.eq(Some(in_flight_until)),
                                ))
                                .on_conflict_do_nothing()
                                .execute(conn)
                                .await?;
                            if inserted > 0 {
                                return Ok(Claim::Claimed(claim.clone()));
                            }
                        }
                    }
                }
                // Inserted and deleted again between the passes: as good as in flight.
                Ok(Claim::InFlight)
            })
            .await?;
        Ok(outcome)
    }

    #[tracing::instrument(skip_all, fields(account = %account))]
    async fn complete_key(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        claim: &ClaimId,
        response: &StoredResponse,
    ) -> Result<bool, RepoError> {
        let mut conn = self.conn().await?;
        let (names, values): (Vec<&str>, Vec<&str>) = response
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .unzip();
        let updated = diesel::update(
            keys::table
                .filter(keys::account_id.eq(account.as_str()))
                .filter(keys::key.eq(key.as_str()))
                .filter(keys::claim.eq(claim.as_str())),
        )
        .set((
            keys::in_flight_until.eq(None::<OffsetDateTime>),
            keys::response_status.eq(Some(i16::try_from(response.status).map_err(corrupt)?)),
            keys::response_header_names.eq(names),
            keys::response_header_values.eq(values),
            keys::response_body.eq(Some(response.body.as_slice())),
        ))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(updated > 0)
    }

    #[tracing::instrument(skip_all, fields(account = %account))]
    async fn release_key(
        &self,
        account: &AccountId,
        key: &IdempotencyKey,
        claim: &ClaimId,
    ) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        diesel::delete(
            keys::table
                .filter(keys::account_id.eq(account.as_str()))
                .filter(keys::key.eq(key.as_str()))
                .filter(keys::claim.eq(claim.as_str())),
        )
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    #[tracing::instrument(skip(self))]
    async fn purge_expired_keys(&self, now: OffsetDateTime) -> Result<u64, RepoError> {
        let mut conn = self.conn().await?;
        let deleted = diesel::delete(keys::table.filter(keys::expires_at.le(now)))
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
    }
}
