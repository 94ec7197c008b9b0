//! Usage buckets: flushes add up in every granularity, queries group and filter, pruning is per
//! granularity.

use mesh_store::{Store, UsageDim, UsageQuery, UsageRow, UsageSpan};

fn row(user: &str, tool: &str, minute: i64, calls: i64, errors: i64, max: i64) -> UsageRow {
    UsageRow {
        org_id: "org-usage".into(),
        minute,
        user_id: user.into(),
        key_id: format!("key-{user}"),
        route_kind: "connection".into(),
        route: "files".into(),
        tool: tool.into(),
        method: "tools/call".into(),
        calls,
        errors,
        bytes_in: calls * 100,
        bytes_out: calls * 1000,
        latency_us: calls * 500,
        latency_max_us: max,
    }
}

fn query(span: UsageSpan, from: i64, to: i64, by: Vec<UsageDim>) -> UsageQuery {
    UsageQuery {
        org_id: "org-usage".into(),
        span,
        from_ms: from,
        to_ms: to,
        by,
        user_id: None,
        key_id: None,
        route: None,
        tool: None,
        method: None,
        limit: 100,
    }
}

pub async fn usage(store: &Store) {
    // 2026-12-02 10:00 UTC, and the next minute.
    let t0 = 1_796_205_600_000;
    let t1 = t0 + 60_000;
    store.add_usage(&[row("ann", "read", t0, 3, 1, 900), row("bob", "read", t0, 2, 0, 400)]).await.unwrap();
    // A second flush (another replica, or the same minute later) adds to the same buckets.
    store.add_usage(&[row("ann", "read", t0, 1, 0, 2000), row("ann", "write", t1, 5, 5, 100)]).await.unwrap();
    store.add_usage(&[]).await.unwrap();

    let by_user = store.query_usage(&query(UsageSpan::Minute, t0, t1 + 60_000, vec![UsageDim::User])).await.unwrap();
    let got: Vec<(String, i64, i64)> = by_user.iter().map(|t| (t.group[0].clone(), t.calls, t.errors)).collect();
    assert_eq!(got, vec![("ann".into(), 9, 6), ("bob".into(), 2, 0)]);
    assert_eq!(by_user[0].latency_max_us, 2000);
    assert_eq!(by_user[0].bytes_in, 900);
    assert_eq!(by_user[0].bytes_out, 9000);
    assert_eq!(by_user[0].latency_us, 4500);

    // Every granularity holds the same totals.
    for span in UsageSpan::ALL {
        let total = store.query_usage(&query(span, t0, t1 + 60_000, vec![])).await.unwrap();
        assert_eq!(total.len(), 1, "{span:?}");
        assert_eq!((total[0].calls, total[0].errors), (11, 6), "{span:?}");
    }

    // Grouped by tool and filtered by user; a time series per minute.
    let mut q = query(UsageSpan::Minute, t0, t1 + 60_000, vec![UsageDim::Tool]);
    q.user_id = Some("ann".into());
    let by_tool: Vec<(String, i64)> =
        store.query_usage(&q).await.unwrap().into_iter().map(|t| (t.group[0].clone(), t.calls)).collect();
    assert_eq!(by_tool, vec![("write".into(), 5), ("read".into(), 4)]);
    let series = store.query_usage(&query(UsageSpan::Minute, t0, t1 + 60_000, vec![UsageDim::Time])).await.unwrap();
    let series: Vec<(String, i64)> = series.into_iter().map(|t| (t.group[0].clone(), t.calls)).collect();
    assert_eq!(series, vec![(t0.to_string(), 6), (t1.to_string(), 5)]);
    let by_route = store.query_usage(&query(UsageSpan::Hour, t0, t1, vec![UsageDim::Route])).await.unwrap();
    assert_eq!(by_route[0].group, vec!["connection".to_string(), "files".to_string()]);

    // Outside the range, or another organisation: nothing (not a row of zeros).
    assert!(store.query_usage(&query(UsageSpan::Minute, t1 + 120_000, t1 + 180_000, vec![])).await.unwrap().is_empty());
    let mut other = query(UsageSpan::Day, t0, t1, vec![]);
    other.org_id = "org-other".into();
    assert!(store.query_usage(&other).await.unwrap().is_empty());

    // Pruning minutes leaves hours and days.
    assert_eq!(store.prune_usage(UsageSpan::Minute, t1 + 60_000).await.unwrap(), 3);
    assert!(store.query_usage(&query(UsageSpan::Minute, t0, t1 + 60_000, vec![])).await.unwrap().is_empty());
    assert_eq!(store.query_usage(&query(UsageSpan::Hour, t0, t1 + 60_000, vec![])).await.unwrap()[0].calls, 11);
}
