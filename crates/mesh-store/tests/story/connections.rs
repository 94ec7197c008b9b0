//! Chapter two: connections and their secrets, scoped by organisation.

use mesh_store::{Connection, SecretRow, Store, StoreError};

use crate::people::{org, NOW};

pub fn conn(org_id: &str, id: &str, slug: &str) -> Connection {
    Connection {
        id: id.into(),
        org_id: org_id.into(),
        slug: slug.into(),
        title: format!("{slug} — MCP"),
        description: Some("issues, PRs".into()),
        transport: "stdio".into(),
        url: None,
        command: Some("npx".into()),
        args: vec!["-y".into(), "@modelcontextprotocol/server-github".into(), "a \"quoted\" arg".into()],
        cwd: Some("/srv".into()),
        timeout_ms: 30_000,
        status: "active".into(),
        anonymous: false,
        created_at: NOW,
        updated_at: NOW,
        // Not the migration's default (1), so a round trip shows both columns are written.
        trusted: false,
        template: Some("github".into()),
        // Not the defaults either.
        auth: "oauth".into(),
        oauth_shared: true,
        selector: None,
    }
}

pub fn secret(c: &Connection, id: &str, kind: &str, name: &str) -> SecretRow {
    SecretRow {
        id: id.into(),
        org_id: c.org_id.clone(),
        connection_id: c.id.clone(),
        kind: kind.into(),
        name: name.into(),
        key_id: "k_one".into(),
        ciphertext: format!("sealed({id})"),
    }
}

