//! The admin-API client behind the CLI: where the server is, which admin token to send, and
//! turning every failure (unreachable, refused, rejected) into one line an operator can act on.
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::blocking::{Client as Http, Response};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::ErrorBody;
use crate::config::{Config, ConfigError};

/// A failure of a client command. `Display` is the one line printed on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or configuration (exit status 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No answer at all from the server.
    #[error("cannot reach regauth at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with an error; `message` is its `messages[0].message`.
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    /// A name that no token in the registry has.
    #[error("no token named {name:?} in registry {registry:?}")]
    NoSuchToken { name: String, registry: String },
    /// Anything else: a reply that is not what the API promises, a failed write to stdout.
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// The HTTP status of the server's refusal, if that is what this is.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            CliError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// 2 for usage and configuration errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Config(_) => 2,
            _ => 1,
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Other(format!("cannot write the output: {e}"))
    }
}

/// Connection settings as given on the command line or in the environment.
#[derive(Debug, Clone, Default)]
pub struct ConnArgs {
    pub config: Option<PathBuf>,
    pub server: Option<String>,
    pub admin_token: Option<String>,
}

impl ConnArgs {
    /// The local config, loaded only when a setting has to come from it.
    fn config(&self) -> Result<Config, CliError> {
        Ok(Config::load(self.config.as_deref())?)
    }

    /// The server's base URL: `--server`/`REGAUTH_URL`, else the config's `public_url`.
    pub fn server_url(&self) -> Result<Url, CliError> {
        let text = match &self.server {
            Some(s) => s.clone(),
            None => self.config()?.public_url,
        };
        parse_server_url(&text)
    }

    /// The admin token: `--admin-token`/`REGAUTH_ADMIN_TOKEN`, else the config's `[admin] token`,
    /// else `<data_dir>/admin-token`.
    pub fn admin_token(&self) -> Result<String, CliError> {
        if let Some(t) = self.admin_token.as_ref().filter(|t| !t.is_empty()) {
            return Ok(t.clone());
        }
        let config = self.config()?;
        if let Some(t) = config.admin.token.clone() {
            return Ok(t);
        }
        read_token_file(&config.admin_token_file())
    }
}

fn read_token_file(path: &Path) -> Result<String, CliError> {
    match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        Ok(_) => Err(CliError::Usage(format!("{} is empty", path.display()))),
        Err(e) => Err(CliError::Usage(format!(
            "no admin token: pass --admin-token or set REGAUTH_ADMIN_TOKEN \
             (cannot read {}: {e})",
            path.display()
        ))),
    }
}

/// Parses and normalises a server URL (`http(s)://host[:port][/prefix]`, no trailing `/`).
pub fn parse_server_url(text: &str) -> Result<Url, CliError> {
    let bad = |why: &str| CliError::Usage(format!("server URL {text:?} {why}"));
    let url = Url::parse(text.trim()).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must start with http:// or https://"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url)
}

/// `base` + path segments (each percent-encoded as needed).
pub fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The innermost cause of an error: for a refused connection that is the OS's message.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// `{"httpStatus","messages":[{"errorCode","message"}]}` → `messages[0].message`.
fn api_message(status: StatusCode, body: &str) -> String {
    serde_json::from_str::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message().map(str::to_string))
        .unwrap_or_else(|| {
            let reason = status.canonical_reason().unwrap_or("error");
            format!("the server answered {reason} without an admin-API error body")
        })
}

/// A client of one server's admin API.
pub struct Client {
    http: Http,
    base: Url,
    admin_token: Option<String>,
}

