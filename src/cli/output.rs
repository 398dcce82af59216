//! What the CLI prints: readable tables and summaries by default, the API's own JSON with
//! `--output json`. Every function writes to a `Write` so tests can read it back.
use std::io::{self, Write};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::expires::relative;
use super::CliError;
use crate::api::{rfc3339, Federation, FederationCheckResult, Scope, Token, TokenAuth};

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Tables and summaries for people.
    #[default]
    Table,
    /// The admin API's JSON, for scripts.
    Json,
}

/// Pretty JSON, one value.
pub fn json(out: &mut dyn Write, v: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    writeln!(out)
}

fn expiry_text(expiry: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match expiry {
        None => "never".to_string(),
        Some(t) => format!("{} ({})", rfc3339(t), relative(t, now)),
    }
}

fn scopes_text(scopes: &[Scope]) -> String {
    if scopes.is_empty() {
        "(none)".to_string()
    } else {
        scopes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// When and how a token was last used, for people: `2026-06-01T12:00:00Z (3h ago) from
/// 192.0.2.1 by password`, or `never`.
fn last_used_text(t: &Token, now: Option<DateTime<Utc>>) -> String {
    let m = &t.metadata;
    let Some(at) = m.last_used_date else {
        return "never".to_string();
    };
    let mut s = rfc3339(at);
    if let Some(now) = now {
        s.push_str(&format!(" ({})", relative(at, now)));
    }
    if let Some(from) = &m.last_used_from {
        s.push_str(&format!(" from {from}"));
    }
    if let Some(grant) = &m.last_used_grant_type {
        s.push_str(&format!(" by {grant}"));
    }
    s
}

/// `rows` under `header`, each column as wide as its widest cell, two spaces apart; the
/// last column unpadded.
pub fn columns(out: &mut dyn Write, header: &[&str], rows: &[Vec<String>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        let n = widths.len();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == n {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = *w));
            }
        }
        s
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for r in rows {
        writeln!(out, "{}", line(&mut r.iter().map(String::as_str)))?;
    }
    Ok(())
}

/// A table of tokens: NAME STATUS EXPIRES SCOPES LAST USED ID.
pub fn token_table(out: &mut dyn Write, tokens: &[Token]) -> io::Result<()> {
    if tokens.is_empty() {
        return writeln!(out, "no tokens");
    }
    let rows: Vec<[String; 7]> = tokens
        .iter()
        .map(|t| {
            [
                t.properties.name.clone(),
                t.properties.owner.clone().unwrap_or_else(|| "-".into()),
                t.properties.status.to_string(),
                t.properties
                    .expiry_date
                    .map_or_else(|| "never".into(), rfc3339),
                scopes_text(&t.properties.scopes),
                t.metadata
                    .last_used_date
                    .map_or_else(|| "never".into(), rfc3339),
                t.id.to_string(),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "OWNER",
        "STATUS",
        "EXPIRES",
        "SCOPES",
        "LAST USED",
        "ID",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 7]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s
    };
    writeln!(out, "{}", line(header))?;
    for r in &rows {
        writeln!(
            out,
            "{}",
            line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]])
        )?;
    }
    Ok(())
}

/// One token in detail. Never shows a password, even if the reply carried one.
pub fn token_summary(
    out: &mut dyn Write,
    t: &Token,
    registry: &str,
    now: DateTime<Utc>,
) -> io::Result<()> {
    let p = &t.properties;
    let m = &t.metadata;
    let username = Some(p.credentials.username.as_str())
        .filter(|u| !u.is_empty())
        .unwrap_or(&p.name);
    writeln!(out, "Name:      {}", p.name)?;
    writeln!(out, "ID:        {}", t.id)?;
    writeln!(out, "Registry:  {registry}")?;
    writeln!(out, "Username:  {username}")?;
    if let Some(o) = &p.owner {
        writeln!(out, "Owner:     {o}")?;
    }
    if let Some(d) = &p.description {
        writeln!(out, "About:     {d}")?;
    }
    writeln!(out, "Status:    {}", p.status)?;
    writeln!(out, "Expires:   {}", expiry_text(p.expiry_date, now))?;
    if p.allowed_networks.is_empty() {
        writeln!(out, "From:      anywhere")?;
    } else {
        writeln!(out, "From:      {}", p.allowed_networks.join(", "))?;
    }
    if let Some(until) = p.previous_password_expiry_date {
        writeln!(
            out,
            "Previous password works until {} ({})",
            rfc3339(until),
            relative(until, now)
        )?;
    }
    if let Some(f) = &p.federation {
        federation_lines(out, f)?;
    }
    writeln!(out, "Last used: {}", last_used_text(t, Some(now)))?;
    writeln!(
        out,
        "Created:   {} by {}",
        rfc3339(m.created_date),
        m.created_by
    )?;
    writeln!(
        out,
        "Modified:  {} by {}",
        rfc3339(m.last_modified_date),
        m.last_modified_by
    )?;
    if p.scopes.is_empty() {
        writeln!(
            out,
            "Scopes:    (none: this token can log in but is granted nothing)"
        )?;
    } else {
        writeln!(out, "Scopes:")?;
        for s in &p.scopes {
            writeln!(out, "  {s}")?;
        }
    }
    Ok(())
}

