//! What a test needs from the machine beyond the build: a program (redis-server, HAProxy,
//! Chromium, node) or a package that `.ci/setup` installs (the Python venv, the Node packages,
//! the peer servers).
//!
//! A missing one fails the test, saying what is missing and that `.ci/setup` installs it: a
//! test run that is green has run every test. Skipping instead is an explicit choice:
//! `C10K_SKIP_MISSING_TOOLS=1` makes each such test print `SKIPPED: ...` and pass.
//!
//! Included with `#[path = "common/needs.rs"] mod needs;`, or as `procs::needs` by the tests
//! that include `common/procs.rs`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The environment variable that turns a missing tool from a failure into a skip.
pub const SKIP_MISSING_TOOLS: &str = "C10K_SKIP_MISSING_TOOLS";

/// The repository's top level, where `.venv`, `tests/interop` and `benches/peers` are.
pub fn root() -> &'static Path {
    // The tests of both packages include this file: the top level is the one with `.ci/`.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|p| p.join(".ci").is_dir())
        .expect("the tests run inside the repository")
}

/// Whether `path` (`what`, for the message) exists. Missing: a panic, or `false` with a
/// `SKIPPED` line under `C10K_SKIP_MISSING_TOOLS=1` (the test then returns at once).
pub fn needed(path: &Path, what: &str) -> bool {
    if path.exists() {
        return true;
    }
    missing(&format!("{what} is missing ({})", path.display()));
    false
}

/// A program found in the usual places, as [`needed`] treats a missing one.
pub fn tool(name: &str) -> Option<String> {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return Some(p.display().to_string());
        }
    }
    missing(&format!(
        "{name} is missing (not in /usr/bin, /usr/sbin, /usr/local/bin, /usr/local/sbin)"
    ));
    None
}

/// The Python of the venv that `.ci/setup` makes.
pub fn python() -> PathBuf {
    root().join(".venv/bin/python")
}

/// The Node packages that `.ci/setup` installs.
pub fn node_modules() -> PathBuf {
    root().join("tests/interop/node_modules")
}

/// Chromium and the Node package that drives it, as [`needed`] treats them.
pub fn browser() -> bool {
    tool("node").is_some()
        && needed(Path::new("/usr/bin/chromium"), "Chromium")
        && needed(
            &node_modules().join("playwright-core"),
            "the Node playwright-core package",
        )
}

/// Panics, or prints a `SKIPPED` line where skipping was asked for.
fn missing(what: &str) {
    let msg = format!(
        "{what}: `.ci/setup` installs it (or set {SKIP_MISSING_TOOLS}=1 to skip the tests that need it)"
    );
    if std::env::var(SKIP_MISSING_TOOLS).is_ok_and(|v| v == "1" || v == "true") {
        eprintln!("SKIPPED: {msg}");
        return;
    }
    panic!("{msg}");
}
