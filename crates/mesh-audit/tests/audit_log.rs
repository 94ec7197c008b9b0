//! The audit log against a real database, SQLite and PostgreSQL: concurrent records become exactly
//! as many rows, nothing is lost on shutdown, a full queue leaves a note in the chain, and
//! verification catches every kind of tampering, also after retention has pruned the chain.
//!
//! PostgreSQL runs when `MESH_TEST_PG_URL` is set (as in the store's story); with
//! `MESH_REQUIRE_PG=1` its absence fails the tests instead of skipping them.

use std::sync::Arc;
use std::time::Duration;

use mesh_audit::{verify, AuditConfig, AuditLog, ProblemKind};
use mesh_core::audit::{AuditSink, CallRecord, Origin, Outcome};
use mesh_core::{Principal, Role};
use mesh_store::{AuditFilter, Store};
use sqlx::migrate::MigrateDatabase;

fn principal(org: &str, user: &str) -> Principal {
    Principal {
        org_id: org.into(),
        user_id: user.into(),
        key_id: format!("key_{user}"),
        role: Role::Member,
        custom_role: None,
        operator: false,
        manage: true,
        key_expires_at: None,
        audience: None,
    }
}

fn record(p: &Principal, i: usize, at: i64) -> CallRecord {
    CallRecord {
        time_ms: at,
        origin: Arc::new(Origin {
            principal: p.clone(),
            session_id: format!("sess_{}", p.user_id),
            client: Some(("test-client".into(), "0.1".into())),
            route_kind: "connection",
            route: "github".into(),
        }),
        method: "tools/call".into(),
        name: Some(format!("tool_{}", i % 3)),
        arguments: Some(format!(r#"{{"i":{i},"password":"hunter2","nested":{{"apiKey":"k-{i}"}}}}"#)),
        outcome: if i % 2 == 0 { Outcome::Ok } else { Outcome::ToolError },
        error: None,
        latency_us: 100 + i as u64,
        bytes_in: 50,
        bytes_out: 60,
        request_id: i.to_string().into(),
    }
}

fn quick() -> AuditConfig {
    AuditConfig { batch_delay: Duration::from_millis(20), retention: None, ..AuditConfig::default() }
}

/// Runs `scenario` on a fresh SQLite file and, when configured, a fresh PostgreSQL database.
async fn on_both<F, Fut>(scenario: F)
where
    F: Fn(Store) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("mesh.db").display())).await.unwrap();
    scenario(store.clone()).await;
    store.close().await;

    let Some(admin) = pg_admin_url() else { return };
    sqlx::any::install_default_drivers();
    let mut url = url::Url::parse(&admin).expect("MESH_TEST_PG_URL is a URL");
    let name = format!("mesh_audit_{}_{}", std::process::id(), mesh_core::id::random_base62(10).to_lowercase());
    url.set_path(&format!("/{name}"));
    let url = url.to_string();
    sqlx::Any::create_database(&url).await.expect("create test database");
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.backend_name(), "postgres");
    let outcome = tokio::spawn(scenario(store.clone())).await;
    store.close().await;
    sqlx::Any::force_drop_database(&url).await.expect("drop test database");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn pg_admin_url() -> Option<String> {
    match std::env::var("MESH_TEST_PG_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("MESH_REQUIRE_PG").as_deref() == Ok("1") => {
            panic!("MESH_TEST_PG_URL is not set but MESH_REQUIRE_PG=1")
        }
        _ => {
            let line = "\n*** SKIPPED: postgres (set MESH_TEST_PG_URL; `scripts/pg-test-server` prints one) ***\n";
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            None
        }
    }
}

