//! The Game of Life demo end to end: the example's server and its 1,024 cell clients, and its
//! page in headless Chromium, whose state must follow the rules of Life on a torus.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn example(name: &str) -> PathBuf {
    // Tests run from target/<profile>/deps; examples are built into target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name)
}

fn required(path: &Path, what: &str) -> bool {
    if path.exists() {
        return true;
    }
    let msg = format!(
        "{what} is missing ({}): run .ci/setup and `cargo test --all-targets`",
        path.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

#[test]
fn life_page_shows_generations_that_follow_the_rules() {
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let bin = example("life");
    if !required(&bin, "the life example")
        || !required(Path::new("/usr/bin/chromium"), "Chromium")
        || !required(
            &root.join("tests/interop/node_modules/playwright-core"),
            "playwright-core",
        )
    {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(&bin)
        .args(["--addr", &format!("127.0.0.1:{port}"), "--interval-ms", "150"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("cells on"), "{line}");
    let out = Command::new("node")
        .arg(root.join("tests/interop/life.js"))
        .arg(format!("http://127.0.0.1:{port}/"))
        .arg("8")
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success() && text.contains("all passed"), "{text}");
}
