//! `/metrics` of the metrics listener: each token request, admin write and throttled request
//! moves its series by exactly one, the store's contents are served as last counted, the text
//! is well-formed OpenMetrics, and the main listener has no `/metrics`.
use std::collections::HashMap;

use axum::http::StatusCode;
use chrono::TimeDelta;
use serde_json::json;

use crate::support::*;

/// The samples of an OpenMetrics text, `name{labels}` -> value, after checking its shape:
/// every family declared by `# TYPE` before its samples, every sample of the latest family,
/// every value a number, `# EOF` last.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut family: Option<(String, String)> = None;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "{text}");
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "info", "unknown"].contains(&kind),
                "{line}"
            );
            family = Some((name.to_string(), kind.to_string()));
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap();
        let (fam, kind) = family
            .as_ref()
            .unwrap_or_else(|| panic!("no # TYPE before {line}"));
        let suffixes: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            _ => &[""],
        };
        assert!(
            suffixes.iter().any(|s| name == format!("{fam}{s}")),
            "{name} outside its family {fam} ({kind})"
        );
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "duplicate series {series}"
        );
    }
    samples
}

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {samples:#?}"))
}

#[tokio::test]
async fn every_request_moves_its_series_by_exactly_one() {
    let app = TestApp::new();
    let scopes = json!([{"type": "repository", "name": "team/*", "actions": ["pull"]}]);
    let (_, pw) = app.create("ci-bot", scopes).await;
    let before = parse(&app.scrape().await);
    let decision = |outcome: &str, reason: &str| {
        format!("regauth_token_decisions_total{{outcome=\"{outcome}\",reason=\"{reason}\"}}")
    };
    for (outcome, reason) in [
        ("issued", ""),
        ("denied", "wrong_secret"),
        ("denied", "unknown_name"),
        ("denied", "token_expired"),
        ("error", ""),
    ] {
        assert_eq!(
            get(&before, &decision(outcome, reason)),
            0.0,
            "{outcome} {reason}"
        );
    }

    let pull = "service=registry.local&scope=repository:team/app:pull";
    for _ in 0..3 {
        assert_eq!(
            app.auth_get("ci-bot", &pw, pull).await.status,
            StatusCode::OK
        );
    }
    let push = "service=registry.local&scope=repository:other/app:push";
    assert_eq!(
        app.auth_get("ci-bot", &pw, push).await.status,
        StatusCode::OK
    );
    for _ in 0..2 {
        let r = app.auth_get("ci-bot", "rga_wrong", pull).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app.auth_get("nobody", &pw, pull).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .auth_get("ci-bot", &pw, "service=registry.nowhere")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // No credentials (and no public repositories): a denial of its own.
    let r = app.get("/auth?service=registry.local", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let refresh = app
        .auth_post(&format!(
            "grant_type=password&username=ci-bot&password={pw}&service=registry.local&access_type=offline"
        ))
        .await;
    assert_eq!(refresh.status, StatusCode::OK);

    let throttled = app.state.metrics.throttled("auth");
    throttled.inc();
    throttled.inc();
    app.state.metrics.throttled("admin").inc();

    let after = parse(&app.scrape().await);
    for (outcome, reason, n) in [
        ("issued", "", 4.0),
        ("nothing_granted", "", 1.0),
        ("denied", "wrong_secret", 2.0),
        ("denied", "unknown_name", 1.0),
        ("denied", "token_disabled", 0.0),
        ("denied", "no_credentials", 1.0),
        ("unknown_service", "", 1.0),
        ("error", "", 0.0),
    ] {
        assert_eq!(
            get(&after, &decision(outcome, reason)),
            n,
            "{outcome} {reason}"
        );
    }
    let count = "regauth_token_request_duration_seconds_count";
    assert_eq!(get(&after, count) - get(&before, count), 10.0);
    let buckets: Vec<(&String, &f64)> = after
        .iter()
        .filter(|(k, _)| k.starts_with("regauth_token_request_duration_seconds_bucket"))
        .collect();
    assert_eq!(buckets.len(), 13, "12 bounds and +Inf: {buckets:?}");
    assert_eq!(
        get(
            &after,
            "regauth_token_request_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        10.0
    );
    assert!(get(&after, "regauth_token_request_duration_seconds_sum") > 0.0);
    assert_eq!(
        get(
            &after,
            "regauth_throttled_requests_total{endpoint=\"auth\"}"
        ),
        2.0
    );
    assert_eq!(
        get(
            &after,
            "regauth_throttled_requests_total{endpoint=\"admin\"}"
        ),
        1.0
    );
    assert!(get(&after, "process_resident_memory_bytes") > 0.0);
    assert!(get(&after, "process_open_fds") > 0.0);
    assert!(get(&after, "process_cpu_seconds_total") > 0.0);

    // The main listener serves no metrics.
    let r = app.get("/metrics", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// The store's contents, as the background pass counts them: tokens per registry, tokens
/// that expire within 7 days (not those later, nor those already expired), refresh tokens.
#[tokio::test]
async fn store_contents_are_served_as_last_counted() {
    let app = TestApp::with(|c| {
        c.registries.push(regauth::config::RegistryConfig::new(
            "staging",
            "registry.staging",
            "staging:5000",
        ))
    });
    let now = app.clock.now();
    let at = |d: TimeDelta| (now + d).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (name, expiry) in [
        ("soon", Some(at(TimeDelta::days(2)))),
        ("week", Some(at(TimeDelta::days(7)))),
        ("later", Some(at(TimeDelta::days(8)))),
        ("never", None),
    ] {
        let mut token = NewToken::named(name);
        if let Some(e) = expiry {
            token = token.expiry(&e);
        }
        let r = app.call(AdminCall::create_token("default", &token)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{name}");
    }
    let spw = app
        .create_token("staging", &NewToken::named("stage-bot"))
        .await
        .password()
        .to_string();
    for _ in 0..2 {
        let r = app
            .auth_get(
                "stage-bot",
                &spw,
                "service=registry.staging&offline_token=true",
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }

    let before = parse(&app.scrape().await);
    assert_eq!(
        get(&before, "regauth_refresh_tokens"),
        0.0,
        "not counted yet"
    );
    assert_eq!(get(&before, "regauth_store_stats_timestamp_seconds"), 0.0);

    let stats = app
        .state
        .admin
        .store_stats(&["default".into(), "staging".into()], TimeDelta::days(7))
        .await
        .unwrap();
    app.state.metrics.set_store_stats(&stats, 1_780_000_000.0);
    let after = parse(&app.scrape().await);
    assert_eq!(get(&after, "regauth_tokens{registry=\"default\"}"), 4.0);
    assert_eq!(get(&after, "regauth_tokens{registry=\"staging\"}"), 1.0);
    assert_eq!(
        get(&after, "regauth_tokens_expiring_soon{registry=\"default\"}"),
        2.0
    );
    assert_eq!(
        get(&after, "regauth_tokens_expiring_soon{registry=\"staging\"}"),
        0.0
    );
    assert_eq!(get(&after, "regauth_refresh_tokens"), 2.0);
    assert_eq!(
        get(&after, "regauth_store_stats_timestamp_seconds"),
        1_780_000_000.0
    );
}
