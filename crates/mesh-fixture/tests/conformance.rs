//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, run on Node 22 from
//! the test deps) against this fixture directly — the control — and through the mesh, with the
//! fixture as a connection over stdio and over Streamable HTTP at `/mcp/{connection}`, and as the
//! member of a virtual MCP at `/mcp/gateway/{gateway}`, unprefixed and prefixed.
//!
//! The suite sends no credentials, so the connections are opened to anonymous callers with the
//! product's explicit, off-by-default setting; nothing else about the mesh is relaxed. Results
//! land in `target/conformance/<run>/summary.tsv`; `scripts/test` prints them side by side.

mod common;

use common::fixture_http;
use futures_util::StreamExt;
use mesh_core::gateway::{FailureMode, MemberConfig};
use mesh_relay::ports::{ResolvedGateway, ResolvedMember};
use mesh_relay::{TransportSpec, UpstreamSpec};
use mesh_testkit::bare::BareRelay;
use mesh_testkit::TestMesh;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn out_dir(run: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/conformance").join(run);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().expect("parent")).expect("target/conformance");
    dir
}

/// Runs the suite against `url` at `revision`; returns (passed, its output).
async fn suite(run: &str, url: &str, revision: &str) -> (bool, String) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let expected = manifest.join(format!("conformance/{run}.yml"));
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new("bash")
            .arg(manifest.join("conformance.sh"))
            .arg(url)
            .arg(&expected)
            .arg(out_dir(run))
            .env("MESH_TEST_DEPS", mesh_testkit::deps::dir())
            .env("MESH_CONFORMANCE_REVISION", revision)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the suite finished within 10 minutes")
    .expect("bash runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The fixture as a stdio child.
fn fixture_stdio() -> TransportSpec {
    TransportSpec::Stdio {
        command: env!("CARGO_BIN_EXE_mesh-fixture").into(),
        args: vec!["stdio".into()],
        env: vec![],
        cwd: None,
    }
}

/// A virtual MCP whose one member is the fixture over `transport`, with or without a prefix.
fn fixture_gateway(slug: &str, prefix: Option<&str>, transport: TransportSpec) -> ResolvedGateway {
    let spec = UpstreamSpec {
        name: "fixture".into(),
        transport,
        timeout: Duration::from_secs(30),
        reach: Default::default(),
        credential: None,
    };
    let mut config = MemberConfig::all_of("fixture");
    config.prefix = Some(prefix.unwrap_or("").to_string());
    let member = ResolvedMember { connection_id: "conn_fixture".into(), slug: "fixture".into(), config, spec };
    ResolvedGateway {
        strategy: Default::default(),
        id: format!("gw_{slug}"),
        slug: slug.into(),
        mode: FailureMode::Degrade,
        page_size: 100,
        members: vec![member],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_direct_and_through_the_mesh() {
    // The fixture speaks both revisions on one endpoint; the bridged runs use one that speaks
    // only the session-based revision (legacy) or only the stateless one (modern).
    let (mut fixture, fixture_url) = fixture_http("dual").await;
    let (mut legacy, legacy_url) = fixture_http("legacy").await;
    let (mut modern, modern_url) = fixture_http("modern").await;
    // The suite opens a session or more per scenario, four runs at once, as one caller: faster
    // than any client would, so the per-key open rate is lifted (the caps stay).
    let mesh = TestMesh::start_with(|c| c.session_open_per_minute = 0).await;
    let bin = env!("CARGO_BIN_EXE_mesh-fixture");
    mesh.add_connection(json!({"slug": "fixture-stdio", "command": bin, "args": ["stdio"], "anonymous": true})).await;
    mesh.add_connection(json!({"slug": "fixture-http", "url": fixture_url, "anonymous": true})).await;
    mesh.add_connection(json!({"slug": "fixture-legacy", "url": legacy_url, "anonymous": true})).await;
    mesh.add_connection(json!({"slug": "fixture-modern", "url": modern_url, "anonymous": true})).await;
    let modern_stdio = json!({"slug": "fixture-modern-stdio", "command": bin, "args": ["stdio", "--era", "modern"], "anonymous": true});
    mesh.add_connection(modern_stdio).await;
    // Virtual MCPs over the fixture: unprefixed (must be transparent) and prefixed (only the
    // scenarios that call fixed names may fail). Served by the data plane alone until gateways
    // have their control plane, with anonymous callers admitted the same explicit way.
    // The stateless run goes through a member over Streamable HTTP, which the mesh reaches in
    // the stateless revision too (a stdio member is spoken to in the session-based one).
    let over_http = TransportSpec::Http { url: fixture_url.parse().expect("url"), headers: vec![] };
    let gateways = BareRelay::start_with(
        vec![
            fixture_gateway("plain", None, fixture_stdio()),
            fixture_gateway("prefixed", Some("fx"), fixture_stdio()),
            fixture_gateway("plain-http", None, over_http),
        ],
        true,
    )
    .await;
    // The DNS-rebinding scenario needs a localhost URL; the mesh's own check is what it tests.
    let local = |u: &str| u.replace("127.0.0.1", "localhost");
    const OLD: &str = "2025-11-25";
    const NEW: &str = "2026-07-28";
    let runs = [
        ("direct", local(&fixture_url), OLD),
        ("mesh-stdio", local(&mesh.endpoint("fixture-stdio")), OLD),
        ("mesh-http", local(&mesh.endpoint("fixture-http")), OLD),
        ("gateway", local(&gateways.gateway("plain")), OLD),
        ("gateway-prefixed", local(&gateways.gateway("prefixed")), OLD),
        // A session-based client through the mesh to an upstream of the stateless revision only.
        ("bridged-to-stateless", local(&mesh.endpoint("fixture-modern")), OLD),
        ("bridged-to-stateless-stdio", local(&mesh.endpoint("fixture-modern-stdio")), OLD),
        ("direct-2026", local(&fixture_url), NEW),
        ("mesh-http-2026", local(&mesh.endpoint("fixture-http")), NEW),
        ("mesh-stdio-2026", local(&mesh.endpoint("fixture-stdio")), NEW),
        ("gateway-2026", local(&gateways.gateway("plain-http")), NEW),
        // A stateless client through the mesh to an upstream of the session-based revision only.
        ("bridged-to-sessions", local(&mesh.endpoint("fixture-legacy")), NEW),
    ];
    // Four at a time: twelve suites at once on two cores would test the machine's patience.
    let results: Vec<_> = futures_util::stream::iter(runs.iter())
        .map(|(run, url, revision)| async move { (run, suite(run, url, revision).await) })
        .buffer_unordered(4)
        .collect()
        .await;
    let mut failed = Vec::new();
    for (run, (ok, text)) in &results {
        println!("==== conformance: {run} ====\n{text}");
        if !ok {
            failed.push(*run);
        }
    }
    mesh.stop().await;
    gateways.stop().await;
    for child in [&mut fixture, &mut legacy, &mut modern] {
        let _ = child.kill().await;
    }
    assert!(failed.is_empty(), "conformance runs with unexpected results: {failed:?} (see the output above)");
}
