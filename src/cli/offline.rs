//! `regauth registry-config` without a running server: the same `auth: token:` block, built
//! from the local configuration and the keyring's files (the paths `serve` publishes to, the
//! algorithms of the published keys). Used when the server cannot be reached or no admin
//! token is at hand. The keyring's file layout is `server`'s, so the two cannot drift apart.
use std::path::Path;

use crate::api::{Metadata, Registry, RegistryProperties, ResourceType, TokenAuth};
use crate::config::{Config, RegistryConfig};
use crate::jwt::keyring::Keyring;
use crate::jwt::keystore::KeyOptions;
use crate::jwt::SigningKey;

/// The registry `id` (the first configured when `None`) as `serve` would describe it, or a
/// message naming the unknown id.
pub fn registry(config: &Config, id: Option<&str>) -> Result<Registry, String> {
    let r: &RegistryConfig = match id {
        Some(id) => config
            .registries
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| {
                let known: Vec<&str> = config.registries.iter().map(|r| r.id.as_str()).collect();
                format!(
                    "no registry {id:?} in the configuration (it has {})",
                    known.join(", ")
                )
            })?,
        None => config
            .registries
            .first()
            .ok_or_else(|| "the configuration has no registries".to_string())?,
    };
    let options = crate::server::key_options(config);
    let now = chrono::Utc::now();
    Ok(Registry {
        id: r.id.clone(),
        kind: ResourceType::Registry,
        href: format!("{}/api/v1/registries/{}", config.public_url, r.id),
        metadata: Metadata {
            created_by: "config".into(),
            created_date: now,
            last_modified_by: "config".into(),
            last_modified_date: now,
            state: "AVAILABLE".into(),
            last_used_date: None,
            last_used_from: None,
            last_used_grant_type: None,
        },
        properties: RegistryProperties {
            name: r.id.clone(),
            hostname: r.hostname.clone(),
            service: r.service.clone(),
            location: String::new(),
            token_auth: TokenAuth {
                realm: config.realm(),
                service: r.service.clone(),
                issuer: config.jwt.issuer.clone(),
                rootcertbundle: options.bundle.display().to_string(),
                signingalgorithms: algorithms(&options),
                jwks: Some(options.jwks.display().to_string()),
            },
            notifications: Some(crate::api::Notifications {
                url: format!("{}/events/{}", config.public_url, r.id),
                secret: Some(crate::service::activity::load_or_create_secret(
                    &config.data_dir,
                    &r.id,
                )?),
            }),
        },
    })
}

/// The algorithms of the published keys in the keyring's state file, in first-seen order;
/// without one (a server that never started, or keys kept in PostgreSQL) the algorithm of
/// the `[jwt] key` file; nothing when that cannot be read either.
fn algorithms(options: &KeyOptions) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let ring = std::fs::read(&options.state_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Keyring>(&bytes).ok());
    match ring {
        Some(ring) => {
            for k in ring.keys {
                if !out.contains(&k.algorithm) {
                    out.push(k.algorithm);
                }
            }
        }
        None => {
            if let Some(alg) = key_algorithm(&options.legacy_key) {
                out.push(alg.to_string());
            }
        }
    }
    out
}

fn key_algorithm(path: &Path) -> Option<&'static str> {
    let pem = std::fs::read_to_string(path).ok()?;
    SigningKey::from_pkcs8_pem(&pem).ok().map(|k| k.alg())
}
