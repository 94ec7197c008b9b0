//! Chapter: users' grants at OAuth-protected upstreams (#19), and the authorizations under way.

use mesh_store::{Connection, SecretRow, Store, UpstreamLogin, OAUTH_CLIENT, OAUTH_GRANT};

use crate::connections::{conn, secret};
use crate::people::NOW;

fn grant(c: &Connection, id: &str, subject: &str) -> SecretRow {
    SecretRow { kind: OAUTH_GRANT.into(), ..secret(c, id, "", subject) }
}

fn login(c: &Connection, id: &str, subject: &str) -> UpstreamLogin {
    UpstreamLogin {
        id: id.into(),
        state_hash: format!("hash-of-{id}"),
        org_id: c.org_id.clone(),
        connection_id: c.id.clone(),
        subject: subject.into(),
        user_id: "u1".into(),
        key_id: "k_one".into(),
        ciphertext: format!("sealed({id})"),
        expires_at: NOW + 600_000,
        done_at: None,
        granted_at: None,
    }
}

pub async fn upstream_oauth(store: &Store) {
    let c = Connection {
        transport: "http".into(),
        url: Some("https://mcp.example/mcp".into()),
        command: None,
        args: vec![],
        cwd: None,
        template: None,
        auth: "oauth".into(),
        oauth_shared: false,
        selector: None,
        ..conn("org_a", "conn_remote_a", "remote")
    };
    store.create_connection(&c, &[secret(&c, "sec_h1", "header", "X-Trace")]).await.unwrap();
    let got = store.get_connection("org_a", "remote").await.unwrap().unwrap();
    assert_eq!((got.auth.as_str(), got.oauth_shared), ("oauth", false));

    // One grant per subject, apart from the connection's headers.
    store.put_upstream_oauth(&grant(&c, "sec_g1", "user:u1")).await.unwrap();
    store.put_upstream_oauth(&grant(&c, "sec_g2", "user:u2")).await.unwrap();
    let headers = store.connection_secrets("org_a", &c.id).await.unwrap();
    assert_eq!(headers.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["sec_h1"], "grants are not headers");
    assert_eq!(store.upstream_grant("org_a", &c.id, "user:u1").await.unwrap().unwrap().ciphertext, "sealed(sec_g1)");
    assert!(store.upstream_grant("org_b", &c.id, "user:u1").await.unwrap().is_none(), "another organisation's");
    // A new one replaces the old.
    store.put_upstream_oauth(&grant(&c, "sec_g3", "user:u1")).await.unwrap();
    let g = store.upstream_grant("org_a", &c.id, "user:u1").await.unwrap().unwrap();
    assert_eq!(g.id, "sec_g3");
    assert_eq!(store.upstream_grants_of("org_a", "user:u1").await.unwrap().len(), 1);
    // Written only over what was read.
    assert!(store.swap_upstream_grant("sec_g3", "sealed(sec_g3)", "k_two", "refreshed", true).await.unwrap());
    assert!(!store.swap_upstream_grant("sec_g3", "sealed(sec_g3)", "k_two", "stale", true).await.unwrap());
    assert_eq!(store.upstream_grant("org_a", &c.id, "user:u1").await.unwrap().unwrap().ciphertext, "refreshed");
    // One refresh at a time across replicas: a lease on what was read, ended by the write.
    assert!(store.lease_upstream_grant("sec_g3", "refreshed", NOW, NOW + 30_000).await.unwrap());
    assert!(!store.lease_upstream_grant("sec_g3", "refreshed", NOW + 1, NOW + 30_001).await.unwrap(), "held");
    assert!(
        !store.lease_upstream_grant("sec_g3", "stale", NOW + 40_000, NOW + 70_000).await.unwrap(),
        "not what was read"
    );
    assert!(
        store.lease_upstream_grant("sec_g3", "refreshed", NOW + 40_000, NOW + 70_000).await.unwrap(),
        "expired lease"
    );
    // Another writer (a refused token marked expired) leaves the lease running.
    assert!(store.swap_upstream_grant("sec_g3", "refreshed", "k_two", "marked", false).await.unwrap());
    let held = store.lease_upstream_grant("sec_g3", "marked", NOW + 40_001, NOW + 70_001).await.unwrap();
    assert!(!held, "still held");
    assert!(store.swap_upstream_grant("sec_g3", "marked", "k_two", "again", true).await.unwrap());
    let ended = store.lease_upstream_grant("sec_g3", "again", NOW + 40_001, NOW + 70_001).await.unwrap();
    assert!(ended, "the write ended it");
    store.release_upstream_grant("sec_g3", NOW + 1).await.unwrap();
    let other = store.lease_upstream_grant("sec_g3", "again", NOW + 40_002, NOW + 70_002).await.unwrap();
    assert!(!other, "a release of another lease changes nothing");
    store.release_upstream_grant("sec_g3", NOW + 70_001).await.unwrap();
    assert!(store.lease_upstream_grant("sec_g3", "again", NOW + 40_002, NOW + 70_002).await.unwrap(), "released");
    store.release_upstream_grant("sec_g3", NOW + 70_002).await.unwrap();
    // Vault rotation sees them.
    assert!(store.all_secrets().await.unwrap().iter().any(|s| s.id == "sec_g3"));
    // Editing the headers keeps users' grants.
    store.update_connection(&c, Some(&[secret(&c, "sec_h2", "header", "X-Other")])).await.unwrap();
    assert!(store.upstream_grant("org_a", &c.id, "user:u1").await.unwrap().is_some());

    // Clients: the one given by hand and one per authorization server, kept apart from grants
    // and headers, replaced by name, and never taken by a header edit.
    let client = |id: &str, name: &str| SecretRow { kind: OAUTH_CLIENT.into(), ..secret(&c, id, "", name) };
    store.put_upstream_oauth(&client("sec_c1", "registered:https://as.example")).await.unwrap();
    store.put_upstream_oauth(&client("sec_c2", "preregistered")).await.unwrap();
    store.put_upstream_oauth(&client("sec_c3", "preregistered")).await.unwrap();
    assert_eq!(store.upstream_client("org_a", &c.id, "preregistered").await.unwrap().unwrap().id, "sec_c3");
    assert!(store.upstream_client("org_b", &c.id, "preregistered").await.unwrap().is_none());
    assert!(store.upstream_grant("org_a", &c.id, "preregistered").await.unwrap().is_none(), "a client is no grant");
    store.update_connection(&c, Some(&[secret(&c, "sec_h3", "header", "X-Trace")])).await.unwrap();
    assert!(store.upstream_client("org_a", &c.id, "registered:https://as.example").await.unwrap().is_some());
    assert!(store.delete_upstream_client("org_a", &c.id, "preregistered").await.unwrap());
    assert!(!store.delete_upstream_client("org_a", &c.id, "preregistered").await.unwrap());
    let header = SecretRow { kind: "header".into(), ..secret(&c, "sec_x", "", "X") };
    assert!(store.put_upstream_oauth(&header).await.is_err(), "only grants and clients");

    // Authorizations under way: found by state, completed once, superseded by a newer one.
    store.insert_upstream_login(&login(&c, "l1", "user:u1"), NOW).await.unwrap();
    assert_eq!(store.upstream_login_by_state("hash-of-l1").await.unwrap().unwrap().id, "l1");
    assert!(store.finish_upstream_login("l1", NOW + 1).await.unwrap());
    assert!(!store.finish_upstream_login("l1", NOW + 2).await.unwrap(), "single use");
    let done = store.upstream_login("l1").await.unwrap().unwrap();
    assert_eq!((done.done_at, done.ciphertext.as_str()), (Some(NOW + 1), ""), "nothing sealed kept once done");
    assert_eq!(done.granted_at, None, "claimed, not granted yet");
    store.grant_upstream_login("l1", NOW + 2).await.unwrap();
    assert_eq!(store.upstream_login("l1").await.unwrap().unwrap().granted_at, Some(NOW + 2));
    store.insert_upstream_login(&login(&c, "l2", "user:u1"), NOW).await.unwrap();
    assert!(store.upstream_login("l1").await.unwrap().is_none(), "the newer link replaces it");
    let mut old = login(&c, "l3", "user:u2");
    old.expires_at = NOW - 1;
    store.insert_upstream_login(&old, NOW - 10).await.unwrap();
    store.insert_upstream_login(&login(&c, "l4", "user:u3"), NOW).await.unwrap();
    assert!(store.upstream_login("l3").await.unwrap().is_none(), "expired ones are swept");
    // The one under way of a subject (to hand out again rather than supersede), then forgotten.
    let under_way = store.pending_upstream_login(&c.id, "user:u1", NOW).await.unwrap();
    assert_eq!(under_way.map(|l| l.id).as_deref(), Some("l2"));
    assert!(store.pending_upstream_login(&c.id, "user:u1", NOW + 600_001).await.unwrap().is_none(), "expired");
    store.delete_upstream_login("l4").await.unwrap();
    assert!(store.upstream_login("l4").await.unwrap().is_none());

    // A member leaving takes their grants; a URL change, all of them; the connection, the rest.
    assert_eq!(store.delete_upstream_grants_of("org_a", "user:u2").await.unwrap(), 1);
    assert!(store.delete_upstream_grant("org_a", &c.id, "user:u1").await.unwrap());
    assert!(!store.delete_upstream_grant("org_a", &c.id, "user:u1").await.unwrap());
    store.put_upstream_oauth(&grant(&c, "sec_g4", "shared")).await.unwrap();
    assert_eq!(store.delete_upstream_grants_at("org_a", &c.id).await.unwrap(), 1);
    assert!(store.delete_connection("org_a", &c.id).await.unwrap());
    assert!(store.upstream_login("l2").await.unwrap().is_none(), "logins go with the connection");
}