pub async fn connections_and_secrets(store: &Store) {
    let gh_a = conn("org_a", "conn_gh_a", "github");
    let files_a = Connection {
        transport: "http".into(),
        url: Some("http://files:8080/mcp".into()),
        command: None,
        args: vec![],
        cwd: None,
        description: None,
        ..conn("org_a", "conn_files_a", "files")
    };
    let gh_b = Connection { anonymous: true, ..conn("org_b", "conn_gh_b", "github") };
    let gh_a_secrets =
        vec![secret(&gh_a, "sec_1", "header", "Authorization"), secret(&gh_a, "sec_2", "env", "GITHUB_TOKEN")];
    store.create_connection(&gh_a, &gh_a_secrets).await.unwrap();
    store.create_connection(&files_a, &[]).await.unwrap();
    assert!(store.anonymous_connections().await.unwrap().is_empty(), "anonymous access is off by default");
    store.create_connection(&gh_b, &[secret(&gh_b, "sec_3", "env", "GITHUB_TOKEN")]).await.unwrap();
    assert_eq!(
        store.anonymous_connections().await.unwrap(),
        vec![("org_b".to_string(), "conn_gh_b".to_string(), "github".to_string())],
        "only the connection an admin opened, with its organisation"
    );

    // Refused writes leave nothing behind.
    let err = store.create_connection(&conn("org_a", "conn_dup", "github"), &[]).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m == "connection slug 'github' already exists"), "{err:?}");
    let twice = conn("org_a", "conn_twice", "twice");
    let dup = [secret(&twice, "sec_4", "header", "X-Key"), secret(&twice, "sec_5", "header", "x-key")];
    let err = store.create_connection(&twice, &dup).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m == "header 'x-key' is given twice"), "{err:?}");
    let both = [secret(&twice, "sec_4", "header", "X-Key"), secret(&twice, "sec_5", "env", "X-Key")];
    let stray = [secret(&gh_b, "sec_6", "env", "TOKEN")];
    let err = store.create_connection(&twice, &stray).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let taken_secret_id = [secret(&twice, "sec_1", "env", "OTHER")];
    let err = store.create_connection(&twice, &taken_secret_id).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.get_connection("org_a", "twice").await.unwrap(), None, "transaction rolled back");
    let err = store.create_connection(&conn("org_missing", "conn_x", "x"), &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    store.create_connection(&twice, &both).await.unwrap();

    // Lookups by id and by slug, never across organisations.
    assert_eq!(store.get_connection("org_a", "conn_gh_a").await.unwrap(), Some(gh_a.clone()));
    assert_eq!(store.get_connection("org_a", "github").await.unwrap(), Some(gh_a.clone()));
    assert_eq!(store.get_connection("org_b", "github").await.unwrap(), Some(gh_b.clone()));
    assert_eq!(store.get_connection("org_b", "conn_gh_a").await.unwrap(), None);
    assert_eq!(store.get_connection("org_b", "files").await.unwrap(), None);
    let slugs = |cs: Vec<Connection>| cs.into_iter().map(|c| c.slug).collect::<Vec<_>>();
    assert_eq!(slugs(store.list_connections("org_a").await.unwrap()), ["files", "github", "twice"]);
    assert_eq!(store.list_connections("org_b").await.unwrap(), vec![gh_b.clone()]);
    assert_eq!(store.get_connection("org_a", "files").await.unwrap(), Some(files_a.clone()));

    let mut sorted = gh_a_secrets.clone();
    sorted.reverse(); // "env" sorts before "header"
    assert_eq!(store.connection_secrets("org_a", "conn_gh_a").await.unwrap(), sorted);
    assert_eq!(store.connection_secrets("org_b", "conn_gh_a").await.unwrap(), vec![]);

    // Updates keep created_at and the secrets unless told to replace them.
    let renamed = Connection {
        slug: "gh".into(),
        args: vec![],
        description: None,
        status: "disabled".into(),
        created_at: 1,
        updated_at: NOW + 10,
        ..gh_a.clone()
    };
    store.update_connection(&renamed, None).await.unwrap();
    let stored = store.get_connection("org_a", "gh").await.unwrap().unwrap();
    assert_eq!(stored, Connection { created_at: NOW, ..renamed.clone() });
    assert_eq!(store.get_connection("org_a", "github").await.unwrap(), None);
    assert_eq!(store.connection_secrets("org_a", "conn_gh_a").await.unwrap().len(), 2);

    let replacement = vec![secret(&gh_a, "sec_7", "header", "Authorization")];
    store.update_connection(&renamed, Some(&replacement)).await.unwrap();
    assert_eq!(store.connection_secrets("org_a", "conn_gh_a").await.unwrap(), replacement);

    let clash = Connection { slug: "files".into(), ..renamed.clone() };
    let err = store.update_connection(&clash, Some(&[])).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m == "connection slug 'files' already exists"), "{err:?}");
    let other_org = Connection { org_id: "org_b".into(), ..renamed.clone() };
    let err = store.update_connection(&other_org, Some(&[])).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = store.update_connection(&conn("org_a", "conn_missing", "m"), None).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let bad = [secret(&gh_a, "sec_8", "env", "A"), secret(&gh_a, "sec_3", "env", "B")];
    let err = store.update_connection(&renamed, Some(&bad)).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.connection_secrets("org_a", "conn_gh_a").await.unwrap(), replacement, "rolled back");

    // Vault rotation sees every organisation's secrets and rewrites them one by one.
    let ids = |rows: Vec<SecretRow>| rows.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(store.all_secrets().await.unwrap()), ["sec_3", "sec_4", "sec_5", "sec_7"]);
    store.update_secret_ciphertext("sec_3", "k_two", "resealed").await.unwrap();
    let row = store.connection_secrets("org_b", "conn_gh_b").await.unwrap().remove(0);
    assert_eq!((row.key_id.as_str(), row.ciphertext.as_str()), ("k_two", "resealed"));
    let err = store.update_secret_ciphertext("sec_1", "k_two", "x").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "replaced secrets are gone: {err:?}");

    // Deletion is scoped too, and takes the secrets along.
    assert!(!store.delete_connection("org_b", "conn_gh_a").await.unwrap());
    assert_eq!(store.connection_secrets("org_a", "conn_gh_a").await.unwrap().len(), 1);
    assert!(store.delete_connection("org_a", "conn_gh_a").await.unwrap());
    assert!(!store.delete_connection("org_a", "conn_gh_a").await.unwrap());
    assert_eq!(store.get_connection("org_a", "conn_gh_a").await.unwrap(), None);
    assert_eq!(ids(store.all_secrets().await.unwrap()), ["sec_3", "sec_4", "sec_5"]);
    assert_eq!(slugs(store.list_connections("org_a").await.unwrap()), ["files", "twice"]);

    // The slug is free again, and an organisation created later starts empty.
    store.create_connection(&conn("org_a", "conn_gh_a2", "github"), &[]).await.unwrap();
    store.create_org(&org("org_c", "initech", NOW + 2)).await.unwrap();
    assert_eq!(store.list_connections("org_c").await.unwrap(), vec![]);
}
