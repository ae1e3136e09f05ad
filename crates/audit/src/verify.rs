//! Proving the read models are exactly what the log says, and that the log was not edited.
//!
//! The hash chains are checked by the log crate's [`check_chains`], the one implementation of
//! the chain rules (the embedded log applies the same rules to its tail when it opens).

use crate::replay::{rebuild, Until};
use crate::{AuditError, Progress};
use fulfillment_log::EventLog;
pub use fulfillment_log::{check_chains, ChainBreak};
use fulfillment_read_model::{Fingerprint, Fingerprints, Projection};
use serde_json::Value;
use std::fmt::Write;

/// Most differing subscriptions shown in detail.
const MAX_DETAILED_DIFFS: usize = 20;

/// How one subscription differs between the live and the replayed models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionDiff {
    /// Subscription.
    pub subscription_id: String,
    /// One line per differing field: `path: live <x>, replayed <y>`.
    pub differences: Vec<String>,
}

/// The outcome of `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Live model's fingerprint.
    pub live: Fingerprint,
    /// Replayed model's fingerprint.
    pub replayed: Fingerprint,
    /// Broken hash chains.
    pub chain_breaks: Vec<ChainBreak>,
    /// The last log position whose chain was checked: with an intact log, every event up to it
    /// is vouched for (the embedded log's verified checkpoint).
    pub chains_checked_through: u64,
    /// Tables whose checksums differ.
    pub table_mismatches: Vec<String>,
    /// Differing subscriptions, in detail (at most 20).
    pub subscription_diffs: Vec<SubscriptionDiff>,
    /// Differing subscriptions beyond those shown.
    pub more_differences: usize,
}

impl VerifyReport {
    /// True when the live models equal the replay and every chain is intact.
    pub fn ok(&self) -> bool {
        self.chain_breaks.is_empty() && self.table_mismatches.is_empty() && self.subscription_diffs.is_empty()
    }

    /// A readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "log position verified: {}", self.live.position);
        for (table, live) in &self.live.tables {
            let replayed = self.replayed.tables.get(table).map(String::as_str).unwrap_or("-");
            let verdict = if live == replayed { "equal" } else { "DIFFERENT" };
            let _ = writeln!(
                out,
                "  {table:<16} live {} replayed {}  {verdict}",
                &live[..16],
                &replayed[..16.min(replayed.len())]
            );
        }
        let _ = writeln!(
            out,
            "  subscriptions    {} live, {} replayed",
            self.live.subscriptions.len(),
            self.replayed.subscriptions.len()
        );
        if self.chain_breaks.is_empty() {
            let _ = writeln!(out, "hash chains: intact");
        } else {
            let _ = writeln!(out, "hash chains: {} BROKEN", self.chain_breaks.len());
            for b in &self.chain_breaks {
                let _ = writeln!(out, "  {b}");
            }
        }
        for diff in &self.subscription_diffs {
            let _ = writeln!(out, "subscription {} differs:", diff.subscription_id);
            for d in &diff.differences {
                let _ = writeln!(out, "  {d}");
            }
        }
        if self.more_differences > 0 {
            let _ = writeln!(out, "... and {} more differing subscriptions", self.more_differences);
        }
        let _ =
            writeln!(out, "{}", if self.ok() { "OK: the read models are exactly what the log says" } else { "FAILED" });
        out
    }
}

/// Lists how `live` and `replayed` differ, one line per leaf.
fn diff_json(path: &str, live: &Value, replayed: &Value, out: &mut Vec<String>) {
    match (live, replayed) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                diff_json(
                    &format!("{path}.{k}"),
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                diff_json(
                    &format!("{path}[{i}]"),
                    a.get(i).unwrap_or(&Value::Null),
                    b.get(i).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (a, b) if a != b => out.push(format!("{path}: live {a}, replayed {b}")),
        _ => {}
    }
}

/// Replays the log into `scratch` up to the live model's position and compares the two, and
/// checks the hash chains. The live model is only read.
pub async fn verify<Live, Scratch>(
    log: &dyn EventLog,
    live: &Live,
    scratch: &Scratch,
    batch: usize,
    progress: &mut dyn Progress,
) -> Result<VerifyReport, AuditError>
where
    Live: Fingerprints + ?Sized,
    Scratch: Projection + Fingerprints,
{
    let live_position = live.position().await?;
    rebuild(log, scratch, Until::Position(live_position), batch, progress).await?;
    let live_print = live.fingerprint().await?;
    let replayed = scratch.fingerprint().await?;
    let chains = check_chains(log).await?;
    let table_mismatches: Vec<String> = live_print
        .tables
        .iter()
        .filter(|(table, hash)| replayed.tables.get(*table) != Some(*hash))
        .map(|(table, _)| table.clone())
        .collect();
    let mut differing: Vec<&String> = live_print
        .subscriptions
        .keys()
        .chain(replayed.subscriptions.keys())
        .filter(|id| live_print.subscriptions.get(*id) != replayed.subscriptions.get(*id))
        .collect();
    differing.sort();
    differing.dedup();
    let more_differences = differing.len().saturating_sub(MAX_DETAILED_DIFFS);
    let mut subscription_diffs = Vec::new();
    for id in differing.into_iter().take(MAX_DETAILED_DIFFS) {
        let mut differences = Vec::new();
        diff_json("", &live.subscription_rows(id).await?, &scratch.subscription_rows(id).await?, &mut differences);
        subscription_diffs.push(SubscriptionDiff { subscription_id: id.clone(), differences });
    }
    let mut report = VerifyReport {
        live: live_print,
        replayed,
        chain_breaks: chains.breaks,
        chains_checked_through: chains.checked_through,
        table_mismatches,
        subscription_diffs,
        more_differences,
    };
    if report.live.position != report.replayed.position {
        report
            .table_mismatches
            .push(format!("projector position: live {}, replayed {}", report.live.position, report.replayed.position));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diffs_name_every_differing_leaf() {
        let mut out = Vec::new();
        diff_json(
            "",
            &json!({"state": {"quantity": 5, "status": "subscribed"}, "billing": [1, 2]}),
            &json!({"state": {"quantity": 7, "status": "subscribed"}, "billing": [1]}),
            &mut out,
        );
        assert_eq!(out, [".billing[1]: live 2, replayed null", ".state.quantity: live 5, replayed 7"]);
    }
}