/// A duration in seconds as people say it: `1h`, `90m`, `45s`, `1d`.
fn seconds_text(s: i64) -> String {
    match s {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// A federated token's credential: the issuer, audiences, claim conditions and limits.
fn federation_lines(out: &mut dyn Write, f: &Federation) -> io::Result<()> {
    writeln!(
        out,
        "Password:  none; logs in with an OIDC ID token (CI identity)"
    )?;
    writeln!(out, "Issuer:    {}", f.issuer)?;
    writeln!(out, "Audiences: {}", f.audiences.join(", "))?;
    if f.claims.is_empty() {
        writeln!(out, "Claims:    (no conditions)")?;
    } else {
        writeln!(out, "Claims:")?;
        for (claim, pattern) in &f.claims {
            writeln!(out, "  {claim}={pattern}")?;
        }
    }
    if let Some(s) = f.max_id_token_lifetime_seconds {
        writeln!(
            out,
            "ID tokens: living at most {} (exp - iat)",
            seconds_text(s)
        )?;
    }
    if let Some(s) = f.session_seconds {
        writeln!(out, "Session:   {} after a docker login", seconds_text(s))?;
    }
    let keys = match f
        .jwks
        .as_ref()
        .and_then(|j| j.get("keys"))
        .and_then(|k| k.as_array())
    {
        Some(keys) => format!(
            "the token's own JWK Set ({} key{}; no network)",
            keys.len(),
            if keys.len() == 1 { "" } else { "s" }
        ),
        None => "the issuer's published keys".to_string(),
    };
    writeln!(out, "Keys:      {keys}")?;
    Ok(())
}

/// The output of `token check-oidc`: accepted or not, every failure, and the ID token's claims.
pub fn diagnosis(out: &mut dyn Write, name: &str, d: &FederationCheckResult) -> io::Result<()> {
    if d.valid {
        writeln!(out, "{name}: the ID token is accepted.")?;
    } else {
        writeln!(out, "{name}: the ID token is not accepted:")?;
        for f in &d.failures {
            writeln!(out, "  {f}")?;
        }
    }
    if d.claims.is_empty() {
        return Ok(());
    }
    writeln!(out, "Claims of the ID token:")?;
    for (claim, value) in &d.claims {
        writeln!(out, "  {claim}: {value}")?;
    }
    Ok(())
}

/// Quotes `s` for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The password in a create or rotate reply, or an error saying the token `what` (e.g. "was
/// created") but the reply carried none, and what to do (`then`).
fn reply_password<'t>(t: &'t Token, what: &str, then: &str) -> Result<&'t str, CliError> {
    t.properties.credentials.password.as_deref().ok_or_else(|| {
        CliError::Other(format!(
            "token {} {what}, but the server's reply carries no password; {then}",
            t.name()
        ))
    })
}

/// The output of `token create`: the one and only sight of the password, and how to use it;
/// for a federated token, how a CI job logs in with its ID token.
pub fn created(
    out: &mut dyn Write,
    t: &Token,
    registry: &str,
    hostname: &str,
    now: DateTime<Utc>,
) -> Result<(), CliError> {
    // A federated token has no password; any other reply must carry one.
    let password = match &t.properties.federation {
        Some(_) => None,
        None => Some(reply_password(
            t,
            "was created",
            "delete it and create it again",
        )?),
    };
    writeln!(
        out,
        "Created token {} (id {}) in registry {registry}.",
        t.name(),
        t.id
    )?;
    writeln!(out)?;
    match password {
        Some(password) => password_once(out, "Password", password, hostname, t.name())?,
        None => {
            writeln!(
                out,
                "It has no password: a CI job logs in with its own OIDC ID token as the \
                 password (here in ID_TOKEN):"
            )?;
            writeln!(out)?;
            writeln!(
                out,
                "    echo \"$ID_TOKEN\" | docker login {hostname} -u {} --password-stdin",
                t.name()
            )?;
        }
    }
    writeln!(out)?;
    token_summary(out, t, registry, now)?;
    Ok(())
}

