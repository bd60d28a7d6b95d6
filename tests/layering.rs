//! The architecture's rules, checked mechanically:
//! - layers point down only: proto <- engine <- API (server, client) <- apps (ops, bridge); a
//!   module never names a module of a layer above its own;
//! - no import cycle between modules (files) of the crate;
//! - `src/proto/` is sans-I/O: it names no event loop, socket, thread, clock or standard I/O trait;
//! - only `src/engine/sys.rs` (and, in the tools, `tools/src/loadgen/sys.rs`) uses socket2.
//!
//! The tools (tools/, package c10k-tools) sit above all of it and see only the engine's public
//! API; Cargo itself keeps the engine from naming them.

use std::collections::{BTreeMap, BTreeSet};

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
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    let files = rust_files(&root.join("src"))
        .into_iter()
        .chain(rust_files(&root.join("tools/src")));
    for file in files {
        if file.ends_with("engine/sys.rs") || file.ends_with("loadgen/sys.rs") {
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
        "socket2 outside src/engine/sys.rs and tools/src/loadgen/sys.rs:\n{}",
        found.join("\n")
    );
}

/// The layer of a top-level module of the crate; `None` for the crate root. A path `crate::Name`
/// that is no module names the root's re-exports: the embedding API.
fn layer(top: &str) -> u8 {
    match top {
        "proto" => 0,
        "engine" => 1,
        "server" | "client" => 2,
        "ops" | "bridge" => 3,
        _ => 2,
    }
}

const LAYERS: [&str; 4] = [
    "proto",
    "engine",
    "API (server, client, root re-exports)",
    "apps (ops, bridge)",
];

/// A module of the crate: its path (`["engine", "shard"]`, the same for `engine/shard.rs` and
/// `engine/shard/mod.rs`) and its code without comments.
#[derive(Debug, Clone)]
struct Module {
    path: Vec<String>,
    code: String,
}

/// The crate's modules, read from `src/`.
fn modules(src: &Path) -> Vec<Module> {
    rust_files(src)
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(src).ok()?.with_extension("");
            let mut path: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if path.last().is_some_and(|l| l == "mod" || l == "lib") {
                path.pop();
            }
            if path.first().is_some_and(|p| p == "bin") {
                return None;
            }
            let code = code_lines(&f)
                .into_iter()
                .map(|(_, l)| l)
                .collect::<Vec<_>>()
                .join("\n");
            Some(Module { path, code })
        })
        .collect()
}

/// The module paths that `code` (of module `m`) names: `crate::a::b`, `super::x`, `self::y`,
/// with `use` groups (`use super::{a, b::C}`) expanded.
fn references(m: &Module) -> Vec<Vec<String>> {
    let code = &m.code;
    let mut out = Vec::new();
    let base = |head: &str| -> Option<Vec<String>> {
        let mut here = m.path.clone();
        match head {
            "crate" => Some(Vec::new()),
            "self" => Some(here),
            "super" => {
                here.pop();
                Some(here)
            }
            _ => None,
        }
    };
    let bytes = code.as_bytes();
    for head in ["crate::", "super::", "self::"] {
        for (i, _) in code.match_indices(head) {
            if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':')
            {
                continue;
            }
            let Some(mut prefix) = base(&head[..head.len() - 2]) else {
                continue;
            };
            let rest = &code[i + head.len()..];
            // `super::super::x`
            let mut rest = rest;
            while let Some(r) = rest.strip_prefix("super::") {
                prefix.pop();
                rest = r;
            }
            expand(&prefix, rest, &mut out);
        }
    }
    out
}

/// Appends the paths of `rest` (what follows `prefix::`), expanding `{a, b::c}` groups.
fn expand(prefix: &[String], rest: &str, out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut s = rest;
    loop {
        if let Some(group) = s.strip_prefix('{') {
            let mut depth = 1;
            let mut end = group.len();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let inner = &group[..end];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices().chain([(inner.len(), ',')]) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let item = inner[start..i].trim();
                        if !item.is_empty() {
                            expand(&path, item, out);
                        }
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            return;
        }
        let ident: String = s
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() || ident == "self" {
            out.push(path);
            return;
        }
        path.push(ident.clone());
        s = &s[ident.len()..];
        match s.strip_prefix("::") {
            Some(r) => s = r,
            None => {
                out.push(path);
                return;
            }
        }
    }
}

/// The longest prefix of `path` that is a module of the crate.
fn resolve(known: &BTreeSet<Vec<String>>, path: &[String]) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
        .unwrap_or_default()
}

