//! Last chapter: access control — organisations renamed and deleted, members and their roles,
//! custom roles and rate limits, every one scoped by organisation. Runs after the others, on the
//! organisations, users, keys, connections and gateways they left behind.

use mesh_store::{ApiKey, MemberChange, Membership, Org, RateLimitRow, RoleRow, Store, StoreError, User};

use crate::connections::{conn, secret};
use crate::gateways::gateway;
use crate::people::{key, member, org, user, NOW};

pub async fn access(store: &Store) {
    organisations_and_users(store).await;
    members(store).await;
    roles(store).await;
    rate_limits(store).await;
    deleting_an_organisation(store).await;
}

fn role(org_id: &str, name: &str, base: &str, rules: &str) -> RoleRow {
    RoleRow {
        org_id: org_id.into(),
        name: name.into(),
        description: Some(format!("{name} — people")),
        base: base.into(),
        rules: rules.into(),
        created_at: NOW,
        updated_at: NOW,
    }
}

fn limit(org_id: &str, id: &str, scope: &str, target: &str, per_minute: i64, at: i64) -> RateLimitRow {
    RateLimitRow {
        id: id.into(),
        org_id: org_id.into(),
        scope: scope.into(),
        target: target.into(),
        per_minute,
        burst: per_minute / 6,
        created_at: at,
        updated_at: at,
    }
}

fn joined(org_id: &str, user_id: &str, role: &str, at: i64) -> Membership {
    Membership { created_at: at, ..member(org_id, user_id, role) }
}

async fn organisations_and_users(store: &Store) {
    let acme = store.get_org("org_a").await.unwrap().unwrap();
    assert_eq!(store.get_org_by_slug("acme").await.unwrap(), Some(acme.clone()));
    assert_eq!(store.get_org_by_slug("org_a").await.unwrap(), None, "a slug, not an id");

    // Renaming changes slug and name, never created_at; the old slug no longer resolves.
    let renamed = Org { slug: "globex-corp".into(), name: "Globex Corporation".into(), ..org("org_b", "x", 1) };
    assert!(store.update_org(&renamed).await.unwrap());
    let stored = Org { created_at: NOW + 1, ..renamed.clone() };
    assert_eq!(store.get_org("org_b").await.unwrap(), Some(stored.clone()));
    assert_eq!(store.get_org_by_slug("globex-corp").await.unwrap(), Some(stored.clone()));
    assert_eq!(store.get_org_by_slug("globex").await.unwrap(), None);
    let clash = Org { slug: "acme".into(), ..renamed.clone() };
    let err = store.update_org(&clash).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m == "organisation slug 'acme' already exists"), "{err:?}");
    assert_eq!(store.get_org("org_b").await.unwrap(), Some(stored));
    assert!(!store.update_org(&org("org_missing", "missing", NOW)).await.unwrap());
    assert_eq!(store.get_org_by_slug("missing").await.unwrap(), None);

    // Email lookup is exact: normalising is the caller's job.
    let alice = store.get_user("user_alice").await.unwrap().unwrap();
    assert_eq!(store.get_user_by_email("alice@example.com").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.get_user_by_email("Alice@example.com").await.unwrap(), None);
    assert_eq!(store.get_user_by_email("user_alice").await.unwrap(), None);

    assert!(store.set_password_hash("user_bob", Some("$argon2id$v=19$bob")).await.unwrap());
    assert_eq!(store.get_user("user_bob").await.unwrap().unwrap().password_hash.as_deref(), Some("$argon2id$v=19$bob"));
    assert!(store.set_password_hash("user_alice", None).await.unwrap());
    assert_eq!(store.get_user("user_alice").await.unwrap(), Some(User { password_hash: None, ..alice }));
    assert!(!store.set_password_hash("user_ghost", Some("x")).await.unwrap());
}

