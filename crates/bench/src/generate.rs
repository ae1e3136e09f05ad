//! `fulfillment-bench generate`: writes a synthetic but valid event log (four events per
//! subscription: purchased, licenses assigned, setup confirmed, quantity changed), for replay,
//! verify and fold figures.

use anyhow::bail;
use std::time::Instant;

/// Options of `generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Events to write (four per subscription: purchased, licenses assigned, setup confirmed,
    /// quantity changed).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Data directory to create the log in (must not hold one yet).
    #[arg(long)]
    data_dir: std::path::PathBuf,
}

use fulfillment_core::Event;

/// Writes a synthetic but valid event log, for replay and verify figures.
#[allow(clippy::print_stdout)] // a benchmark prints its figures
pub async fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    use fulfillment_core::{EventEnvelope, Source, SourceKind, SubscriptionId, EVENT_SCHEMA_VERSION};
    use fulfillment_log::{AppendBatch, EventLog, SqliteEventLog, SqliteLogOptions, StreamAppend};
    let path = args.data_dir.join("events.sqlite");
    if path.exists() {
        bail!("{} already exists; generate into a new directory", path.display());
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let log = SqliteEventLog::open(&path, SqliteLogOptions::default()).await?;
    let started = Instant::now();
    let subscriptions = args.events.div_ceil(4);
    let mut written = 0u64;
    let base = chrono::Utc::now() - chrono::Duration::days(30);
    let mut n = 0u64;
    while n < subscriptions {
        let mut batch = AppendBatch::default();
        for _ in 0..250 {
            if n >= subscriptions || written >= args.events {
                break;
            }
            let id = SubscriptionId(uuid::Uuid::new_v4());
            let at = base + chrono::Duration::milliseconds(n as i64);
            let partner = Source { kind: SourceKind::Partner, actor_id: format!("partner-{}", n % 50) };
            let publisher = Source { kind: SourceKind::Publisher, actor_id: "contoso".into() };
            let events = [
                (partner.clone(), purchase_event(n as usize, &partner.actor_id, at)),
                (publisher.clone(), Event::LicensesAssigned { assigned_count: 5 }),
                (publisher, Event::SetupConfirmed { plan_id: "standard".into(), quantity: 5 }),
                (partner, Event::QuantityChanged { previous_quantity: 5, quantity: 8 }),
            ];
            let take = (args.events - written).min(4) as usize;
            let envelopes: Vec<EventEnvelope> = events
                .into_iter()
                .take(take)
                .map(|(source, event)| EventEnvelope {
                    event_id: uuid::Uuid::now_v7(),
                    subscription_id: id,
                    schema_version: EVENT_SCHEMA_VERSION,
                    source,
                    occurred_at: at,
                    recorded_at: at,
                    event,
                })
                .collect();
            written += envelopes.len() as u64;
            batch.streams.push(StreamAppend { subscription_id: id, expected_version: 0, events: envelopes });
            n += 1;
        }
        log.append(batch).await?;
    }
    println!(
        "wrote {written} events for {subscriptions} subscriptions into {} in {:.2} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Purchase number `n` of the synthetic logs: 5 monthly licenses of contoso's CRM, bought by
/// `partner_id` at `at`, auto-renew on, every license needed before billing starts.
pub(crate) fn purchase_event(n: usize, partner_id: &str, at: chrono::DateTime<chrono::Utc>) -> Event {
    use fulfillment_core::{BillingCycle, Purchase, Term};
    Event::SubscriptionPurchased {
        purchase: Purchase {
            order_id: uuid::Uuid::new_v4(),
            line_item_number: 0,
            customer_id: format!("customer-{}", n % 10_000),
            partner_id: partner_id.to_owned(),
            publisher_id: "contoso".into(),
            offer_id: "contoso-crm".into(),
            plan_id: "standard".into(),
            quantity: 5,
            term: Term::P1M,
            billing_cycle: BillingCycle::Monthly,
            auto_renew: true,
            friendly_name: format!("subscription {n}"),
            indirect_reseller_mpn_id: None,
            authorization_code: format!("code-{n}-{}", uuid::Uuid::new_v4().simple()),
        },
        cancellation_allowed_until: at + chrono::Duration::hours(72),
        activation_deadline: Some(at + chrono::Duration::days(30)),
        licenses_required: Some(fulfillment_core::LicensesRequired::All),
    }
}
