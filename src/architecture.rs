//! The architecture test: the one statement of which top-level module may use which
//! ([`ALLOWED`], shown in docs/architecture.md), checked against every `crate::` path and
//! every `super::` path of the non-test code under `src/`, and no cycle between the modules of
//! `service/`. Modules' docs say what a module is for and why; this says where it sits.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of the crate and the top-level modules its (non-test) code may name.
/// Lower layers first; nothing may name a module listed after it, except as written here.
const ALLOWED: &[(&str, &[&str])] = &[
    // Leaves: pure types and rules, and small helpers that know nothing of ours.
    ("text", &[]),
    ("stripes", &[]),
    ("domain", &["text"]),
    ("outcome", &[]),
    ("clock", &[]),
    ("error", &[]),
    ("files", &[]),
    // The wire types of the admin API, shared by server and CLI.
    ("api", &["domain"]),
    // Observes the outcome vocabulary; knows nothing of the services that decide it.
    ("metrics", &["outcome", "stripes"]),
    // Persistence only: no HTTP, no services, no JWT.
    ("store", &["domain", "clock", "error"]),
    // Keys and claims; the keyring is shared between replicas through the PostgreSQL store.
    ("jwt", &["domain", "error", "files", "store"]),
    // The configuration names the duration syntax (`api`), the keys' defaults (`jwt`) and
    // holds the store's settings (`store`, whose `[store]` section it reads).
    ("config", &["domain", "api", "store", "jwt"]),
    ("logging", &["text", "config"]),
    // Verifies OIDC ID tokens (keyless CI): fetches and caches only the configured issuers' keys.
    ("oidc", &["domain", "error", "metrics"]),
    // Application services: domain types in, domain types out; no axum.
    (
        "service",
        &[
            "stripes", "domain", "outcome", "clock", "error", "files", "api", "metrics", "store",
            "jwt", "config", "oidc",
        ],
    ),
    // The only module that speaks axum and hyper.
    (
        "http",
        &[
            "text", "domain", "outcome", "clock", "error", "api", "metrics", "store", "jwt",
            "config", "oidc", "service",
        ],
    ),
    // Start-up: builds the state `http` owns, runs the background tasks.
    (
        "server",
        &[
            "text", "domain", "outcome", "clock", "error", "files", "api", "metrics", "store",
            "jwt", "config", "logging", "oidc", "service", "http",
        ],
    ),
    // Test support (`cfg(test)` or the `test-support` feature): builders and a fault store.
    ("testing", &["domain", "store"]),
    // The binary's commands: anything.
    (
        "cli",
        &[
            "text", "domain", "outcome", "clock", "error", "files", "api", "metrics", "store",
            "jwt", "config", "logging", "oidc", "service", "http", "server",
        ],
    ),
];

/// Files that are not part of the layering: the crate root (which declares the modules) and
/// this test.
const EXEMPT: &[&str] = &["lib.rs", "main.rs", "architecture.rs"];

/// Lines of `text` outside comments and `#[cfg(test)]` items, with their line numbers; and
/// the names of modules declared `#[cfg(test)] mod name;` (their files are test code).
fn code_lines(text: &str) -> (Vec<(usize, &str)>, Vec<String>) {
    let mut out = Vec::new();
    let mut test_mods = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let t = line.trim();
        if t.starts_with("//") {
            continue;
        }
        if t == "#[cfg(test)]" {
            // Skip the item it guards: a line ending in `;`, or a block to its closing brace.
            let mut depth = 0i32;
            let mut opened = false;
            for (_, l) in lines.by_ref() {
                let lt = l.trim();
                if lt.starts_with("#[") || lt.starts_with("//") {
                    continue;
                }
                // Braces inside string literals do not count.
                let (mut in_string, mut escaped) = (false, false);
                for c in l.chars() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' if in_string => escaped = true,
                        '"' => in_string = !in_string,
                        '{' if !in_string => {
                            depth += 1;
                            opened = true;
                        }
                        '}' if !in_string => depth -= 1,
                        _ => {}
                    }
                }
                if !opened && lt.ends_with(';') {
                    let decl = lt
                        .trim_start_matches("pub(crate) ")
                        .trim_start_matches("pub ");
                    if let Some(name) = decl.strip_prefix("mod ") {
                        test_mods.push(name.trim_end_matches(';').trim().to_string());
                    }
                    break;
                }
                if opened && depth <= 0 {
                    break;
                }
            }
            continue;
        }
        out.push((i + 1, line));
    }
    (out, test_mods)
}

