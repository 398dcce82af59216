//! The client commands: each one a few admin-API calls and a rendering of the reply. Replies
//! are read as the API's own types ([`crate::api`]); `--output json` prints them back as the
//! API's JSON.
use std::io::Write;

use chrono::Utc;
use reqwest::Method;
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::client::{CliError, Client};
use super::expires::Expires;
use super::output::{self, Output};
use super::scope::{self, Added, ScopeArg, ScopeSelector};
use crate::api::{
    rfc3339, DisabledTokens, Patch, Registry, RegistryList, Scope, Token, TokenCreate, TokenPage,
    TokenPatch, TokenPropertiesInput, TokenRotate,
};

/// Page size used when the CLI walks the whole token list (the API's maximum).
pub const PAGE_LIMIT: usize = crate::api::MAX_LIMIT;

/// Everything a client command needs: the API, where to print, how, and which registry.
pub struct Ctx<'a> {
    pub client: Client,
    pub output: Output,
    pub out: &'a mut dyn Write,
    /// `--registry`; `None` means the server's first registry.
    pub registry: Option<String>,
}

/// Walks a paginated list: `fetch(offset)` returns one page. Stops at the total or at an
/// empty page (so a list shrinking underneath cannot loop forever). Returns the first page
/// (for its envelope) and every item.
fn collect_pages(
    mut fetch: impl FnMut(usize) -> Result<TokenPage, CliError>,
) -> Result<(TokenPage, Vec<Token>), CliError> {
    let first = fetch(0)?;
    let mut items = first.items.clone();
    let mut total = first.total;
    while items.len() < total {
        let page = fetch(items.len())?;
        if page.items.is_empty() {
            break;
        }
        items.extend(page.items);
        total = page.total;
    }
    Ok((first, items))
}

/// Every token name of the registry (`regauth __complete-tokens`, for shell completion).
pub fn token_names(ctx: &mut Ctx<'_>) -> Result<Vec<String>, CliError> {
    let reg = ctx.registry()?;
    let (_, items) = ctx.all_tokens(&reg)?;
    Ok(items.iter().map(|t| t.name().to_string()).collect())
}

