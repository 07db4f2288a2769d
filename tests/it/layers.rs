//! The shape of `src/`, checked: the layers of its top-level modules are
//! listed once, here ([`LAYERS`], lowest first), and a module may name
//! (`crate::…`) only modules of lower layers — so no module circle can
//! form, and no lower layer reaches up. Within a module, circles between
//! files are `../shared/tools/import-circles`' to find (only
//! `actors/entity.rs` ↔ `actors/registry.rs` is allowed). No file is
//! longer than [`MAX_LINES`] but the ones listed in [`LONG`], each held
//! to its length today until it is split.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. Each names the top-level modules of `src/`
/// in it; every module is in exactly one.
const LAYERS: &[&[&str]] = &[
    // Pure rules and data; leaf utilities.
    &["domain", "metrics", "telemetry", "worker"],
    // Settings (from `domain` only) and the request context.
    &["config", "context"],
    // Infrastructure: the journal and read tables, the live bus, password
    // hashing and tokens, the search index, images, the CQL emulator.
    &["store", "live", "auth", "search", "media", "emulator"],
    // Cluster placement, leases and the inter-node channel.
    &["cluster"],
    // The mail outbox (its worker runs on the node owning each mail).
    &["mail"],
    // Entity actors and their typed clients.
    &["actors"],
    // Payment providers (they read orders).
    &["payments"],
    // The use cases.
    &["service"],
    // The edges: HTTP and WebSocket transport; the backup client.
    &["http", "operator"],
    // The demo's simulated people (HTTP clients of the server).
    &["demo"],
    // The composition root.
    &["app"],
];

/// Arrows the layers allow but the design does not: the edge calls the
/// use cases and speaks the domain's types (the API's schemas live in
/// `domain/`), never an entity's command or state.
const FORBIDDEN: &[(&str, &str)] = &[("http", "actors")];

/// The longest a file of `src/` should be.
const MAX_LINES: usize = 700;

/// Files longer than [`MAX_LINES`] today, each with the most lines it may
/// have until it is split (so none grows, and a new one cannot join).
const LONG: &[(&str, usize)] = &[
    ("store/postgres/mod.rs", 1193),
    ("domain/catalog.rs", 1026),
    ("store/scylla/mod.rs", 956),
    ("cluster/mod.rs", 805),
    ("domain/review.rs", 787),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each file's path under `src/` and its text.
fn files() -> Vec<(String, String)> {
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(src())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The top-level module a file belongs to (`None`: `lib.rs`, `main.rs`).
fn module_of(rel: &str) -> Option<&str> {
    let first = rel.split('/').next().unwrap();
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then_some(name)
}

/// The top-level modules `text` names as `crate::x`, comments left out.
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" // ").next().unwrap();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every arrow `from → to` between top-level modules, with the files that
/// make it.
fn arrows() -> BTreeMap<(String, String), Vec<String>> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (rel, text) in files() {
        let Some(from) = module_of(&rel) else {
            continue;
        };
        for to in named(&text) {
            if to != from {
                out.entry((from.to_owned(), to))
                    .or_default()
                    .push(rel.clone());
            }
        }
    }
    out
}

#[test]
fn every_module_is_in_one_layer() {
    let mut modules = BTreeSet::new();
    for (rel, _) in files() {
        if let Some(m) = module_of(&rel) {
            modules.insert(m.to_owned());
        }
    }
    for m in &modules {
        assert!(
            layer_of(m).is_some(),
            "src/{m} is in no layer: add it to LAYERS"
        );
    }
    let listed: Vec<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(listed.len(), unique.len(), "a module is in two layers");
    for m in unique {
        assert!(
            modules.contains(m),
            "LAYERS names {m}, which src/ does not have"
        );
    }
}

#[test]
fn modules_name_only_lower_layers() {
    let mut wrong = Vec::new();
    for ((from, to), by) in arrows() {
        let (Some(a), Some(b)) = (layer_of(&from), layer_of(&to)) else {
            continue;
        };
        if b >= a {
            wrong.push(format!(
                "{from} (layer {a}) → {to} (layer {b}): {}",
                by.join(", ")
            ));
        } else if FORBIDDEN.contains(&(from.as_str(), to.as_str())) {
            wrong.push(format!("{from} → {to} is not done: {}", by.join(", ")));
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows that do not go down:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_graph_check_sees_an_arrow_up_and_skips_comments() {
    let text = "use crate::service::Services;\n// crate::http is only mentioned\n/// and crate::app too\nlet x = crate::store::codec::encode(); // crate::demo\n";
    let names = named(text);
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["service", "store"],
        "code is read, comments are not"
    );
    assert!(layer_of("store") < layer_of("service"));
    assert!(arrows().contains_key(&("http".into(), "service".into())));
}

#[test]
fn no_file_is_longer_than_the_limit_but_the_listed_ones_which_do_not_grow() {
    let mut wrong = Vec::new();
    for (rel, text) in files() {
        let n = text.lines().count();
        let most = LONG
            .iter()
            .find(|(f, _)| *f == rel)
            .map_or(MAX_LINES, |(_, most)| *most);
        if n > most {
            wrong.push(format!("src/{rel}: {n} lines (at most {most})"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    for (f, _) in LONG {
        let n = std::fs::read_to_string(src().join(f))
            .map(|t| t.lines().count())
            .unwrap_or(0);
        assert!(
            n > MAX_LINES,
            "LONG lists {f}, which is gone or no longer long ({n} lines): take it out"
        );
    }
}
