//! skopeo (containers/image): GET /auth with `account` and repeated scopes;
//! `skopeo delete` asks for `repository:NAME:*` and needs the delete action.

use crate::common::{oci, repo, Regauth, Registry, Skopeo, Verifier, REFUSED};

on_every_verifier!(
    skopeo_copy_and_inspect_work_with_push_and_pull_scopes,
    skopeo_delete_needs_the_delete_action
);

fn creds(t: &crate::common::CreatedToken) -> String {
    format!("{}:{}", t.name, t.password())
}

fn skopeo_copy_and_inspect_work_with_push_and_pull_scopes(verifier: Verifier) {
    let regauth = Regauth::start();
    let registry = Registry::start_on(verifier, &regauth, "default");
    let pusher = regauth.create_token("default", "pusher", &[repo("team/*", &["pull", "push"])]);
    let reader = regauth.create_token("default", "reader", &[repo("team/*", &["pull"])]);
    let skopeo = Skopeo::new();
    let host = registry.host();
    let src = oci::image_layout(skopeo.dir(), "skopeo copy test\n");

    skopeo
        .copy_to(&src, None, &format!("{host}/team/app:1"), &creds(&pusher))
        .expect_success("skopeo copy (push) with the push token");
    skopeo
        .copy_to(&src, None, &format!("{host}/team/app:2"), &creds(&reader))
        .expect_refused("skopeo copy (push) with the pull-only token", REFUSED);

    let out = skopeo.inspect(&format!("{host}/team/app:1"), &creds(&reader));
    out.expect_success("skopeo inspect with the pull-only token");
    let info: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("skopeo inspect output is not JSON ({e}):\n{out}"));
    assert_eq!(info["Name"], format!("{host}/team/app"), "{info}");
    assert_eq!(info["RepoTags"], serde_json::json!(["1"]), "{info}");

    let out = skopeo.run(&[
        "list-tags",
        "--tls-verify=false",
        "--creds",
        &creds(&reader),
        &format!("docker://{host}/team/app"),
    ]);
    out.expect_success("skopeo list-tags with the pull-only token");
    let tags: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("skopeo list-tags output is not JSON ({e}):\n{out}"));
    assert_eq!(tags["Tags"], serde_json::json!(["1"]), "{tags}");

    // registry to registry: pull with the reader, push with the pusher
    skopeo
        .run(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &creds(&reader),
            "--dest-creds",
            &creds(&pusher),
            &format!("docker://{host}/team/app:1"),
            &format!("docker://{host}/team/copy:1"),
        ])
        .expect_success("skopeo copy between repositories");
    skopeo
        .inspect(&format!("{host}/team/copy:1"), &creds(&reader))
        .expect_success("skopeo inspect of the copy");
    skopeo
        .inspect(&format!("{host}/team/app:1"), "reader:rga_wrong")
        .expect_refused("skopeo inspect with a wrong password", &["unauthorized"]);
}

fn skopeo_delete_needs_the_delete_action(verifier: Verifier) {
    let regauth = Regauth::start();
    let registry = Registry::start_on(verifier, &regauth, "default");
    let pusher = regauth.create_token("default", "pusher", &[repo("team/*", &["pull", "push"])]);
    let admin = regauth.create_token(
        "default",
        "janitor",
        &[repo("team/*", &["pull", "push", "delete"])],
    );
    let skopeo = Skopeo::new();
    let host = registry.host();
    let image = format!("{host}/team/app:1");
    let src = oci::image_layout(skopeo.dir(), "skopeo delete test\n");
    skopeo
        .copy_to(&src, None, &image, &creds(&pusher))
        .expect_success("skopeo copy (push)");

    skopeo
        .delete(&image, &creds(&pusher))
        .expect_refused("skopeo delete with pull,push only", REFUSED);
    skopeo
        .inspect(&image, &creds(&pusher))
        .expect_success("the image survives a refused delete");

    skopeo
        .delete(&image, &creds(&admin))
        .expect_success("skopeo delete with the delete action");
    skopeo.inspect(&image, &creds(&admin)).expect_refused(
        "skopeo inspect after the delete",
        &["manifest unknown", "not found"],
    );
}
