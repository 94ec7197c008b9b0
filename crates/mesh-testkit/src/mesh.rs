//! `TestMesh`: the real server, in-process, on `127.0.0.1:0`, with its own data directory.

use mesh_admin::Admin;
use mesh_core::{id, Principal};
use mesh_relay::ports::Authenticator;
use mesh_server::{Config, Mesh};
use serde_json::{json, Value};
use std::time::Duration;

/// A running mesh for one test. Stopped (sessions closed, children reaped) by `stop` or on drop.
pub struct TestMesh {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The owner API key.
    pub key: String,
    /// The control plane, for setting up state directly.
    pub admin: Admin,
    relay: std::sync::Arc<mesh_relay::ingress::Relay>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestMesh {
    /// Starts a mesh with default settings on SQLite in a temp dir.
    pub async fn start() -> TestMesh {
        Self::start_with(|_| {}).await
    }

    /// Starts a mesh after `tune` adjusts its configuration.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> TestMesh {
        Self::launch(tune, None).await
    }

    /// Starts another replica of `first` (whose `tune` gave it a shared database and vault
    /// key; `tune` must give this one the same): no owner key is made, `first`'s is used.
    pub async fn start_replica(first: &TestMesh, tune: impl FnOnce(&mut Config)) -> TestMesh {
        Self::launch(tune, Some(first.key.clone())).await
    }

