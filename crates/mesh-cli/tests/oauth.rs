//! The authorization server's management from the shell, against a real mesh: `oauth client`
//! (public and confidential; the secret printed once, never listed), `oauth grant` (members see
//! and revoke their own, owners everyone's), and `user passwd` — from stdin, and typed at a real
//! pseudo-terminal with echo off — checked by logging in with the password.

mod common;
use common::*;

use mesh_admin::audit::AuditQuery;
use mesh_relay::ports::Authenticator;
use mesh_store::OAuthGrant;
use mesh_testkit::TestMesh;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn json_of(out: &Out) -> Value {
    assert!(out.ok, "exit {:?}: {}", out.code, out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("--json prints JSON ({e}): {}", out.stdout))
}

fn refused(out: &Out, why: &str) {
    assert!(!out.ok, "expected a refusal ({why}): {}", out.stdout);
    assert!(out.stderr.contains(why), "'{why}' in: {}", out.stderr);
}

/// The user id and email behind an API key.
async fn user_of(mesh: &TestMesh, key: &str) -> (String, String) {
    let p = mesh.admin.keys.authenticate(key).expect("the key authenticates");
    let user = mesh.admin.store.get_user(&p.user_id).await.unwrap().expect("its user");
    (user.id, user.email)
}

async fn logs_in(mesh: &TestMesh, email: &str, password: &str) -> bool {
    mesh.admin.password_login(email, password, IP).await.is_ok()
}

#[tokio::test]
async fn oauth_client_add_list_rm() {
    let mesh = TestMesh::start().await;

    // A public client: no secret, said so.
    let public =
        cli(&mesh, &["oauth", "client", "add", "Inspector", "--redirect-uri", "http://127.0.0.1/callback"]).await;
    assert!(public.ok, "{}", public.stderr);
    assert!(public.stdout.contains("Inspector") && public.stdout.contains("public"), "{}", public.stdout);
    assert!(!public.stdout.contains("mcs_") && !public.stdout.contains("Client secret"), "{}", public.stdout);

    // A confidential one: the secret once, with the warning, and it is the one stored (hashed).
    let args = [
        "oauth",
        "client",
        "add",
        "Backend",
        "--confidential",
        "--client-id",
        "backend",
        "--client-uri",
        "https://app.example.test",
        "--redirect-uri",
        "https://app.example.test/cb",
        "--redirect-uri",
        "http://localhost/cb",
    ];
    let confidential = cli(&mesh, &args).await;
    assert!(confidential.ok, "{}", confidential.stderr);
    let out = &confidential.stdout;
    assert!(out.contains("backend") && out.contains("confidential"), "{out}");
    assert!(out.contains("shown only now") && out.contains("cannot be shown again"), "{out}");
    let secret = out.split_whitespace().find(|w| w.starts_with("mcs_")).expect("the secret is printed").to_string();
    let stored = mesh.admin.store.get_oauth_client("backend").await.unwrap().expect("stored");
    assert_eq!(stored.secret_hash.as_deref(), Some(mesh_admin::keys::hash(&secret).as_str()));
    assert_eq!(stored.redirect_uris, ["https://app.example.test/cb", "http://localhost/cb"]);

    // --json carries it as clientSecret, for scripts.
    let scripted = json_of(
        &cli(
            &mesh,
            &[
                "oauth",
                "client",
                "add",
                "Job",
                "--confidential",
                "--redirect-uri",
                "https://job.example.test/cb",
                "--json",
            ],
        )
        .await,
    );
    let job_secret = scripted["clientSecret"].as_str().expect("clientSecret").to_string();
    assert!(job_secret.starts_with("mcs_") && scripted["item"]["confidential"] == true, "{scripted}");
    let job_id = scripted["item"]["clientId"].as_str().expect("a generated id").to_string();

    // Listing never shows a secret, as a table or as JSON.
    let table = cli(&mesh, &["oauth", "client", "list"]).await;
    assert!(table.ok && table.stdout.starts_with("CLIENT-ID"), "{}{}", table.stdout, table.stderr);
    assert!(table.stdout.contains("Inspector") && table.stdout.contains(&job_id), "{}", table.stdout);
    let items = json_of(&cli(&mesh, &["oauth", "clients", "ls", "--json"]).await);
    assert_eq!(items.as_array().map(Vec::len), Some(3), "{items}");
    for listed in [&table.stdout, &items.to_string()] {
        assert!(!listed.contains(&secret) && !listed.contains(&job_secret) && !listed.contains("mcs_"), "{listed}");
    }
    let backend = items.as_array().unwrap().iter().find(|c| c["clientId"] == "backend").expect("backend listed");
    assert_eq!((&backend["confidential"], &backend["kind"]), (&Value::Bool(true), &Value::from("static")));

    // Refusals are the service's, in words.
    refused(
        &cli(
            &mesh,
            &["oauth", "client", "add", "Again", "--client-id", "backend", "--redirect-uri", "http://127.0.0.1/cb"],
        )
        .await,
        "already exists",
    );
    refused(
        &cli(&mesh, &["oauth", "client", "add", "Plain", "--redirect-uri", "http://app.example.test/cb"]).await,
        "redirectUris",
    );
    let no_uri = cli(&mesh, &["oauth", "client", "add", "Nowhere"]).await;
    assert_eq!(no_uri.code, Some(2), "--redirect-uri is required: {}", no_uri.stderr);

    let rm = cli(&mesh, &["oauth", "client", "rm", "backend"]).await;
    assert!(rm.ok && rm.stdout.contains("backend"), "{}{}", rm.stdout, rm.stderr);
    let items = json_of(&cli(&mesh, &["oauth", "client", "list", "--json"]).await);
    assert!(items.as_array().unwrap().iter().all(|c| c["clientId"] != "backend"), "{items}");
    refused(&cli(&mesh, &["oauth", "client", "rm", "backend"]).await, "not found");

    // Clients serve the whole installation: an organisation's admin or member makes none.
    for role in ["admin", "member"] {
        let key = mesh.extra_key(role).await;
        let add =
            cli_as(&mesh, &key, &["oauth", "client", "add", "Mine", "--redirect-uri", "http://127.0.0.1/cb"]).await;
        refused(&add, "permission denied");
        refused(&cli_as(&mesh, &key, &["oauth", "client", "rm", &job_id]).await, "permission denied");
    }
    let member = mesh.extra_key("member").await;
    refused(&cli_as(&mesh, &member, &["oauth", "client", "list"]).await, "permission denied");
    let items = json_of(&cli(&mesh, &["oauth", "client", "list", "--json"]).await);
    assert_eq!(items.as_array().map(Vec::len), Some(2), "nothing was added or removed: {items}");
    mesh.stop().await;
}

