//! [`Prepared`]: a statement Diesel would prepare afresh every time, run from the
//! connection's statement cache instead.
//!
//! Diesel never caches an `UPDATE` or an `sql_query` (their SQL may vary for one Rust type),
//! so each run costs a Parse round trip before its Bind/Execute, and a Close after. On the
//! PATCH path that was one extra round trip for taking the lease and for each write of a
//! progress or finalising commit. Wrapped in [`Prepared`], a statement is cached by its SQL
//! text and its bind types (the key Diesel uses for any query without a static id), so a
//! connection parses it once. Only statements from a small, fixed set of SQL texts belong in
//! it: every distinct text stays prepared on every pooled connection.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::QueryResult;

/// `Q`, run as a cached prepared statement (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prepared<Q>(pub(crate) Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        Ok(true)
    }
}

/// No static id: the cache keys the statement by its SQL text.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}
