//! The authorization matrix: every role × every management operation and MCP method, against
//! the expected allow/deny, on SQLite and on PostgreSQL.
//!
//! Roles: the four built-in ones and a custom `support` role (base member, allowed only the
//! `echo` tool of the `everything` connection). Each management operation runs on objects made
//! for it, so operations cannot mask each other; a refusal must be the permission error (not a
//! not-found or a validation error that would hide a missing check), and an allowed operation
//! must succeed. MCP methods are called through `/mcp/everything` (server-everything, stdio).

use mesh_relay::ports::Authenticator;
use mesh_testkit::rmcp_client::{ClientBehaviour, TestClient};
use mesh_testkit::{pg, text_of, upstreams, TestMesh};
use serde_json::{json, Value};

/// The roles, and a sixth column: the owner's own key narrowed to one connection, which manages
/// nothing (issue #16 item 3) and reaches that connection as its owner would.
const ROLES: [&str; 6] = ["owner", "admin", "member", "viewer", "support", "narrowed"];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Who {
    Everyone,
    Managers,
    Owner,
    /// The installation's operators: owners of the first organisation (this world's owner);
    /// tests/security.rs shows another organisation's owner is not one.
    Operator,
}

impl Who {
    fn allows(self, role: &str) -> bool {
        if role == "narrowed" {
            return false;
        }
        match self {
            Who::Everyone => true,
            Who::Managers => role == "owner" || role == "admin",
            Who::Owner | Who::Operator => role == "owner",
        }
    }
}

/// Every management tool the server lists, with who may call it.
const OPERATIONS: &[(&str, Who)] = &[
    ("COLLECTION_CONNECTIONS_CREATE", Who::Managers),
    ("COLLECTION_CONNECTIONS_CREATE (stdio command)", Who::Operator),
    ("COLLECTION_CONNECTIONS_CREATE (stdio from a template)", Who::Managers),
    ("COLLECTION_CONNECTIONS_LIST", Who::Everyone),
    ("COLLECTION_CONNECTIONS_GET", Who::Everyone),
    ("COLLECTION_CONNECTIONS_UPDATE", Who::Managers),
    ("COLLECTION_CONNECTIONS_DELETE", Who::Managers),
    ("CONNECTION_TEST", Who::Everyone),
    ("CONNECTION_TOOLS", Who::Managers),
    ("CONNECTION_GRANT_LIST", Who::Everyone),
    ("CONNECTION_GRANT_REVOKE", Who::Everyone),
    ("COLLECTION_GATEWAYS_CREATE", Who::Managers),
    ("GATEWAY_CHECK", Who::Managers),
    ("COLLECTION_GATEWAYS_LIST", Who::Everyone),
    ("COLLECTION_GATEWAYS_GET", Who::Everyone),
    ("COLLECTION_GATEWAYS_UPDATE", Who::Managers),
    ("COLLECTION_GATEWAYS_DELETE", Who::Managers),
    ("VAULT_ROTATE", Who::Operator),
    ("COLLECTION_TEMPLATES_CREATE", Who::Operator),
    ("COLLECTION_TEMPLATES_LIST", Who::Everyone),
    ("COLLECTION_TEMPLATES_GET", Who::Everyone),
    ("COLLECTION_TEMPLATES_DELETE", Who::Operator),
    ("API_KEY_CREATE", Who::Everyone),
    ("API_KEY_CREATE (for another member)", Who::Managers),
    ("API_KEY_CREATE (for an owner)", Who::Owner),
    ("API_KEY_LIST", Who::Everyone),
    ("API_KEY_REVOKE", Who::Everyone),
    ("AUDIT_QUERY", Who::Everyone),
    ("AUDIT_QUERY (another member's calls)", Who::Managers),
    ("AUDIT_VERIFY", Who::Managers),
    ("USAGE_QUERY", Who::Everyone),
    ("USAGE_QUERY (another member's use)", Who::Managers),
    ("ORGANIZATION_CREATE", Who::Operator),
    ("ORGANIZATION_LIST", Who::Everyone),
    ("ORGANIZATION_GET", Who::Everyone),
    ("ORGANIZATION_UPDATE", Who::Managers),
    ("ORGANIZATION_DELETE", Who::Owner),
    ("ORGANIZATION_MEMBER_ADD", Who::Managers),
    ("ORGANIZATION_MEMBER_LIST", Who::Everyone),
    ("ORGANIZATION_MEMBER_UPDATE_ROLE", Who::Managers),
    ("ORGANIZATION_MEMBER_REMOVE", Who::Managers),
    ("ROLE_CREATE", Who::Managers),
    ("ROLE_LIST", Who::Everyone),
    ("ROLE_GET", Who::Everyone),
    ("ROLE_UPDATE", Who::Managers),
    ("ROLE_DELETE", Who::Managers),
    ("RATE_LIMIT_SET", Who::Managers),
    ("RATE_LIMIT_LIST", Who::Everyone),
    ("RATE_LIMIT_DELETE", Who::Managers),
    ("OAUTH_CLIENT_CREATE", Who::Operator),
    ("OAUTH_CLIENT_LIST", Who::Managers),
    ("OAUTH_CLIENT_DELETE", Who::Operator),
    ("OAUTH_GRANT_LIST", Who::Everyone),
    ("OAUTH_GRANT_LIST (another member's)", Who::Managers),
    ("OAUTH_GRANT_REVOKE", Who::Everyone),
    ("USER_PASSWORD_SET", Who::Everyone),
    ("USER_PASSWORD_SET (another user's)", Who::Operator),
];