/// Every violation of the layer rule and every import cycle among `mods`.
fn violations(mods: &[Module]) -> Vec<String> {
    let known: BTreeSet<Vec<String>> = mods.iter().map(|m| m.path.clone()).collect();
    let mut found = Vec::new();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for m in mods {
        let Some(top) = m.path.first() else { continue }; // the crate root re-exports everything
        for r in references(m) {
            let target = resolve(&known, &r);
            let to = target.first().map_or("", String::as_str);
            if layer(to) > layer(top) {
                found.push(format!(
                    "{} ({}) names {} ({}): layers point down only",
                    m.path.join("::"),
                    LAYERS[usize::from(layer(top))],
                    r.join("::"),
                    LAYERS[usize::from(layer(to))]
                ));
            }
            // A module may use its ancestors' items (a parent is the index of its children).
            // Otherwise the edge counts between the two siblings under the modules' common
            // ancestor (`proto::conn::read -> proto::deflate` is `proto::conn -> proto::deflate`),
            // so that a loop through children is a loop between their parents too.
            if !target.is_empty() && !m.path.starts_with(&target) && !target.starts_with(&m.path) {
                let common = m.path.iter().zip(&target).take_while(|(a, b)| a == b).count();
                edges
                    .entry(m.path[..=common].to_vec())
                    .or_default()
                    .insert(target[..=common].to_vec());
            }
        }
    }
    for cycle in cycles(&edges) {
        found.push(format!("import cycle: {}", cycle.join(" -> ")));
    }
    found
}

/// The cycles of a directed graph (one per strongly connected component with more than one
/// module), each as the path around it.
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
    for start in edges.keys() {
        if reported.contains(start) {
            continue;
        }
        // Depth-first search for a path back to `start`.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in edges.get(&node).into_iter().flatten() {
                if next == start {
                    let names: Vec<String> = path.iter().chain([start]).map(|p| p.join("::")).collect();
                    reported.extend(path.iter().cloned());
                    out.push(names);
                    stack.clear();
                    break;
                }
                if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    out
}

#[test]
fn layers_point_down_and_modules_import_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    assert!(mods.len() > 30, "found only {} modules under src/", mods.len());
    let found = violations(&mods);
    assert!(found.is_empty(), "layering:\n{}", found.join("\n"));
}

fn module(path: &str, code: &str) -> Module {
    Module {
        path: path
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        code: code.to_owned(),
    }
}

#[test]
fn the_layering_check_finds_an_upward_import_and_a_cycle() {
    let clean = [
        module("proto", "pub mod a; pub mod b; pub use a::A;"),
        module("proto::a", "use super::b::B;"),
        module("proto::b", "pub struct B;"),
        module("engine", "use crate::proto::{self, a::A};"),
    ];
    assert_eq!(violations(&clean), Vec::<String>::new());

    let upward = [
        module("proto", "pub mod a;"),
        module("proto::a", "use crate::engine::Shard;"),
        module("engine", "use crate::{proto, Handler};"),
        module("engine::x", "fn f() -> crate::ServerHandle { todo() }"),
    ];
    let found = violations(&upward);
    // Three upward names, and proto and engine now import each other.
    assert_eq!(found.len(), 4, "{found:#?}");
    assert_eq!(found[3], "import cycle: engine -> proto -> engine");
    assert!(
        found[0].contains("proto::a (proto) names engine::Shard (engine)"),
        "{found:#?}"
    );

    let cycle = [
        module("proto", "pub mod a; pub mod b; pub mod c;"),
        module("proto::a", "use super::{b::B, c};"),
        module("proto::b", "use super::c::C;"),
        module("proto::c", "fn f() { super::a::g() }"),
    ];
    let found = violations(&cycle);
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|f| f.starts_with("import cycle: ") && f.contains("proto::a")),
        "{found:#?}"
    );

    // A loop through children: a::inner imports b, b imports a.
    let nested = [
        module("proto", "pub mod a; pub mod b;"),
        module("proto::a", "mod inner;"),
        module("proto::a::inner", "use crate::proto::b::B;"),
        module("proto::b", "use super::a::A;"),
    ];
    let found = violations(&nested);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].contains("proto::a") && found[0].contains("proto::b"),
        "{found:#?}"
    );
    let found = violations(&cycle);
    assert!(
        found
            .iter()
            .all(|f| f.starts_with("import cycle: ") && f.contains("proto::a")),
        "{found:#?}"
    );
}
