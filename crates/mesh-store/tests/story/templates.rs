//! Chapter seven: installation-wide records — the operator organisation, the stdio template
//! catalogue.

use mesh_store::{StdioTemplate, Store, StoreError};

use crate::people::NOW;

pub async fn templates(store: &Store) {
    // The operator organisation is the oldest one, recorded on first read, and never moves.
    let oldest = store.list_orgs().await.unwrap().into_iter().next().map(|o| o.id);
    assert!(oldest.is_some());
    assert_eq!(store.operator_org().await.unwrap(), oldest);
    store.set_operator_org("org_someone_else").await.unwrap();
    assert_eq!(store.operator_org().await.unwrap(), oldest);

    assert!(store.list_templates().await.unwrap().is_empty());
    let fs = StdioTemplate {
        name: "filesystem".into(),
        description: Some("read-only files".into()),
        command: "npx".into(),
        args: vec!["-y".into(), "@modelcontextprotocol/server-filesystem".into(), "/srv/shared".into()],
        env: vec!["LOG_LEVEL".into()],
        created_at: NOW,
        updated_at: NOW,
    };
    let time = StdioTemplate { name: "time".into(), description: None, args: vec![], env: vec![], ..fs.clone() };
    store.create_template(&time).await.unwrap();
    store.create_template(&fs).await.unwrap();
    assert!(matches!(store.create_template(&fs).await, Err(StoreError::Conflict(m)) if m.contains("filesystem")));

    assert_eq!(store.get_template("filesystem").await.unwrap(), Some(fs.clone()));
    assert_eq!(store.get_template("nope").await.unwrap(), None);
    let names: Vec<String> = store.list_templates().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["filesystem", "time"]);

    assert!(store.delete_template("time").await.unwrap());
    assert!(!store.delete_template("time").await.unwrap());
    assert_eq!(store.list_templates().await.unwrap(), vec![fs]);
}
