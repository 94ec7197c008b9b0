//! Retention: rows older than the retention period are deleted from the start of each chain, and
//! the chain's checkpoint moves to the last deleted row (see `Store::prune_audit`), so a pruned
//! chain still verifies and a deletion in the middle is still caught.

use std::time::Duration;

use mesh_store::{Store, StoreError};

/// Rows deleted per transaction: keeps each prune short, so appends never wait long for the lock.
const PRUNE_CHUNK: i64 = 5_000;

/// Prunes every organisation's chain to `keep`; returns the rows deleted.
pub async fn prune_all(store: &Store, keep: Duration) -> Result<u64, StoreError> {
    let now = mesh_core::id::now_ms();
    let cutoff = now.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
    let mut total = 0;
    for org in store.audit_orgs().await? {
        loop {
            let n = store.prune_audit(&org, cutoff, PRUNE_CHUNK, now).await?;
            total += n;
            if n == 0 {
                break;
            }
        }
    }
    Ok(total)
}

/// The pruner task: a pass at start, then every `every`.
pub(crate) async fn run(store: Store, keep: Duration, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match prune_all(&store, keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "audit retention: pruned old rows"),
            Err(e) => tracing::warn!(error = %e, "audit retention pass failed; will try again"),
        }
    }
}
