//! The user documentation stays inside the repository and in step with the code: every
//! relative link in README.md and docs/ resolves to a file (and heading) of the repository,
//! nothing in README.md, docs/ or src/ refers to files outside it, and docs/configuration.md
//! names every configuration key and every `REGAUTH_*` variable the source reads (and
//! config/regauth.toml names every variable).
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file under docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The targets of Markdown links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].to_string());
        }
    }
    out
}

/// `#fragment` anchors of a page, as GitHub makes them from its headings.
fn anchors(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|h| {
            h.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn links_resolve_inside_the_repository() {
    let root = root().canonicalize().unwrap();
    let mut checked = 0;
    for page in pages() {
        let text = read(&page);
        let dir = page.parent().unwrap();
        for target in link_targets(&text) {
            assert!(
                !target.contains("://"),
                "{}: links outside the repository: {target}",
                page.display()
            );
            let (file, fragment) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let resolved = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            let resolved = resolved
                .canonicalize()
                .unwrap_or_else(|e| panic!("{}: broken link {target}: {e}", page.display()));
            assert!(
                resolved.starts_with(&root),
                "{}: {target} is outside the repository",
                page.display()
            );
            if let Some(fragment) = fragment {
                assert!(
                    anchors(&read(&resolved)).iter().any(|a| a == fragment),
                    "{}: no heading for #{fragment} in {}",
                    page.display(),
                    resolved.display()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the parser broken?"
    );
}

#[test]
fn nothing_refers_to_files_outside_the_repository() {
    let mut files = pages();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for needle in ["shared/SPEC", "shared/reference", "../shared"] {
            assert!(
                !text.contains(needle),
                "{} refers to {needle}, outside the repository: cite docs/ instead",
                file.display()
            );
        }
    }
}

#[test]
fn configuration_reference_names_every_key_and_variable() {
    let reference = read(&root().join("docs/configuration.md"));
    // Every key of the example file (which a unit test keeps equal to the defaults).
    let example = read(&root().join("config/regauth.toml"));
    let table: toml::Table = toml::from_str(&example).unwrap();
    let mut keys = Vec::new();
    for (k, v) in &table {
        match v {
            toml::Value::Table(t) => {
                for (s, v) in t {
                    // An array of tables within a table: `[[federation.issuers]] url`.
                    match v.as_array().filter(|a| a.iter().all(toml::Value::is_table)) {
                        Some(items) if !items.is_empty() => {
                            keys.push(format!("[[{k}.{s}]]"));
                            for item in items.iter().filter_map(toml::Value::as_table) {
                                keys.extend(item.keys().map(|i| format!("[[{k}.{s}]] {i}")));
                            }
                        }
                        _ => keys.push(format!("[{k}] {s}")),
                    }
                }
            }
            toml::Value::Array(a) => {
                for item in a.iter().filter_map(toml::Value::as_table) {
                    keys.extend(item.keys().map(|s| format!("[[{k}]] {s}")));
                }
            }
            _ => keys.push(k.clone()),
        }
    }
    keys.push("[admin] token".into()); // commented out in the example: it has no default
    for key in &keys {
        assert!(
            reference.contains(&format!("`{key}`")),
            "docs/configuration.md does not document `{key}`"
        );
    }
    // Every REGAUTH_* name that appears in the source.
    let mut vars = std::collections::BTreeSet::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = read(&path);
            for (i, _) in text.match_indices("\"REGAUTH_") {
                let name: String = text[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                vars.insert(name);
            }
        }
    }
    assert!(vars.len() >= 8, "found only {vars:?}");
    for var in &vars {
        assert!(
            reference.contains(&format!("`{var}`")),
            "docs/configuration.md does not document `{var}`"
        );
    }
    // The example config, which a newcomer reads first, names them all too.
    // A limit's variable is named by the rule REGAUTH_LIMITS_<KEY IN CAPITALS>, for a key
    // that is in its [limits] table.
    let limits = table.get("limits").and_then(toml::Value::as_table);
    let by_rule = |v: &str| {
        v.strip_prefix("REGAUTH_LIMITS_").is_some_and(|key| {
            example.contains("REGAUTH_LIMITS_<KEY IN CAPITALS>")
                && limits.is_some_and(|t| t.contains_key(&key.to_lowercase()))
        })
    };
    let missing: Vec<_> = vars
        .iter()
        .filter(|v| !example.contains(v.as_str()) && !by_rule(v))
        .collect();
    assert!(
        missing.is_empty(),
        "config/regauth.toml does not name {missing:?}"
    );
}
