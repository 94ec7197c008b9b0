//! Chapter one: organisations, users, memberships and API keys.

use mesh_store::{ApiKey, Membership, Org, Store, StoreError, User};

pub const NOW: i64 = 1_750_000_000_000;

pub fn org(id: &str, slug: &str, at: i64) -> Org {
    Org { id: id.into(), slug: slug.into(), name: format!("{slug} Ltd ✓"), created_at: at }
}

pub fn user(id: &str, email: &str) -> User {
    User { id: id.into(), email: email.into(), name: id.into(), password_hash: None, created_at: NOW }
}

pub fn member(org_id: &str, user_id: &str, role: &str) -> Membership {
    Membership { org_id: org_id.into(), user_id: user_id.into(), role: role.into(), created_at: NOW }
}

pub fn key(id: &str, org_id: &str, user_id: &str, at: i64, expires_at: Option<i64>) -> ApiKey {
    ApiKey {
        id: id.into(),
        org_id: org_id.into(),
        user_id: user_id.into(),
        name: format!("{id} key"),
        prefix: format!("mesh_{id}"),
        hash: format!("{:0>64}", id.len() + at as usize),
        created_at: at,
        expires_at,
        revoked_at: None,
        last_used_at: None,
        policy: None,
    }
}

pub async fn orgs_users_and_members(store: &Store) {
    let (a, b) = (org("org_a", "acme", NOW), org("org_b", "globex", NOW + 1));
    store.create_org(&b).await.unwrap();
    store.create_org(&a).await.unwrap();
    let err = store.create_org(&org("org_c", "acme", NOW)).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m == "organisation slug 'acme' already exists"), "{err:?}");
    let err = store.create_org(&org("org_a", "other", NOW)).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m == "organisation 'org_a' already exists"), "{err:?}");
    assert_eq!(store.get_org("org_a").await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_org("org_missing").await.unwrap(), None);
    assert_eq!(store.list_orgs().await.unwrap(), vec![a, b], "oldest first");

    let alice = User { password_hash: Some("$argon2id$v=19$…".into()), ..user("user_alice", "alice@example.com") };
    store.create_user(&alice).await.unwrap();
    store.create_user(&user("user_bob", "bob@example.com")).await.unwrap();
    let err = store.create_user(&user("user_eve", "alice@example.com")).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("email 'alice@example.com'")), "{err:?}");
    assert_eq!(store.get_user("user_alice").await.unwrap(), Some(alice));
    assert_eq!(store.get_user("user_bob").await.unwrap().unwrap().password_hash, None);
    assert_eq!(store.get_user("user_eve").await.unwrap(), None);

    store.add_member(&member("org_a", "user_alice", "owner")).await.unwrap();
    store.add_member(&member("org_b", "user_bob", "member")).await.unwrap();
    let err = store.add_member(&member("org_a", "user_alice", "viewer")).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m.contains("already a member")), "{err:?}");
    let err = store.add_member(&member("org_a", "user_ghost", "viewer")).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(
        store.get_membership("org_a", "user_alice").await.unwrap(),
        Some(member("org_a", "user_alice", "owner"))
    );
    assert_eq!(store.get_membership("org_b", "user_alice").await.unwrap(), None);
}

pub async fn api_keys(store: &Store) {
    let live = key("key_live", "org_a", "user_alice", NOW, None);
    let expired = key("key_expired", "org_a", "user_alice", NOW + 1, Some(NOW - 1));
    let expiring = key("key_expiring", "org_a", "user_alice", NOW + 2, Some(NOW + 60_000));
    // The policy is opaque JSON to the store: kept byte for byte, unicode and all.
    let policy =
        r#"{"scope":{"connections":["git*"],"tools":["search_?"]},"rules":[{"effect":"deny","name":"délété"}]}"#;
    let bobs = ApiKey { policy: Some(policy.into()), ..key("key_bob", "org_b", "user_bob", NOW + 3, None) };
    for k in [&live, &expired, &expiring, &bobs] {
        store.create_api_key(k).await.unwrap();
    }
    // Alice is not a member of org_b, so she cannot hold a key there.
    let err = store.create_api_key(&key("key_stray", "org_b", "user_alice", NOW, None)).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let same_hash = ApiKey { id: "key_copy".into(), ..live.clone() };
    let err = store.create_api_key(&same_hash).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if !m.contains(&live.hash)), "{err:?}");

    assert_eq!(store.list_api_keys("org_a").await.unwrap(), vec![live.clone(), expired.clone(), expiring.clone()]);
    assert_eq!(store.list_api_keys("org_b").await.unwrap(), vec![bobs.clone()]);
    assert_eq!(store.list_api_keys("org_missing").await.unwrap(), vec![]);

    let active = |at| async move {
        let keys = store.active_api_keys(at).await.unwrap();
        keys.into_iter().map(|(k, role)| (k.id, role)).collect::<Vec<_>>()
    };
    let pair = |id: &str, role: &str| (id.to_string(), role.to_string());
    assert_eq!(
        active(NOW).await,
        [pair("key_live", "owner"), pair("key_expiring", "owner"), pair("key_bob", "member")]
    );
    let bob_active = store.active_api_keys(NOW).await.unwrap().into_iter().find(|(k, _)| k.id == "key_bob");
    assert_eq!(bob_active.unwrap().0.policy.as_deref(), Some(policy), "the authenticator sees the policy");
    assert_eq!(
        active(NOW + 60_000).await,
        [pair("key_live", "owner"), pair("key_bob", "member")],
        "expiry is exclusive"
    );

    // Revocation is scoped by organisation and happens once.
    assert!(!store.revoke_api_key("org_b", "key_live", NOW + 5).await.unwrap());
    assert!(store.revoke_api_key("org_a", "key_live", NOW + 5).await.unwrap());
    assert!(!store.revoke_api_key("org_a", "key_live", NOW + 9).await.unwrap());
    assert!(!store.revoke_api_key("org_a", "key_missing", NOW).await.unwrap());
    assert_eq!(active(NOW).await, [pair("key_expiring", "owner"), pair("key_bob", "member")]);
    let listed = store.list_api_keys("org_a").await.unwrap();
    assert_eq!(listed[0].revoked_at, Some(NOW + 5), "first revocation time kept");

    // Last use only moves forward; unknown ids are ignored; an empty batch is a no-op.
    store.touch_api_keys(&[]).await.unwrap();
    let batch = [("key_bob".to_string(), NOW + 100), ("key_expiring".into(), NOW + 200), ("key_gone".into(), 1)];
    store.touch_api_keys(&batch).await.unwrap();
    store.touch_api_keys(&[("key_bob".to_string(), NOW + 50)]).await.unwrap();
    let used = |keys: Vec<ApiKey>, id: &str| keys.into_iter().find(|k| k.id == id).unwrap().last_used_at;
    assert_eq!(used(store.list_api_keys("org_b").await.unwrap(), "key_bob"), Some(NOW + 100));
    assert_eq!(used(store.list_api_keys("org_a").await.unwrap(), "key_expiring"), Some(NOW + 200));
    assert_eq!(used(store.list_api_keys("org_a").await.unwrap(), "key_live"), None);
}
