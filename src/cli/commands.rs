//! The client commands: each one a few admin-API calls and a rendering of the reply.
use std::io::Write;

use chrono::Utc;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::{CliError, Client};
use super::expires::{rfc3339, Expires};
use super::output::{self, Output, TokenAuthView, TokenView};
use super::scope::{self, Added, ApiScope, ScopeArg, ScopeSelector};

/// Page size used when the CLI walks the whole token list (the API's maximum).
pub const PAGE_LIMIT: usize = 1000;

/// Everything a client command needs: the API, where to print, how, and which registry.
pub struct Ctx<'a> {
    pub client: Client,
    pub output: Output,
    pub out: &'a mut dyn Write,
    /// `--registry`; `None` means the server's first registry.
    pub registry: Option<String>,
}

/// One page of `GET .../tokens`.
#[derive(Debug, Deserialize)]
struct PageView {
    #[serde(default)]
    items: Vec<Value>,
    #[serde(default)]
    total: usize,
}

/// Walks a paginated list: `fetch(offset)` returns (page JSON, its items, total). Stops at the
/// total or at an empty page (so a list shrinking underneath cannot loop forever).
fn collect_pages(
    mut fetch: impl FnMut(usize) -> Result<(Value, Vec<Value>, usize), CliError>,
) -> Result<(Value, Vec<Value>), CliError> {
    let (first, mut items, mut total) = fetch(0)?;
    while items.len() < total {
        let (_, more, t) = fetch(items.len())?;
        if more.is_empty() {
            break;
        }
        items.extend(more);
        total = t;
    }
    Ok((first, items))
}

impl Ctx<'_> {
    /// The registry id: `--registry`, else the first one the server lists.
    pub fn registry(&mut self) -> Result<String, CliError> {
        if let Some(r) = &self.registry {
            return Ok(r.clone());
        }
        let list = self.client.api(Method::GET, &["registries"], &[], None)?;
        let first = list
            .pointer("/items/0/id")
            .and_then(Value::as_str)
            .ok_or_else(|| CliError::Other("the server lists no registries".into()))?
            .to_string();
        self.registry = Some(first.clone());
        Ok(first)
    }

    fn json(&mut self, v: &Value) -> Result<(), CliError> {
        output::json(self.out, v)?;
        Ok(())
    }

    fn registry_json(&mut self, reg: &str) -> Result<Value, CliError> {
        self.client
            .api(Method::GET, &["registries", reg], &[], None)
    }

    /// One page of the token list; the server's defaults apply to what is `None`.
    fn page(
        &self,
        reg: &str,
        offset: Option<usize>,
        limit: Option<usize>,
    ) -> Result<Value, CliError> {
        let mut query = Vec::new();
        if let Some(o) = offset {
            query.push(("offset", o.to_string()));
        }
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        self.client
            .api(Method::GET, &["registries", reg, "tokens"], &query, None)
    }

    /// Every token of `reg`: the first page's JSON (for its envelope) and all items.
    fn all_tokens(&self, reg: &str) -> Result<(Value, Vec<Value>), CliError> {
        collect_pages(|offset| {
            let v = self.page(reg, Some(offset), Some(PAGE_LIMIT))?;
            let p = PageView::deserialize(&v).map_err(|e| {
                CliError::Other(format!("the server's token list is not as expected: {e}"))
            })?;
            Ok((v, p.items, p.total))
        })
    }

    /// A token by id (when `name_or_id` is a UUID) or by name.
    fn find(&self, reg: &str, name_or_id: &str) -> Result<Value, CliError> {
        if let Ok(id) = Uuid::parse_str(name_or_id) {
            let id = id.to_string();
            return self
                .client
                .api(Method::GET, &["registries", reg, "tokens", &id], &[], None);
        }
        let (_, items) = self.all_tokens(reg)?;
        items
            .into_iter()
            .find(|t| t.pointer("/properties/name").and_then(Value::as_str) == Some(name_or_id))
            .ok_or_else(|| CliError::NoSuchToken {
                name: name_or_id.to_string(),
                registry: reg.to_string(),
            })
    }

    fn patch(&self, reg: &str, id: &str, body: &Value) -> Result<Value, CliError> {
        self.client.api(
            Method::PATCH,
            &["registries", reg, "tokens", id],
            &[],
            Some(body),
        )
    }

    /// Prints a token the way most commands end: JSON, or a headline and the summary.
    fn show_token(
        &mut self,
        reg: &str,
        v: &Value,
        headline: Option<String>,
    ) -> Result<(), CliError> {
        if self.output == Output::Json {
            return self.json(v);
        }
        let t = TokenView::from_json(v)?;
        if let Some(h) = headline {
            writeln!(self.out, "{h}")?;
        }
        output::token_summary(self.out, &t, reg, Utc::now())?;
        Ok(())
    }
}

