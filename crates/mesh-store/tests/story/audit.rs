//! Chapter three: the audit trail — chained appends, queries, chain reads, pruning behind a
//! checkpoint, and concurrent writers that must still leave a gapless chain.
//!
//! The store does not hash rows itself (mesh-audit passes its `seal`); this chapter uses a
//! readable stand-in so every assertion can spell out the expected link.

use mesh_store::{AuditFilter, AuditOrder, AuditRow, Store, AUDIT_GENESIS};

use crate::people::NOW;

/// A stand-in for the real hash: names the previous hash, the position and the arguments.
fn seal(r: &AuditRow) -> String {
    format!("h[{}:{}:{}]", r.org_id, r.seq, r.arguments.as_deref().unwrap_or("-"))
}

fn row(org: &str, at: i64, user: &str, route: &str, name: Option<&str>, outcome: &str) -> AuditRow {
    AuditRow {
        org_id: org.into(),
        seq: 0,
        time_ms: at,
        user_id: user.into(),
        key_id: format!("key_{user}"),
        role: "member".into(),
        session_id: "sess".into(),
        client_name: Some("claude-code".into()),
        client_version: Some("1.2.3".into()),
        route_kind: if route == "management" { "management" } else { "connection" }.into(),
        route: route.into(),
        method: if name.is_some() { "tools/call" } else { "tools/list" }.into(),
        name: name.map(String::from),
        arguments: name.map(|n| format!(r#"{{"tool":"{n}","note":"héllo ✓"}}"#)),
        arguments_truncated: false,
        outcome: outcome.into(),
        error: (outcome != "ok").then(|| "boom".to_string()),
        latency_us: 1500,
        bytes_in: 120,
        bytes_out: 340,
        request_id: "7".into(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

fn filter(org: &str) -> AuditFilter {
    AuditFilter { org_id: org.into(), limit: 100, ..AuditFilter::default() }
}

fn seqs(rows: &[AuditRow]) -> Vec<i64> {
    rows.iter().map(|r| r.seq).collect()
}

pub async fn audit_trail(store: &Store) {
    assert_eq!(store.audit_chain("org_a").await.unwrap(), None, "no chain before the first row");
    store.append_audit(&mut Vec::new(), seal).await.unwrap();

    // One batch across two organisations: each gets its own gapless chain, in batch order.
    let mut batch = vec![
        row("org_a", NOW, "alice", "github", Some("search"), "ok"),
        row("org_b", NOW + 1, "bob", "files", Some("read"), "ok"),
        row("org_a", NOW + 2, "alice", "github", Some("create_issue"), "tool_error"),
        row("org_a", NOW + 3, "carol", "management", Some("COLLECTION_CONNECTIONS_CREATE"), "ok"),
    ];
    store.append_audit(&mut batch, seal).await.unwrap();
    assert_eq!(seqs(&batch), [1, 1, 2, 3]);
    assert_eq!(batch[0].prev_hash, AUDIT_GENESIS);
    assert_eq!(batch[2].prev_hash, batch[0].hash, "rows link to their own organisation's chain");
    assert_eq!(batch[3].prev_hash, batch[2].hash);
    assert_eq!(batch[1].prev_hash, AUDIT_GENESIS);

    let mut later = vec![
        row("org_a", NOW + 10, "alice", "files", None, "ok"),
        row("org_a", NOW + 11, "bob", "github", Some("search"), "denied"),
    ];
    store.append_audit(&mut later, seal).await.unwrap();
    assert_eq!(seqs(&later), [4, 5]);
    assert_eq!(later[0].prev_hash, batch[3].hash, "a new batch continues the chain");

    let chain = store.audit_chain("org_a").await.unwrap().unwrap();
    assert_eq!((chain.head_seq, chain.head_hash.as_str()), (5, later[1].hash.as_str()));
    assert_eq!((chain.pruned_seq, chain.pruned_hash.as_str(), chain.pruned_at), (0, AUDIT_GENESIS, None));
    assert_eq!(store.audit_orgs().await.unwrap(), ["org_a", "org_b"]);

    // Queries: newest first, every field back as written, tenants never mixed.
    let all = store.query_audit(&filter("org_a")).await.unwrap();
    assert_eq!(seqs(&all), [5, 4, 3, 2, 1]);
    assert_eq!(all[4], batch[0], "a row reads back exactly as appended");
    assert_eq!(all[3].arguments.as_deref(), Some(r#"{"tool":"create_issue","note":"héllo ✓"}"#));
    assert_eq!(seqs(&store.query_audit(&filter("org_b")).await.unwrap()), [1]);
    assert!(store.query_audit(&filter("org_missing")).await.unwrap().is_empty());

    let q = |f: AuditFilter| async move { seqs(&store.query_audit(&f).await.unwrap()) };
    assert_eq!(q(AuditFilter { user_id: Some("alice".into()), ..filter("org_a") }).await, [4, 2, 1]);
    assert_eq!(q(AuditFilter { key_id: Some("key_bob".into()), ..filter("org_a") }).await, [5]);
    assert_eq!(q(AuditFilter { route: Some("github".into()), ..filter("org_a") }).await, [5, 2, 1]);
    assert_eq!(q(AuditFilter { route_kind: Some("management".into()), ..filter("org_a") }).await, [3]);
    assert_eq!(q(AuditFilter { name: Some("search".into()), ..filter("org_a") }).await, [5, 1]);
    assert_eq!(q(AuditFilter { method: Some("tools/list".into()), ..filter("org_a") }).await, [4]);
    assert_eq!(q(AuditFilter { outcome: Some("tool_error".into()), ..filter("org_a") }).await, [2]);
    assert_eq!(q(AuditFilter { from_ms: Some(NOW + 2), to_ms: Some(NOW + 11), ..filter("org_a") }).await, [4, 3, 2]);
    let both = AuditFilter { user_id: Some("alice".into()), route: Some("github".into()), ..filter("org_a") };
    assert_eq!(q(both).await, [2, 1]);

    // Pages: the cursor is the last seq seen, in either direction; limits are clamped.
    assert_eq!(q(AuditFilter { limit: 2, ..filter("org_a") }).await, [5, 4]);
    assert_eq!(q(AuditFilter { limit: 2, cursor: Some(4), ..filter("org_a") }).await, [3, 2]);
    assert_eq!(q(AuditFilter { limit: 2, cursor: Some(2), ..filter("org_a") }).await, [1]);
    let asc = AuditFilter { order: AuditOrder::Asc, limit: 2, ..filter("org_a") };
    assert_eq!(q(asc.clone()).await, [1, 2]);
    assert_eq!(q(AuditFilter { cursor: Some(2), ..asc }).await, [3, 4]);
    assert_eq!(q(AuditFilter { limit: 0, ..filter("org_a") }).await, [5], "a limit below 1 means 1");

    // Chain reads for verification: ascending pages after a seq.
    assert_eq!(seqs(&store.audit_chain_rows("org_a", 0, 3).await.unwrap()), [1, 2, 3]);
    assert_eq!(seqs(&store.audit_chain_rows("org_a", 3, 3).await.unwrap()), [4, 5]);
    assert!(store.audit_chain_rows("org_a", 5, 3).await.unwrap().is_empty());

    pruning(store).await;
    concurrent_appends(store).await;
    large_batch(store).await;
}

/// A batch of 40 rows with a second organisation interleaved and every column varied, some in
/// runs of equal values (the SQLite path binds only what changed from the row before): each row
/// reads back exactly as written, in chain order.
async fn large_batch(store: &Store) {
    let mut batch: Vec<AuditRow> = (0..40i64)
        .map(|i| {
            let org = if i % 13 == 5 { "org_l2" } else { "org_l1" };
            let name = format!("tool{}", i / 4);
            let mut r = row(org, NOW + i, &format!("user{}", i / 3), &format!("route{}", i % 2), Some(&name), "ok");
            r.client_version = (i % 3 != 0).then(|| "v1".to_string());
            r.error = (i % 4 == 1).then(|| "failure ✗".to_string());
            r.arguments_truncated = i % 5 == 2;
            (r.latency_us, r.bytes_in, r.bytes_out) = (i * 7, i * 11, i * 13);
            r.request_id = format!("req-{i}");
            r
        })
        .collect();
    store.append_audit(&mut batch, seal).await.unwrap();
    for org in ["org_l1", "org_l2"] {
        let written: Vec<&AuditRow> = batch.iter().filter(|r| r.org_id == org).collect();
        let read = store.audit_chain_rows(org, 0, 1000).await.unwrap();
        assert_eq!(read.len(), written.len());
        assert_eq!(seqs(&read), (1..=written.len() as i64).collect::<Vec<_>>());
        for (r, w) in read.iter().zip(&written) {
            assert_eq!(r, *w, "row {} of {org} reads back as written", w.seq);
        }
        for pair in read.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
        }
    }
}

/// Retention deletes a prefix and leaves a checkpoint the next row links to.
async fn pruning(store: &Store) {
    let mut rows = vec![
        row("org_p", NOW, "alice", "x", Some("t"), "ok"),
        row("org_p", NOW + 100, "alice", "x", Some("t"), "ok"),
        // Arrived before the cutoff but written after a newer row (a long call): seq 4 is old,
        // seq 3 is not, so only 1–2 may go; deleting 4 would leave a hole.
        row("org_p", NOW + 5_000, "alice", "x", Some("t"), "ok"),
        row("org_p", NOW + 200, "alice", "x", Some("t"), "ok"),
        row("org_p", NOW + 6_000, "alice", "x", Some("t"), "ok"),
    ];
    store.append_audit(&mut rows, seal).await.unwrap();
    assert_eq!(store.prune_audit("org_none", NOW + 1_000, 1000, NOW).await.unwrap(), 0, "no chain, nothing to do");
    assert_eq!(store.prune_audit("org_p", NOW, 1000, NOW).await.unwrap(), 0, "nothing older than the cutoff");

    // At most `max_rows` per pass.
    assert_eq!(store.prune_audit("org_p", NOW + 1_000, 1, NOW + 7).await.unwrap(), 1);
    let chain = store.audit_chain("org_p").await.unwrap().unwrap();
    assert_eq!(
        (chain.pruned_seq, chain.pruned_hash.as_str(), chain.pruned_at),
        (1, rows[0].hash.as_str(), Some(NOW + 7))
    );
    assert_eq!(store.prune_audit("org_p", NOW + 1_000, 1000, NOW + 8).await.unwrap(), 1);
    assert_eq!(store.prune_audit("org_p", NOW + 1_000, 1000, NOW + 9).await.unwrap(), 0);
    let chain = store.audit_chain("org_p").await.unwrap().unwrap();
    assert_eq!((chain.pruned_seq, chain.pruned_hash.as_str()), (2, rows[1].hash.as_str()));
    let left = store.audit_chain_rows("org_p", chain.pruned_seq, 100).await.unwrap();
    assert_eq!(seqs(&left), [3, 4, 5]);
    assert_eq!(left[0].prev_hash, chain.pruned_hash, "the first remaining row links to the checkpoint");

    // Everything old: the whole chain goes, the head stays, and appends carry on from it.
    assert_eq!(store.prune_audit("org_p", NOW + 60_000, 1000, NOW + 10).await.unwrap(), 3);
    let chain = store.audit_chain("org_p").await.unwrap().unwrap();
    assert_eq!((chain.pruned_seq, chain.head_seq), (5, 5));
    assert_eq!(chain.pruned_hash, chain.head_hash);
    let mut next = vec![row("org_p", NOW + 70_000, "alice", "x", None, "ok")];
    store.append_audit(&mut next, seal).await.unwrap();
    assert_eq!((next[0].seq, next[0].prev_hash.as_str()), (6, rows[4].hash.as_str()));
}

/// Writers racing on one organisation (two replicas, or the writer and a prune) take turns.
async fn concurrent_appends(store: &Store) {
    let tasks: Vec<_> = (0..4i64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for b in 0..5i64 {
                    let mut rows: Vec<AuditRow> =
                        (0..10i64).map(|i| row("org_c", NOW + w * 1000 + b * 10 + i, "u", "x", None, "ok")).collect();
                    store.append_audit(&mut rows, seal).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rows = store.audit_chain_rows("org_c", 0, 1000).await.unwrap();
    assert_eq!(seqs(&rows), (1..=200).collect::<Vec<_>>(), "gapless and unique under concurrency");
    for pair in rows.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "every row links to its predecessor");
    }
    assert_eq!(store.audit_chain("org_c").await.unwrap().unwrap().head_seq, 200);
}
