//! `fulfillment-bench fold`: folds a whole log into a fresh read-model store through the
//! projector's own code path, and prints events per second on SQLite or PostgreSQL; then
//! writes the same rows again with a plain batched insert, the baseline that says what folding
//! costs beyond writing.

use anyhow::{bail, Context};
use fulfillment_read_model::PostgresOptions;
use std::time::{Duration, Instant};

/// Options of `fold`.
#[derive(Debug, clap::Args)]
pub struct FoldArgs {
    /// Data directory holding the event log to fold (for example one `generate` wrote).
    #[arg(long)]
    data_dir: std::path::PathBuf,
    /// Fold into this PostgreSQL database, which must not hold a folded model yet; without it,
    /// into a scratch SQLite file.
    #[arg(long, env = "FULFILLMENT_BENCH_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Events per projector transaction.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

/// Folds a whole log into a fresh read-model store, the projector's own code path, and prints
/// events per second: the projector's throughput on SQLite or PostgreSQL.
#[allow(clippy::print_stdout)] // a benchmark prints its figures
pub async fn fold(args: FoldArgs) -> anyhow::Result<()> {
    use fulfillment_audit::replay::{rebuild, Until};
    use fulfillment_audit::Silent;
    use fulfillment_read_model::{PostgresReadModel, ReadModels, SqliteReadModel};
    let path = args.data_dir.join("events.sqlite");
    let log = fulfillment_log::SqliteEventLog::open_read_only(&path)
        .await
        .with_context(|| format!("opening the event log {}", path.display()))?;
    let scratch = tempfile::tempdir()?;
    let (store, backend): (Box<dyn ReadModels>, &str) = match &args.database_url {
        Some(url) => {
            let options =
                PostgresOptions { url: url.clone(), max_connections: 2, acquire_timeout: Duration::from_secs(30) };
            (Box::new(PostgresReadModel::connect(&options).await?), "PostgreSQL")
        }
        // The live projector's store (every batch durable), not a replay target's.
        None => (Box::new(SqliteReadModel::open(&scratch.path().join("read_model.sqlite")).await?), "SQLite"),
    };
    if store.position().await? != 0 {
        bail!("the target already holds a folded model; point --database-url at an empty database");
    }
    let report = rebuild(&log, store.as_ref(), Until::Head, args.batch, &mut Silent).await?;
    println!(
        "folded {} events into {backend} in {:.2} s: {:.0} events/s (batch {}), peak memory {} MiB",
        report.events,
        report.elapsed.as_secs_f64(),
        report.rate(),
        args.batch,
        fulfillment::peak_memory_mib()
    );

    // The baseline: the rows the fold wrote (subscription states and billing events), written
    // again by a plain batched insert into a two-column table of the same database kind, the
    // same number of rows per transaction. The ratio says what folding costs beyond writing.
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut after = None;
    loop {
        let page = store.publisher_subscriptions("contoso", after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for subscription in &page {
            rows.push((subscription.id.to_string(), serde_json::to_string(subscription)?));
        }
    }
    let mut cursor = 0;
    loop {
        let page = store.billing_events(cursor, 1000).await?;
        let Some(last) = page.last() else { break };
        cursor = last.sequence;
        rows.extend(page.iter().map(|e| (format!("billing-{}", e.sequence), e.event.to_string())));
    }
    let started = Instant::now();
    match &args.database_url {
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await?;
            sqlx::query("CREATE TABLE IF NOT EXISTS bench_baseline (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
                .execute(&pool)
                .await?;
            for chunk in rows.chunks(args.batch.max(1)) {
                let mut tx = pool.begin().await?;
                let mut insert = sqlx::QueryBuilder::<sqlx::Postgres>::new("INSERT INTO bench_baseline (k, v) ");
                insert.push_values(chunk, |mut row, (k, v)| {
                    row.push_bind(k).push_bind(v);
                });
                insert.build().execute(&mut *tx).await?;
                tx.commit().await?;
            }
            sqlx::query("DROP TABLE bench_baseline").execute(&pool).await?;
        }
        None => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(scratch.path().join("baseline.sqlite"))
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
            let pool = sqlx::SqlitePool::connect_with(options).await?;
            sqlx::query("CREATE TABLE bench_baseline (k TEXT PRIMARY KEY, v TEXT NOT NULL)").execute(&pool).await?;
            // SQLite binds at most 32,766 parameters per statement: 2 per row.
            for chunk in rows.chunks(args.batch.clamp(1, 16_000)) {
                let mut tx = pool.begin().await?;
                let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO bench_baseline (k, v) ");
                insert.push_values(chunk, |mut row, (k, v)| {
                    row.push_bind(k).push_bind(v);
                });
                insert.build().execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
    }
    let baseline = started.elapsed();
    println!(
        "plain batched insert of the {} rows the fold wrote: {:.2} s; the fold took {:.1}x as long",
        rows.len(),
        baseline.as_secs_f64(),
        report.elapsed.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
    );
    Ok(())
}