#[tokio::test]
async fn user_passwd_from_stdin_logs_in() {
    let mesh = TestMesh::start().await;
    let owner_pw = "correct horse battery staple";
    let set = cli_stdin(&mesh, &["user", "passwd", "--password-stdin"], &format!("{owner_pw}\n")).await;
    assert!(set.ok, "{}", set.stderr);
    assert!(!set.stdout.contains(owner_pw), "{}", set.stdout);
    assert!(logs_in(&mesh, mesh_admin::bootstrap::OWNER_EMAIL, owner_pw).await, "the password works");
    assert!(!logs_in(&mesh, mesh_admin::bootstrap::OWNER_EMAIL, "correct horse battery").await, "only it");

    // Too short: refused in words, and the password stays what it was.
    let short = cli_stdin(&mesh, &["user", "passwd", "--password-stdin"], "short\n").await;
    refused(&short, "password must be at least 12 characters");
    let empty = cli_stdin(&mesh, &["user", "passwd", "--password-stdin"], "").await;
    refused(&empty, "no password on stdin");
    // Without --password-stdin and no terminal, nothing is read from a pipe by surprise.
    refused(&cli(&mesh, &["user", "passwd"]).await, "--password-stdin");
    assert!(logs_in(&mesh, mesh_admin::bootstrap::OWNER_EMAIL, owner_pw).await);

    // A member sets their own, and nobody else's.
    let member = mesh.extra_key("member").await;
    let (_, member_email) = user_of(&mesh, &member).await;
    let member_pw = "member's own long password";
    let own = cli_stdin_as(&mesh, &member, &["user", "passwd", "--password-stdin"], &format!("{member_pw}\r\n")).await;
    assert!(own.ok, "{}", own.stderr);
    assert!(logs_in(&mesh, &member_email, member_pw).await, "the line ending is not part of the password");
    let args = ["user", "passwd", "--user", mesh_admin::bootstrap::OWNER_EMAIL, "--password-stdin"];
    let takeover = cli_stdin_as(&mesh, &member, &args, "attacker's long password\n").await;
    refused(&takeover, "permission denied");
    assert!(logs_in(&mesh, mesh_admin::bootstrap::OWNER_EMAIL, owner_pw).await, "the owner's is unchanged");
    // Not even an organisation admin: a password opens every organisation its user is in.
    let admin = mesh.extra_key("admin").await;
    let args = ["user", "passwd", "--user", &member_email, "--password-stdin"];
    refused(&cli_stdin_as(&mesh, &admin, &args, "admin's long password!\n").await, "permission denied");

    // The installation's operator may set anyone's.
    let reset = "reset by the operator";
    let by_owner = cli_stdin(&mesh, &args, &format!("{reset}\n")).await;
    assert!(by_owner.ok && by_owner.stdout.contains(&member_email), "{}{}", by_owner.stdout, by_owner.stderr);
    assert!(logs_in(&mesh, &member_email, reset).await);

    // The audit trail has every attempt, and no password.
    let rows = mesh
        .admin
        .query_audit(&mesh.owner(), AuditQuery { name: Some("USER_PASSWORD_SET".into()), ..Default::default() })
        .await
        .expect("audit");
    let rows = rows["items"].as_array().expect("items").clone();
    assert!(rows.len() >= 6, "{rows:?}");
    let text = serde_json::to_string(&rows).unwrap();
    for pw in [owner_pw, member_pw, reset, "short", "attacker's", "admin's"] {
        assert!(!text.contains(pw), "'{pw}' in the audit trail: {text}");
    }
    assert!(rows.iter().all(|r| r["arguments"]["password"] == "[REDACTED]"), "{text}");
    mesh.stop().await;
}

