//! The architecture's rule, checked mechanically: `src/proto/` is sans-I/O. It names no event
//! loop, socket, thread, clock or standard I/O trait; only `src/engine/sys.rs` uses socket2.

use std::fs;
use std::path::Path;

/// Code lines of a Rust file, with `//` comments (and doc comments) removed.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(path).unwrap();
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("//").next().unwrap_or("").to_owned()))
        .collect()
}

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

#[test]
fn proto_names_no_io_threads_or_clock() {
    let forbidden = [
        "mio",
        "slab",
        "socket2",
        "std::net",
        "std::io",
        "io::Read",
        "io::Write",
        "std::thread",
        "thread::",
        "Instant",
        "SystemTime",
        "std::time",
        "std::fs",
        "libc",
        "Mutex",
        "Arc<",
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto");
    let mut found = Vec::new();
    for file in rust_files(&dir) {
        for (n, line) in code_lines(&file) {
            for word in forbidden {
                let hit = line.match_indices(word).any(|(i, _)| {
                    let before = line[..i].chars().next_back();
                    let after = line[i + word.len()..].chars().next();
                    let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                    !ident(before)
                        && (!ident(after) || !word.chars().last().is_some_and(char::is_alphanumeric))
                });
                if hit {
                    found.push(format!("{}:{n}: `{word}` in {line:?}", file.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "src/proto must stay sans-I/O:\n{}",
        found.join("\n")
    );
}

#[test]
fn only_sys_uses_socket2() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for file in rust_files(&src) {
        if file.ends_with("engine/sys.rs") {
            continue;
        }
        for (n, line) in code_lines(&file) {
            if line.contains("socket2") {
                found.push(format!("{}:{n}", file.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "socket2 outside src/engine/sys.rs:\n{}",
        found.join("\n")
    );
}
