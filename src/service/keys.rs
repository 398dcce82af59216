//! The trust probe of key rotation: does a registry accept tokens signed by a key? A token
//! with empty access, signed by the candidate key, is sent to `GET <url>/v2/`; distribution
//! answers 200 when it verifies the token, 401 when it does not trust the key.
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::api::KeyProbe;
use crate::config::RegistryConfig;
use crate::jwt::Issuer;

/// How long one registry may take to answer the probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Subject of the probe tokens, so that the registry's log tells them apart.
pub const PROBE_SUBJECT: &str = "regauth-key-check";

/// Probes every registry with a `url`, concurrently.
pub async fn probe(
    issuer: &Issuer,
    registries: &[RegistryConfig],
    now: DateTime<Utc>,
) -> Vec<KeyProbe> {
    let client = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            return registries
                .iter()
                .filter_map(|r| r.url.as_ref().map(|url| (r, url)))
                .map(|(r, url)| KeyProbe {
                    registry: r.id.clone(),
                    url: url.clone(),
                    trusted: false,
                    detail: format!("no HTTP client: {e}"),
                })
                .collect()
        }
    };
    let probes = registries
        .iter()
        .filter_map(|r| r.url.as_ref().map(|url| (r, url)))
        .map(|(r, url)| {
            let client = client.clone();
            let jwt = issuer.issue(PROBE_SUBJECT, &r.service, &[], now);
            async move {
                let (trusted, detail) = match jwt {
                    Err(e) => (false, format!("cannot sign the probe token: {e}")),
                    Ok(jwt) => probe_one(&client, url, &jwt).await,
                };
                KeyProbe {
                    registry: r.id.clone(),
                    url: url.clone(),
                    trusted,
                    detail,
                }
            }
        });
    let mut out = Vec::new();
    // Few registries: one after the other keeps this simple, each bounded by the timeout.
    for p in probes {
        out.push(p.await);
    }
    out
}

async fn probe_one(client: &reqwest::Client, url: &str, jwt: &str) -> (bool, String) {
    let target = format!("{}/v2/", url.trim_end_matches('/'));
    match client.get(&target).bearer_auth(jwt).send().await {
        Ok(resp) if resp.status() == reqwest::StatusCode::OK => (true, "200 OK".into()),
        Ok(resp) => (
            false,
            format!(
                "{}: the registry does not trust the key yet (restart it with the new bundle)",
                resp.status()
            ),
        ),
        Err(e) => (false, format!("cannot reach {target}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::SigningKey;

    fn registry(id: &str, url: Option<String>) -> RegistryConfig {
        RegistryConfig {
            url,
            ..RegistryConfig::new(id, &format!("{id}.svc"), "h")
        }
    }

    /// A one-shot HTTP server answering `status` and handing back the request head.
    async fn answering(status: u16) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let n = s.read(&mut buf).await.unwrap();
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            s.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        (url, task)
    }

    #[tokio::test]
    async fn a_200_is_trusted_anything_else_is_not_and_registries_without_url_are_skipped() {
        let (key, _) = SigningKey::generate_es256().unwrap();
        let issuer = Issuer::new(key, "regauth".into(), 300);
        let (ok_url, ok) = answering(200).await;
        let (no_url, no) = answering(401).await;
        let registries = [
            registry("a", Some(ok_url)),
            registry("b", Some(no_url)),
            registry("c", None),
            registry("d", Some("http://127.0.0.1:1".into())),
        ];
        let probes = probe(&issuer, &registries, Utc::now()).await;
        let verdicts: Vec<_> = probes
            .iter()
            .map(|p| (p.registry.as_str(), p.trusted))
            .collect();
        assert_eq!(verdicts, vec![("a", true), ("b", false), ("d", false)]);
        assert!(
            probes[2].detail.contains("cannot reach"),
            "{}",
            probes[2].detail
        );
        let head = ok.await.unwrap();
        assert!(head.starts_with("GET /v2/ "), "{head}");
        let jwt = head
            .lines()
            .find_map(|l| l.strip_prefix("authorization: Bearer "))
            .unwrap();
        let (_, claims) = issuer.key().verify_jwt(jwt).unwrap();
        assert_eq!(claims["aud"], "a.svc");
        assert_eq!(claims["access"], serde_json::json!([]));
        no.await.unwrap();
    }
}