#[tokio::test]
async fn oauth_grant_list_and_rm() {
    let mesh = TestMesh::start().await;
    let owner = mesh.owner();
    let added =
        cli(&mesh, &["oauth", "client", "add", "Desk", "--client-id", "desk", "--redirect-uri", "http://127.0.0.1/cb"])
            .await;
    assert!(added.ok, "{}", added.stderr);
    let member = mesh.extra_key("member").await;
    let (member_id, member_email) = user_of(&mesh, &member).await;
    let grant = |user: &str, id: &str, route: &str| OAuthGrant {
        id: id.into(),
        org_id: owner.org_id.clone(),
        user_id: user.into(),
        client_id: "desk".into(),
        client_name: "Desk".into(),
        resource: format!("{}/mcp{route}", mesh.url),
        route: route.trim_start_matches('/').into(),
        scope: "mcp".into(),
        created_at: mesh_core::id::now_ms(),
    };
    for g in [
        grant(&owner.user_id, "grant_owner", ""),
        grant(&member_id, "grant_member_a", "/gateway/default"),
        grant(&member_id, "grant_member_b", ""),
    ] {
        mesh.admin.store.upsert_oauth_grant(&g).await.expect("grant stored");
    }
    let ids = |items: &Value| -> Vec<String> {
        let mut v: Vec<String> =
            items.as_array().expect("a list").iter().map(|g| g["id"].as_str().unwrap().to_string()).collect();
        v.sort();
        v
    };

    // A member sees their own; the owner everyone's, or one member's.
    let mine = json_of(&cli_as(&mesh, &member, &["oauth", "grant", "list", "--json"]).await);
    assert_eq!(ids(&mine), ["grant_member_a", "grant_member_b"]);
    assert!(mine.as_array().unwrap().iter().all(|g| g["userId"] == member_id.as_str()), "{mine}");
    let all = json_of(&cli(&mesh, &["oauth", "grants", "ls", "--json"]).await);
    assert_eq!(ids(&all), ["grant_member_a", "grant_member_b", "grant_owner"]);
    let theirs = json_of(&cli(&mesh, &["oauth", "grant", "list", "--user", &member_email, "--json"]).await);
    assert_eq!(ids(&theirs), ["grant_member_a", "grant_member_b"]);
    let table = cli(&mesh, &["oauth", "grant", "list"]).await;
    assert!(table.ok && table.stdout.starts_with("ID"), "{}{}", table.stdout, table.stderr);
    assert!(table.stdout.contains("grant_owner") && table.stdout.contains("Desk (desk)"), "{}", table.stdout);
    let args = ["oauth", "grant", "list", "--user", mesh_admin::bootstrap::OWNER_EMAIL];
    refused(&cli_as(&mesh, &member, &args).await, "permission denied");

    // Revoking: someone else's grant does not exist for a member; their own goes.
    refused(&cli_as(&mesh, &member, &["oauth", "grant", "rm", "grant_owner"]).await, "not found");
    let rm = cli_as(&mesh, &member, &["oauth", "grant", "rm", "grant_member_a"]).await;
    assert!(rm.ok && rm.stdout.contains("grant_member_a") && rm.stdout.contains("Desk"), "{}{}", rm.stdout, rm.stderr);
    let rm = cli(&mesh, &["oauth", "grant", "revoke", "grant_member_b", "--json"]).await;
    assert_eq!(json_of(&rm)["userId"], member_id.as_str(), "owners revoke anyone's");
    refused(&cli(&mesh, &["oauth", "grant", "rm", "grant_member_b"]).await, "not found");
    let left = mesh.admin.store.list_oauth_grants(&owner.org_id, None).await.unwrap();
    assert_eq!(left.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), ["grant_owner"]);
    let none = cli_as(&mesh, &member, &["oauth", "grant", "list"]).await;
    assert!(none.ok && none.stdout.contains("No OAuth grants"), "{}{}", none.stdout, none.stderr);
    mesh.stop().await;
}