/// The segments after each `prefix` (`crate::` or `super::`) in `line`: `crate::a::b::C` is
/// `[a, b, C]`. A group right after the prefix (`crate::{a, b}`) is refused, so that every
/// path names its module.
fn paths_after<'a>(line: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        let before = line[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &line[from..];
        assert!(
            !rest.starts_with('{'),
            "write one `use` per module instead of a group right after `{prefix}`: {line}"
        );
        // Segments up to the first that does not end at a `::`.
        let mut segments = Vec::new();
        for s in rest.split("::") {
            let end = s
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(s.len());
            if end > 0 {
                segments.push(&s[..end]);
            }
            if end == 0 || end < s.len() {
                break;
            }
        }
        if !segments.is_empty() {
            found.push(segments);
        }
    }
    found
}

/// How deep the module of a file under `src/` is: `a.rs` and `a/mod.rs` are 1, `a/b.rs` 2.
fn depth(rel: &str) -> usize {
    let parts = rel.split('/').count();
    if rel.ends_with("/mod.rs") {
        parts - 1
    } else {
        parts
    }
}

/// The top-level modules that `super::` paths reach in `line` of a file at `depth`: as many
/// `super::` as the depth lead to the crate root (`super::http` in `src/store.rs`).
fn modules_through_super(line: &str, depth: usize) -> Vec<&str> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find("super::") {
        let start = from + at;
        let before = line[..start].chars().next_back();
        let mut rest = &line[start..];
        let mut ups = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            rest = r;
            ups += 1;
        }
        from = line.len() - rest.len();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') || ups < depth {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end > 0 {
            found.push(&rest[..end]);
        }
    }
    found
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// A source file: its path under `src/` (with `/`), and its non-test lines.
struct Source {
    rel: String,
    text: String,
}

/// Every non-test source file of the library under `src/` (not `bin/`, not the exempt ones).
fn sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let all: Vec<Source> = rust_files(&src)
        .into_iter()
        .map(|p| Source {
            rel: p
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/"),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .filter(|s| !s.rel.starts_with("bin/") && !EXEMPT.contains(&s.rel.as_str()))
        .collect();
    // Files of modules declared `#[cfg(test)] mod name;` are test code.
    let mut test_files = BTreeSet::new();
    for s in &all {
        let dir = match s.rel.rsplit_once('/') {
            Some((d, "mod.rs")) => d.to_string(),
            Some((d, f)) => format!("{d}/{}", f.trim_end_matches(".rs")),
            None => s.rel.trim_end_matches(".rs").to_string(),
        };
        for m in code_lines(&s.text).1 {
            test_files.insert(format!("{dir}/{m}.rs"));
            test_files.insert(format!("{dir}/{m}/mod.rs"));
        }
    }
    all.into_iter()
        .filter(|s| !test_files.contains(&s.rel))
        .collect()
}

/// The top-level module a file under `src/` belongs to.
fn top_level(rel: &str) -> &str {
    rel.split('/').next().unwrap_or(rel).trim_end_matches(".rs")
}

/// Every use of another top-level module that [`ALLOWED`] does not allow, as
/// `file:line: module -> other`.
fn violations(files: &[(String, String)]) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut out = Vec::new();
    for (rel, text) in files {
        let module = top_level(rel);
        let Some(may) = allowed.get(module) else {
            out.push(format!(
                "{rel}: module `{module}` has no place in ALLOWED (src/architecture.rs)"
            ));
            continue;
        };
        for (n, line) in code_lines(text).0 {
            let through_crate = paths_after(line, "crate::").into_iter().map(|p| p[0]);
            let through_super = modules_through_super(line, depth(rel));
            for used in through_crate.chain(through_super) {
                if used != module && !may.contains(&used) {
                    out.push(format!("{rel}:{n}: {module} -> {used}"));
                }
            }
        }
    }
    out
}

/// The first cycle of `graph`, if any, as the modules around it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