impl Client {
    /// A client of `base`; `admin_token` is sent as `Authorization: Bearer` when given.
    pub fn new(
        base: Url,
        admin_token: Option<String>,
        timeout: Duration,
    ) -> Result<Client, CliError> {
        let http = Http::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("regauth-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Other(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            admin_token,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn unreachable(&self, e: reqwest::Error) -> CliError {
        CliError::Unreachable {
            url: self.base.to_string().trim_end_matches('/').to_string(),
            reason: root_cause(&e),
        }
    }

    fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&dyn erased::Body>,
    ) -> Result<Response, CliError> {
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.admin_token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_json()?);
        }
        req.send().map_err(|e| self.unreachable(e))
    }

    /// `GET /health`: Ok when the server answers 200.
    pub fn health(&self) -> Result<(), CliError> {
        let resp = self.send(Method::GET, join(&self.base, &["health"]), None)?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(CliError::Api {
                status: status.as_u16(),
                message: "regauth is not healthy".into(),
            })
        }
    }

    /// `GET /api/v1/<segments>?<query>`, the reply read as `T`.
    pub fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        self.decode(&self.api(Method::GET, segments, query, None)?)
    }

    /// `method /api/v1/<segments>` with `body` as JSON, the reply read as `T`.
    pub fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: &B,
    ) -> Result<T, CliError> {
        self.decode(&self.api(method, segments, &[], Some(body))?)
    }

    /// `POST /api/v1/<segments>?<query>` without a body, the reply read as `T`.
    pub fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        self.decode(&self.api(Method::POST, segments, query, None)?)
    }

    /// `method /api/v1/<segments>?<query>` without a body; the reply's text (empty for 204).
    pub fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<String, CliError> {
        self.api(method, segments, query, None)
    }

    /// `method /api/v1/<segments>?<query>` without a body, the reply read as `T`.
    pub fn call_json<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CliError> {
        self.decode(&self.call(method, segments, query)?)
    }

    /// `DELETE /api/v1/<segments>`; the reply has no body.
    pub fn delete(&self, segments: &[&str]) -> Result<(), CliError> {
        self.api(Method::DELETE, segments, &[], None).map(drop)
    }

    /// Reads a reply as one of the API's types.
    fn decode<T: DeserializeOwned>(&self, text: &str) -> Result<T, CliError> {
        serde_json::from_str(text).map_err(|e| {
            CliError::Other(format!(
                "the server's reply is not the admin API's JSON ({e}); is {} a regauth server?",
                self.base
            ))
        })
    }

    /// A request to `/api/v1/<segments>?<query>`; the reply's text (empty for 204).
    fn api(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&dyn erased::Body>,
    ) -> Result<String, CliError> {
        let mut path = vec!["api", "v1"];
        path.extend_from_slice(segments);
        let mut url = join(&self.base, &path);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let resp = self.send(method, url, body)?;
        let status = resp.status();
        let text = resp.text().map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(CliError::Api {
                status: status.as_u16(),
                message: api_message(status, &text),
            });
        }
        Ok(text)
    }
}

/// A request body of any serializable type, behind one `dyn` so `send` is not generic.
mod erased {
    use super::CliError;

    pub trait Body {
        fn to_json(&self) -> Result<Vec<u8>, CliError>;
    }

    impl<T: serde::Serialize> Body for T {
        fn to_json(&self) -> Result<Vec<u8>, CliError> {
            serde_json::to_vec(self)
                .map_err(|e| CliError::Other(format!("cannot encode the request: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        let u = parse_server_url("http://127.0.0.1:5001/").unwrap();
        assert_eq!(
            join(&u, &["api", "v1", "registries"]).as_str(),
            "http://127.0.0.1:5001/api/v1/registries"
        );
        let u = parse_server_url("https://auth.example.com/regauth").unwrap();
        assert_eq!(
            join(&u, &["health"]).as_str(),
            "https://auth.example.com/regauth/health"
        );
        // Path segments from arguments are encoded, never interpreted.
        assert_eq!(
            join(&u, &["registries", "a/b?c"]).as_str(),
            "https://auth.example.com/regauth/registries/a%2Fb%3Fc"
        );
        for bad in ["localhost:5001", "ftp://x", "http://x/?a=1", "nope"] {
            assert!(parse_server_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_error_messages() {
        let body = r#"{"httpStatus":400,"messages":[{"errorCode":"VALIDATION_ERROR","message":"properties.scopes[0].actions: push requires pull"}]}"#;
        assert_eq!(
            api_message(StatusCode::BAD_REQUEST, body),
            "properties.scopes[0].actions: push requires pull"
        );
        let e = CliError::Api {
            status: 400,
            message: api_message(StatusCode::BAD_REQUEST, body),
        };
        assert_eq!(
            e.to_string(),
            "properties.scopes[0].actions: push requires pull (HTTP 400)"
        );
        assert_eq!(
            api_message(StatusCode::BAD_GATEWAY, "<html>"),
            "the server answered Bad Gateway without an admin-API error body"
        );
    }

    #[test]
    fn token_file_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("admin-token");
        let err = read_token_file(&p).unwrap_err();
        assert!(err.to_string().contains("no admin token"), "{err}");
        assert_eq!(err.exit_code(), 2);
        std::fs::write(&p, "rgadm_0123456789abcdef\n").unwrap();
        assert_eq!(read_token_file(&p).unwrap(), "rgadm_0123456789abcdef");
    }
}
