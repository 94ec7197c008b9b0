//! Running the real `mcp-mesh` binary against a test mesh, for the CLI tests.
// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use mesh_testkit::TestMesh;
use std::time::Duration;

/// What a CLI run printed and how it ended.
pub struct Out {
    /// Exit status 0.
    pub ok: bool,
    /// The exit code, if it exited normally.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `mcp-mesh args…` against `mesh` with the owner key (bounded: 90 s).
pub async fn cli(mesh: &TestMesh, args: &[&str]) -> Out {
    cli_as(mesh, &mesh.key, args).await
}

/// Runs `mcp-mesh args…` against `mesh` with `key`.
pub async fn cli_as(mesh: &TestMesh, key: &str, args: &[&str]) -> Out {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-mesh"))
            .args(args)
            .env("MESH_URL", &mesh.url)
            .env("MESH_API_KEY", key)
            .env("MESH_LOG", "warn")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("cli finished in time")
    .expect("cli runs");
    Out {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
