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

/// The Python client check script.
pub fn client_check_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py/mcp_client_check.py")
}