/// `user passwd` at a terminal: asked twice, echo off. The terminal is a real pseudo-terminal,
/// each answer typed only once its prompt is shown (as a person would), so what the terminal
/// echoed can be read back from its other side.
#[tokio::test]
async fn user_passwd_at_a_terminal_asks_twice_without_echo() {
    let mesh = TestMesh::start().await;
    let pw = "typed at the terminal";
    let (ok, echoed) = at_terminal(&mesh, &[pw, pw]).await;
    assert!(ok.ok && ok.stdout.contains("password set"), "{}{}", ok.stdout, ok.stderr);
    assert!(ok.stderr.contains("New password: ") && ok.stderr.contains("Again: "), "{}", ok.stderr);
    assert!(!echoed.contains("typed"), "the password was echoed: {echoed:?}");
    assert!(logs_in(&mesh, mesh_admin::bootstrap::OWNER_EMAIL, pw).await);

    let (mismatch, _) = at_terminal(&mesh, &["first long password", "second long password"]).await;
    refused(&mismatch, "do not match");
    assert!(logs_in(&mesh, mesh_admin::bootstrap::OWNER_EMAIL, pw).await, "nothing changed");
    mesh.stop().await;
}

/// Runs `user passwd` with a pseudo-terminal as stdin, typing `lines` after each prompt; returns
/// how it ended and what the terminal echoed.
async fn at_terminal(mesh: &TestMesh, lines: &[&str]) -> (Out, String) {
    use std::io::{Read, Write};
    use tokio::io::AsyncReadExt;
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    // Close-on-exec copies (try_clone dups with FD_CLOEXEC): other tests' children must not
    // inherit either side, or the terminal would not close when this child exits.
    let (master, slave) = (pty.master.try_clone().unwrap(), pty.slave.try_clone().unwrap());
    drop(pty);
    let mut child = command(mesh, &mesh.key, &["user", "passwd"])
        .stdin(std::process::Stdio::from(slave))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cli runs");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut master = std::fs::File::from(master);
    let mut seen = String::new();
    for (line, prompt) in lines.iter().zip(["New password: ", "Again: "]) {
        tokio::time::timeout(Duration::from_secs(60), async {
            let mut buf = [0u8; 256];
            while !seen.contains(prompt) {
                let n = stderr.read(&mut buf).await.expect("stderr");
                assert!(n > 0, "the CLI ended before asking '{prompt}': {seen}");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no '{prompt}' prompt: {seen}"));
        master.write_all(format!("{line}\n").as_bytes()).expect("typed");
    }
    let mut rest = Vec::new();
    stderr.read_to_end(&mut rest).await.expect("stderr");
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("cli finished in time")
        .expect("cli runs");
    // The child was the last holder of the terminal's other side: reading ends (EIO) after
    // what it echoed.
    let echoed = tokio::task::spawn_blocking(move || {
        let mut echoed = Vec::new();
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = master.read(&mut buf) {
            echoed.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&echoed).into_owned()
    });
    let echoed = tokio::time::timeout(Duration::from_secs(30), echoed).await.expect("the terminal closed").unwrap();
    let mut out = finished(out);
    out.stderr = format!("{seen}{}", String::from_utf8_lossy(&rest));
    (out, echoed)
}
