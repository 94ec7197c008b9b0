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
    let out = tokio::time::timeout(Duration::from_secs(90), command(mesh, key, args).output())
        .await
        .expect("cli finished in time")
        .expect("cli runs");
    finished(out)
}

/// Runs `mcp-mesh args…` against `mesh` with the owner key, `input` written to its stdin.
pub async fn cli_stdin(mesh: &TestMesh, args: &[&str], input: &str) -> Out {
    cli_stdin_as(mesh, &mesh.key, args, input).await
}

/// Runs `mcp-mesh args…` against `mesh` with `key`, `input` written to its stdin.
pub async fn cli_stdin_as(mesh: &TestMesh, key: &str, args: &[&str], input: &str) -> Out {
    use tokio::io::AsyncWriteExt;
    let mut child = command(mesh, key, args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cli runs");
    let mut stdin = child.stdin.take().expect("stdin");
    // A run that fails before reading stdin (a usage error) closes it early: not a test failure.
    let _ = stdin.write_all(input.as_bytes()).await;
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("cli finished in time")
        .expect("cli runs");
    finished(out)
}

/// The command, with stdin empty unless a caller pipes something in: never the terminal the
/// tests were started from, so nothing depends on how `cargo test` was run.
pub fn command(mesh: &TestMesh, key: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-mesh"));
    cmd.args(args)
        .env("MESH_URL", &mesh.url)
        .env("MESH_API_KEY", key)
        .env("MESH_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// What a finished run printed.
pub fn finished(out: std::process::Output) -> Out {
    Out {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
