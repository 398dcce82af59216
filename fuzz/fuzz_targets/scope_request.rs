//! Requested scopes (`scope=` on the token endpoint): `repository:NAME:ACTIONS`,
//! `registry:catalog:*`, `type(class):...`, several separated by spaces; then the access
//! decision over them.
//!
//! Invariants: a parsed list prints back (space-separated) to text that parses to the same
//! list; errors quote at most a short excerpt, escaped so no control character reaches a log;
//! the decision never grants what no scope of the token holds (no escalation).
#![no_main]
use libfuzzer_sys::fuzz_target;
use regauth::domain::{decide, parse_scope, Action, RepositoryName, ScopeList, ScopeTarget};

fuzz_target!(|data: &[u8]| {
    // The server decodes the query or form first, so the parser only ever sees text.
    let text = String::from_utf8_lossy(data);
    let scopes = regauth_fuzz::scopes();
    match parse_scope(&text) {
        Ok(requests) => {
            let pieces = text.split(' ').filter(|p| !p.is_empty()).count();
            assert_eq!(requests.len(), pieces, "{text:?}");
            for r in &requests {
                assert!(!r.kind.is_empty() && !r.name.is_empty() && !r.actions.is_empty());
                assert!(r
                    .kind
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
                assert!(r.actions.iter().all(
                    |a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_lowercase() || b == b'*')
                ));
            }
            let printed = ScopeList(&requests).to_string();
            assert_eq!(
                parse_scope(&printed).as_ref(),
                Ok(&requests),
                "printed {printed:?}"
            );

            for grant in decide(&scopes, &requests) {
                assert!(
                    requests
                        .iter()
                        .any(|r| r.kind == grant.kind && r.name == grant.name),
                    "granted {grant} that was not asked for"
                );
                match grant.kind.as_ref() {
                    "repository" => {
                        assert!(grant.name.parse::<RepositoryName>().is_ok(), "{grant}");
                        for a in &grant.actions {
                            let action: Action = a.parse().expect("granted a known action");
                            let held = scopes.iter().any(|s| match &s.target {
                                ScopeTarget::Repository(p) => {
                                    p.matches(&grant.name)
                                        && (s.actions.contains(action)
                                            || (action == Action::Pull
                                                && s.actions.contains(Action::Push)))
                                }
                                ScopeTarget::Registry(_) => false,
                            });
                            assert!(held, "granted {grant}: no scope holds {a}");
                        }
                    }
                    "registry" => {
                        assert_eq!(grant.name, "catalog");
                        assert_eq!(grant.actions, ["*"]);
                    }
                    other => panic!("granted an unknown type {other:?}"),
                }
            }
        }
        Err(e) => {
            assert!(e.scope.len() <= 103, "error quotes {} bytes", e.scope.len());
            assert!(!e.reason.is_empty());
            let shown = e.to_string();
            assert!(
                !shown.chars().any(char::is_control),
                "a control character reaches the message: {shown:?}"
            );
        }
    }
});