/// The output of `token rotate`: the new password, once, and how to use it.
pub fn rotated(
    out: &mut dyn Write,
    t: &Token,
    registry: &str,
    hostname: &str,
    now: DateTime<Utc>,
) -> Result<(), CliError> {
    let password = reply_password(t, "was rotated", "rotate it again")?;
    writeln!(
        out,
        "Rotated the password of token {} (id {}) in registry {registry}.",
        t.name(),
        t.id
    )?;
    match t.properties.previous_password_expiry_date {
        Some(until) => writeln!(
            out,
            "The previous password keeps working until {} ({}).",
            rfc3339(until),
            relative(until, now)
        )?,
        None => writeln!(out, "The previous password no longer works.")?,
    }
    writeln!(out)?;
    password_once(out, "New password", password, hostname, t.name())
}

/// The password, said to be shown only this once, and the `docker login` command that uses it.
fn password_once(
    out: &mut dyn Write,
    label: &str,
    password: &str,
    hostname: &str,
    name: &str,
) -> Result<(), CliError> {
    writeln!(
        out,
        "{label} (shown only this once: regauth keeps only a hash, so it cannot be shown again; \
         store it now):"
    )?;
    writeln!(out)?;
    writeln!(out, "    {password}")?;
    writeln!(out)?;
    writeln!(out, "Log in with:")?;
    writeln!(out)?;
    writeln!(
        out,
        "    echo {} | docker login {hostname} -u {name} --password-stdin",
        shell_quote(password)
    )?;
    Ok(())
}

/// A YAML plain scalar when that is unambiguous, else a double-quoted one.
pub fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/:@-+%~".contains(c))
        && !s.starts_with(['-', ':', '@', '%'])
        && !s.ends_with(':')
        && !s.contains(": ")
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_string()
    } else {
        let mut q = String::from('"');
        for c in s.chars() {
            match c {
                '"' => q.push_str("\\\""),
                '\\' => q.push_str("\\\\"),
                '\n' => q.push_str("\\n"),
                '\t' => q.push_str("\\t"),
                c if c.is_control() => q.push_str(&format!("\\u{:04x}", c as u32)),
                c => q.push(c),
            }
        }
        q.push('"');
        q
    }
}

/// The `auth: token:` block of a distribution registry's `config.yml`.
pub fn registry_auth_yaml(
    out: &mut dyn Write,
    registry: &str,
    hostname: &str,
    a: &TokenAuth,
) -> io::Result<()> {
    writeln!(
        out,
        "# regauth token authentication for registry {registry} ({hostname}).\n\
         # Put this in the registry's config.yml (distribution 2.8 and 3.x alike)."
    )?;
    if a.jwks.is_none() {
        writeln!(
            out,
            "# rootcertbundle is the path of regauth's signing certificate: copy or mount that file\n\
             # to where the registry can read it."
        )?;
    }
    if let Some(jwks) = &a.jwks {
        writeln!(
            out,
            "# rootcertbundle holds the certificate of every published signing key, and {}\n\
             # their JWK Set (distribution 3.x may read it as `jwks`). Mount both files. The registry\n\
             # reads them only when it starts: restart it after `regauth key add` and after\n\
             # `regauth key retire` (docs/key-rotation.md).",
            jwks
        )?;
    }
    writeln!(out, "auth:")?;
    writeln!(out, "  token:")?;
    writeln!(out, "    realm: {}", yaml_scalar(&a.realm))?;
    writeln!(out, "    service: {}", yaml_scalar(&a.service))?;
    writeln!(out, "    issuer: {}", yaml_scalar(&a.issuer))?;
    writeln!(
        out,
        "    rootcertbundle: {}",
        yaml_scalar(&a.rootcertbundle)
    )?;
    if !a.signingalgorithms.is_empty() {
        writeln!(
            out,
            "    # distribution 3.x accepts only these algorithms; 2.8 ignores the setting."
        )?;
        writeln!(out, "    signingalgorithms:")?;
        for alg in &a.signingalgorithms {
            writeln!(out, "      - {}", yaml_scalar(alg))?;
        }
    }
    Ok(())
}