/// `token create`.
pub fn create(
    ctx: &mut Ctx,
    name: &str,
    scopes: &[ScopeArg],
    expires: Option<Expires>,
    disabled: bool,
) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let scopes = scope::from_args(scopes);
    let mut props = json!({ "name": name, "scopes": scopes });
    if let Some(e) = expires {
        props["expiryDate"] = json!(rfc3339(e.resolve(Utc::now()).map_err(CliError::Usage)?));
    }
    if disabled {
        props["status"] = json!("disabled");
    }
    // Ask for the hostname first: once the token exists, nothing may stop its password
    // from being printed.
    let hostname = if ctx.output == Output::Table {
        let r = ctx.registry_json(&reg)?;
        Some(
            r.pointer("/properties/hostname")
                .and_then(Value::as_str)
                .unwrap_or("<registry host>")
                .to_string(),
        )
    } else {
        None
    };
    let created = ctx
        .client
        .api(
            Method::POST,
            &["registries", &reg, "tokens"],
            &[],
            Some(&json!({ "properties": props })),
        )
        .map_err(|e| scope::with_push_hint(e, &scopes))?;
    match hostname {
        None => ctx.json(&created),
        Some(host) => {
            let t = TokenView::from_json(&created)?;
            output::created(ctx.out, &t, &reg, &host, Utc::now())
        }
    }
}

/// `token list`: every token (all pages), or one page when `offset`/`limit` is given.
pub fn list(ctx: &mut Ctx, offset: Option<usize>, limit: Option<usize>) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let (envelope, items) = if offset.is_some() || limit.is_some() {
        let v = ctx.page(&reg, offset, limit)?;
        let items = PageView::deserialize(&v)
            .map(|p| p.items)
            .unwrap_or_default();
        (v, items)
    } else {
        let (mut first, items) = ctx.all_tokens(&reg)?;
        // Several pages were read: present them as one.
        if first["count"].as_u64() != Some(items.len() as u64) {
            first["items"] = Value::Array(items.clone());
            first["count"] = json!(items.len());
            if let Some(links) = first.get_mut("_links").and_then(Value::as_object_mut) {
                links.remove("next");
            }
        }
        (first, items)
    };
    if ctx.output == Output::Json {
        return ctx.json(&envelope);
    }
    let tokens = items
        .iter()
        .map(TokenView::from_json)
        .collect::<Result<Vec<_>, _>>()?;
    output::token_table(ctx.out, &tokens)?;
    Ok(())
}

/// `token show`.
pub fn show(ctx: &mut Ctx, token: &str) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let mut v = ctx.find(&reg, token)?;
    // The API never returns a password here; make sure the CLI could not print one anyway.
    if let Some(c) = v
        .pointer_mut("/properties/credentials")
        .and_then(Value::as_object_mut)
    {
        c.remove("password");
    }
    ctx.show_token(&reg, &v, None)
}

/// What `token update` changes.
#[derive(Debug, Default)]
pub struct Update {
    /// `Some(true)` enable, `Some(false)` disable.
    pub enable: Option<bool>,
    /// `Some(None)` removes the expiry.
    pub expires: Option<Option<Expires>>,
}

/// `token update`.
pub fn update(ctx: &mut Ctx, token: &str, change: Update) -> Result<(), CliError> {
    let mut body = json!({});
    if let Some(enable) = change.enable {
        body["status"] = json!(if enable { "enabled" } else { "disabled" });
    }
    match change.expires {
        None => {}
        Some(None) => body["expiryDate"] = Value::Null,
        Some(Some(e)) => {
            body["expiryDate"] = json!(rfc3339(e.resolve(Utc::now()).map_err(CliError::Usage)?))
        }
    }
    if body.as_object().is_some_and(|o| o.is_empty()) {
        return Err(CliError::Usage(
            "nothing to change: pass --enable, --disable, --expires or --no-expiry".into(),
        ));
    }
    let reg = ctx.registry()?;
    let current = ctx.find(&reg, token)?;
    let t = TokenView::from_json(&current)?;
    let updated = ctx.patch(&reg, &t.id, &body)?;
    ctx.show_token(
        &reg,
        &updated,
        Some(format!("Updated token {}.\n", t.name())),
    )
}

/// `token delete`. With `--output json` prints the token as it was before deletion (the API's
/// reply to a delete has no body).
pub fn delete(ctx: &mut Ctx, token: &str) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let current = ctx.find(&reg, token)?;
    let t = TokenView::from_json(&current)?;
    ctx.client.api(
        Method::DELETE,
        &["registries", &reg, "tokens", &t.id],
        &[],
        None,
    )?;
    if ctx.output == Output::Json {
        return ctx.json(&current);
    }
    writeln!(
        ctx.out,
        "Deleted token {} (id {}) from registry {reg}.",
        t.name(),
        t.id
    )?;
    Ok(())
}