async fn members(store: &Store) {
    for (id, email) in [("user_carol", "carol@example.com"), ("user_dave", "dave@example.com")] {
        store.create_user(&user(id, email)).await.unwrap();
    }
    // Carol and Dave join at the same instant: the user id breaks the tie.
    store.add_member(&joined("org_a", "user_dave", "viewer", NOW + 5)).await.unwrap();
    store.add_member(&joined("org_a", "user_carol", "admin", NOW + 5)).await.unwrap();
    store.add_member(&joined("org_a", "user_bob", "member", NOW + 2)).await.unwrap();

    let listed = store.list_members("org_a").await.unwrap();
    let expected = [
        ("user_alice", joined("org_a", "user_alice", "owner", NOW)),
        ("user_bob", joined("org_a", "user_bob", "member", NOW + 2)),
        ("user_carol", joined("org_a", "user_carol", "admin", NOW + 5)),
        ("user_dave", joined("org_a", "user_dave", "viewer", NOW + 5)),
    ];
    assert_eq!(listed.len(), expected.len());
    for ((u, m), (id, want)) in listed.iter().zip(expected) {
        assert_eq!(Some(u), store.get_user(id).await.unwrap().as_ref(), "the whole user");
        assert_eq!(m, &want);
    }
    let ids = |ms: Vec<(User, Membership)>| ms.into_iter().map(|(u, _)| u.id).collect::<Vec<_>>();
    assert_eq!(ids(store.list_members("org_b").await.unwrap()), ["user_bob"]);
    assert_eq!(ids(store.list_members("org_c").await.unwrap()), Vec::<String>::new());

    // A user's organisations, oldest first, with the role held in each.
    let orgs = |user: &'static str| async move {
        let found = store.orgs_of_user(user).await.unwrap();
        found.into_iter().map(|(o, role)| (o.slug, role)).collect::<Vec<_>>()
    };
    let pair = |slug: &str, role: &str| (slug.to_string(), role.to_string());
    assert_eq!(orgs("user_bob").await, [pair("acme", "member"), pair("globex-corp", "member")]);
    assert_eq!(orgs("user_alice").await, [pair("acme", "owner")]);
    assert_eq!(orgs("user_ghost").await, []);

    // Role changes keep the membership's date; another organisation cannot touch them.
    assert_eq!(store.count_members_with_role("org_a", "owner").await.unwrap(), 1);
    assert_eq!(store.count_members_with_role("org_a", "admin").await.unwrap(), 1);
    assert_eq!(store.count_members_with_role("org_b", "owner").await.unwrap(), 0);
    assert_eq!(store.update_member_role("org_a", "user_dave", "admin").await.unwrap(), MemberChange::Done);
    assert_eq!(
        store.get_membership("org_a", "user_dave").await.unwrap(),
        Some(joined("org_a", "user_dave", "admin", NOW + 5))
    );
    assert_eq!(store.count_members_with_role("org_a", "admin").await.unwrap(), 2);
    assert_eq!(store.update_member_role("org_b", "user_dave", "owner").await.unwrap(), MemberChange::NotMember);
    assert_eq!(store.get_membership("org_b", "user_dave").await.unwrap(), None);
    assert_eq!(store.update_member_role("org_a", "user_ghost", "owner").await.unwrap(), MemberChange::NotMember);
    assert_eq!(store.count_members_with_role("org_a", "owner").await.unwrap(), 1);

    // The last owner stays: demoting or removing them changes nothing. Two owners demoting
    // themselves at the same time leave exactly one (the change and the count are one step).
    assert_eq!(store.update_member_role("org_a", "user_alice", "admin").await.unwrap(), MemberChange::LastOwner);
    assert_eq!(store.remove_member("org_a", "user_alice").await.unwrap(), MemberChange::LastOwner);
    assert_eq!(store.count_members_with_role("org_a", "owner").await.unwrap(), 1);
    assert_eq!(store.update_member_role("org_a", "user_dave", "owner").await.unwrap(), MemberChange::Done);
    let (alice, dave) = tokio::join!(
        store.update_member_role("org_a", "user_alice", "admin"),
        store.update_member_role("org_a", "user_dave", "admin"),
    );
    let mut outcomes = [alice.unwrap(), dave.unwrap()];
    outcomes.sort_by_key(|o| *o == MemberChange::Done);
    assert_eq!(outcomes, [MemberChange::LastOwner, MemberChange::Done]);
    assert_eq!(store.count_members_with_role("org_a", "owner").await.unwrap(), 1);
    assert_eq!(store.update_member_role("org_a", "user_alice", "owner").await.unwrap(), MemberChange::Done);
    assert_eq!(store.update_member_role("org_a", "user_dave", "admin").await.unwrap(), MemberChange::Done);
    assert_eq!(store.count_members_with_role("org_a", "owner").await.unwrap(), 1);

    // Removing a member takes their keys in that organisation along, and nothing else.
    store.create_api_key(&key("key_carol", "org_a", "user_carol", NOW + 6, None)).await.unwrap();
    store.create_api_key(&key("key_bob_a", "org_a", "user_bob", NOW + 7, None)).await.unwrap();
    assert_eq!(
        store.remove_member("org_b", "user_carol").await.unwrap(),
        MemberChange::NotMember,
        "not a member there"
    );
    assert_eq!(store.remove_member("org_a", "user_carol").await.unwrap(), MemberChange::Done);
    assert_eq!(store.remove_member("org_a", "user_carol").await.unwrap(), MemberChange::NotMember);
    assert_eq!(store.remove_member("org_a", "user_bob").await.unwrap(), MemberChange::Done);
    let key_ids = |keys: Vec<ApiKey>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(key_ids(store.list_api_keys("org_a").await.unwrap()), ["key_live", "key_expired", "key_expiring"]);
    assert_eq!(key_ids(store.list_api_keys("org_b").await.unwrap()), ["key_bob"]);
    assert!(store.get_user("user_carol").await.unwrap().is_some(), "the user outlives the membership");
    assert_eq!(orgs("user_carol").await, []);
    assert_eq!(orgs("user_bob").await, [pair("globex-corp", "member")]);
    assert_eq!(ids(store.list_members("org_a").await.unwrap()), ["user_alice", "user_dave"]);
}

