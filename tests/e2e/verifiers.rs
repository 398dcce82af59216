//! Every registry verifier starts with the `auth: token:` block `regauth registry-config`
//! prints, as printed, and accepts the tokens regauth signs with an ES256 (the default) or an
//! RS256 key.

use std::path::PathBuf;

use reqwest::StatusCode;

use crate::common::{repo, scope, Regauth, Registry, Verifier};

on_every_verifier!(
    the_printed_registry_config_starts_it_and_es256_tokens_pass,
    rs256_tokens_pass,
);

/// A registry-scoped token from `regauth` lists the catalog of `registry` (200): the
/// registry verified the JWT's signature, issuer, audience and times.
#[track_caller]
fn catalog_is_listed(regauth: &Regauth, registry: &Registry) {
    let lister = regauth.create_token(
        "default",
        "lister",
        &[
            scope("registry", "catalog", &["pull"]),
            repo("team/*", &["pull"]),
        ],
    );
    let reply = regauth.token_for(
        &lister.name,
        lister.password(),
        registry.service(),
        &["registry:catalog:*"],
    );
    let jwt = reply["token"].as_str().expect("token in /auth reply");
    let (status, body) = registry.get_with_jwt("/v2/_catalog", jwt);
    assert_eq!(
        status,
        StatusCode::OK,
        "{} refused regauth's token: {body}\n{}",
        registry.verifier().name(),
        registry.log_tail()
    );
}

fn the_printed_registry_config_starts_it_and_es256_tokens_pass(verifier: Verifier) {
    let regauth = Regauth::start();
    let printed = regauth.registry_config("default");
    let registry = Registry::start_on(verifier, &regauth, "default");
    let config = std::fs::read_to_string(registry.config_path()).expect("registry config");
    assert!(
        config.ends_with(&printed),
        "the registry's config must end with the printed block, as printed:\n{config}"
    );
    catalog_is_listed(&regauth, &registry);
}

fn rs256_tokens_pass(verifier: Verifier) {
    let key = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rs256.key");
    let regauth = Regauth::builder().signing_key(&key).start();
    let registry = Registry::start_on(verifier, &regauth, "default");
    catalog_is_listed(&regauth, &registry);
}