async fn all_rows(store: &Store, org: &str) -> Vec<mesh_store::AuditRow> {
    store.audit_chain_rows(org, 0, 100_000).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_records_become_exactly_that_many_rows_and_verify() {
    on_both(|store| async move {
        let log = AuditLog::start(store.clone(), quick());
        let people = [principal("org_a", "alice"), principal("org_a", "bob"), principal("org_b", "carol")];
        let tasks: Vec<_> = people
            .iter()
            .cloned()
            .map(|p| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..200 {
                        log.record(record(&p, i, 1_750_000_000_000 + i as i64));
                        if i % 17 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        log.flush().await;

        let a = all_rows(&store, "org_a").await;
        let b = all_rows(&store, "org_b").await;
        assert_eq!((a.len(), b.len()), (400, 200));
        assert_eq!(a.iter().filter(|r| r.user_id == "alice").count(), 200);
        assert_eq!(b.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=200).collect::<Vec<_>>());
        let everything = serde_json::to_string(&a).unwrap() + &serde_json::to_string(&b).unwrap();
        assert!(!everything.contains("hunter2") && !everything.contains("k-1"), "a secret reached the database");
        let one = a.iter().find(|r| r.user_id == "bob" && r.request_id == "3").unwrap();
        assert_eq!(
            one.arguments.as_deref(),
            Some(r#"{"i":3,"password":"[REDACTED]","nested":{"apiKey":"[REDACTED]"}}"#)
        );
        assert_eq!((one.outcome.as_str(), one.name.as_deref(), one.latency_us), ("tool_error", Some("tool_0"), 103));
        assert_eq!((one.client_name.as_deref(), one.role.as_str()), (Some("test-client"), "member"));
        assert_eq!(log.stats().written, 600);

        for org in ["org_a", "org_b"] {
            let report = verify(&store, org).await.unwrap();
            assert!(report.ok, "{report:?}");
            assert_eq!(report.rows_checked, if org == "org_a" { 400 } else { 200 });
        }
        log.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_writes_everything_queued_and_refuses_later_records() {
    on_both(|store| async move {
        // A long batch delay: without shutdown's drain these would still be waiting.
        let cfg = AuditConfig { batch_delay: Duration::from_secs(3600), batch_rows: 10_000, ..quick() };
        let log = AuditLog::start(store.clone(), cfg);
        let p = principal("org_a", "alice");
        for i in 0..500 {
            log.record(record(&p, i, 1));
        }
        log.shutdown().await;
        assert_eq!(all_rows(&store, "org_a").await.len(), 500, "graceful shutdown lost records");
        log.record(record(&p, 500, 2));
        assert_eq!(log.stats().dropped, 1, "a record after shutdown is counted, not silently lost");
        log.flush().await; // returns at once: the writer is gone
    })
    .await;
}

#[tokio::test]
async fn a_full_queue_drops_counts_and_leaves_a_note_in_the_chain() {
    on_both(|store| async move {
        let log = AuditLog::start(store.clone(), AuditConfig { queue_capacity: 8, ..quick() });
        let p = principal("org_a", "alice");
        // On this single-threaded runtime the writer cannot run until we yield: the queue fills.
        for i in 0..50 {
            log.record(record(&p, i, 1_000 + i as i64));
        }
        assert_eq!(log.stats().dropped, 42);
        log.flush().await;
        let rows = all_rows(&store, "org_a").await;
        assert_eq!(rows.len(), 9, "8 records and one note");
        let note = rows.last().unwrap();
        assert_eq!(
            (note.method.as_str(), note.outcome.as_str(), note.route_kind.as_str()),
            ("audit/dropped", "dropped", "audit")
        );
        assert_eq!(note.arguments.as_deref(), Some(r#"{"dropped":42,"fromMs":1008,"toMs":1049}"#));
        assert!(verify(&store, "org_a").await.unwrap().ok);
        log.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn verification_names_the_first_tampered_row() {
    on_both(|store| async move {
        let log = AuditLog::start(store.clone(), quick());
        let p = principal("org_t", "alice");
        for i in 0..10 {
            log.record(record(&p, i, 1_000));
        }
        log.flush().await;
        let check = |want: Option<(i64, ProblemKind)>| {
            let store = store.clone();
            async move {
                let r = verify(&store, "org_t").await.unwrap();
                assert_eq!(r.problem.as_ref().map(|p| (p.seq, p.kind)), want, "{r:?}");
                assert_eq!(r.ok, want.is_none());
            }
        };
        check(None).await;
        let raw = |sql: &str| {
            let (store, sql) = (store.clone(), sql.to_string());
            async move { assert_eq!(store.execute_raw_for_tests(&sql).await.unwrap(), 1, "{sql}") }
        };

        // Edited in place.
        raw("UPDATE audit_log SET outcome = 'ok' WHERE org_id = 'org_t' AND seq = 4").await;
        check(Some((4, ProblemKind::Altered))).await;
        raw("UPDATE audit_log SET outcome = 'tool_error' WHERE org_id = 'org_t' AND seq = 4").await;
        check(None).await;

        // Edited and re-hashed (the forger knows the encoding but not how to fix what follows).
        let mut row = store.audit_chain_rows("org_t", 5, 1).await.unwrap().remove(0);
        row.error = Some("nothing to see".into());
        let forged = mesh_audit::chain::row_hash(&row);
        raw(&format!(
            "UPDATE audit_log SET error = 'nothing to see', hash = '{forged}' WHERE org_id = 'org_t' AND seq = 6"
        ))
        .await;
        check(Some((7, ProblemKind::BrokenLink))).await;

        // Deleted: in the middle, and at the end.
        raw("DELETE FROM audit_log WHERE org_id = 'org_t' AND seq = 2").await;
        check(Some((2, ProblemKind::Missing))).await;
        log.shutdown().await;

        let log = AuditLog::start(store.clone(), quick());
        let p = principal("org_u", "alice");
        for i in 0..5 {
            log.record(record(&p, i, 1_000));
        }
        log.flush().await;
        raw("DELETE FROM audit_log WHERE org_id = 'org_u' AND seq = 5").await;
        let r = verify(&store, "org_u").await.unwrap();
        assert_eq!(r.problem.map(|p| (p.seq, p.kind)), Some((5, ProblemKind::Missing)), "a deleted tail is caught");
        assert!(verify(&store, "org_none").await.unwrap().ok, "no chain is an empty, valid chain");
        log.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn retention_prunes_a_prefix_and_the_chain_still_verifies() {
    on_both(|store| async move {
        let now = mesh_core::id::now_ms();
        let day = 86_400_000;
        let cfg = AuditConfig {
            retention: mesh_audit::retention_days(30),
            prune_every: Duration::from_secs(3600),
            ..quick()
        };
        let log: Arc<AuditLog> = AuditLog::start(store.clone(), cfg);
        let p = principal("org_r", "alice");
        for (i, age) in [40, 35, 31, 10, 1, 0].iter().enumerate() {
            log.record(record(&p, i, now - age * day));
        }
        log.flush().await;
        // The pruner's own first pass may get there first; either way the prefix goes.
        log.prune_now().await.unwrap();
        assert_eq!(log.prune_now().await.unwrap(), 0, "nothing left to prune");
        let chain = store.audit_chain("org_r").await.unwrap().unwrap();
        assert_eq!((chain.pruned_seq, chain.head_seq), (3, 6));
        let report = verify(&store, "org_r").await.unwrap();
        assert!(report.ok && report.rows_checked == 3 && report.pruned_seq == 3, "{report:?}");

        // Retention is no cover for deleting a row in the middle.
        store.execute_raw_for_tests("DELETE FROM audit_log WHERE org_id = 'org_r' AND seq = 5").await.unwrap();
        let report = verify(&store, "org_r").await.unwrap();
        assert_eq!(report.problem.map(|p| (p.seq, p.kind)), Some((5, ProblemKind::Missing)));

        let filter = AuditFilter { org_id: "org_r".into(), limit: 10, ..AuditFilter::default() };
        assert_eq!(store.query_audit(&filter).await.unwrap().len(), 2);
        log.shutdown().await;
    })
    .await;
}