async fn roles(store: &Store) {
    let rules = r#"[{"effect":"allow","connection":"git*","kind":"tool","name":"search_?"},{"effect":"deny","name":"supprimer ✗"}]"#;
    let support = role("org_a", "support", "member", rules);
    // A built-in role carrying rules: its own name as base.
    let admin = role("org_a", "admin", "admin", r#"[{"effect":"deny","gateway":"prod"}]"#);
    let support_b = RoleRow { description: None, ..role("org_b", "support", "viewer", "[]") };
    for r in [&support, &admin, &support_b] {
        store.create_role(r).await.unwrap();
    }
    let err = store.create_role(&role("org_a", "support", "viewer", "[]")).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m == "role 'support' already exists"), "{err:?}");
    let err = store.create_role(&role("org_missing", "support", "viewer", "[]")).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");

    // Lookups never cross organisations.
    assert_eq!(store.get_role("org_a", "support").await.unwrap(), Some(support.clone()));
    assert_eq!(store.get_role("org_b", "support").await.unwrap(), Some(support_b.clone()));
    assert_eq!(store.get_role("org_b", "admin").await.unwrap(), None);
    assert_eq!(store.list_roles("org_a").await.unwrap(), vec![admin.clone(), support.clone()], "by name");
    assert_eq!(store.list_roles("org_c").await.unwrap(), vec![]);

    // Updates replace description, base and rules; name and created_at stay.
    let changed = RoleRow {
        description: None,
        base: "viewer".into(),
        rules: "[]".into(),
        created_at: 1,
        updated_at: NOW + 20,
        ..support.clone()
    };
    assert!(store.update_role(&changed).await.unwrap());
    let stored = RoleRow { created_at: NOW, ..changed.clone() };
    assert_eq!(store.get_role("org_a", "support").await.unwrap(), Some(stored.clone()));
    assert!(!store.update_role(&RoleRow { org_id: "org_b".into(), ..admin.clone() }).await.unwrap());
    assert!(!store.update_role(&role("org_a", "missing", "viewer", "[]")).await.unwrap());
    assert_eq!(store.get_role("org_a", "admin").await.unwrap(), Some(admin.clone()), "untouched");

    // Deletion is scoped; the policy cache loads every organisation's roles at once.
    assert!(!store.delete_role("org_b", "admin").await.unwrap());
    assert!(store.delete_role("org_a", "admin").await.unwrap());
    assert!(!store.delete_role("org_a", "admin").await.unwrap());
    assert_eq!(store.all_roles().await.unwrap(), vec![stored, support_b]);

    // The store does not refuse deleting a role members hold (the service does, after counting).
    assert_eq!(store.update_member_role("org_a", "user_dave", "support").await.unwrap(), MemberChange::Done);
    assert_eq!(store.count_members_with_role("org_a", "support").await.unwrap(), 1);
    assert_eq!(store.count_members_with_role("org_b", "support").await.unwrap(), 0);
}

async fn rate_limits(store: &Store) {
    let per_key = limit("org_a", "rl_1", "key", "key_expiring", 60, NOW);
    let per_tool = limit("org_a", "rl_2", "tool", "github/*", 30, NOW + 1);
    let per_key_b = limit("org_b", "rl_9", "key", "key_expiring", 5, NOW + 2);
    for l in [&per_key, &per_tool, &per_key_b] {
        assert_eq!(&store.upsert_rate_limit(l).await.unwrap(), l, "a new limit is stored as given");
    }

    // Setting the same (scope, target) again updates in place: the first id and created_at stay.
    let again = RateLimitRow { burst: 20, ..limit("org_a", "rl_new", "key", "key_expiring", 120, NOW + 30) };
    let kept = RateLimitRow { id: "rl_1".into(), created_at: NOW, ..again.clone() };
    assert_eq!(store.upsert_rate_limit(&again).await.unwrap(), kept);
    assert_eq!(store.list_rate_limits("org_a").await.unwrap(), vec![kept.clone(), per_tool.clone()]);
    assert_eq!(store.list_rate_limits("org_b").await.unwrap(), vec![per_key_b.clone()], "same target, own row");
    assert_eq!(store.list_rate_limits("org_c").await.unwrap(), vec![]);

    // Another organisation cannot reach org_a's limits by id, neither to overwrite nor to delete.
    let hijack = limit("org_b", "rl_1", "user", "user_bob", 1, NOW + 40);
    let err = store.upsert_rate_limit(&hijack).await.unwrap_err();
    assert!(matches!(&err, StoreError::Conflict(m) if m == "rate limit 'rl_1' already exists"), "{err:?}");
    assert!(!store.delete_rate_limit("org_b", "rl_1").await.unwrap());
    assert_eq!(store.list_rate_limits("org_a").await.unwrap(), vec![kept.clone(), per_tool.clone()]);
    let err = store.upsert_rate_limit(&limit("org_missing", "rl_x", "key", "*", 1, NOW)).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");

    assert!(store.delete_rate_limit("org_a", "rl_2").await.unwrap());
    assert!(!store.delete_rate_limit("org_a", "rl_2").await.unwrap());
    assert_eq!(store.all_rate_limits().await.unwrap(), vec![kept, per_key_b]);
}

