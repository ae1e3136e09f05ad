//! The sqlx operations the stores run, with sqlx's trait bounds named once: [`Backend`] is
//! implemented for every [`Dialect`] whose sqlx driver meets them (SQLite and PostgreSQL), so the
//! query code is written once, generic over `D: Backend`, and asks for nothing else.

use super::dialect::{Dialect, Param};
use crate::ReadModelError;
use futures_util::future::BoxFuture;
use futures_util::TryStreamExt;
use sqlx::query::Query;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};
use std::future::Future;

/// A database the read-model queries run on. Every statement takes its parameters as
/// [`Param`]s, bound in order, and runs on a connection (a pooled one, or a transaction's).
pub(crate) trait Backend: Dialect {
    /// Every row `sql` returns, each decoded by `decode` as it arrives and then dropped (as
    /// sqlx's typed `fetch_all` does), so the raw rows of a page are never all held at once.
    ///
    /// Boxed: the fold awaits it with a concrete database, and rustc cannot yet prove such a
    /// future `Send` when it holds a closure over borrowed rows (rust-lang/rust#100013).
    fn fetch_decoded<'a, T, F>(
        conn: &'a mut Self::Connection,
        sql: &'a str,
        params: &'a [Param<'a>],
        mut decode: F,
    ) -> BoxFuture<'a, Result<Vec<T>, ReadModelError>>
    where
        T: Send + 'a,
        F: FnMut(&Self::Row) -> Result<T, ReadModelError> + Send + 'a,
    {
        Box::pin(async move {
            let mut decoded = Vec::new();
            Self::for_each_row(conn, sql, params, |row| {
                decoded.push(decode(row)?);
                Ok(())
            })
            .await?;
            Ok(decoded)
        })
    }

    /// Runs `sql`; how many rows it changed.
    fn execute<'a>(
        conn: &'a mut Self::Connection,
        sql: &'a str,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a;

    /// Hands the rows `sql` returns to `each` one at a time, without holding them all.
    fn for_each_row<'a, F>(
        conn: &'a mut Self::Connection,
        sql: &'a str,
        params: &'a [Param<'a>],
        each: F,
    ) -> impl Future<Output = Result<(), ReadModelError>> + Send + 'a
    where
        F: FnMut(&Self::Row) -> Result<(), ReadModelError> + Send + 'a;

    /// A text column.
    fn text(row: &Self::Row, column: usize) -> Result<String, sqlx::Error>;

    /// An integer column.
    fn int(row: &Self::Row, column: usize) -> Result<i64, sqlx::Error>;

    /// A timestamp column; `name` says which, should it not hold a time.
    fn time(row: &Self::Row, column: usize, name: &str) -> Result<chrono::DateTime<chrono::Utc>, ReadModelError>;
}

/// `sql` with `params` bound in order.
fn bind<'q, DB>(sql: &'q str, params: &[Param<'q>]) -> Query<'q, DB, DB::Arguments<'q>>
where
    DB: Dialect,
    &'q str: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    params.iter().fold(sqlx::query(sql), |query, param| match *param {
        Param::Text(text) => query.bind(text),
        Param::Int(number) => query.bind(number),
        Param::Time(time) => query.bind(DB::to_timestamp(time)),
        Param::MaybeTime(time) => query.bind(DB::to_maybe_timestamp(time)),
    })
}

impl<DB> Backend for DB
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB>,
    i64: for<'r> Decode<'r, DB> + Type<DB>,
    String: for<'r> Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn execute<'a>(
        conn: &'a mut DB::Connection,
        sql: &'a str,
        params: &'a [Param<'a>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'a {
        let query = bind(sql, params);
        async move { Ok(DB::rows_affected(&query.execute(conn).await?)) }
    }

    async fn for_each_row<'a, F>(
        conn: &'a mut DB::Connection,
        sql: &'a str,
        params: &'a [Param<'a>],
        mut each: F,
    ) -> Result<(), ReadModelError>
    where
        F: FnMut(&DB::Row) -> Result<(), ReadModelError> + Send + 'a,
    {
        let mut rows = bind(sql, params).fetch(conn);
        while let Some(row) = rows.try_next().await? {
            each(&row)?;
        }
        Ok(())
    }

    fn text(row: &DB::Row, column: usize) -> Result<String, sqlx::Error> {
        row.try_get(column)
    }

    fn int(row: &DB::Row, column: usize) -> Result<i64, sqlx::Error> {
        row.try_get(column)
    }

    fn time(row: &DB::Row, column: usize, name: &str) -> Result<chrono::DateTime<chrono::Utc>, ReadModelError> {
        let stored: DB::Timestamp = row.try_get(column)?;
        DB::from_timestamp(stored).map_err(|e| ReadModelError::Corrupt(format!("{name} {e}")))
    }
}