struct World {
    mesh: TestMesh,
    owner: TestClient,
    keys: Vec<(String, String)>,
    owner_user: String,
    n: std::cell::Cell<u32>,
}

impl World {
    fn next(&self) -> u32 {
        self.n.set(self.n.get() + 1);
        self.n.get()
    }

    async fn setup(&self, tool: &str, args: Value) -> Value {
        let r = self.owner.call_tool(tool, args).await.expect("setup call");
        assert_ne!(r["isError"], true, "setup {tool}: {r}");
        r["structuredContent"].clone()
    }

    /// The tool to call and its arguments for `op`, after making what it needs; `role_key` is
    /// the caller's.
    async fn prepare(&self, op: &str, role_client: &TestClient, role_key: &str) -> (String, Value) {
        let n = self.next();
        let tool = op.split(' ').next().unwrap().to_string();
        let args = match op {
            "COLLECTION_CONNECTIONS_CREATE" => json!({"slug": format!("c{n}"), "url": "http://127.0.0.1:9/mcp"}),
            "COLLECTION_CONNECTIONS_CREATE (stdio command)" => json!({"slug": format!("c{n}"), "command": "true"}),
            "COLLECTION_CONNECTIONS_CREATE (stdio from a template)" => {
                self.setup("COLLECTION_TEMPLATES_CREATE", json!({"name": format!("t{n}"), "command": "true"})).await;
                json!({"slug": format!("c{n}"), "template": format!("t{n}")})
            }
            "COLLECTION_TEMPLATES_CREATE" => json!({"name": format!("t{n}"), "command": "true"}),
            "COLLECTION_TEMPLATES_GET" | "COLLECTION_TEMPLATES_DELETE" => {
                self.setup("COLLECTION_TEMPLATES_CREATE", json!({"name": format!("t{n}"), "command": "true"})).await;
                json!({"name": format!("t{n}")})
            }
            "COLLECTION_CONNECTIONS_GET" | "CONNECTION_TEST" | "CONNECTION_TOOLS" | "CONNECTION_GRANT_REVOKE" => {
                json!({"id": "everything"})
            }
            "COLLECTION_CONNECTIONS_UPDATE" | "COLLECTION_CONNECTIONS_DELETE" => {
                self.setup(
                    "COLLECTION_CONNECTIONS_CREATE",
                    json!({"slug": format!("c{n}"), "url": "http://127.0.0.1:9/mcp"}),
                )
                .await;
                if tool.ends_with("UPDATE") {
                    json!({"id": format!("c{n}"), "title": "changed"})
                } else {
                    json!({"id": format!("c{n}")})
                }
            }
            "COLLECTION_GATEWAYS_CREATE" | "GATEWAY_CHECK" => json!({"slug": format!("g{n}"), "allConnections": true}),
            "COLLECTION_GATEWAYS_GET" => json!({"id": "default"}),
            "COLLECTION_GATEWAYS_UPDATE" | "COLLECTION_GATEWAYS_DELETE" => {
                self.setup("COLLECTION_GATEWAYS_CREATE", json!({"slug": format!("g{n}"), "allConnections": true}))
                    .await;
                if tool.ends_with("UPDATE") {
                    json!({"id": format!("g{n}"), "title": "changed"})
                } else {
                    json!({"id": format!("g{n}")})
                }
            }
            "API_KEY_CREATE" => json!({"name": format!("k{n}")}),
            "API_KEY_CREATE (for another member)" => {
                let email = format!("u{n}@example.test");
                let added = self.setup("ORGANIZATION_MEMBER_ADD", json!({"email": email, "role": "member"})).await;
                json!({"name": format!("k{n}"), "userId": added["item"]["userId"]})
            }
            "API_KEY_CREATE (for an owner)" => {
                let email = format!("u{n}@example.test");
                let added = self.setup("ORGANIZATION_MEMBER_ADD", json!({"email": email, "role": "owner"})).await;
                json!({"name": format!("k{n}"), "userId": added["item"]["userId"]})
            }
            "API_KEY_REVOKE" => {
                // The caller's own key, made by the caller.
                let made = role_client.call_tool("API_KEY_CREATE", json!({"name": format!("k{n}")})).await.unwrap();
                json!({"id": made["structuredContent"]["item"]["id"]})
            }
            "AUDIT_QUERY (another member's calls)" | "USAGE_QUERY (another member's use)" => {
                json!({"user": self.owner_user})
            }
            "ORGANIZATION_CREATE" => json!({"slug": format!("o{n}")}),
            "ORGANIZATION_UPDATE" => json!({"name": "Default"}),
            "ORGANIZATION_DELETE" => json!({"id": "default", "confirm": "default"}),
            "ORGANIZATION_MEMBER_ADD" => json!({"email": format!("u{n}@example.test"), "role": "member"}),
            "ORGANIZATION_MEMBER_UPDATE_ROLE" | "ORGANIZATION_MEMBER_REMOVE" => {
                let email = format!("u{n}@example.test");
                self.setup("ORGANIZATION_MEMBER_ADD", json!({"email": email, "role": "member"})).await;
                if tool.ends_with("ROLE") {
                    json!({"user": email, "role": "viewer"})
                } else {
                    json!({"user": email})
                }
            }
            "ROLE_CREATE" => json!({"name": format!("r{n}")}),
            "ROLE_GET" => json!({"name": "support"}),
            "ROLE_UPDATE" | "ROLE_DELETE" => {
                self.setup("ROLE_CREATE", json!({"name": format!("r{n}")})).await;
                if tool.ends_with("UPDATE") {
                    json!({"name": format!("r{n}"), "description": "changed"})
                } else {
                    json!({"name": format!("r{n}")})
                }
            }
            "RATE_LIMIT_SET" => json!({"scope": "connection", "target": format!("c{n}"), "perMinute": 100}),
            "RATE_LIMIT_DELETE" => {
                let made = self
                    .setup(
                        "RATE_LIMIT_SET",
                        json!({"scope": "connection", "target": format!("c{n}"), "perMinute": 100}),
                    )
                    .await;
                json!({"id": made["item"]["id"]})
            }
            "OAUTH_CLIENT_CREATE" => {
                json!({"name": format!("oc{n}"), "clientId": format!("oc{n}"), "redirectUris": ["http://127.0.0.1/cb"]})
            }
            "OAUTH_CLIENT_DELETE" => {
                self.oauth_client(n).await;
                json!({"clientId": format!("oc{n}")})
            }
            "OAUTH_GRANT_LIST (another member's)" => json!({"user": self.owner_user}),
            "OAUTH_GRANT_REVOKE" => {
                // The caller's own grant (no route makes one without a browser's consent).
                self.oauth_client(n).await;
                let p = self.mesh.admin.keys.authenticate(role_key).expect("the role's key");
                let grant = mesh_store::OAuthGrant {
                    id: format!("grant_{n}"),
                    org_id: p.org_id,
                    user_id: p.user_id,
                    client_id: format!("oc{n}"),
                    client_name: format!("oc{n}"),
                    resource: format!("{}/mcp", self.mesh.url),
                    route: String::new(),
                    scope: "mcp".into(),
                    created_at: mesh_core::id::now_ms(),
                };
                self.mesh.admin.store.upsert_oauth_grant(&grant).await.expect("grant");
                json!({"id": format!("grant_{n}")})
            }
            "USER_PASSWORD_SET" => json!({"password": "a long enough password"}),
            "USER_PASSWORD_SET (another user's)" => {
                let email = format!("u{n}@example.test");
                self.setup("ORGANIZATION_MEMBER_ADD", json!({"email": email, "role": "member"})).await;
                json!({"user": email, "password": "a long enough password"})
            }
            _ => json!({}),
        };
        (tool, args)
    }

