//! Chapter ten: the agent registry — heartbeats, goodbyes, ageing and purging.

use mesh_store::{AgentRow, Beat, Store, SweptAgent};

use crate::people::NOW;

pub async fn registry(store: &Store) {
    let org = store.list_orgs().await.unwrap().into_iter().next().unwrap().id;
    let provider = AgentRow {
        org_id: org.clone(),
        id: "provider-0a1b2c3d".into(),
        name: "provider".into(),
        agent_type: "mcp_agent".into(),
        version: "1.0.0".into(),
        namespace: "default".into(),
        runtime: "python".into(),
        description: String::new(),
        endpoint: "http://127.0.0.1:19001".into(),
        tools: r#"[{"function_name":"get_date","capability":"date_service"}]"#.into(),
        status: "healthy".into(),
        connection_id: Some("conn_1".into()),
        created_at: NOW,
        last_seen: NOW,
        last_full: NOW,
        changed_at: NOW,
    };
    store.put_agent(&provider).await.unwrap();
    let consumer =
        AgentRow { id: "consumer-1".into(), name: "consumer".into(), connection_id: None, ..provider.clone() };
    store
        .put_agent(&AgentRow { last_full: NOW + 5, changed_at: NOW + 5, last_seen: NOW + 5, ..consumer.clone() })
        .await
        .unwrap();
    assert_eq!(store.get_agent(&org, "provider-0a1b2c3d").await.unwrap(), Some(provider.clone()));
    assert_eq!(store.get_agent("org_other", "provider-0a1b2c3d").await.unwrap(), None);
    let ids: Vec<String> = store.list_agents(&org).await.unwrap().into_iter().map(|a| a.id).collect();
    assert_eq!(ids, ["consumer-1", "provider-0a1b2c3d"]);

    // A fast heartbeat learns that the topology changed after its last full one.
    assert_eq!(
        store.beat_agent(&org, "provider-0a1b2c3d", NOW + 10, NOW).await.unwrap(),
        Some(Beat { last_full: NOW, topology_at: NOW + 5 })
    );
    assert_eq!(store.beat_agent(&org, "nobody", NOW + 10, NOW).await.unwrap(), None);
    // The consumer was silent past the freshness line: its return is a topology change.
    assert_eq!(
        store.beat_agent(&org, "consumer-1", NOW + 12, NOW + 11).await.unwrap(),
        Some(Beat { last_full: NOW + 5, topology_at: NOW + 12 })
    );
    assert_eq!(store.beat_agent("org_other", "consumer-1", NOW + 10, NOW).await.unwrap(), None);

    // A full heartbeat replaces the declaration and keeps the first registration time.
    let moved = AgentRow {
        endpoint: "http://127.0.0.1:19009".into(),
        created_at: NOW + 20,
        last_full: NOW + 20,
        last_seen: NOW + 20,
        ..provider.clone()
    };
    store.put_agent(&moved).await.unwrap();
    let got = store.get_agent(&org, "provider-0a1b2c3d").await.unwrap().unwrap();
    assert_eq!((got.endpoint.as_str(), got.created_at, got.last_full), ("http://127.0.0.1:19009", NOW, NOW + 20));

    // Goodbye: unhealthy, and a fast heartbeat no longer revives it.
    assert!(store.leave_agent(&org, "consumer-1", NOW + 30).await.unwrap());
    assert!(!store.leave_agent(&org, "consumer-1", NOW + 31).await.unwrap());
    assert_eq!(store.beat_agent(&org, "consumer-1", NOW + 32, NOW).await.unwrap(), None);

    // Ageing: the provider was last seen at NOW + 20.
    assert!(store.age_agents(NOW + 20, NOW + 40).await.unwrap().is_empty());
    let aged = store.age_agents(NOW + 21, NOW + 40).await.unwrap();
    let swept = SweptAgent { org_id: org.clone(), id: provider.id.clone(), connection_id: Some("conn_1".into()) };
    assert_eq!(aged, vec![swept.clone()]);
    let got = store.get_agent(&org, "provider-0a1b2c3d").await.unwrap().unwrap();
    assert_eq!((got.status.as_str(), got.changed_at), ("unhealthy", NOW + 40));

    // Purging: unhealthy since before the cut-off only.
    let purged = store.purge_agents(NOW + 35).await.unwrap();
    assert_eq!(purged.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["consumer-1"]);
    assert_eq!(store.purge_agents(NOW + 41).await.unwrap(), vec![swept]);
    assert!(store.list_agents(&org).await.unwrap().is_empty());
}
