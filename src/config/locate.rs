//! Where a refused value came from, for the error message: a variable (named), or the file
//! (its line, with a caret under the value or the unknown key). figment's errors give the
//! key path; the file's `toml_edit` parse gives each key's and value's place in the text.
use std::ops::Range;

use figment::error::{Actual, Kind};
use toml_edit::{ImDocument, Item, Table, TableLike, Value};

use super::env::{self, Environment};
use super::ConfigError;

/// The configuration file's text, parsed with the places of its keys and values.
pub struct File<'a> {
    name: &'a str,
    doc: ImDocument<&'a str>,
}

impl<'a> File<'a> {
    /// Parses `text` (named `name` in messages); a syntax error is reported here, with
    /// the parser's own line and caret.
    pub fn parse(text: &'a str, name: &'a str) -> Result<File<'a>, ConfigError> {
        let doc = ImDocument::parse(text).map_err(|e| ConfigError::Parse {
            path: name.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        Ok(File { name, doc })
    }

    /// The place of the key at `path` (`key_itself`) or of its value, if the file has it.
    fn span(&self, path: &[String], key_itself: bool) -> Option<Range<usize>> {
        enum Node<'t> {
            Table(&'t Table),
            Item(&'t Item),
            Value(&'t Value),
        }
        let mut node = Node::Table(self.doc.as_table());
        let mut key_span = None;
        for part in path {
            let index = part.parse::<usize>().ok();
            node = match (node, index) {
                (Node::Item(Item::ArrayOfTables(a)), Some(i)) => Node::Table(a.get(i)?),
                (
                    Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)),
                    Some(i),
                ) => {
                    key_span = None;
                    Node::Value(a.get(i)?)
                }
                (node, _) => {
                    let table: &dyn TableLike = match node {
                        Node::Table(t) => t,
                        Node::Item(i) => i.as_table_like()?,
                        Node::Value(v) => v.as_inline_table()?,
                    };
                    let (key, item) = table.get_key_value(part)?;
                    key_span = key.span();
                    Node::Item(item)
                }
            };
        }
        let value_span = match node {
            Node::Table(t) => t.span(),
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
        };
        if key_itself {
            key_span.or(value_span)
        } else {
            value_span.or(key_span)
        }
    }

    /// The file's line holding `span`, with a caret under it; empty without a span. With
    /// `secret`, only the line's number and column: the value may hold a password.
    fn show(&self, span: Option<Range<usize>>, secret: bool) -> String {
        let Some(span) = span else {
            return String::new();
        };
        let text = self.doc.raw();
        let start = span.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[line_start..line_end].trim_end_matches('\r');
        let number = text[..start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let width = text[start..span.end.clamp(start, line_end)]
            .chars()
            .count()
            .max(1);
        let gutter = " ".repeat(number.to_string().len());
        if secret {
            return format!("\n{gutter}--> {} line {number}, column {column}", self.name);
        }
        format!(
            "\n{gutter}--> {} line {number}, column {column}\n{gutter} |\n{number} | {line}\n{gutter} | {}{}",
            self.name,
            " ".repeat(column - 1),
            "^".repeat(width)
        )
    }
}

/// Keys whose values may hold a secret (the database URL holds its password): their line is
/// not quoted.
const SECRETS: &[&str] = &["admin.token", "store.url"];

/// `a.b[0].c` of the path `[a, b, 0, c]`.
fn dotted(path: &[String]) -> String {
    let mut out = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// The path of `a.b[0].c`.
fn path_of(key: &str) -> Vec<String> {
    key.split(['.', '['])
        .map(|p| p.trim_end_matches(']').to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The error for a value at `path` that `message` refuses: named by its variable if one set
/// it, else by its key with the file's line.
fn refused(
    path: &[String],
    message: String,
    key_itself: bool,
    env: &Environment,
    file: &File<'_>,
) -> ConfigError {
    match env.variable(path) {
        Some(var) => ConfigError::Invalid {
            key: var.to_string(),
            message,
            at: String::new(),
        },
        None => ConfigError::Invalid {
            key: dotted(path),
            message,
            at: file.show(
                file.span(path, key_itself),
                SECRETS.contains(&dotted(path).as_str()),
            ),
        },
    }
}

/// A figment extraction error (a value of the wrong type or form, an unknown key) located.
pub fn extraction(error: figment::Error, env: &Environment, file: &File<'_>) -> ConfigError {
    let mut path = error.path.clone();
    let from_env = error.metadata.as_ref().is_some_and(|m| m.name == env::NAME);
    let (message, key_itself) = match &error.kind {
        Kind::UnknownField(name, expected) => {
            // figment's path ends in the unknown key already; serde's convention does not.
            if path.last() != Some(name) {
                path.push(name.clone());
            }
            (
                format!(
                    "unknown key `{}`, expected one of {}",
                    dotted(&path),
                    quoted(expected, "`")
                ),
                true,
            )
        }
        Kind::MissingField(name) => {
            if path.last().map(String::as_str) != Some(name.as_ref()) {
                path.push(name.to_string());
            }
            ("missing, and it has no default".to_string(), false)
        }
        Kind::UnknownVariant(value, expected) => (
            format!("{value:?} must be one of {}", quoted(expected, "\"")),
            false,
        ),
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => (
            format!("{} is not {}", shown(actual), expectation(expected)),
            false,
        ),
        Kind::Message(message) => (message.clone(), false),
        other => (other.to_string(), false),
    };
    if from_env && env.variable(&path).is_none() {
        // A section set by a variable of its own: name the variable the rule gives.
        let parts: Vec<&str> = path.iter().map(String::as_str).collect();
        return ConfigError::Invalid {
            key: env::variable_of(&parts),
            message,
            at: String::new(),
        };
    }
    refused(&path, message, key_itself, env, file)
}

/// An error of [`super::Config::validate`] (which names the key) located.
pub fn validation(error: ConfigError, env: &Environment, file: &File<'_>) -> ConfigError {
    match error {
        ConfigError::Invalid { key, message, .. } => {
            refused(&path_of(&key), message, false, env, file)
        }
        other => other,
    }
}

fn quoted(names: &[&str], quote: &str) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("{quote}{n}{quote}")).collect();
    names.join(", ")
}

/// A refused value as a person would write it.
fn shown(actual: &Actual) -> String {
    match actual {
        Actual::Str(s) => format!("{s:?}"),
        Actual::Unsigned(n) => n.to_string(),
        Actual::Signed(n) => n.to_string(),
        Actual::Float(n) => n.to_string(),
        Actual::Bool(b) => b.to_string(),
        other => format!("a {other}"),
    }
}

/// serde's name of what was expected, for people.
fn expectation(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "a boolean" | "bool" => "true or false".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_paths() {
        let path = path_of("registries[0].public[1]");
        assert_eq!(path, ["registries", "0", "public", "1"]);
        assert_eq!(dotted(&path), "registries[0].public[1]");
    }

    #[test]
    fn places_of_keys_and_values() {
        let text = "listen = \"x\"\n[limits]\nper_minute = \"x\"\ntrusted_proxies = [\"a\", \"b\"]\n[[registries]]\nid = \"a\"\n";
        let file = File::parse(text, "f.toml").unwrap();
        let at = |p: &str, key: bool| file.span(&path_of(p), key).map(|r| &text[r]);
        assert_eq!(at("listen", false), Some("\"x\""));
        assert_eq!(at("limits.per_minute", true), Some("per_minute"));
        assert_eq!(at("limits.trusted_proxies[1]", false), Some("\"b\""));
        assert_eq!(at("registries[0].id", false), Some("\"a\""));
        assert_eq!(at("registries[1].id", false), None);
        assert_eq!(at("jwt.issuer", false), None);
        let shown = file.show(file.span(&path_of("limits.per_minute"), false), false);
        assert_eq!(
            shown,
            "\n --> f.toml line 3, column 14\n  |\n3 | per_minute = \"x\"\n  |              ^^^"
        );
        let secret = file.show(file.span(&path_of("listen"), false), true);
        assert_eq!(secret, "\n --> f.toml line 1, column 10");
    }
}
