//! Infrastructure errors translated into the ports' errors, at the seam.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;
use diesel_async::pooled_connection::PoolError as ManagerError;

use roughy_app::ports::{Cause, RepoError};

/// What can go wrong inside one repository call: a database error or a refusal decided by the
/// domain. `RepoError` and `diesel::result::Error` are both foreign to this crate, so this
/// local type is what transactions return (Diesel needs `From<diesel::result::Error>`).
#[derive(Debug)]
pub(crate) enum StoreError {
    /// The database said no.
    Db(DieselError),
    /// The use case refused (not found, conflict, corrupt row).
    Repo(RepoError),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        Self::Db(e)
    }
}

impl From<RepoError> for StoreError {
    fn from(e: RepoError) -> Self {
        Self::Repo(e)
    }
}

impl From<StoreError> for RepoError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(e) => db_error(e),
            StoreError::Repo(e) => e,
        }
    }
}

/// A refused lifecycle transition is a state conflict at the repository's seam.
pub(crate) fn conflict(e: impl std::fmt::Display) -> StoreError {
    StoreError::Repo(RepoError::Conflict(e.to_string().into()))
}

/// A row that does not convert back into a domain value: the schema's checks should make this
/// impossible, so it is an internal failure, never a client error.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> RepoError {
    RepoError::Internal(format!("corrupt row: {what}").into())
}

/// Translates a Diesel error.
///
/// Constraint violations become the port's `Conflict` (unique, check) or `NotFound` (a foreign
/// key: the parent row is missing). A lost connection, a statement timeout or a deadlock is
/// worth retrying, so it is `Unavailable` (503), never a 500.
pub(crate) fn db_error(e: DieselError) -> RepoError {
    /// What a Diesel error means at the port.
    enum Meaning {
        NotFound,
        Conflict,
        Unavailable,
        Internal,
    }
    let meaning = match &e {
        DieselError::NotFound
        | DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
            Meaning::NotFound
        }
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::UniqueViolation
            | DatabaseErrorKind::CheckViolation
            | DatabaseErrorKind::ExclusionViolation => Meaning::Conflict,
            DatabaseErrorKind::ClosedConnection
            | DatabaseErrorKind::UnableToSendCommand
            | DatabaseErrorKind::SerializationFailure => Meaning::Unavailable,
            _ if is_transient(info.message()) => Meaning::Unavailable,
            _ => Meaning::Internal,
        },
        _ => Meaning::Internal,
    };
    // The Diesel error stays the cause's source, so the log line shows the whole chain.
    let cause = |what: &str| Cause::with_source(what, e);
    match meaning {
        Meaning::NotFound => RepoError::NotFound,
        Meaning::Conflict => RepoError::Conflict(cause("the database refused a conflicting write")),
        Meaning::Unavailable => RepoError::Unavailable(cause("the database is unavailable")),
        Meaning::Internal => RepoError::Internal(cause("a database statement failed")),
    }
}

/// Errors PostgreSQL reports without a dedicated kind that still mean "try again".
///
/// By message text, not SQLSTATE: diesel-async turns eight SQLSTATEs into a
/// [`DatabaseErrorKind`] and wraps the rest as `Unknown` behind a private type whose
/// `DatabaseErrorInformation` has no code (57014 statement timeout, 40P01 deadlock, 57P01
/// terminating connection and 57P03 starting up arrive as `Unknown`). The texts are PostgreSQL's
/// English ones: the embedded cluster is initialised with `--locale=C`; an external server
/// with another `lc_messages` answers these as 500 instead of 503.
fn is_transient(message: &str) -> bool {
    const TRANSIENT: [&str; 6] = [
        "statement timeout",
        "deadlock detected",
        "could not serialize",
        "terminating connection",
        "closed the connection",
        "the database system is",
    ];
    TRANSIENT.iter().any(|t| message.contains(t))
}

/// Translates a pool checkout failure: every one of them means the database cannot be reached
/// (or the pool is exhausted) right now.
pub(crate) fn pool_error(e: PoolError) -> RepoError {
    match e {
        PoolError::Timeout(kind) => {
            RepoError::Unavailable(format!("database pool timed out ({kind:?})").into())
        }
        PoolError::Backend(ManagerError::ConnectionError(e)) => {
            RepoError::Unavailable(Cause::with_source("cannot connect to the database", e))
        }
        PoolError::Backend(ManagerError::QueryError(e)) => {
            RepoError::Unavailable(Cause::with_source("database connection check failed", e))
        }
        PoolError::Closed => RepoError::Unavailable("the database pool is closed".into()),
        PoolError::NoRuntimeSpecified => {
            RepoError::Internal("the database pool has no runtime for its timeouts".into())
        }
        PoolError::PostCreateHook(e) => {
            RepoError::Unavailable(format!("database connection setup failed: {e}").into())
        }
    }
}
