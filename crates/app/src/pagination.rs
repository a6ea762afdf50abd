//! Keyset pagination: newest first by `(created_at desc, id desc)`, stable under inserts.

use time::OffsetDateTime;

/// Where the previous page ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` of the last item returned.
    pub created_at: OffsetDateTime,
    /// Id of the last item returned.
    pub id: String,
}

impl Cursor {
    /// Whether an item at `(created_at, id)` comes after this cursor in newest-first order.
    pub fn admits(&self, created_at: OffsetDateTime, id: &str) -> bool {
        (created_at, id) < (self.created_at, self.id.as_str())
    }
}

/// What page to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// 1 to 100.
    pub limit: usize,
    /// Start after this item.
    pub cursor: Option<Cursor>,
}

impl PageRequest {
    /// The default page size.
    pub const DEFAULT_LIMIT: usize = 50;
    /// The largest page size.
    pub const MAX_LIMIT: usize = 100;
}

/// One page of items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Set exactly when a further item exists.
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` items already sorted newest first and past the
    /// cursor: the extra item, if present, only proves that a next page exists.
    pub fn from_overfetch(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> Cursor) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more { items.last().map(key) } else { None };
        Self { items, next_cursor }
    }

    /// Maps the items.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}
