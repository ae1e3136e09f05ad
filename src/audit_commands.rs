//! The audit commands of the `fulfillment` binary: `replay`, `verify`, `history`, `export`.
//! They read the embedded log in `--data-dir` read-only, so they are safe beside a running
//! service, except `replay --swap`, which takes the data directory's lock.

use anyhow::{bail, Context};
use fulfillment::{peak_memory_mib, DataDirLock};
use fulfillment_audit::export::{export_jsonl, ExportFilter};
use fulfillment_audit::history::{render_table, timeline};
use fulfillment_audit::replay::{rebuild, Until};
use fulfillment_audit::verify as audit_verify;
use fulfillment_audit::Progress;
use fulfillment_core::SubscriptionId;
use fulfillment_log::{check_integrity, record_verified_position, EventLog, IntegrityCheck, LogError, SqliteEventLog};
use fulfillment_read_model::SqliteReadModel;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Where the embedded stores live (shared by every audit command).
#[derive(Debug, clap::Args)]
pub struct DataDir {
    /// Directory holding `events.sqlite` and `read_model.sqlite`.
    #[arg(long, env = "FULFILLMENT_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

impl DataDir {
    async fn log(&self) -> anyhow::Result<SqliteEventLog> {
        let path = self.data_dir.join("events.sqlite");
        SqliteEventLog::open_read_only(&path).await.with_context(|| format!("opening the event log {}", path.display()))
    }

    fn live_read_model(&self) -> PathBuf {
        self.data_dir.join("read_model.sqlite")
    }
}

/// A progress bar on a terminal, a log line every few seconds otherwise.
enum Reporter {
    Bar(indicatif::ProgressBar),
    Lines { started: Instant, last: Instant, what: &'static str },
}

impl Reporter {
    fn new(what: &'static str) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} events, {per_sec}, ETA {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(what);
            Reporter::Bar(bar)
        } else {
            Reporter::Lines { started: Instant::now(), last: Instant::now(), what }
        }
    }

    fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Reporter {
    fn update(&mut self, done: u64, total: u64) {
        match self {
            Reporter::Bar(bar) => {
                bar.set_length(total);
                bar.set_position(done);
            }
            Reporter::Lines { started, last, what } => {
                if last.elapsed() >= Duration::from_secs(2) || done == total {
                    *last = Instant::now();
                    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                    let eta = if rate > 0.0 { (total.saturating_sub(done)) as f64 / rate } else { 0.0 };
                    info!(
                        what = *what,
                        done,
                        total,
                        events_per_second = rate.round(),
                        eta_seconds = eta.round(),
                        "progress"
                    );
                }
            }
        }
    }
}

/// Options of `replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    data: DataDir,
    /// New read-model file to build (must not exist); default `<data-dir>/read_model.rebuild-<time>.sqlite`.
    /// It is written as `<target>.partial` and renamed only once complete and synced.
    #[arg(long)]
    target: Option<PathBuf>,
    /// Stop at this log position, or at the log prefix recorded by this RFC 3339 instant.
    #[arg(long)]
    until: Option<Until>,
    /// After the rebuild, replace the live read models with it (atomic rename). The service
    /// must be stopped. Without `--yes` this only says what it would do.
    #[arg(long)]
    swap: bool,
    /// Confirm `--swap`.
    #[arg(long)]
    yes: bool,
    /// Events folded per transaction.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
}

/// `fulfillment replay`.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    if args.swap && args.until.is_some() {
        bail!("--swap replaces the live read models and needs the whole log; it cannot be combined with --until");
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let target =
        args.target.clone().unwrap_or_else(|| args.data.data_dir.join(format!("read_model.rebuild-{stamp}.sqlite")));
    let live = args.data.live_read_model();
    let mut out = std::io::stdout().lock();
    if args.swap && !args.yes {
        writeln!(
            out,
            "dry run: would rebuild the read models from the whole log into {} and then atomically replace {} \
             (keeping the old one as {}.replaced-{stamp}); run again with --yes to do it",
            target.display(),
            live.display(),
            live.display()
        )?;
        return Ok(());
    }
    // Holding the lock keeps the service (the only writer) away, so the rebuilt model is
    // complete when it is swapped in.
    let _lock = if args.swap { Some(DataDirLock::acquire(&args.data.data_dir)?) } else { None };
    let log = args.data.log().await?;
    let store = SqliteReadModel::create_new(&target).await?;
    let mut progress = Reporter::new("replaying");
    let report = rebuild(&log, &store, args.until.unwrap_or(Until::Head), args.batch, &mut progress).await?;
    progress.finish();
    store.checkpoint_and_close().await?;
    writeln!(
        out,
        "replayed {} events (log position {}) into {} in {:.2} s: {:.0} events/s, peak memory {} MiB",
        report.events,
        report.position,
        target.display(),
        report.elapsed.as_secs_f64(),
        report.rate(),
        peak_memory_mib()
    )?;
    if args.swap {
        swap_in(&target, &live, &stamp.to_string()).await?;
        writeln!(out, "swapped: {} is now the live read model", live.display())?;
    }
    Ok(())
}