/// The `notifications:` block of a distribution registry's `config.yml`: the registry sends its
/// events to regauth (registry activity, docs/activity.md). Blob events are left out by the
/// registry (`ignore: mediatypes`), so only manifests, tags and deletes are sent.
pub fn registry_notifications_yaml(
    out: &mut dyn Write,
    registry: &str,
    n: &crate::api::Notifications,
) -> io::Result<()> {
    writeln!(
        out,
        "# regauth registry activity for registry {registry}: the registry reports pushes, pulls and\n\
         # deletes of manifests to regauth (`regauth activity`). Beside `auth:` in the same config.yml."
    )?;
    writeln!(out, "notifications:")?;
    writeln!(out, "  endpoints:")?;
    writeln!(out, "    - name: regauth")?;
    writeln!(out, "      url: {}", yaml_scalar(&n.url))?;
    match &n.secret {
        Some(secret) => {
            writeln!(out, "      headers:")?;
            writeln!(
                out,
                "        Authorization: [{}]",
                yaml_scalar(&format!("Bearer {secret}"))
            )?;
        }
        None => writeln!(
            out,
            "      # headers: Authorization: [Bearer <events secret>]: only editors and owners see the secret"
        )?,
    }
    writeln!(out, "      timeout: 5s")?;
    writeln!(out, "      threshold: 5")?;
    writeln!(out, "      backoff: 10s")?;
    writeln!(out, "      ignore:")?;
    writeln!(
        out,
        "        # layers and image configs: one event per blob, not wanted"
    )?;
    writeln!(out, "        mediatypes:")?;
    writeln!(out, "          - application/octet-stream")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn token(v: Value) -> Token {
        serde_json::from_value(v).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn sample(password: Option<&str>) -> Value {
        let mut creds = json!({"username": "ci-push"});
        if let Some(p) = password {
            creds["password"] = json!(p);
        }
        json!({
            "id": "7c1e1a52-4d7f-4a6e-9a51-0f4b8f5b2f10",
            "type": "token",
            "href": "http://x/api/v1/registries/default/tokens/7c1e1a52-4d7f-4a6e-9a51-0f4b8f5b2f10",
            "metadata": {
                "createdBy": "admin", "createdDate": "2026-01-01T00:00:00Z",
                "lastModifiedBy": "admin", "lastModifiedDate": "2026-01-02T00:00:00Z",
                "state": "AVAILABLE"
            },
            "properties": {
                "name": "ci-push",
                "credentials": creds,
                "expiryDate": "2026-01-31T00:00:00Z",
                "scopes": [
                    {"type": "repository", "name": "team/*", "actions": ["pull", "push"]},
                    {"type": "registry", "name": "catalog", "actions": ["pull"]}
                ],
                "status": "enabled"
            }
        })
    }

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut buf = Vec::new();
        f(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn summary_never_shows_a_password() {
        let t = token(sample(Some("rga_secret")));
        let s = text(|b| token_summary(b, &t, "default", at("2026-01-01T00:00:00Z")).unwrap());
        assert!(!s.contains("rga_secret"), "{s}");
        assert!(s.contains("Name:      ci-push\n"), "{s}");
        assert!(
            s.contains("Expires:   2026-01-31T00:00:00Z (in 30d)\n"),
            "{s}"
        );
        assert!(
            s.contains("  repository:team/*:pull,push\n  registry:catalog:pull\n"),
            "{s}"
        );
        assert!(
            s.contains("Created:   2026-01-01T00:00:00Z by admin\n"),
            "{s}"
        );
        assert!(s.contains("From:      anywhere\n"), "{s}");
        assert!(!s.contains("Owner:"), "{s}");
    }

    #[test]
    fn summary_shows_owner_description_and_networks() {
        let mut t = token(sample(None));
        t.properties.owner = Some("alice@example.com".into());
        t.properties.description = Some("CI pushes".into());
        t.properties.allowed_networks = vec!["10.0.0.0/8".into(), "2001:db8::/32".into()];
        let s = text(|b| token_summary(b, &t, "default", at("2026-01-01T00:00:00Z")).unwrap());
        assert!(s.contains("Owner:     alice@example.com\n"), "{s}");
        assert!(s.contains("About:     CI pushes\n"), "{s}");
        assert!(s.contains("From:      10.0.0.0/8, 2001:db8::/32\n"), "{s}");
    }

    #[test]
    fn created_shows_the_password_once_and_the_login_command() {
        let t = token(sample(Some("rga_abc")));
        let s = text(|b| {
            created(
                b,
                &t,
                "default",
                "localhost:5000",
                at("2026-01-01T00:00:00Z"),
            )
            .unwrap()
        });
        assert_eq!(
            s.matches("rga_abc").count(),
            2,
            "password and login line: {s}"
        );
        assert!(s.contains("cannot be shown again"), "{s}");
        assert!(
            s.contains(
                "    echo 'rga_abc' | docker login localhost:5000 -u ci-push --password-stdin\n"
            ),
            "{s}"
        );
        let t = token(sample(None));
        let mut buf = Vec::new();
        let e = created(&mut buf, &t, "default", "h", Utc::now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "token ci-push was created, but the server's reply carries no password; \
             delete it and create it again"
        );
        let e = rotated(&mut buf, &t, "default", "h", Utc::now()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "token ci-push was rotated, but the server's reply carries no password; rotate it again"
        );
        assert!(buf.is_empty(), "nothing printed without a password");
    }

    #[test]
    fn table_aligns_columns() {
        let a = token(sample(None));
        let mut b = a.clone();
        b.properties.name = "x".into();
        b.properties.expiry_date = None;
        b.properties.scopes.clear();
        b.properties.owner = Some("alice@example.com".into());
        let s = text(|buf| token_table(buf, &[a, b]).unwrap());
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0]
                .starts_with("NAME     OWNER              STATUS   EXPIRES               SCOPES"),
            "{s}"
        );
        assert!(
            lines[1].starts_with("ci-push  -                  enabled"),
            "{s}"
        );
        assert!(
            lines[2]
                .starts_with("x        alice@example.com  enabled  never                 (none)"),
            "{s}"
        );
        let col = lines[0].find("ID").unwrap();
        assert_eq!(&lines[1][col..], "7c1e1a52-4d7f-4a6e-9a51-0f4b8f5b2f10");
        assert_eq!(text(|buf| token_table(buf, &[]).unwrap()), "no tokens\n");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("rga_x"), "'rga_x'");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn notifications_block() {
        let mut out = Vec::new();
        let n = crate::api::Notifications {
            url: "http://127.0.0.1:5001/events/default".into(),
            secret: Some("rge_00ff".into()),
        };
        registry_notifications_yaml(&mut out, "default", &n).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("      url: http://127.0.0.1:5001/events/default\n"),
            "{text}"
        );
        assert!(
            text.contains("        Authorization: [\"Bearer rge_00ff\"]\n"),
            "{text}"
        );
        let mut out = Vec::new();
        registry_notifications_yaml(
            &mut out,
            "default",
            &crate::api::Notifications { secret: None, ..n },
        )
        .unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("rge_"));
    }

    #[test]
    fn yaml_scalars() {
        assert_eq!(
            yaml_scalar("http://localhost:5001/auth"),
            "http://localhost:5001/auth"
        );
        assert_eq!(yaml_scalar("registry.local"), "registry.local");
        assert_eq!(yaml_scalar("/certs/signing.crt"), "/certs/signing.crt");
        assert_eq!(yaml_scalar("yes"), "\"yes\"");
        assert_eq!(yaml_scalar("1.5"), "\"1.5\"");
        assert_eq!(yaml_scalar("/my certs/a.crt"), "\"/my certs/a.crt\"");
        assert_eq!(yaml_scalar("a\"b"), "\"a\\\"b\"");
        assert_eq!(yaml_scalar(""), "\"\"");
    }

    #[test]
    fn registry_yaml_block() {
        let a = TokenAuth {
            realm: "http://localhost:5001/auth".into(),
            service: "registry.local".into(),
            issuer: "regauth".into(),
            rootcertbundle: "/certs/signing.crt".into(),
            signingalgorithms: vec!["ES256".into()],
            jwks: None,
        };
        let s = text(|b| registry_auth_yaml(b, "default", "localhost:5000", &a).unwrap());
        assert!(s.ends_with(
            "auth:\n  token:\n    realm: http://localhost:5001/auth\n    service: registry.local\n    issuer: regauth\n    rootcertbundle: /certs/signing.crt\n    # distribution 3.x accepts only these algorithms; 2.8 ignores the setting.\n    signingalgorithms:\n      - ES256\n"
        ), "{s}");
        // From a server that does not name its algorithm: the 2.8 block alone.
        let older = TokenAuth {
            signingalgorithms: vec![],
            ..a
        };
        let s = text(|b| registry_auth_yaml(b, "default", "localhost:5000", &older).unwrap());
        assert!(
            s.ends_with("    rootcertbundle: /certs/signing.crt\n"),
            "{s}"
        );
        // With key rotation: the JWK Set is named and the restart is said.
        let rotating = TokenAuth {
            jwks: Some("/certs/jwks.json".into()),
            ..older
        };
        let s = text(|b| registry_auth_yaml(b, "default", "localhost:5000", &rotating).unwrap());
        assert!(s.contains("/certs/jwks.json"), "{s}");
        assert!(s.contains("restart it after `regauth key add`"), "{s}");
    }
}
