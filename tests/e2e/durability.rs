//! Each admin write is on disk before its reply: tokens created just before
//! a `kill -9` are there after a restart, and the signing key survives too.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{access, granted, jwt_claims, repo, AdminCall, NewToken, Regauth, Registry};

#[test]
fn tokens_created_before_kill_9_survive_a_restart() {
    let mut regauth = Regauth::start();
    let registry = Registry::start(&regauth, "default");
    let tokens: Vec<_> = (0..20)
        .map(|i| {
            regauth.create_token(
                "default",
                &format!("bot-{i:02}"),
                &[repo("team/*", &["pull", "push"])],
            )
        })
        .collect();
    let patched = &tokens[0];
    regauth.disable_token(patched);
    let deleted = &tokens[1];
    regauth.delete_token(deleted);

    // no graceful shutdown: SIGKILL right after the last reply
    regauth.kill9();
    regauth.restart();

    for t in &tokens[2..] {
        let v = regauth.get_token("default", &t.id);
        assert_eq!(v["properties"]["name"], t.name.as_str(), "{v}");
    }
    let v = regauth.get_token("default", &patched.id);
    assert_eq!(
        v["properties"]["status"], "disabled",
        "the PATCH before kill -9 was lost: {v}"
    );
    let r = regauth.call(AdminCall::get_token("default", &deleted.id));
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "the DELETE before kill -9 was lost: {}",
        r.text()
    );

    // the last token created works: /auth grants, and the registry (started
    // before the restart) still trusts the signing key
    let last = tokens.last().expect("tokens");
    let reply = regauth.token_for(
        &last.name,
        last.password(),
        registry.service(),
        &["repository:team/app:pull"],
    );
    let jwt = reply["token"].as_str().expect("token");
    assert_eq!(
        granted(&jwt_claims(jwt)),
        vec![access("repository", "team/app", &["pull"])]
    );
    let (status, body) = registry.get_with_jwt("/v2/", jwt);
    assert_eq!(
        status,
        StatusCode::OK,
        "registry rejects a JWT signed after the restart (was the key regenerated?): {body}\n{}",
        registry.log_tail()
    );
    let (status, _) = registry.get_with_jwt("/v2/team/app/tags/list", jwt);
    // nothing pushed: 404 (NAME_UNKNOWN) means the JWT was accepted with pull access
    assert_eq!(status, StatusCode::NOT_FOUND, "{}", registry.log_tail());
}

#[test]
fn concurrent_creates_of_one_name_have_exactly_one_winner() {
    let regauth = Regauth::start();
    let create = AdminCall::create_token("default", &NewToken::named("racer").scopes(json!([])));
    let statuses: Vec<StatusCode> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| regauth.call(create.clone()).status))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 7), "statuses: {statuses:?}");
    let list = regauth
        .call(AdminCall::list_tokens("default", ""))
        .expect_ok();
    assert_eq!(list["total"], 1, "{list}");
}
