//! Where the log lines of a `fulfillment` process go and how they look: to standard error,
//! filtered by `RUST_LOG`, as JSON for collectors or as escaped text (`crate::text_log`) for
//! people. Shared by the `fulfillment` binary and the `fulfillment-bench` tool, whose in-process
//! service logs the same way.

use crate::text_log::TextFields;
use std::io::IsTerminal;

/// Log format: `text` for people, `json` for collectors; `auto` picks text on a terminal.
// No doc comments on the variants: clap would show them in `--help`, which says it all above.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Auto,
    Text,
    Json,
}

/// Installs the global subscriber in `format`.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    // Colours only on a terminal: a log file or collector gets no escape sequences at all.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.fmt_fields(TextFields).init();
    }
}