impl Ctx<'_> {
    /// The registry id: `--registry`, else the first one the server lists.
    pub fn registry(&mut self) -> Result<String, CliError> {
        if let Some(r) = &self.registry {
            return Ok(r.clone());
        }
        let list: RegistryList = self.client.get(&["registries"], &[])?;
        let first = list
            .items
            .into_iter()
            .next()
            .ok_or_else(|| CliError::Other("the server lists no registries".into()))?
            .id;
        self.registry = Some(first.clone());
        Ok(first)
    }

    fn json(&mut self, v: &impl Serialize) -> Result<(), CliError> {
        output::json(self.out, v)?;
        Ok(())
    }

    fn get_registry(&self, reg: &str) -> Result<Registry, CliError> {
        self.client.get(&["registries", reg], &[])
    }

    /// One page of the token list; the server's defaults apply to what is `None`.
    fn page(
        &self,
        reg: &str,
        offset: Option<usize>,
        limit: Option<usize>,
        filter: &[(&'static str, String)],
    ) -> Result<TokenPage, CliError> {
        let mut query = filter.to_vec();
        if let Some(o) = offset {
            query.push(("offset", o.to_string()));
        }
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        self.client.get(&["registries", reg, "tokens"], &query)
    }

    /// Every token of `reg`: the first page (for its envelope) and all items.
    fn all_tokens(&self, reg: &str) -> Result<(TokenPage, Vec<Token>), CliError> {
        collect_pages(|offset| self.page(reg, Some(offset), Some(PAGE_LIMIT), &[]))
    }

    /// A token by id (when `name_or_id` is a UUID) or by name.
    fn find(&self, reg: &str, name_or_id: &str) -> Result<Token, CliError> {
        if let Ok(id) = Uuid::parse_str(name_or_id) {
            let id = id.to_string();
            return self.client.get(&["registries", reg, "tokens", &id], &[]);
        }
        let (_, items) = self.all_tokens(reg)?;
        items
            .into_iter()
            .find(|t| t.name() == name_or_id)
            .ok_or_else(|| CliError::NoSuchToken {
                name: name_or_id.to_string(),
                registry: reg.to_string(),
            })
    }

    /// A token by id (when `name_or_id` is a UUID) or by name.
    pub(crate) fn find_token(&self, reg: &str, name_or_id: &str) -> Result<Token, CliError> {
        self.find(reg, name_or_id)
    }

    fn patch(&self, reg: &str, id: Uuid, body: &TokenPatch) -> Result<Token, CliError> {
        let id = id.to_string();
        self.client
            .send_json(Method::PATCH, &["registries", reg, "tokens", &id], body)
    }

    /// Prints a token the way most commands end: JSON, or a headline and the summary.
    fn show_token(
        &mut self,
        reg: &str,
        t: &Token,
        headline: Option<String>,
    ) -> Result<(), CliError> {
        if self.output == Output::Json {
            return self.json(t);
        }
        if let Some(h) = headline {
            writeln!(self.out, "{h}")?;
        }
        output::token_summary(self.out, t, reg, Utc::now())?;
        Ok(())
    }
}

/// Who may use a token from where, and whose it is (`--allow-from`, `--owner`,
/// `--description`).
#[derive(Debug, Default, Clone)]
pub struct Policy {
    /// Networks in CIDR form; empty: not given.
    pub allow_from: Vec<String>,
    pub owner: Option<String>,
    pub description: Option<String>,
}

/// `--password-file PATH [--force]`: where `token create` and `token rotate` put the password
/// instead of printing it.
#[derive(Debug, Clone)]
pub struct PasswordFile {
    pub path: std::path::PathBuf,
    /// Replace an existing file.
    pub force: bool,
}

impl PasswordFile {
    /// Before any request: an existing file is refused (exit 2) unless `--force`, so a second
    /// run of a script neither creates a token nor touches the password kept by the first.
    fn check(&self) -> Result<(), CliError> {
        if !self.force && std::fs::symlink_metadata(&self.path).is_ok() {
            return Err(CliError::Usage(format!(
                "--password-file {}: the file exists (it may hold a password still in use); \
                 pass --force to replace it",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// Writes `password` and a newline, mode 0600 from the start: into a new file beside the
    /// target, then renamed over it, so a failed write leaves the old file whole.
    fn write(&self, password: &str) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(password.as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

/// Puts the reply's password into `file` and removes it from the reply. If the file cannot be
/// written the password is left in the reply (printed: it exists nowhere else) and the error
/// is returned after the output.
fn keep_password(file: Option<&PasswordFile>, t: &mut Token) -> Option<CliError> {
    let file = file?;
    let password = t.properties.credentials.password.take()?;
    match file.write(&password) {
        Ok(()) => None,
        Err(e) => {
            t.properties.credentials.password = Some(password);
            Some(CliError::Other(format!(
                "could not write --password-file {}: {e}; the password is printed instead",
                file.path.display()
            )))
        }
    }
}

/// Prints a token whose password went to `file`, and how to log in with it.
fn password_written(
    ctx: &mut Ctx,
    what: &str,
    t: &Token,
    reg: &str,
    host: &str,
    file: &PasswordFile,
) -> Result<(), CliError> {
    writeln!(
        ctx.out,
        "{what} token {} (id {}) in registry {reg}; its password is in {} (mode 0600).",
        t.name(),
        t.id,
        file.path.display()
    )?;
    writeln!(
        ctx.out,
        "Log in with:\n    docker login {} -u {} --password-stdin < {}",
        output::shell_quote(host),
        output::shell_quote(t.name()),
        output::shell_quote(&file.path.display().to_string())
    )?;
    Ok(())
}

/// `token create`.
pub fn create(
    ctx: &mut Ctx,
    name: &str,
    scopes: &[ScopeArg],
    expires: Option<Expires>,
    disabled: bool,
    policy: Policy,
    password_file: Option<PasswordFile>,
) -> Result<(), CliError> {
    if let Some(f) = &password_file {
        f.check()?;
    }
    name.parse::<crate::domain::name::TokenName>()
        .map_err(|e| CliError::Usage(format!("token name {name:?}: {}", e.rule)))?;
    let sent = scope::from_args(scopes);
    scope::check(scopes, &sent)?;
    check_owner_and_description(policy.owner.as_deref(), policy.description.as_deref())?;
    let reg = ctx.registry()?;
    let expiry_date = expires
        .map(|e| e.resolve(Utc::now()).map(rfc3339))
        .transpose()
        .map_err(CliError::Usage)?;
    let body = TokenCreate {
        properties: TokenPropertiesInput {
            name: name.to_string(),
            status: disabled.then(|| "disabled".to_string()),
            expiry_date,
            scopes: Some(sent.clone()),
            allowed_networks: (!policy.allow_from.is_empty()).then_some(policy.allow_from),
            owner: policy.owner,
            description: policy.description,
            federation: None,
        },
    };
    // Ask for the hostname first: once the token exists, nothing may stop its password
    // from being printed.
    let hostname = if ctx.output == Output::Table {
        Some(ctx.get_registry(&reg)?.properties.hostname)
    } else {
        None
    };
    let mut created: Token = ctx
        .client
        .send_json(Method::POST, &["registries", &reg, "tokens"], &body)
        .map_err(|e| scope::with_push_hint(e, &sent))?;
    let failed = keep_password(password_file.as_ref(), &mut created);
    match (&hostname, &password_file) {
        (None, _) => ctx.json(&created)?,
        (Some(host), Some(f)) if failed.is_none() => {
            password_written(ctx, "Created", &created, &reg, host, f)?
        }
        (Some(host), _) => output::created(ctx.out, &created, &reg, host, Utc::now())?,
    }
    failed.map_or(Ok(()), Err)
}

/// What `token list` selects beyond paging.
#[derive(Debug, Default)]
pub struct ListFilter {
    /// Only those expiring within this duration.
    pub expiring: Option<String>,
    /// Only this owner's.
    pub owner: Option<String>,
    /// Only those breaking the registry's `max_token_lifetime`.
    pub violations: bool,
}

/// `token list`: every token (all pages), or one page when `offset`/`limit` is given,
/// selected by `select`.
pub fn list(
    ctx: &mut Ctx,
    offset: Option<usize>,
    limit: Option<usize>,
    select: ListFilter,
) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let mut filter: Vec<(&str, String)> = Vec::new();
    if let Some(w) = select.expiring {
        filter.push(("expiringWithin", w));
    }
    if let Some(o) = select.owner {
        filter.push(("filter.owner", o));
    }
    if select.violations {
        filter.push(("filter.violations", "true".into()));
    }
    let page = if offset.is_some() || limit.is_some() {
        ctx.page(&reg, offset, limit, &filter)?
    } else {
        let (mut first, items) =
            collect_pages(|o| ctx.page(&reg, Some(o), Some(PAGE_LIMIT), &filter))?;
        // Several pages were read: present them as one.
        if first.count != items.len() {
            first.count = items.len();
            first.items = items;
            first.links.next = None;
        }
        first
    };
    if ctx.output == Output::Json {
        return ctx.json(&page);
    }
    output::token_table(ctx.out, &page.items)?;
    Ok(())
}

/// `token show`.
pub fn show(ctx: &mut Ctx, token: &str) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let mut t = ctx.find(&reg, token)?;
    // The API never returns a password here; make sure the CLI could not print one anyway.
    t.properties.credentials.password = None;
    ctx.show_token(&reg, &t, None)
}

/// `token rotate`.
pub fn rotate(
    ctx: &mut Ctx,
    token: &str,
    grace: Option<i64>,
    password_file: Option<PasswordFile>,
) -> Result<(), CliError> {
    if let Some(f) = &password_file {
        f.check()?;
    }
    let reg = ctx.registry()?;
    let t = ctx.find(&reg, token)?;
    let hostname = if ctx.output == Output::Table {
        Some(ctx.get_registry(&reg)?.properties.hostname)
    } else {
        None
    };
    let id = t.id.to_string();
    let body = TokenRotate {
        grace_period_seconds: grace,
    };
    let mut rotated: Token = ctx.client.send_json(
        Method::POST,
        &["registries", &reg, "tokens", &id, "credentials"],
        &body,
    )?;
    let failed = keep_password(password_file.as_ref(), &mut rotated);
    match (&hostname, &password_file) {
        (None, _) => ctx.json(&rotated)?,
        (Some(host), Some(f)) if failed.is_none() => {
            password_written(ctx, "Rotated the password of", &rotated, &reg, host, f)?
        }
        (Some(host), _) => output::rotated(ctx.out, &rotated, &reg, host, Utc::now())?,
    }
    failed.map_or(Ok(()), Err)
}

/// What `token update` changes.
#[derive(Debug, Default)]
pub struct Update {
    /// `Some(true)` enable, `Some(false)` disable.
    pub enable: Option<bool>,
    /// `Patch::Null` removes the expiry.
    pub expires: Patch<Expires>,
    /// `Some(empty)`: anywhere again.
    pub allow_from: Option<Vec<String>>,
    /// `Patch::Null` removes the owner.
    pub owner: Patch<String>,
    /// `Patch::Null` removes the description.
    pub description: Patch<String>,
}

/// `token update`.
pub fn update(ctx: &mut Ctx, token: &str, change: Update) -> Result<(), CliError> {
    let body = TokenPatch {
        status: change
            .enable
            .map(|e| if e { "enabled" } else { "disabled" }.to_string()),
        expiry_date: change
            .expires
            .try_map(|e| e.resolve(Utc::now()).map(rfc3339))
            .map_err(CliError::Usage)?,
        scopes: None,
        allowed_networks: change.allow_from.map_or(Patch::Absent, Patch::Value),
        owner: change.owner,
        description: change.description,
        federation: None,
    };
    let value = |p: &Patch<String>| match p {
        Patch::Value(v) => Some(v.clone()),
        _ => None,
    };
    check_owner_and_description(
        value(&body.owner).as_deref(),
        value(&body.description).as_deref(),
    )?;
    if body == TokenPatch::default() {
        return Err(CliError::Usage(
            "nothing to change: pass --enable, --disable, --expires, --no-expiry, --allow-from, \
             --allow-anywhere, --owner, --no-owner, --description or --no-description"
                .into(),
        ));
    }
    let reg = ctx.registry()?;
    let current = ctx.find(&reg, token)?;
    let updated = ctx.patch(&reg, current.id, &body)?;
    ctx.show_token(
        &reg,
        &updated,
        Some(format!("Updated token {}.\n", current.name())),
    )
}

/// `token disable --owner X`: disables every enabled token of the owner in one request
/// (offboarding) and lists them.
pub fn disable_owner(ctx: &mut Ctx, owner: &str) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let done: DisabledTokens = ctx.client.post(
        &["registries", &reg, "offboarding"],
        &[("owner", owner.to_string())],
    )?;
    if ctx.output == Output::Json {
        return ctx.json(&done);
    }
    writeln!(
        ctx.out,
        "Disabled {} token(s) of owner {owner:?} in registry {reg}; their refresh tokens ended.",
        done.items.len()
    )?;
    if !done.items.is_empty() {
        output::token_table(ctx.out, &done.items)?;
    }
    Ok(())
}

/// `token delete`. With `--output json` prints the token as it was before deletion (the API's
/// reply to a delete has no body).
pub fn delete(
    ctx: &mut Ctx,
    tokens: &[String],
    confirm: Option<fn(&str) -> std::io::Result<bool>>,
) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    // Look every one up first: a typo in the third name deletes nothing.
    let found = tokens
        .iter()
        .map(|t| ctx.find(&reg, t))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(confirm) = confirm {
        let names: Vec<&str> = found.iter().map(|t| t.name()).collect();
        let question = format!(
            "Delete {} {} from registry {reg}? Their passwords stop working at once; this cannot \
             be undone. [y/N] ",
            if names.len() == 1 { "token" } else { "tokens" },
            names.join(", ")
        );
        if !confirm(&question).map_err(|e| CliError::Other(format!("cannot ask: {e}")))? {
            return Err(CliError::Other("not confirmed: nothing deleted".into()));
        }
    }
    for t in &found {
        let id = t.id.to_string();
        ctx.client.delete(&["registries", &reg, "tokens", &id])?;
        if ctx.output == Output::Table {
            writeln!(
                ctx.out,
                "Deleted token {} (id {}) from registry {reg}.",
                t.name(),
                t.id
            )?;
        }
    }
    match found.as_slice() {
        _ if ctx.output != Output::Json => Ok(()),
        [one] => ctx.json(one),
        all => ctx.json(&all),
    }
}

/// Asks `question` on stderr and reads the answer from stdin: true for y or yes.
pub fn confirm_on_terminal(question: &str) -> std::io::Result<bool> {
    let mut err = std::io::stderr();
    err.write_all(question.as_bytes())?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// Reads a token, edits its scope list with `edit`, and PATCHes the new list. `edit` returns
/// the headline to print.
fn edit_scopes(
    ctx: &mut Ctx,
    token: &str,
    edit: impl FnOnce(&str, &mut Vec<Scope>) -> Result<String, CliError>,
) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let t = ctx.find(&reg, token)?;
    let mut scopes = t.properties.scopes.clone();
    let headline = edit(t.name(), &mut scopes)?;
    let body = TokenPatch {
        scopes: Some(scopes.clone()),
        ..TokenPatch::default()
    };
    let updated = ctx
        .patch(&reg, t.id, &body)
        .map_err(|e| scope::with_push_hint(e, &scopes))?;
    ctx.show_token(&reg, &updated, Some(headline))
}

/// `--owner` and `--description` checked with the server's own rules before any request, so
/// a mistake exits 2 naming the flag (`--owner: must be at most 128 characters`).
fn check_owner_and_description(
    owner: Option<&str>,
    description: Option<&str>,
) -> Result<(), CliError> {
    use crate::domain::policy::{Description, Owner};
    if let Some(o) = owner {
        o.parse::<Owner>()
            .map_err(|e| CliError::Usage(format!("--owner: {}", e.rule)))?;
    }
    if let Some(d) = description {
        d.parse::<Description>()
            .map_err(|e| CliError::Usage(format!("--description: {}", e.rule)))?;
    }
    Ok(())
}

/// `scope add`: merges into an existing scope for the same target.
pub fn scope_add(ctx: &mut Ctx, token: &str, arg: &ScopeArg) -> Result<(), CliError> {
    edit_scopes(ctx, token, |name, scopes| {
        let added = scope::add(scopes, arg);
        // The merged list, checked with the server's rules before the request: exit 2.
        scope::check_as("scope", std::slice::from_ref(arg), scopes)?;
        Ok(match added {
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
    let t = ctx.find(&reg, token)?;
    if ctx.output == Output::Json {
        return ctx.json(&t.properties.scopes);
    }
    for s in &t.properties.scopes {
        writeln!(ctx.out, "{s}")?;
    }
    Ok(())
}

/// `registry-config`: the registry's `auth: token:` block.
pub fn registry_config(ctx: &mut Ctx) -> Result<(), CliError> {
    let reg = ctx.registry()?;
    let r = ctx.get_registry(&reg)?;
    if ctx.output == Output::Json {
        return ctx.json(&r);
    }
    let p = &r.properties;
    output::registry_auth_yaml(ctx.out, &reg, &p.hostname, &p.token_auth)?;
    if let Some(n) = &p.notifications {
        writeln!(ctx.out)?;
        output::registry_notifications_yaml(ctx.out, &reg, n)?;
    }
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

    fn token(name: &str) -> Token {
        serde_json::from_value(json!({
            "id": Uuid::new_v4(), "type": "token", "href": "h",
            "metadata": {
                "createdBy": "admin", "createdDate": "2026-01-01T00:00:00Z",
                "lastModifiedBy": "admin", "lastModifiedDate": "2026-01-01T00:00:00Z",
                "state": "AVAILABLE"
            },
            "properties": {
                "name": name, "credentials": {"username": name}, "expiryDate": null,
                "scopes": [], "status": "enabled"
            }
        }))
        .unwrap()
    }

    fn page(names: &[&str], total: usize) -> Result<TokenPage, CliError> {
        let items: Vec<Token> = names.iter().map(|n| token(n)).collect();
        Ok(serde_json::from_value(json!({
            "id": "default-tokens", "type": "collection", "href": "h",
            "items": items, "offset": 0, "limit": 2, "count": items.len(), "total": total,
            "_links": {"self": "h"}
        }))
        .unwrap())
    }

    #[test]
    fn walks_every_page() {
        let pages = [vec!["a", "b"], vec!["c", "d"], vec!["e"]];
        let mut asked = Vec::new();
        let (first, items) = collect_pages(|offset| {
            asked.push(offset);
            page(&pages[offset / 2], 5)
        })
        .unwrap();
        assert_eq!(asked, vec![0, 2, 4]);
        assert_eq!(items.len(), 5);
        assert_eq!(first.count, 2);
        assert_eq!(items[4].name(), "e");
    }

    #[test]
    fn stops_when_the_list_shrinks() {
        let mut calls = 0;
        let (_, items) = collect_pages(|offset| {
            calls += 1;
            if offset == 0 {
                page(&["a"], 3)
            } else {
                page(&[], 1)
            }
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
            page(&["a", "b"], 2)
        })
        .unwrap();
        assert_eq!((items.len(), calls), (2, 1));
    }
}