    /// A pre-registered OAuth client `oc{n}`.
    async fn oauth_client(&self, n: u32) {
        let args =
            json!({"name": format!("oc{n}"), "clientId": format!("oc{n}"), "redirectUris": ["http://127.0.0.1/cb"]});
        self.setup("OAUTH_CLIENT_CREATE", args).await;
    }
}

async fn connect(mesh: &TestMesh, path: &str, key: &str) -> TestClient {
    TestClient::connect_http(&format!("{}{path}", mesh.url), key, ClientBehaviour::default()).await.expect("session")
}

/// Whether a data-plane call was refused by policy (as opposed to reaching the upstream).
fn refused(r: &anyhow::Result<Value>) -> bool {
    match r {
        Ok(_) => false,
        Err(e) => {
            let text = format!("{e:#}");
            text.contains("Unknown tool")
                || text.contains("Unknown prompt")
                || text.contains("Unknown resource")
                || text.contains("may list tools but not call")
                || text.contains("-31020")
        }
    }
}

async fn matrix(mesh: TestMesh) {
    mesh.add_connection(json!({"slug": "everything", "command": upstreams::everything_bin(), "args": ["stdio"]})).await;
    let owner = connect(&mesh, "/mcp", &mesh.key).await;
    let setup = |tool: &'static str, args: Value| {
        let owner = &owner;
        async move {
            let r = owner.call_tool(tool, args).await.unwrap();
            assert_ne!(r["isError"], true, "{tool}: {r}");
            r["structuredContent"].clone()
        }
    };
    let rules = json!([{"effect": "allow", "connection": "everything", "name": "echo"}]);
    setup("ROLE_CREATE", json!({"name": "support", "rules": rules})).await;
    let mut keys = Vec::new();
    for role in ROLES {
        let key = if role == "owner" {
            mesh.key.clone()
        } else if role == "narrowed" {
            let made = setup("API_KEY_CREATE", json!({"name": role, "scope": {"connections": ["everything"]}})).await;
            made["key"].as_str().unwrap().to_string()
        } else {
            let added =
                setup("ORGANIZATION_MEMBER_ADD", json!({"email": format!("{role}@example.test"), "role": role})).await;
            let made = setup("API_KEY_CREATE", json!({"name": role, "userId": added["item"]["userId"]})).await;
            made["key"].as_str().unwrap().to_string()
        };
        keys.push((role.to_string(), key));
    }
    // Every tool the server offers is in the matrix, and nothing else.
    let listed = owner.list_tool_names().await.unwrap();
    let mut covered: Vec<&str> = OPERATIONS.iter().map(|(op, _)| op.split(' ').next().unwrap()).collect();
    covered.dedup();
    let mut offered: Vec<&str> = listed.iter().map(String::as_str).collect();
    offered.sort_unstable();
    covered.sort_unstable();
    assert_eq!(offered, covered, "the matrix covers every management tool");

    let world = World { owner_user: mesh.owner().user_id, mesh, owner, keys, n: std::cell::Cell::new(0) };
    let mut table =
        String::from("\noperation                               owner admin member viewer support narrowed\n");
    let mut failures = Vec::new();
    for (op, who) in OPERATIONS {
        let mut line = format!("{op:<40}");
        for (role, key) in &world.keys {
            let client = connect(&world.mesh, "/mcp", key).await;
            let (tool, args) = world.prepare(op, &client, key).await;
            // The owner deleting the organisation runs in a throwaway one, with its own key.
            let (client, args) = if *op == "ORGANIZATION_DELETE" && role == "owner" {
                let made = world.setup("ORGANIZATION_CREATE", json!({"slug": "doomed"})).await;
                (
                    connect(&world.mesh, "/mcp", made["key"].as_str().unwrap()).await,
                    json!({"id": "doomed", "confirm": "doomed"}),
                )
            } else {
                (client, args)
            };
            let r = client.call_tool(&tool, args).await.expect("a tool result");
            client.close().await.ok();
            let allowed = r["isError"] != true;
            let expected = who.allows(role);
            if allowed != expected || (!allowed && !text_of(&r).contains("permission denied")) {
                failures.push(format!("{role} × {op}: expected {}, got {r}", if expected { "allow" } else { "deny" }));
            }
            line.push_str(&format!(" {:>5}", if allowed { "allow" } else { "deny" }));
        }
        table.push_str(&line);
        table.push('\n');
    }

    // The data plane: list and call through a connection.
    let everything = connect(&world.mesh, "/mcp/everything", &world.mesh.key).await;
    let tools = everything.list_tool_names().await.unwrap();
    let other_tool = tools.iter().find(|t| *t != "echo").unwrap().clone();
    let prompts = everything.peer().list_all_prompts().await.unwrap();
    let prompt = prompts
        .iter()
        .find(|p| p.arguments.as_ref().is_none_or(|a| a.iter().all(|x| x.required != Some(true))))
        .expect("a prompt without required arguments")
        .name
        .to_string();
    let resource = everything.peer().list_all_resources().await.unwrap().first().expect("a resource").uri.clone();
    for (role, key) in &world.keys {
        let c = connect(&world.mesh, "/mcp/everything", key).await;
        let cases: [(&str, bool, bool); 5] = [
            ("tools/list", c.list_tool_names().await.is_err(), false),
            ("tools/call echo", refused(&c.call_tool("echo", json!({"message": "m"})).await), role == "viewer"),
            (
                "tools/call (not support's)",
                refused(&c.call_tool(&other_tool, json!({})).await),
                role == "viewer" || role == "support",
            ),
            ("prompts/get", refused(&c.get_prompt(&prompt, json!({})).await), role == "support"),
            ("resources/read", refused(&c.read_resource(&resource).await), role == "support"),
        ];
        for (what, was_refused, expect_refused) in cases {
            if was_refused != expect_refused {
                failures.push(format!("{role} × {what}: refused={was_refused}, expected {expect_refused}"));
            }
        }
        c.close().await.ok();
    }
    eprintln!("{table}");
    assert!(failures.is_empty(), "authorization matrix mismatches:\n{}", failures.join("\n"));
    world.mesh.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_on_sqlite() {
    matrix(TestMesh::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_on_postgres() {
    let Some(db) = pg::fresh("mesh_authz").await else { return };
    let url = db.url.clone();
    let mesh = TestMesh::start_with(|c| c.database_url = Some(mesh_core::Secret::new(url))).await;
    matrix(mesh).await;
    db.drop_now().await;
}