/// Everything an organisation owns goes with it, through the schema's cascades; its users, and
/// every other organisation, stay exactly as they were.
async fn deleting_an_organisation(store: &Store) {
    let doomed = org("org_d", "doomed", NOW + 3);
    store.create_org(&doomed).await.unwrap();
    store.create_user(&user("user_erin", "erin@example.com")).await.unwrap();
    store.add_member(&member("org_d", "user_erin", "owner")).await.unwrap();
    store.add_member(&member("org_d", "user_dave", "member")).await.unwrap();
    store.create_api_key(&key("key_erin", "org_d", "user_erin", NOW + 8, None)).await.unwrap();
    let c = conn("org_d", "conn_d", "github");
    store.create_connection(&c, &[secret(&c, "sec_d", "env", "GITHUB_TOKEN")]).await.unwrap();
    store.create_gateway(&gateway("org_d", "gw_d", "dev", vec![])).await.unwrap();
    store.create_role(&role("org_d", "support", "member", "[]")).await.unwrap();
    store.upsert_rate_limit(&limit("org_d", "rl_d", "user", "*", 10, NOW)).await.unwrap();

    // Everything else, before.
    let others = || async {
        let mut seen = Vec::new();
        for id in ["org_a", "org_b", "org_c"] {
            seen.push(format!("{:?}", store.get_org(id).await.unwrap()));
            seen.push(format!("{:?}", store.list_members(id).await.unwrap()));
            seen.push(format!("{:?}", store.list_api_keys(id).await.unwrap()));
            seen.push(format!("{:?}", store.list_connections(id).await.unwrap()));
            seen.push(format!("{:?}", store.list_gateways(id).await.unwrap()));
            seen.push(format!("{:?}", store.list_roles(id).await.unwrap()));
            seen.push(format!("{:?}", store.list_rate_limits(id).await.unwrap()));
        }
        seen.push(format!(
            "{:?}",
            store.all_secrets().await.unwrap().iter().filter(|s| s.org_id != "org_d").collect::<Vec<_>>()
        ));
        seen
    };
    let before = others().await;
    assert!(store.all_secrets().await.unwrap().iter().any(|s| s.id == "sec_d"));

    assert!(store.delete_org("org_d").await.unwrap());
    assert!(!store.delete_org("org_d").await.unwrap());
    assert_eq!(store.get_org("org_d").await.unwrap(), None);
    assert_eq!(store.get_org_by_slug("doomed").await.unwrap(), None);
    assert_eq!(store.list_members("org_d").await.unwrap(), vec![]);
    assert_eq!(store.list_api_keys("org_d").await.unwrap(), vec![]);
    assert!(store.active_api_keys(NOW).await.unwrap().iter().all(|(k, _)| k.org_id != "org_d"));
    assert_eq!(store.list_connections("org_d").await.unwrap(), vec![]);
    assert!(store.all_secrets().await.unwrap().iter().all(|s| s.org_id != "org_d"));
    assert_eq!(store.list_gateways("org_d").await.unwrap(), vec![]);
    assert_eq!(store.list_roles("org_d").await.unwrap(), vec![]);
    assert!(store.all_roles().await.unwrap().iter().all(|r| r.org_id != "org_d"));
    assert_eq!(store.list_rate_limits("org_d").await.unwrap(), vec![]);
    assert!(store.all_rate_limits().await.unwrap().iter().all(|l| l.org_id != "org_d"));

    // Users are not the organisation's: Erin stays (in no organisation), Dave keeps org_a.
    assert!(store.get_user("user_erin").await.unwrap().is_some());
    assert_eq!(store.orgs_of_user("user_erin").await.unwrap(), vec![]);
    let daves = store.orgs_of_user("user_dave").await.unwrap();
    assert_eq!(
        daves.into_iter().map(|(o, r)| (o.id, r)).collect::<Vec<_>>(),
        [("org_a".to_string(), "support".to_string())]
    );
    assert_eq!(others().await, before, "other organisations untouched");
}
