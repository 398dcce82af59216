//! Issue 11, finding 3, with the real clients: wrong `docker login`s get 429 from regauth, and
//! what docker, skopeo and containerd's `ctr` then print and do (none retries); a success
//! forgives the owner's typos; parallel correct logins of one token are never refused.
use crate::common::{repo, DockerClient, Regauth, Registry, Skopeo};

/// `throttled` token decisions in the log so far.
fn throttled(regauth: &Regauth) -> usize {
    regauth
        .log()
        .lines()
        .filter(|l| l.contains("token decision") && l.contains("throttled"))
        .count()
}

#[test]
fn wrong_docker_logins_are_throttled_and_the_clients_say_so() {
    let regauth = Regauth::builder()
        .limit("auth_failures", 5)
        .limit("denial_log_lines", 1000)
        .start();
    let registry = Registry::start(&regauth, "default");
    let token = regauth.create_token("default", "ci-bot", &[repo("team/*", &["pull", "push"])]);
    let host = registry.host();

    // Sixteen logins at once, right password, from one address (dockerd's): never refused.
    let logins: Vec<_> = (0..16)
        .map(|_| {
            let (host, name, pass) = (host.clone(), token.name.clone(), token.password.clone());
            std::thread::spawn(move || DockerClient::new().login(&host, &name, &pass))
        })
        .collect();
    for l in logins {
        l.join().unwrap().expect_success("parallel docker login");
    }

    let docker = DockerClient::new();
    let wrong = format!("{}x", token.password);
    // Four typos, then the right password: forgiven, so four more typos are no lockout.
    for round in 0..2 {
        for _ in 0..4 {
            docker
                .login(&host, &token.name, &wrong)
                .expect_refused("docker login with a wrong password", &["unauthorized"]);
        }
        docker
            .login(&host, &token.name, &token.password)
            .expect_success(&format!("docker login after four typos (round {round})"));
    }
    // Five failures in a row lock the address out.
    for _ in 0..5 {
        docker
            .login(&host, &token.name, &wrong)
            .expect_refused("docker login with a wrong password", &["unauthorized"]);
    }
    let before = throttled(&regauth);
    let out = docker.login(&host, &token.name, &token.password);
    eprintln!(
        "docker login when locked out:\n{}\n{}",
        out.stdout, out.stderr
    );
    // docker shows the registry error code and regauth's message, asks once, and gives up.
    out.expect_refused(
        "docker login while locked out",
        &["toomanyrequests: too many failed authentications from this address; retry after"],
    );
    assert_eq!(throttled(&regauth) - before, 1, "{}", regauth.log_tail());

    // Another client address is served: the lockout is this address's.
    let other = reqwest::blocking::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().ok())
        .build()
        .unwrap();
    let r = other
        .get(format!("{}/auth?service=registry.local", regauth.url()))
        .basic_auth(&token.name, Some(&token.password))
        .send()
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);

    // skopeo with the right password, from the same address.
    let skopeo = Skopeo::new();
    let before = throttled(&regauth);
    let creds = format!("{}:{}", token.name, token.password);
    let out = skopeo.inspect(&format!("{host}/team/app:1"), &creds);
    eprintln!("skopeo inspect when locked out:\n{out}");
    out.expect_refused(
        "skopeo inspect while locked out",
        &["too many requests to registry"],
    );
    let skopeo_tries = throttled(&regauth) - before;

    // containerd's ctr, through the shared dockerd's containerd.
    let before = throttled(&regauth);
    let out = docker.dockerd().ctr(
        "regauth-throttle",
        &[
            "images",
            "pull",
            "--plain-http",
            "--user",
            &creds,
            &format!("{host}/team/app:1"),
        ],
    );
    eprintln!("ctr pull when locked out:\n{}\n{}", out.stdout, out.stderr);
    out.expect_refused(
        "ctr pull while locked out",
        &["unexpected status: 429 Too Many Requests"],
    );
    let ctr_tries = throttled(&regauth) - before;
    // Neither retries.
    assert_eq!(
        (skopeo_tries, ctr_tries),
        (1, 1),
        "token requests of skopeo and ctr"
    );
}

/// Under a flood the log keeps its first lines per address and interval, then one summary.
#[test]
fn a_flood_of_denials_is_summed_up_in_the_log() {
    let regauth = Regauth::builder()
        .limit("auth_failures", 0)
        .limit("name_failures", 0)
        .limit("admin_failures", 0)
        .limit("denial_log_lines", 3)
        .limit("denial_log_interval_seconds", 1)
        .start();
    let client = reqwest::blocking::Client::builder()
        .local_address("127.0.0.3".parse::<std::net::IpAddr>().ok())
        .build()
        .unwrap();
    let start = std::time::Instant::now();
    for _ in 0..200 {
        let r = client
            .get(format!("{}/auth?service=registry.local", regauth.url()))
            .basic_auth("nobody", Some("guess"))
            .send()
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
        let r = client
            .get(format!("{}/api/v1/registries", regauth.url()))
            .bearer_auth("not-the-admin-token")
            .send()
            .unwrap();
        assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    }
    crate::common::wait_for(
        std::time::Duration::from_secs(10),
        || {
            let log = regauth.log();
            let summed: u64 = log
                .lines()
                .filter(|l| l.contains("more denials from 127.0.0.3 in the last 1 s"))
                .filter_map(|l| {
                    l.split("suppressed=")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum();
            let single = log
                .lines()
                .filter(|l| {
                    l.contains("client=127.0.0.3")
                        && (l.contains("token decision")
                            || l.contains("admin authentication failed"))
                })
                .count() as u64;
            (single + summed == 400).then_some(())
        },
        || format!("400 denials, logged or summed up\n{}", regauth.log_tail()),
    );
    let single = regauth
        .log()
        .lines()
        .filter(|l| l.contains("client=127.0.0.3") && l.contains("outcome=\"denied\""))
        .count();
    // Three per address and one-second interval, whatever the rate.
    let intervals = start.elapsed().as_secs() + 2;
    assert!(
        single as u64 <= 3 * intervals,
        "{single} denials logged one by one in {intervals} intervals"
    );
}