/// Replaces `live` by `rebuilt` with one atomic rename; the old model is kept beside it.
async fn swap_in(rebuilt: &Path, live: &Path, stamp: &str) -> anyhow::Result<()> {
    if live.exists() {
        // Fold the old model's WAL into its file, so no stale -wal can meet the new file.
        SqliteReadModel::open(live).await?.checkpoint_and_close().await?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{suffix}", live.display()));
            // SQLite may delete these itself as its last connection closes, possibly just after
            // the pool said it closed: a file already gone is what we wanted.
            match std::fs::remove_file(&side) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", side.display()));
                }
                _ => {}
            }
        }
        let backup = PathBuf::from(format!("{}.replaced-{stamp}", live.display()));
        std::fs::hard_link(live, &backup).with_context(|| format!("keeping the old model as {}", backup.display()))?;
    }
    std::fs::rename(rebuilt, live).with_context(|| format!("renaming {} to {}", rebuilt.display(), live.display()))?;
    Ok(())
}

/// Options of `verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    data: DataDir,
    /// Events folded per transaction during the scratch replay.
    #[arg(long, default_value_t = 5000)]
    batch: usize,
}

/// The exit status of `verify`, for its `--help`.
pub const VERIFY_EXIT_STATUS: &str = "\
Exit status:
  0  the read models equal a replay of the log, every hash chain is intact, and SQLite finds
     both files intact (the verified position is then stored in the log: `serve` re-checks
     the hash chains only after it at start)
  1  the log and the read models disagree, or a hash chain is broken (an event was edited)
  2  could not verify: a file is missing, SQLite's integrity_check reports damage, or the
     storage cannot be read";

/// What `verify` concluded, as its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Equal and intact (exit 0).
    Intact = 0,
    /// A difference or a broken chain (exit 1).
    Different = 1,
    /// Could not verify (exit 2).
    Unverifiable = 2,
}

/// `fulfillment verify`, to its exit status ([`VERIFY_EXIT_STATUS`]); why it could not verify
/// goes to stderr.
pub async fn verify(args: VerifyArgs) -> Verdict {
    match verify_command(args).await {
        Ok(true) => Verdict::Intact,
        Ok(false) => Verdict::Different,
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "Error: {e:?}");
            Verdict::Unverifiable
        }
    }
}

/// Runs SQLite's full `integrity_check` on the file at `path` (`what`, for the message).
fn check_storage(what: &str, path: &Path) -> anyhow::Result<()> {
    match check_integrity(path, IntegrityCheck::Full) {
        Ok(()) => Ok(()),
        Err(LogError::Damaged(report)) => bail!("{what} is damaged: {report}; nothing was compared"),
        Err(e) => Err(e).with_context(|| format!("checking {what} {}", path.display())),
    }
}

