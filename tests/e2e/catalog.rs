//! `GET /v2/_catalog` needs `registry:catalog:*`, which regauth grants only to
//! tokens with a registry scope.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{
    access, granted, jwt_claims, oci, repo, scope, Regauth, Registry, Skopeo, Verifier,
};

on_every_verifier!(catalog_is_listed_only_with_a_registry_scope);

fn catalog_is_listed_only_with_a_registry_scope(verifier: Verifier) {
    let regauth = Regauth::start();
    let registry = Registry::start_on(verifier, &regauth, "default");
    let pusher = regauth.create_token("default", "pusher", &[repo("team/*", &["pull", "push"])]);
    let lister = regauth.create_token(
        "default",
        "lister",
        &[
            scope("registry", "catalog", &["pull"]),
            repo("team/*", &["pull"]),
        ],
    );

    // something to list
    let skopeo = Skopeo::new();
    let src = oci::image_layout(skopeo.dir(), "catalog test\n");
    for path in ["team/app", "team/sub/app"] {
        skopeo
            .copy_to(
                &src,
                None,
                &format!("{}/{path}:1", registry.host()),
                &format!("{}:{}", pusher.name, pusher.password()),
            )
            .expect_success("skopeo copy (push)");
    }

    // with a registry scope: the JWT carries registry:catalog:* and the registry lists
    let reply = regauth.token_for(
        &lister.name,
        lister.password(),
        registry.service(),
        &["registry:catalog:*"],
    );
    let jwt = reply["token"].as_str().expect("token in /auth reply");
    assert_eq!(
        granted(&jwt_claims(jwt)),
        vec![access("registry", "catalog", &["*"])],
        "claims: {}",
        jwt_claims(jwt)
    );
    let catalog = registry.get_json("/v2/_catalog", jwt);
    assert_eq!(
        catalog["repositories"],
        json!(["team/app", "team/sub/app"]),
        "catalog: {catalog}"
    );

    // without one: /auth still answers 200, but grants nothing, and the registry says 401
    let reply = regauth.token_for(
        &pusher.name,
        pusher.password(),
        registry.service(),
        &["registry:catalog:*"],
    );
    let jwt = reply["token"].as_str().expect("token in /auth reply");
    assert!(
        granted(&jwt_claims(jwt)).is_empty(),
        "a token without a registry scope must get no catalog access: {}",
        jwt_claims(jwt)
    );
    let (status, body) = registry.get_with_jwt("/v2/_catalog", jwt);
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "catalog without the scope: {body}"
    );
}
