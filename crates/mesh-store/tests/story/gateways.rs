//! Chapter three: gateways (virtual MCPs), their member curation kept exactly, scoped by
//! organisation.

use mesh_core::gateway::{MemberConfig, Selection, Strategy};
use mesh_store::{Gateway, Store, StoreError};

use crate::people::NOW;

pub fn gateway(org_id: &str, id: &str, slug: &str, members: Vec<MemberConfig>) -> Gateway {
    Gateway {
        id: id.into(),
        org_id: org_id.into(),
        slug: slug.into(),
        title: format!("{slug} — tools"),
        description: Some("curated".into()),
        mode: "degrade".into(),
        members,
        page_size: 100,
        strategy: Strategy::Passthrough,
        all_connections: false,
        status: "active".into(),
        created_at: NOW,
        updated_at: NOW,
    }
}

pub async fn gateways(store: &Store) {
    // Every shape of curation survives the round trip: allow-lists, an empty prefix, renames,
    // description overrides, unicode.
    let mut fs = MemberConfig::all_of("conn_files_a");
    fs.prefix = Some(String::new());
    fs.tools = Selection::Only(vec!["read_text_file".into(), "list_directory".into()]);
    fs.prompts = Selection::Only(vec![]);
    fs.renames.insert("read_text_file".into(), "read".into());
    fs.descriptions.insert("read_text_file".into(), "Lit un fichier — «texte»".into());
    let gh = MemberConfig { prefix: Some("gh".into()), ..MemberConfig::all_of("conn_gh_a2") };
    // The smart strategy is kept too (passthrough, the default, is not written at all).
    let dev = Gateway {
        mode: "strict".into(),
        page_size: 7,
        strategy: Strategy::Smart,
        ..gateway("org_a", "gw_dev", "dev", vec![fs, gh])
    };
    store.create_gateway(&dev).await.unwrap();
    let everything =
        Gateway { all_connections: true, description: None, ..gateway("org_a", "gw_default_a", "default", vec![]) };
    store.create_gateway(&everything).await.unwrap();
    store.create_gateway(&gateway("org_b", "gw_dev_b", "dev", vec![])).await.unwrap();

    // Refused writes.
    let err = store.create_gateway(&gateway("org_a", "gw_dup", "dev", vec![])).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m == "gateway slug 'dev' already exists"), "{err:?}");
    let err = store.create_gateway(&gateway("org_b", "gw_dev", "other", vec![])).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m == "gateway 'gw_dev' already exists"), "{err:?}");
    let err = store.create_gateway(&gateway("org_missing", "gw_x", "x", vec![])).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");

    // Lookups by id and by slug, never across organisations.
    assert_eq!(store.get_gateway("org_a", "gw_dev").await.unwrap(), Some(dev.clone()));
    assert_eq!(store.get_gateway("org_a", "dev").await.unwrap(), Some(dev.clone()));
    assert_eq!(store.get_gateway("org_a", "default").await.unwrap(), Some(everything.clone()));
    assert_eq!(store.get_gateway("org_b", "dev").await.unwrap().map(|g| g.id), Some("gw_dev_b".into()));
    assert_eq!(store.get_gateway("org_b", "gw_dev").await.unwrap(), None);
    assert_eq!(store.get_gateway("org_b", "default").await.unwrap(), None);
    let slugs = |gs: Vec<Gateway>| gs.into_iter().map(|g| g.slug).collect::<Vec<_>>();
    assert_eq!(slugs(store.list_gateways("org_a").await.unwrap()), ["default", "dev"]);
    assert_eq!(slugs(store.list_gateways("org_b").await.unwrap()), ["dev"]);
    assert_eq!(store.list_gateways("org_c").await.unwrap(), vec![]);

    // Updates keep created_at and replace the whole curation.
    let changed = Gateway {
        slug: "tools".into(),
        title: "Tools".into(),
        description: None,
        mode: "degrade".into(),
        members: vec![MemberConfig::all_of("conn_twice")],
        page_size: 1000,
        status: "disabled".into(),
        created_at: 1,
        updated_at: NOW + 10,
        ..dev.clone()
    };
    store.update_gateway(&changed).await.unwrap();
    assert_eq!(
        store.get_gateway("org_a", "tools").await.unwrap(),
        Some(Gateway { created_at: NOW, ..changed.clone() })
    );
    assert_eq!(store.get_gateway("org_a", "dev").await.unwrap(), None);
    let clash = Gateway { slug: "default".into(), ..changed.clone() };
    let err = store.update_gateway(&clash).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m == "gateway slug 'default' already exists"), "{err:?}");
    let err = store.update_gateway(&Gateway { org_id: "org_b".into(), ..changed.clone() }).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let turned_off = Gateway { status: "disabled".into(), ..everything.clone() };
    store.update_gateway(&turned_off).await.unwrap();
    assert_eq!(store.get_gateway("org_a", "default").await.unwrap(), Some(turned_off));

    // Deletion is scoped; the slug is free again.
    assert!(!store.delete_gateway("org_b", "gw_dev").await.unwrap());
    assert!(store.delete_gateway("org_a", "gw_dev").await.unwrap());
    assert!(!store.delete_gateway("org_a", "gw_dev").await.unwrap());
    assert_eq!(slugs(store.list_gateways("org_a").await.unwrap()), ["default"]);
    store.create_gateway(&gateway("org_a", "gw_dev2", "dev", vec![])).await.unwrap();
}

/// An organisation created before gateways existed gets its default gateway from the migration
/// that introduces them (new organisations get theirs at first start, from the service layer).
#[tokio::test]
async fn organisations_from_before_gateways_get_a_default_gateway() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    // The migrations as they were before 0003, applied with sqlx's own migrator.
    let earlier = dir.path().join("migrations");
    std::fs::create_dir(&earlier).unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&all).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0003" {
            std::fs::copy(&path, earlier.join(&name)).unwrap();
        }
    }
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::migrate::Migrator::new(earlier.as_path()).await.unwrap().run(&pool).await.unwrap();
    sqlx::query("INSERT INTO orgs (id, slug, name, created_at) VALUES ('org_old', 'old', 'Old', 42)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let store = Store::connect(&url).await.unwrap();
    let default = store.get_gateway("org_old", "default").await.unwrap().expect("default gateway");
    assert!(default.all_connections && default.members.is_empty(), "{default:?}");
    assert_eq!((default.status.as_str(), default.mode.as_str(), default.page_size), ("active", "degrade", 100));
    assert_eq!((default.created_at, default.id.as_str()), (42, "gw_default_org_old"));
    store.close().await;
}