/// Reads a token, edits its scope list with `edit`, and PATCHes the new list. `edit` returns
/// the headline to print.
fn edit_scopes(
    ctx: &mut Ctx,
    token: &str,
    edit: impl FnOnce(&str, &mut Vec<ApiScope>) -> Result<String, CliError>,
) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let current = ctx.find(&reg, token)?;
    let t = TokenView::from_json(&current)?;
    let mut scopes = t.properties.scopes.clone();
    let headline = edit(t.name(), &mut scopes)?;
    let updated = ctx
        .patch(&reg, &t.id, &json!({ "scopes": scopes }))
        .map_err(|e| scope::with_push_hint(e, &scopes))?;
    ctx.show_token(&reg, &updated, Some(headline))
}

/// `scope add`: merges into an existing scope for the same target.
pub fn scope_add(ctx: &mut Ctx, token: &str, arg: &ScopeArg) -> Result<(), CliError> {
    edit_scopes(ctx, token, |name, scopes| {
        Ok(match scope::add(scopes, arg) {
            Added::New => format!(
                "Added scope {} to token {name}.\n",
                scopes[scopes.len() - 1]
            ),
            Added::Merged => {
                let merged = scopes
                    .iter()
                    .find(|s| s.kind == arg.target.kind && s.name == arg.target.name)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                format!("Merged the actions into token {name}'s existing scope: now {merged}.\n")
            }
        })
    })
}

/// `scope remove`.
pub fn scope_remove(ctx: &mut Ctx, token: &str, sel: &ScopeSelector) -> Result<(), CliError> {
    edit_scopes(ctx, token, |name, scopes| {
        scope::remove(scopes, sel).map_err(|e| CliError::Other(format!("token {name} has {e}")))?;
        Ok(match &sel.actions {
            None => format!("Removed scope {} from token {name}.\n", sel.target),
            Some(a) => format!(
                "Removed {} from token {name}'s scope {}.\n",
                a.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(","),
                sel.target
            ),
        })
    })
}

/// `scope clear`.
pub fn scope_clear(ctx: &mut Ctx, token: &str) -> Result<(), CliError> {
    edit_scopes(ctx, token, |name, scopes| {
        scopes.clear();
        Ok(format!(
            "Removed all scopes of token {name}: it can still log in but is granted nothing.\n"
        ))
    })
}

/// `scope list`: one scope per line in CLI syntax.
pub fn scope_list(ctx: &mut Ctx, token: &str) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let current = ctx.find(&reg, token)?;
    if ctx.output == Output::Json {
        let scopes = current
            .pointer("/properties/scopes")
            .cloned()
            .unwrap_or_else(|| json!([]));
        return ctx.json(&scopes);
    }
    let t = TokenView::from_json(&current)?;
    for s in &t.properties.scopes {
        writeln!(ctx.out, "{s}")?;
    }
    Ok(())
}

/// `registry-config`: the registry's `auth: token:` block.
pub fn registry_config(ctx: &mut Ctx) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let v = ctx.registry_json(&reg)?;
    if ctx.output == Output::Json {
        return ctx.json(&v);
    }
    let auth = v
        .pointer("/properties/tokenAuth")
        .and_then(|a| TokenAuthView::deserialize(a).ok())
        .ok_or_else(|| {
            CliError::Other(format!(
                "the server's registry {reg:?} has no properties.tokenAuth; is it a regauth server?"
            ))
        })?;
    let hostname = v
        .pointer("/properties/hostname")
        .and_then(Value::as_str)
        .unwrap_or("?");
    output::registry_auth_yaml(ctx.out, &reg, hostname, &auth)?;
    Ok(())
}

/// `health`.
pub fn health(ctx: &mut Ctx) -> Result<(), CliError> {
    ctx.client.health()?;
    let server = ctx.client.base().as_str().trim_end_matches('/').to_string();
    if ctx.output == Output::Json {
        return ctx.json(&json!({ "server": server, "status": "ok" }));
    }
    writeln!(ctx.out, "ok: regauth at {server} is healthy")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(names: &[&str], total: usize) -> (Value, Vec<Value>, usize) {
        let items: Vec<Value> = names.iter().map(|n| json!({ "name": n })).collect();
        (
            json!({ "count": items.len(), "total": total }),
            items,
            total,
        )
    }

    #[test]
    fn walks_every_page() {
        let pages = [vec!["a", "b"], vec!["c", "d"], vec!["e"]];
        let mut asked = Vec::new();
        let (first, items) = collect_pages(|offset| {
            asked.push(offset);
            Ok(page(&pages[offset / 2], 5))
        })
        .unwrap();
        assert_eq!(asked, vec![0, 2, 4]);
        assert_eq!(items.len(), 5);
        assert_eq!(first["count"], 2);
    }

    #[test]
    fn stops_when_the_list_shrinks() {
        let mut calls = 0;
        let (_, items) = collect_pages(|offset| {
            calls += 1;
            Ok(if offset == 0 {
                page(&["a"], 3)
            } else {
                page(&[], 1)
            })
        })
        .unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(calls, 2);
    }

    #[test]
    fn single_page() {
        let mut calls = 0;
        let (_, items) = collect_pages(|_| {
            calls += 1;
            Ok(page(&["a", "b"], 2))
        })
        .unwrap();
        assert_eq!((items.len(), calls), (2, 1));
    }
}