/// `fulfillment verify`: `Ok(true)` when both files pass SQLite's integrity check, the live
/// read models equal a fresh replay and every hash chain is intact (and then the verified
/// position is stored in the log), `Ok(false)` with a readable report on stdout otherwise, an
/// error when it could not verify.
pub async fn verify_command(args: VerifyArgs) -> anyhow::Result<bool> {
    let log_path = args.data.data_dir.join("events.sqlite");
    let live_path = args.data.live_read_model();
    for (what, path) in [("event log", &log_path), ("live read model", &live_path)] {
        if !path.is_file() {
            bail!("no {what} at {} (is --data-dir right?)", path.display());
        }
    }
    let mut out = std::io::stdout();
    check_storage("the event log", &log_path)?;
    check_storage("the read models", &live_path)?;
    writeln!(out, "storage: SQLite's integrity_check finds events.sqlite and read_model.sqlite intact")?;
    let log = args.data.log().await?;
    let live = SqliteReadModel::open(&live_path).await?;
    let scratch_dir = tempfile::tempdir()?;
    let scratch = SqliteReadModel::create_new(&scratch_dir.path().join("scratch.sqlite")).await?;
    let mut progress = Reporter::new("verifying");
    let report = audit_verify::verify(&log, &live, &scratch, args.batch, &mut progress).await?;
    progress.finish();
    write!(out, "{}", report.render())?;
    if report.ok() {
        match record_verified_position(&log_path, report.chains_checked_through) {
            Ok(()) => writeln!(
                out,
                "verified checkpoint: position {} (serve re-checks the hash chains after it at start)",
                report.chains_checked_through
            )?,
            Err(e) => {
                warn!(error = %e, "the verified checkpoint was not stored; serve will check the whole log at start");
                writeln!(out, "verified checkpoint not stored: {e}")?;
            }
        }
    }
    Ok(report.ok())
}

/// Output format of `history`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum HistoryFormat {
    /// A text table.
    Table,
    /// A JSON array.
    Json,
}

/// Options of `history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Subscription id.
    subscription_id: SubscriptionId,
    #[command(flatten)]
    data: DataDir,
    /// Output format.
    #[arg(long, value_enum, default_value_t = HistoryFormat::Table)]
    format: HistoryFormat,
}

/// `fulfillment history <subscription-id>`.
pub async fn history(args: HistoryArgs) -> anyhow::Result<()> {
    let log = args.data.log().await?;
    let events = log.read_stream(args.subscription_id).await?;
    if events.is_empty() {
        bail!("subscription {} has no events in this log", args.subscription_id);
    }
    let rows = timeline(&events);
    let mut out = std::io::stdout().lock();
    match args.format {
        HistoryFormat::Table => write!(out, "{}", render_table(&rows))?,
        HistoryFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?,
    }
    Ok(())
}

/// Export format (only JSON lines today).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
}

fn instant(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&chrono::Utc)).map_err(|e| format!("{s:?}: {e}"))
}

/// Options of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    data: DataDir,
    /// Events recorded at or after this RFC 3339 instant.
    #[arg(long, value_parser = instant)]
    since: Option<chrono::DateTime<chrono::Utc>>,
    /// Events recorded before this RFC 3339 instant.
    #[arg(long, value_parser = instant)]
    until: Option<chrono::DateTime<chrono::Utc>>,
    /// Only this subscription.
    #[arg(long)]
    subscription: Option<SubscriptionId>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    format: ExportFormat,
}

/// `fulfillment export`: raw envelopes to stdout.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let ExportFormat::Jsonl = args.format;
    let log = args.data.log().await?;
    let filter = ExportFilter { since: args.since, until: args.until, subscription: args.subscription };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let lines = export_jsonl(&log, &filter, &mut out).await?;
    info!(lines, "export written");
    Ok(())
}
