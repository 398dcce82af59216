//! One regauth for several registries (one per environment): a token belongs
//! to exactly one of them and works only against that registry's service.

use crate::common::{jwt_claims, oci, repo, DockerClient, Regauth, Registry, Skopeo, REFUSED};

#[test]
fn a_token_works_only_for_its_own_registry() {
    let regauth = Regauth::builder()
        .registry("prod", "registry.prod", "prod.example:5000")
        .registry("staging", "registry.staging", "staging.example:5000")
        .ttl_seconds(120)
        .start();
    let prod = Registry::start(&regauth, "prod");
    let staging = Registry::start(&regauth, "staging");
    let scopes = [repo("team/*", &["pull", "push"])];
    let stager = regauth.create_token("staging", "deployer", &scopes);
    // the same name may exist in another registry, with its own password
    let prodder = regauth.create_token("prod", "deployer", &scopes);
    assert_ne!(stager.password(), prodder.password());

    let docker = DockerClient::new();
    docker
        .login(&staging.host(), &stager.name, stager.password())
        .expect_success("docker login to the token's registry");
    docker
        .login(&prod.host(), &stager.name, stager.password())
        .expect_refused("docker login to another registry", &["unauthorized"]);
    docker
        .login(&prod.host(), &prodder.name, prodder.password())
        .expect_success("docker login to prod with prod's token of the same name");

    let skopeo = Skopeo::new();
    let src = oci::image_layout(skopeo.dir(), "registries test\n");
    let creds = format!("{}:{}", stager.name, stager.password());
    skopeo
        .copy_to(
            &src,
            None,
            &format!("{}/team/app:1", staging.host()),
            &creds,
        )
        .expect_success("skopeo push to the token's registry");
    skopeo
        .copy_to(&src, None, &format!("{}/team/app:1", prod.host()), &creds)
        .expect_refused("skopeo push to another registry", REFUSED);

    // the configured TTL is what the JWT and the reply say
    let reply = regauth.token_for(
        &stager.name,
        stager.password(),
        "registry.staging",
        &["repository:team/app:pull"],
    );
    assert_eq!(
        reply["expires_in"], 120,
        "expires_in with ttl_seconds = 120: {reply}"
    );
    let claims = jwt_claims(reply["token"].as_str().expect("token"));
    assert_eq!(claims["aud"], "registry.staging", "{claims}");
    let lifetime =
        claims["exp"].as_i64().unwrap_or_default() - claims["iat"].as_i64().unwrap_or_default();
    assert_eq!(lifetime, 120, "exp - iat: {claims}");

    // an unknown service is a client error, not a login failure
    let resp = regauth.get_auth(
        &stager.name,
        stager.password(),
        "registry.nowhere",
        &[],
        &[],
    );
    assert_eq!(
        resp.status(),
        reqwest::StatusCode::BAD_REQUEST,
        "unknown service: {:?}",
        resp.text()
    );
}