/// Which module of `service/` uses which: `crate::service::x`, `super::x` and the
/// re-exports of `service/mod.rs` (`crate::service::AdminService` is `admin`).
fn service_graph(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = sources
        .iter()
        .filter_map(|s| s.rel.strip_prefix("service/"))
        .map(|f| {
            f.split('/')
                .next()
                .unwrap_or(f)
                .trim_end_matches(".rs")
                .to_string()
        })
        .filter(|m| m != "mod")
        .collect();
    // `pub use admin::{A, B};` in service/mod.rs: A and B are admin's.
    let mut reexports = BTreeMap::new();
    if let Some(m) = sources.iter().find(|s| s.rel == "service/mod.rs") {
        let text = m.text.replace('\n', " ");
        for item in text.split("pub use ").skip(1) {
            let item = item.split(';').next().unwrap_or("");
            if let Some((module, names)) = item.split_once("::") {
                for name in names.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                    if !name.is_empty() {
                        reexports.insert(name.to_string(), module.trim().to_string());
                    }
                }
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources {
        let Some(file) = s.rel.strip_prefix("service/") else {
            continue;
        };
        let me = file
            .split('/')
            .next()
            .unwrap_or(file)
            .trim_end_matches(".rs");
        if me == "mod" {
            continue;
        }
        let entry = graph.entry(me.to_string()).or_default();
        for (_, line) in code_lines(&s.text).0 {
            let mut used = Vec::new();
            for p in paths_after(line, "crate::") {
                if p[0] == "service" && p.len() > 1 {
                    used.push(p[1]);
                }
            }
            // `super::` of a file directly in service/ is `service`.
            if !file.contains('/') {
                used.extend(paths_after(line, "super::").into_iter().map(|p| p[0]));
            }
            for u in used {
                let target = if modules.contains(u) {
                    Some(u.to_string())
                } else {
                    reexports.get(u).cloned()
                };
                if let Some(t) = target.filter(|t| t != me) {
                    entry.insert(t);
                }
            }
        }
    }
    graph
}

#[test]
fn modules_use_each_other_only_in_the_allowed_direction() {
    let files: Vec<(String, String)> = sources().into_iter().map(|s| (s.rel, s.text)).collect();
    assert!(files.len() > 50, "found only {} files", files.len());
    let wrong = violations(&files);
    assert!(
        wrong.is_empty(),
        "uses against the dependency direction (src/architecture.rs, docs/architecture.md):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_allowed_graph_has_no_cycle_and_names_only_modules() {
    let names: BTreeSet<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    let graph: BTreeMap<String, BTreeSet<String>> = ALLOWED
        .iter()
        .map(|(m, deps)| {
            for d in *deps {
                assert!(
                    names.contains(d),
                    "{m} may use {d}, which is not in ALLOWED"
                );
            }
            (m.to_string(), deps.iter().map(|d| d.to_string()).collect())
        })
        .collect();
    assert_eq!(cycle(&graph), None);
    // Every top-level module of src/ has its place.
    let tops: BTreeSet<String> = sources()
        .iter()
        .map(|s| top_level(&s.rel).to_string())
        .collect();
    for t in &tops {
        assert!(names.contains(t.as_str()), "src/{t} is not in ALLOWED");
    }
}

#[test]
fn the_modules_of_service_form_no_cycle() {
    let graph = service_graph(&sources());
    assert!(
        graph.contains_key("auth") && graph.contains_key("admin"),
        "{graph:?}"
    );
    // auth uses the throttle: the graph sees through `crate::service::` paths.
    assert!(graph["auth"].contains("throttle"), "{graph:?}");
    assert_eq!(cycle(&graph), None, "{graph:?}");
}

/// The checker itself: it sees paths in `use` lines and in expressions, not in comments or
/// `#[cfg(test)]` items, and reports a store that names http.
#[test]
fn the_checker_catches_a_wrong_use_and_ignores_tests_and_comments() {
    let store = "//! Docs may name crate::http freely.\n\
                 use crate::domain::Token;\n\
                 fn f() { let _ = crate::http::app; }\n\
                 #[cfg(test)]\n\
                 mod tests {\n    use crate::service::AuthService;\n    fn g() { let s = \"{\"; }\n}\n\
                 #[cfg(test)]\n\
                 use crate::server::run;\n\
                 fn h() { crate::clock::Clock::system(); }\n";
    let wrong = violations(&[("store/x.rs".to_string(), store.to_string())]);
    assert_eq!(wrong, ["store/x.rs:3: store -> http"]);
    // `super::` up to the crate root is the same as `crate::`; within the module it is not.
    let wrong = violations(&[
        (
            "store/x.rs".to_string(),
            "use super::super::http::app;\nuse super::record;\n".to_string(),
        ),
        (
            "store.rs".to_string(),
            "fn f() { super::service::x(); }\n".to_string(),
        ),
        (
            "store/mod.rs".to_string(),
            "use super::domain::Token;\n".to_string(),
        ),
    ]);
    assert_eq!(
        wrong,
        [
            "store/x.rs:1: store -> http",
            "store.rs:1: store -> service"
        ]
    );
    let (lines, test_mods) = code_lines("#[cfg(test)]\npub(crate) mod tests;\nuse a;\n");
    assert_eq!(test_mods, ["tests"]);
    assert_eq!(lines, [(3, "use a;")]);
    assert_eq!(
        paths_after("x(crate::a::b::C, mycrate::z, super::y)", "crate::"),
        [vec!["a", "b", "C"]]
    );
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycle(&g), Some(vec!["a".into(), "b".into(), "a".into()]));
}
