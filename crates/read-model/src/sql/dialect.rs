//! What differs between SQLite and PostgreSQL, said once, so that every query is written once.
//!
//! Fixed statements are written with PostgreSQL's numbered placeholders (`$1`, `$2`, ...), which
//! sqlx's SQLite driver reads too. Statements whose length depends on the data (`IN (...)`
//! lists, multi-row `VALUES`) are assembled as a [`Statement`], which writes each database's own
//! placeholders: SQLite looks a numbered placeholder up among the ones before it, which a
//! 12,000-parameter insert would pay for quadratically, so it gets plain `?`. The one other
//! difference is how a timestamp is stored ([`Dialect::Timestamp`]).

use chrono::{DateTime, Utc};
use sqlx::postgres::PgQueryResult;
use sqlx::sqlite::SqliteQueryResult;
use sqlx::{Database, Decode, Encode, Postgres, Sqlite, Type};
use std::fmt::Write;
use std::marker::PhantomData;

/// A value for one query parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    /// Text.
    Text(&'a str),
    /// An integer (positions, versions, sequences, limits).
    Int(i64),
    /// A point in time, stored as [`Dialect::Timestamp`].
    Time(DateTime<Utc>),
    /// A point in time or NULL.
    MaybeTime(Option<DateTime<Utc>>),
}

/// How one SQL database differs from the other, for the queries of the read models.
pub(crate) trait Dialect: Database {
    /// How a timestamp column is stored and read.
    type Timestamp: for<'q> Encode<'q, Self> + for<'r> Decode<'r, Self> + Type<Self> + Send + 'static;

    /// A timestamp column's value that may be NULL.
    type MaybeTimestamp: for<'q> Encode<'q, Self> + Type<Self> + Send + 'static;

    /// The stored form of `time`.
    fn to_timestamp(time: DateTime<Utc>) -> Self::Timestamp;

    /// The stored form of `time`, NULL for none.
    fn to_maybe_timestamp(time: Option<DateTime<Utc>>) -> Self::MaybeTimestamp;

    /// The time a stored timestamp holds, or why it holds none.
    fn from_timestamp(stored: Self::Timestamp) -> Result<DateTime<Utc>, String>;

    /// Appends the placeholder of parameter number `n` (1-based) to `sql`.
    fn write_placeholder(sql: &mut String, n: usize);

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

impl Dialect for Sqlite {
    /// RFC 3339 text, which sorts in time order and keeps every digit the state has.
    type Timestamp = String;
    type MaybeTimestamp = Option<String>;

    fn to_timestamp(time: DateTime<Utc>) -> String {
        time.to_rfc3339()
    }

    fn to_maybe_timestamp(time: Option<DateTime<Utc>>) -> Option<String> {
        time.map(Self::to_timestamp)
    }

    fn from_timestamp(stored: String) -> Result<DateTime<Utc>, String> {
        DateTime::parse_from_rfc3339(&stored).map(|t| t.to_utc()).map_err(|e| format!("{stored:?}: {e}"))
    }

    fn write_placeholder(sql: &mut String, _: usize) {
        sql.push('?');
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl Dialect for Postgres {
    /// `timestamptz`, to the microsecond.
    type Timestamp = DateTime<Utc>;
    type MaybeTimestamp = Option<DateTime<Utc>>;

    fn to_timestamp(time: DateTime<Utc>) -> DateTime<Utc> {
        time
    }

    fn to_maybe_timestamp(time: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        time
    }

    fn from_timestamp(stored: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        Ok(stored)
    }

    fn write_placeholder(sql: &mut String, n: usize) {
        let _ = write!(sql, "${n}");
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// A statement whose length depends on the data, assembled piece by piece with each parameter's
/// placeholder in `D`'s syntax.
pub(crate) struct Statement<'a, D> {
    /// The SQL text so far.
    pub sql: String,
    /// The parameters, in placeholder order.
    pub params: Vec<Param<'a>>,
    dialect: PhantomData<D>,
}

impl<'a, D: Dialect> Statement<'a, D> {
    /// A statement starting with `sql`.
    pub fn new(sql: &str) -> Self {
        Statement { sql: sql.to_owned(), params: Vec::new(), dialect: PhantomData }
    }

    /// Appends SQL text.
    pub fn push(mut self, sql: &str) -> Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends one parameter.
    pub fn param(mut self, param: Param<'a>) -> Self {
        self.params.push(param);
        D::write_placeholder(&mut self.sql, self.params.len());
        self
    }

    /// Appends `(p1, p2, ...)`: an `IN` list, or one row of `VALUES`.
    pub fn tuple(mut self, params: impl IntoIterator<Item = Param<'a>>) -> Self {
        self.sql.push('(');
        for (i, param) in params.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self = self.param(param);
        }
        self.sql.push(')');
        self
    }

    /// Appends `VALUES (...), (...)`, one tuple per row.
    pub fn values<R: IntoIterator<Item = Param<'a>>>(mut self, rows: impl IntoIterator<Item = R>) -> Self {
        self.sql.push_str("VALUES ");
        for (i, row) in rows.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self = self.tuple(row);
        }
        self
    }
}
