//! The outbox, for the producer's relay: rows stored with their runs are
//! published to RabbitMQ with confirms, and marked sent once confirmed.

use chrono::{DateTime, Utc};
use lifecycle_broker::{Dispatch, Publisher};
use lifecycle_store::{outbox, Db, StoreError};
use tracing::{info_span, warn, Instrument};

/// How many rows wait to be published, and since when the oldest.
pub async fn lag(db: &Db) -> Result<(u64, Option<DateTime<Utc>>), StoreError> {
    outbox::lag(db).await
}

/// Publishes until no unsent row is left, `batch` rows at a time; how many
/// were sent, or the first error (the database's or the broker's), in words.
pub async fn drain(db: &Db, publisher: &Publisher, batch: u64) -> Result<usize, String> {
    let mut total = 0;
    loop {
        let rows = outbox::pending(db, batch).await.map_err(|e| e.to_string())?;
        if rows.is_empty() {
            return Ok(total);
        }
        let ids: Vec<String> = rows.iter().map(|r| r.run_id.clone()).collect();
        let routes = outbox::routes_of(db, &ids).await.map_err(|e| e.to_string())?;
        // Every row names a run written in the same transaction; one that
        // does not is a bug: say so, keep it.
        let (rows, orphans): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| routes.contains_key(&r.run_id));
        if !orphans.is_empty() {
            let ids: Vec<i64> = orphans.iter().map(|r| r.id).collect();
            warn!(rows = ?ids, "outbox rows whose run does not exist; left unsent");
            let _ = outbox::mark_failed(db, &ids, "the run does not exist").await;
            if rows.is_empty() {
                return Err("outbox rows whose run does not exist".into());
            }
        }
        // One `outbox.publish` span per message, in the trace its run was
        // stored in; the message carries this span's context, so the
        // worker's run is its child. All confirms are awaited together.
        let publishes = rows.iter().map(|r| {
            let (vendor, stored) = &routes[&r.run_id];
            let d = Dispatch { run_id: r.run_id.clone(), dispatch_seq: r.dispatch_seq, vendor: *vendor };
            let span = info_span!("outbox.publish", run_id = %r.run_id, vendor = %vendor, messaging.system = "rabbitmq", messaging.operation.type = "publish");
            lifecycle_telemetry::continue_from(&span, stored.as_deref());
            let header = lifecycle_telemetry::traceparent_of(&span).or_else(|| stored.clone());
            async move { publisher.dispatch_with(&d, header.as_deref()).await }.instrument(span)
        });
        let results = futures::future::join_all(publishes).await;
        let mut sent = Vec::new();
        let mut failed = Vec::new();
        let mut first_error = None;
        for (row, result) in rows.iter().zip(results) {
            match result {
                Ok(()) => sent.push(row.id),
                Err(e) => {
                    failed.push(row.id);
                    first_error.get_or_insert(e.to_string());
                }
            }
        }
        outbox::mark_sent(db, &sent).await.map_err(|e| e.to_string())?;
        metrics::counter!("lifecycle_outbox_published_total").increment(sent.len() as u64);
        total += sent.len();
        if let Some(err) = first_error {
            let _ = outbox::mark_failed(db, &failed, &err).await;
            return Err(err);
        }
    }
}