    async fn launch(tune: impl FnOnce(&mut Config), key: Option<String>) -> TestMesh {
        crate::init_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = Config::with_data_dir(dir.path().join("data"));
        // Bound first, so that the issuer and resource URIs the mesh derives from its listen
        // address name the real port.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        cfg.listen = listener.local_addr().expect("addr");
        tune(&mut cfg);
        let mesh = Mesh::build(&cfg).await.expect("mesh builds");
        let key = match key {
            Some(k) => k,
            None => mesh.owner_key.as_ref().expect("first start creates the owner key").expose().clone(),
        };
        let admin = mesh.admin.clone();
        let relay = mesh.relay.clone();
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(mesh.serve(listener, async move {
            let _ = rx.await;
        }));
        TestMesh {
            url: format!("http://127.0.0.1:{port}"),
            key,
            admin,
            relay,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// The mesh's data directory (its SQLite database, vault key, owner key).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    /// The proxy endpoint of a connection.
    pub fn endpoint(&self, slug: &str) -> String {
        format!("{}/mcp/{slug}", self.url)
    }

    /// The owner principal.
    pub fn owner(&self) -> Principal {
        self.admin.keys.authenticate(&self.key).expect("owner key authenticates")
    }

    /// Gives the owner a password and logs them in as a browser would: the `Cookie` header value
    /// of the login session (served to the dashboard and the OAuth pages), and the session.
    pub async fn browser_login(&self) -> (String, mesh_store::UserSession) {
        const PASSWORD: &str = "a long enough password";
        self.admin.set_password(&self.owner(), None, PASSWORD).await.expect("owner password");
        let login = self
            .admin
            .password_login(mesh_admin::bootstrap::OWNER_EMAIL, PASSWORD, std::net::Ipv4Addr::LOCALHOST.into())
            .await
            .unwrap_or_else(|e| panic!("owner login: {e:?}"));
        let session = self.admin.login_session(&login.cookie).await.expect("the login session");
        (format!("mesh_session={}", login.cookie), session)
    }

    /// Registers a connection from management-tool style JSON (`{"slug": …, "command": …}`).
    pub async fn add_connection(&self, input: Value) -> String {
        let input = serde_json::from_value(input).expect("valid connection input");
        let view = self.admin.create_connection(&self.owner(), input).await.expect("connection created");
        view.slug
    }

    /// A second API key in the owner's organisation, for a new user with `role`.
    pub async fn extra_key(&self, role: &str) -> String {
        let owner = self.owner();
        let now = id::now_ms();
        let store = &self.admin.store;
        let user = mesh_store::User {
            id: id::new_id("usr"),
            email: format!("{}@example.test", id::random_base62(8).to_lowercase()),
            name: "Test user".into(),
            password_hash: None,
            created_at: now,
        };
        store.create_user(&user).await.expect("user");
        let m = mesh_store::Membership {
            org_id: owner.org_id.clone(),
            user_id: user.id.clone(),
            role: role.into(),
            created_at: now,
        };
        store.add_member(&m).await.expect("member");
        let (row, k) = mesh_admin::keys::issue(&owner.org_id, &user.id, "test", now, None);
        store.create_api_key(&row).await.expect("key");
        self.admin.keys.reload(store).await.expect("reload keys");
        k.full.expose().clone()
    }

    /// Calls a management tool as the owner and returns its result; panics, naming the tool, if
    /// it fails.
    pub async fn manage_ok(&self, tool: &str, args: Value) -> Value {
        let (ok, out) = self.manage(&self.key, tool, args).await;
        assert!(ok, "{tool} failed: {out}");
        out
    }

    /// Server-everything and mcp-server-time as connections `everything` and `time`, and a
    /// virtual MCP `slug` over both with `strategy`; plus a member (sam@example.test) whose role
    /// `no-convert` may use both but `time`'s `convert_time`: that member's API key and its id.
    /// The setup of the strategy tests (policy must hide one tool from search and scripts).
    pub async fn strategy_over_everything_and_time(&self, slug: &str, strategy: &str) -> (String, String) {
        self.add_connection(
            json!({"slug": "everything", "command": crate::upstreams::everything_bin(), "args": ["stdio"]}),
        )
        .await;
        let (time, time_args) = crate::upstreams::time_command();
        self.add_connection(json!({"slug": "time", "command": time, "args": time_args})).await;
        let members = json!([{"connection": "everything"}, {"connection": "time"}]);
        let created = self
            .manage_ok("COLLECTION_GATEWAYS_CREATE", json!({"slug": slug, "strategy": strategy, "members": members}))
            .await;
        assert_eq!(created["item"]["strategy"], strategy, "{created}");
        let rules = json!([
            {"effect": "allow", "connection": "everything"},
            {"effect": "allow", "connection": "time"},
            {"effect": "deny", "connection": "time", "name": "convert_time"}
        ]);
        self.manage_ok("ROLE_CREATE", json!({"name": "no-convert", "rules": rules})).await;
        let added =
            self.manage_ok("ORGANIZATION_MEMBER_ADD", json!({"email": "sam@example.test", "role": "no-convert"})).await;
        let user = added["item"]["userId"].as_str().expect("user id");
        let key = self.manage_ok("API_KEY_CREATE", json!({"name": "k", "userId": user})).await;
        (key["key"].as_str().expect("key").to_string(), key["item"]["id"].as_str().expect("key id").to_string())
    }

    /// Calls a management tool at `/mcp` with `key`, in a session of its own: `(true,
    /// structuredContent)` on success, `(false, the error text)` on a tool error.
    pub async fn manage(&self, key: &str, tool: &str, args: Value) -> (bool, Value) {
        use crate::rmcp_client::{ClientBehaviour, TestClient};
        let c = TestClient::connect_http(&format!("{}/mcp", self.url), key, ClientBehaviour::default())
            .await
            .expect("management session");
        let r = c.call_tool(tool, args).await.expect("tool call");
        c.close().await.ok();
        if r["isError"] == true {
            (false, Value::String(crate::text_of(&r)))
        } else {
            (true, r["structuredContent"].clone())
        }
    }

    /// Number of live downstream sessions.
    pub fn session_count(&self) -> usize {
        self.relay.sessions.len()
    }

    /// Runs one pass of the idle reaper now with `idle` as the idle time (the mesh's own runs on
    /// a timer): returns how many sessions it closed.
    pub async fn reap_idle(&self, idle: Duration) -> usize {
        self.relay.sessions.reap(idle).await
    }

    /// Whether the session `id` is still open.
    pub fn has_session(&self, id: &str) -> bool {
        self.relay.sessions.get(id).is_some()
    }

    /// Stops the mesh gracefully and waits (bounded) until it has.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(20), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => panic!("mesh stopped with an error: {e:#}"),
                Ok(Err(e)) => panic!("mesh task panicked: {e}"),
                Err(_) => panic!("mesh did not stop within 20 s"),
            }
        }
    }
}

impl Drop for TestMesh {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
