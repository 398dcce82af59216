//! The conformance suite: every [`Store`](super::Store) implementation must pass each
//! function here. `memory`, `sled` and `postgres` below instantiate it (one `#[tokio::test]`
//! per function, on a multi-threaded runtime so that racing calls really race);
//! backend-specific tests live beside each backend. Test-only.
use futures_util::future::join_all;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{RefreshGrant, Store, StoreError};
use crate::domain::{SecretHash, Status, Token};

pub(crate) use crate::testing::{t0, token};

/// Named admins: create, unique names, replace, list sorted, delete.
pub(crate) async fn admins_create_replace_delete(s: &dyn Store) {
    use crate::domain::{Admin, Role};
    let admin = |name: &str, role: Role| Admin {
        name: name.parse().unwrap(),
        role,
        registries: vec!["dev".into()],
        secret_hash: SecretHash([3; 32]),
        created: t0(),
        created_by: "bootstrap".into(),
        rotated: None,
    };
    assert!(s.admins().await.unwrap().is_empty());
    s.put_admin(&admin("zed", Role::Viewer), false)
        .await
        .unwrap();
    s.put_admin(&admin("alice", Role::Editor), false)
        .await
        .unwrap();
    assert!(matches!(
        s.put_admin(&admin("alice", Role::Owner), false).await,
        Err(StoreError::NameTaken(n)) if n == "alice"
    ));
    assert!(matches!(
        s.put_admin(&admin("nobody", Role::Owner), true).await,
        Err(StoreError::NotFound)
    ));
    let mut rotated = admin("alice", Role::Editor);
    rotated.secret_hash = SecretHash([4; 32]);
    rotated.rotated = Some(t0());
    s.put_admin(&rotated, true).await.unwrap();
    let all = s.admins().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], rotated);
    assert_eq!(all[1].name.as_str(), "zed");
    assert!(s.delete_admin("zed").await.unwrap());
    assert!(!s.delete_admin("zed").await.unwrap());
    assert_eq!(s.admins().await.unwrap(), vec![rotated]);
}

pub(crate) fn expiring(registry: &str, name: &str, at: DateTime<Utc>) -> Token {
    Token {
        expiry: Some(at),
        ..token(registry, name)
    }
}

pub(crate) fn grant(t: &Token, seed: u8, created: DateTime<Utc>) -> RefreshGrant {
    RefreshGrant {
        hash: SecretHash([seed; 32]),
        token_id: t.id,
        registry: t.registry.clone(),
        token_name: t.name.to_string(),
        service: "registry.local".to_string(),
        created,
        federated: None,
    }
}

fn names(tokens: &[Token]) -> Vec<String> {
    tokens.iter().map(|t| t.name.to_string()).collect()
}

pub(crate) async fn create_get_find(s: &dyn Store) {
    let t = expiring("default", "ci-bot", t0() + Duration::hours(2));
    s.create(&t).await.unwrap();
    assert_eq!(s.get("default", t.id).await.unwrap(), Some(t.clone()));
    assert_eq!(
        s.find_by_name("default", "ci-bot")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        Some(t.clone())
    );
    assert_eq!(
        s.get("other", t.id).await.unwrap(),
        None,
        "id in another registry"
    );
    assert_eq!(s.get("default", Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(
        s.find_by_name("default", "nobody")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        None
    );
    assert_eq!(
        s.find_by_name("other", "ci-bot")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        None
    );
    // A registry whose id is a prefix of another's must not see its tokens.
    assert_eq!(
        s.find_by_name("defaul", "tci-bot")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        None
    );
    assert_eq!(s.list("defaul", 0, 10).await.unwrap().total, 0);
}

/// Networks, owner and description are stored as given, through create and update, and
/// the owner filter matches exactly.
pub(crate) async fn policy_fields_round_trip(s: &dyn Store) {
    let mut t = token("default", "owned");
    t.networks = vec![
        "10.0.0.0/8".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
        "192.0.2.7".parse().unwrap(),
    ];
    t.owner = Some("alice@example.com".parse().unwrap());
    t.description = Some("CI pushes to team/* — rotated monthly".parse().unwrap());
    s.create(&t).await.unwrap();
    assert_eq!(s.get("default", t.id).await.unwrap(), Some(t.clone()));
    assert_eq!(
        s.find_by_name("default", "owned")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        Some(t.clone())
    );
    let mut other = token("default", "also-owned");
    other.owner = t.owner.clone();
    s.create(&other).await.unwrap();
    s.create(&token("default", "nobodys")).await.unwrap();
    let mut elsewhere = token("staging", "owned");
    elsewhere.owner = t.owner.clone();
    s.create(&elsewhere).await.unwrap();
    let mut similar = token("default", "similar");
    similar.owner = Some("alice@example.co".parse().unwrap());
    s.create(&similar).await.unwrap();

    let page = s
        .list_by_owner("default", "alice@example.com", 0, 10)
        .await
        .unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(names(&page.items), ["also-owned", "owned"]);
    let page = s
        .list_by_owner("default", "alice@example.com", 1, 10)
        .await
        .unwrap();
    assert_eq!(
        (page.total, names(&page.items)),
        (2, vec!["owned".to_string()])
    );
    assert_eq!(
        s.list_by_owner("default", "alice", 0, 10)
            .await
            .unwrap()
            .total,
        0
    );

    // Changed and removed by an update.
    let mut changed = t.clone();
    changed.networks = vec!["::1".parse().unwrap()];
    changed.owner = Some("bob".parse().unwrap());
    changed.description = None;
    s.update(&changed).await.unwrap();
    assert_eq!(s.get("default", t.id).await.unwrap(), Some(changed.clone()));
    assert_eq!(
        names(
            &s.list_by_owner("default", "alice@example.com", 0, 10)
                .await
                .unwrap()
                .items
        ),
        ["also-owned"]
    );
    assert_eq!(
        names(
            &s.list_by_owner("default", "bob", 0, 10)
                .await
                .unwrap()
                .items
        ),
        ["owned"]
    );
    changed.networks.clear();
    changed.owner = None;
    s.update(&changed).await.unwrap();
    assert_eq!(s.get("default", t.id).await.unwrap(), Some(changed));
    assert_eq!(
        s.list_by_owner("default", "bob", 0, 10)
            .await
            .unwrap()
            .total,
        0
    );
}

pub(crate) async fn name_unique_per_registry(s: &dyn Store) {
    let a = token("default", "deploy");
    s.create(&a).await.unwrap();
    let clash = token("default", "deploy");
    assert!(matches!(s.create(&clash).await, Err(StoreError::NameTaken(n)) if n == "deploy"));
    let elsewhere = token("staging", "deploy");
    s.create(&elsewhere).await.unwrap();
    assert_eq!(
        s.find_by_name("default", "deploy")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        Some(a)
    );
    assert_eq!(
        s.find_by_name("staging", "deploy")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        Some(elsewhere)
    );
    assert_eq!(s.count().await.unwrap(), 2);
}

pub(crate) async fn id_unique_everywhere(s: &dyn Store) {
    let a = token("default", "first");
    s.create(&a).await.unwrap();
    let same_id = Token {
        id: a.id,
        ..token("staging", "second")
    };
    assert!(matches!(s.create(&same_id).await, Err(StoreError::IdTaken(id)) if id == a.id));
    assert_eq!(
        s.find_by_name("staging", "second")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        None
    );
    assert_eq!(s.count().await.unwrap(), 1);
}

pub(crate) async fn list_sorted_paged(s: &dyn Store) {
    for name in ["delta", "alpha", "echo", "charlie", "bravo"] {
        s.create(&token("default", name)).await.unwrap();
    }
    s.create(&token("other", "aaa")).await.unwrap();
    s.create(&token("default-2", "zzz")).await.unwrap();

    let all = s.list("default", 0, 100).await.unwrap();
    assert_eq!(all.total, 5);
    assert_eq!(
        names(&all.items),
        ["alpha", "bravo", "charlie", "delta", "echo"]
    );

    let page = s.list("default", 1, 2).await.unwrap();
    assert_eq!(page.total, 5);
    assert_eq!(names(&page.items), ["bravo", "charlie"]);

    let tail = s.list("default", 4, 10).await.unwrap();
    assert_eq!(names(&tail.items), ["echo"]);
    let past = s.list("default", 9, 10).await.unwrap();
    assert!(past.items.is_empty());
    assert_eq!(past.total, 5);
    assert!(s.list("default", 0, 0).await.unwrap().items.is_empty());

    let empty = s.list("nowhere", 0, 10).await.unwrap();
    assert_eq!((empty.items.len(), empty.total), (0, 0));
    assert_eq!(s.count().await.unwrap(), 7);
}

pub(crate) async fn list_matching_filters_by_substring(s: &dyn Store) {
    for name in ["ci-bot", "ci-pusher", "deploy-bot", "reader", "bot-one"] {
        s.create(&token("default", name)).await.unwrap();
    }
    s.create(&token("other", "other-bot")).await.unwrap();

    let bots = s.list_matching("default", "bot", 0, 100).await.unwrap();
    assert_eq!(bots.total, 3);
    assert_eq!(names(&bots.items), ["bot-one", "ci-bot", "deploy-bot"]);

    let page = s.list_matching("default", "bot", 1, 1).await.unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(names(&page.items), ["ci-bot"]);
    let past = s.list_matching("default", "bot", 5, 10).await.unwrap();
    assert_eq!((past.items.len(), past.total), (0, 3));

    let ci = s.list_matching("default", "ci-", 0, 100).await.unwrap();
    assert_eq!(names(&ci.items), ["ci-bot", "ci-pusher"]);
    let none = s.list_matching("default", "zzz", 0, 100).await.unwrap();
    assert_eq!((none.items.len(), none.total), (0, 0));
    let all = s.list_matching("default", "", 0, 2).await.unwrap();
    assert_eq!(names(&all.items), ["bot-one", "ci-bot"]);
    assert_eq!(all.total, 5);
    assert_eq!(
        s.list_matching("nowhere", "bot", 0, 10)
            .await
            .unwrap()
            .total,
        0
    );
}

pub(crate) async fn update_replaces_and_reindexes(s: &dyn Store) {
    let t = expiring("default", "rotating", t0() + Duration::hours(2));
    s.create(&t).await.unwrap();

    // Move the expiry later: the old instant must no longer delete it.
    let later = Token {
        status: Status::Disabled,
        expiry: Some(t0() + Duration::hours(5)),
        modified: t0() + Duration::minutes(1),
        modified_by: "ops".to_string(),
        ..t.clone()
    };
    s.update(&later).await.unwrap();
    assert_eq!(s.get("default", t.id).await.unwrap(), Some(later.clone()));
    assert_eq!(
        s.find_by_name("default", "rotating")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        Some(later.clone())
    );
    assert!(s
        .delete_expired(t0() + Duration::hours(3))
        .await
        .unwrap()
        .is_empty());

    // Remove the expiry altogether: never deleted by expiry.
    let forever = Token {
        expiry: None,
        ..later.clone()
    };
    s.update(&forever).await.unwrap();
    assert!(s
        .delete_expired(t0() + Duration::days(3650))
        .await
        .unwrap()
        .is_empty());

    // Set one again: now it is indexed.
    let soon = Token {
        expiry: Some(t0() + Duration::hours(1)),
        ..forever
    };
    s.update(&soon).await.unwrap();
    assert_eq!(
        s.delete_expired(t0() + Duration::hours(1)).await.unwrap(),
        vec![soon]
    );
    assert_eq!(s.count().await.unwrap(), 0);
}

pub(crate) async fn update_not_found(s: &dyn Store) {
    let t = token("default", "ghost");
    assert!(matches!(s.update(&t).await, Err(StoreError::NotFound)));
    s.create(&t).await.unwrap();
    let wrong_registry = Token {
        registry: "staging".to_string(),
        ..t.clone()
    };
    assert!(matches!(
        s.update(&wrong_registry).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get("default", t.id).await.unwrap(), Some(t));
    assert_eq!(s.count().await.unwrap(), 1);
}

/// Callers forbid renames; if one slips through, the indexes still agree.
pub(crate) async fn update_rename_keeps_indexes(s: &dyn Store) {
    let t = token("default", "old-name");
    let taken = token("default", "taken");
    s.create(&t).await.unwrap();
    s.create(&taken).await.unwrap();
    let clash = Token {
        name: "taken".parse().unwrap(),
        ..t.clone()
    };
    assert!(matches!(
        s.update(&clash).await,
        Err(StoreError::NameTaken(_))
    ));
    assert_eq!(
        s.find_by_name("default", "old-name")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        Some(t.clone())
    );

    let renamed = Token {
        name: "new-name".parse().unwrap(),
        ..t.clone()
    };
    s.update(&renamed).await.unwrap();
    assert_eq!(
        s.find_by_name("default", "old-name")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        None
    );
    assert_eq!(
        s.find_by_name("default", "new-name")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        Some(renamed.clone())
    );
    assert_eq!(s.get("default", t.id).await.unwrap(), Some(renamed));
    assert_eq!(s.list("default", 0, 10).await.unwrap().total, 2);
    assert_eq!(s.count().await.unwrap(), 2);
}

pub(crate) async fn delete_removes_token_and_grants(s: &dyn Store) {
    let t = expiring("default", "doomed", t0() + Duration::hours(2));
    let other = token("default", "survivor");
    s.create(&t).await.unwrap();
    s.create(&other).await.unwrap();
    s.add_refresh(&grant(&t, 1, t0()), 10).await.unwrap();
    s.add_refresh(&grant(&other, 2, t0()), 10).await.unwrap();

    assert!(!s.delete("staging", t.id).await.unwrap(), "wrong registry");
    assert!(s.get("default", t.id).await.unwrap().is_some());

    assert!(s.delete("default", t.id).await.unwrap());
    assert!(!s.delete("default", t.id).await.unwrap(), "second delete");
    assert!(!s.delete("default", Uuid::new_v4()).await.unwrap());
    assert_eq!(s.get("default", t.id).await.unwrap(), None);
    assert_eq!(
        s.find_by_name("default", "doomed")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        None
    );
    assert_eq!(s.find_refresh(&SecretHash([1; 32])).await.unwrap(), None);
    assert!(s
        .find_refresh(&SecretHash([2; 32]))
        .await
        .unwrap()
        .is_some());
    assert_eq!(s.list("default", 0, 10).await.unwrap().total, 1);
    assert_eq!(s.count().await.unwrap(), 1);
    // Its expiry entry went with it.
    assert!(s
        .delete_expired(t0() + Duration::days(1))
        .await
        .unwrap()
        .is_empty());

    // The name and the id are free again.
    s.create(&t).await.unwrap();
    assert_eq!(
        s.find_by_name("default", "doomed")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        Some(t)
    );
}

pub(crate) async fn delete_expired_boundaries(s: &dyn Store) {
    let now = t0() + Duration::days(1);
    let past = expiring("default", "past", now - Duration::hours(1));
    let exactly = expiring("staging", "exactly-now", now);
    let sub_ms_before = expiring(
        "default",
        "sub-ms-before",
        now - Duration::microseconds(300),
    );
    let sub_ms_after = expiring("default", "sub-ms-after", now + Duration::microseconds(300));
    let future = expiring("default", "future", now + Duration::milliseconds(1));
    let pre_epoch = expiring(
        "default",
        "pre-epoch",
        DateTime::UNIX_EPOCH - Duration::days(1),
    );
    let never = token("default", "never");
    for t in [
        &past,
        &exactly,
        &sub_ms_before,
        &sub_ms_after,
        &future,
        &pre_epoch,
        &never,
    ] {
        s.create(t).await.unwrap();
    }
    s.add_refresh(&grant(&past, 9, t0()), 10).await.unwrap();

    let mut gone = s.delete_expired(now).await.unwrap();
    gone.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        names(&gone),
        ["exactly-now", "past", "pre-epoch", "sub-ms-before"]
    );
    assert_eq!(gone.iter().find(|t| t.id == past.id), Some(&past));

    for t in [&past, &exactly, &sub_ms_before, &pre_epoch] {
        assert_eq!(s.get(&t.registry, t.id).await.unwrap(), None, "{}", t.name);
        assert_eq!(
            s.find_by_name(&t.registry, t.name.as_str())
                .await
                .unwrap()
                .as_deref()
                .cloned(),
            None
        );
    }
    for t in [&sub_ms_after, &future, &never] {
        assert_eq!(
            s.get("default", t.id).await.unwrap().as_ref(),
            Some(t),
            "{}",
            t.name
        );
    }
    assert_eq!(s.find_refresh(&SecretHash([9; 32])).await.unwrap(), None);
    assert_eq!(s.list("default", 0, 10).await.unwrap().total, 3);
    assert_eq!(s.list("staging", 0, 10).await.unwrap().total, 0);
    assert_eq!(s.count().await.unwrap(), 3);

    assert!(
        s.delete_expired(now).await.unwrap().is_empty(),
        "idempotent"
    );
    let later = s.delete_expired(now + Duration::seconds(1)).await.unwrap();
    assert_eq!(names(&later), ["sub-ms-after", "future"]);
    assert_eq!(s.count().await.unwrap(), 1);
}

pub(crate) async fn refresh_add_find_cap(s: &dyn Store) {
    let t = token("default", "with-grants");
    let other = token("default", "other");
    s.create(&t).await.unwrap();
    s.create(&other).await.unwrap();

    // Added out of order: eviction goes by creation time, not insertion order.
    let created = [3, 1, 4, 2, 5].map(|m| t0() + Duration::minutes(m));
    for (i, at) in created.iter().enumerate() {
        s.add_refresh(&grant(&t, 10 + i as u8, *at), 3)
            .await
            .unwrap();
    }
    s.add_refresh(&grant(&other, 99, t0()), 3).await.unwrap();

    // Minutes 3, 4, 5 survive (seeds 10, 12, 14); minutes 1 and 2 were the oldest.
    assert_eq!(alive(s, 10..15).await, [10, 12, 14]);
    assert_eq!(
        s.find_refresh(&SecretHash([14; 32])).await.unwrap(),
        Some(grant(&t, 14, created[4]))
    );
    assert!(
        s.find_refresh(&SecretHash([99; 32]))
            .await
            .unwrap()
            .is_some(),
        "other token's"
    );
    assert_eq!(s.find_refresh(&SecretHash([0; 32])).await.unwrap(), None);

    // Re-adding a grant under the same hash replaces it rather than counting twice.
    s.add_refresh(&grant(&t, 14, created[4]), 3).await.unwrap();
    for seed in [10, 12, 14] {
        assert!(s
            .find_refresh(&SecretHash([seed; 32]))
            .await
            .unwrap()
            .is_some());
    }

    // A grant for a token that does not exist is refused: it could never die with it.
    let ghost = token("default", "ghost");
    assert!(matches!(
        s.add_refresh(&grant(&ghost, 50, t0()), 3).await,
        Err(StoreError::NotFound)
    ));
    let wrong_name = RefreshGrant {
        token_name: "other".to_string(),
        ..grant(&t, 51, t0())
    };
    assert!(matches!(
        s.add_refresh(&wrong_name, 3).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.find_refresh(&SecretHash([50; 32])).await.unwrap(), None);

    // Deleting the token takes the surviving grants with it.
    assert!(s.delete("default", t.id).await.unwrap());
    for seed in 10..15 {
        assert_eq!(s.find_refresh(&SecretHash([seed; 32])).await.unwrap(), None);
    }
    assert!(s
        .find_refresh(&SecretHash([99; 32]))
        .await
        .unwrap()
        .is_some());
}

pub(crate) fn used(at: DateTime<Utc>, client: &str) -> crate::domain::LastUse {
    crate::domain::LastUse {
        at,
        client: Some(client.parse().unwrap()),
        grant: crate::domain::GrantKind::Password,
    }
}

pub(crate) fn use_of(t: &Token, last_use: crate::domain::LastUse) -> super::TokenUse {
    super::TokenUse {
        registry: t.registry.clone(),
        id: t.id,
        name: t.name.as_str().to_string(),
        last_use,
    }
}

pub(crate) async fn record_uses_sets_last_use_only(s: &dyn Store) {
    let a = token("default", "used");
    let b = token("default", "also-used");
    let untouched = token("default", "idle");
    for t in [&a, &b, &untouched] {
        s.create(t).await.unwrap();
    }
    // Read once so a cache in front of the store holds the old value.
    assert_eq!(
        s.find_by_name("default", "used")
            .await
            .unwrap()
            .unwrap()
            .last_used,
        None
    );

    let first = used(t0() + Duration::minutes(1), "192.0.2.1");
    let ghost = token("default", "ghost");
    let wrong_registry = Token {
        registry: "staging".into(),
        ..a.clone()
    };
    let written = s
        .record_uses(&[
            use_of(&a, first),
            use_of(&b, first),
            use_of(&ghost, first),
            use_of(&wrong_registry, first),
        ])
        .await
        .unwrap();
    assert_eq!(written, 2, "gone or foreign tokens are skipped");
    let expect_a = Token {
        last_used: Some(first),
        ..a.clone()
    };
    assert_eq!(
        s.get("default", a.id).await.unwrap(),
        Some(expect_a.clone())
    );
    assert_eq!(
        s.find_by_name("default", "used").await.unwrap().as_deref(),
        Some(&expect_a)
    );
    assert_eq!(
        s.get("default", untouched.id).await.unwrap(),
        Some(untouched)
    );
    assert_eq!(s.find_by_name("default", "ghost").await.unwrap(), None);

    // Never backwards.
    let earlier = used(t0(), "192.0.2.2");
    assert_eq!(s.record_uses(&[use_of(&a, earlier)]).await.unwrap(), 0);
    assert_eq!(
        s.get("default", a.id).await.unwrap().unwrap().last_used,
        Some(first)
    );

    // An admin update made from a read before the use keeps the later use.
    let disabled = Token {
        status: Status::Disabled,
        ..a.clone()
    };
    s.update(&disabled).await.unwrap();
    let stored = s.get("default", a.id).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Disabled);
    assert_eq!(stored.last_used, Some(first));
    // An update carrying a later use stores it.
    let later = used(t0() + Duration::minutes(2), "2001:db8::1");
    s.update(&Token {
        last_used: Some(later),
        ..stored
    })
    .await
    .unwrap();
    assert_eq!(
        s.find_by_name("default", "used")
            .await
            .unwrap()
            .unwrap()
            .last_used,
        Some(later)
    );
    assert_eq!(s.record_uses(&[]).await.unwrap(), 0);

    // A use of a token deleted and created again under its name is not the new token's.
    let old = token("default", "reborn");
    s.create(&old).await.unwrap();
    assert!(s.delete("default", old.id).await.unwrap());
    let new = token("default", "reborn");
    s.create(&new).await.unwrap();
    assert_eq!(s.record_uses(&[use_of(&old, later)]).await.unwrap(), 0);
    assert_eq!(
        s.find_by_name("default", "reborn")
            .await
            .unwrap()
            .as_deref(),
        Some(&new)
    );
}

pub(crate) async fn expiring_reads_the_expiry_index(s: &dyn Store) {
    let soon = expiring("default", "soon", t0() + Duration::days(2));
    let sooner = expiring("staging", "sooner", t0() + Duration::days(1));
    let at_limit = expiring("default", "at-limit", t0() + Duration::days(7));
    let past = expiring("default", "past", t0() - Duration::hours(1));
    let later = expiring("default", "later", t0() + Duration::days(8));
    let never = token("default", "never");
    for t in [&soon, &sooner, &at_limit, &past, &later, &never] {
        s.create(t).await.unwrap();
    }
    let found = s.expiring(t0() + Duration::days(7)).await.unwrap();
    assert_eq!(names(&found), ["past", "sooner", "soon", "at-limit"]);
    assert_eq!(found[1], sooner);
    assert!(s
        .expiring(t0() - Duration::days(1))
        .await
        .unwrap()
        .is_empty());
    // Moving an expiry moves it in the index.
    s.update(&Token {
        expiry: Some(t0() + Duration::days(30)),
        ..soon
    })
    .await
    .unwrap();
    assert_eq!(
        names(&s.expiring(t0() + Duration::days(7)).await.unwrap()),
        ["past", "sooner", "at-limit"]
    );
}

pub(crate) async fn count_across_registries(s: &dyn Store) {
    assert_eq!(s.count().await.unwrap(), 0);
    let tokens: Vec<Token> = (0..7)
        .map(|i| token(["a", "b", "c"][i % 3], &format!("token-{i}")))
        .collect();
    for t in &tokens {
        s.create(t).await.unwrap();
    }
    assert_eq!(s.count().await.unwrap(), 7);
    assert_eq!(s.list("a", 0, 100).await.unwrap().total, 3);
    assert!(s.delete("b", tokens[1].id).await.unwrap());
    assert_eq!(s.count().await.unwrap(), 6);
    assert_eq!(s.list("b", 0, 100).await.unwrap().total, 1);
}

pub(crate) async fn racing_creates_one_winner(s: &dyn Store) {
    const RACERS: usize = 8;
    let racers: Vec<Token> = (0..RACERS).map(|_| token("default", "contested")).collect();
    let results: Vec<Result<(), StoreError>> = join_all(racers.iter().map(|t| s.create(t))).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::NameTaken(_))))
        .count();
    assert_eq!((wins, taken), (1, RACERS - 1), "{results:?}");
    assert_eq!(s.count().await.unwrap(), 1);
    let page = s.list("default", 0, 100).await.unwrap();
    assert_eq!((page.items.len(), page.total), (1, 1));
    let winner = &page.items[0];
    assert_eq!(
        s.get("default", winner.id).await.unwrap().as_ref(),
        Some(winner)
    );
}

/// Concurrent grants for one token never leave more than the cap.
pub(crate) async fn racing_grants_respect_cap(s: &dyn Store) {
    const CAP: usize = 5;
    let t = token("default", "busy");
    s.create(&t).await.unwrap();
    let grants: Vec<RefreshGrant> = (1..=80u8)
        .map(|seed| grant(&t, seed, t0() + Duration::milliseconds(i64::from(seed))))
        .collect();
    for added in join_all(grants.iter().map(|g| s.add_refresh(g, CAP))).await {
        added.unwrap();
    }
    assert_eq!(alive(s, 1..=80).await.len(), CAP);
}

/// The seeds among `seeds` whose grant (`SecretHash([seed; 32])`) the store holds.
async fn alive(s: &dyn Store, seeds: impl IntoIterator<Item = u8>) -> Vec<u8> {
    let mut found = Vec::new();
    for seed in seeds {
        if s.find_refresh(&SecretHash([seed; 32]))
            .await
            .unwrap()
            .is_some()
        {
            found.push(seed);
        }
    }
    found
}

/// Adds grants with seeds 1..=100 for `t` at once while `write` runs; returns the seeds the
/// store accepted (`NotFound`: the token was gone or disabled by then).
async fn grants_racing(
    s: &dyn Store,
    t: &Token,
    write: impl std::future::Future<Output = ()>,
) -> Vec<u8> {
    let grants: Vec<RefreshGrant> = (1..=100u8)
        .map(|seed| grant(t, seed, t0() + Duration::milliseconds(i64::from(seed))))
        .collect();
    let adds = join_all(grants.iter().map(|g| async move {
        match s.add_refresh(g, 1000).await {
            Ok(()) => Some(g.hash.0[0]),
            Err(StoreError::NotFound) => None,
            Err(e) => panic!("{e}"),
        }
    }));
    let (added, ()) = tokio::join!(adds, write);
    added.into_iter().flatten().collect()
}

/// Grants added while their token is deleted either fail or die with it: none outlives it.
pub(crate) async fn grants_racing_delete_die_with_token(s: &dyn Store) {
    for round in 0..20 {
        let t = token("default", &format!("round-{round}"));
        s.create(&t).await.unwrap();
        let added = grants_racing(s, &t, async {
            assert!(s.delete("default", t.id).await.unwrap());
        })
        .await;
        assert_eq!(alive(s, added).await, [0u8; 0], "{round}");
    }
}

/// Disabling deletes every grant of the token in the same write; enabling again revives
/// none; a disabled token takes no new grant; other tokens keep theirs.
pub(crate) async fn disable_revokes_refresh_grants(s: &dyn Store) {
    let t = token("default", "laptop-login");
    let other = token("default", "other");
    s.create(&t).await.unwrap();
    s.create(&other).await.unwrap();
    for seed in 1..=3 {
        s.add_refresh(&grant(&t, seed, t0() + Duration::minutes(seed.into())), 10)
            .await
            .unwrap();
    }
    s.add_refresh(&grant(&other, 9, t0()), 10).await.unwrap();

    // An update that leaves the token enabled keeps its grants.
    let renamed_by = Token {
        modified_by: "ops".to_string(),
        ..t.clone()
    };
    s.update(&renamed_by).await.unwrap();
    assert_eq!(alive(s, 1..=3).await, [1, 2, 3]);

    let disabled = Token {
        status: Status::Disabled,
        ..t.clone()
    };
    s.update(&disabled).await.unwrap();
    assert_eq!(
        s.get("default", t.id).await.unwrap(),
        Some(disabled.clone())
    );
    assert_eq!(
        alive(s, 1..=3).await,
        [0u8; 0],
        "disable revokes every grant"
    );
    assert_eq!(alive(s, [9]).await, [9], "another token's grant survives");
    assert!(matches!(
        s.add_refresh(&grant(&t, 4, t0()), 10).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        alive(s, [4]).await,
        [0u8; 0],
        "a disabled token takes no grant"
    );
    // Updating a disabled token again (say, its scopes) is harmless.
    s.update(&disabled).await.unwrap();

    s.update(&t).await.unwrap();
    assert_eq!(
        alive(s, 1..=4).await,
        [0u8; 0],
        "enabling again revives none"
    );
    s.add_refresh(&grant(&t, 5, t0()), 10).await.unwrap();
    assert_eq!(alive(s, [5]).await, [5], "a new login after enabling works");
    // The grant index was emptied too: the cap counts only the new grant.
    for seed in 6..=7 {
        s.add_refresh(&grant(&t, seed, t0() + Duration::minutes(seed.into())), 3)
            .await
            .unwrap();
    }
    assert_eq!(alive(s, [5, 6, 7]).await, [5, 6, 7]);
    // Deleting still takes the grants with it.
    assert!(s.delete("default", t.id).await.unwrap());
    assert_eq!(alive(s, [5, 6, 7]).await, [0u8; 0]);
}

/// Issue 18: a federated token is stored with its federation (inline keys included), changed
/// by an update; a federated login's grants keep their session end, kind and claims; and
/// disabling the token ends its sessions and temporary passwords like any grant.
pub(crate) async fn federated_tokens_and_grants(s: &dyn Store) {
    use crate::domain::federation::Federation;
    let mut t = token("default", "ci-acme");
    let mut fed = Federation::new(
        "https://token.actions.githubusercontent.com",
        vec!["https://registry.example.com".into()],
        [
            ("repository_owner_id".to_string(), "1234567".to_string()),
            ("ref".to_string(), "refs/heads/*".to_string()),
        ]
        .into_iter()
        .collect(),
    );
    fed.session = Duration::hours(8);
    fed.jwks = Some(
        serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}),
    );
    t.federation = Some(Box::new(fed.clone()));
    t.scopes = vec![crate::domain::Scope::parse(
        "repository",
        "ci/${repository}/*",
        &["pull".into(), "push".into()],
    )
    .unwrap()];
    s.create(&t).await.unwrap();
    assert_eq!(s.get("default", t.id).await.unwrap(), Some(t.clone()));
    assert_eq!(
        s.find_by_name("default", "ci-acme")
            .await
            .unwrap()
            .as_deref()
            .cloned(),
        Some(t.clone())
    );
    let mut changed = t.clone();
    fed.claims.insert("ref".into(), "refs/heads/main".into());
    fed.jwks = None;
    changed.federation = Some(Box::new(fed));
    s.update(&changed).await.unwrap();
    assert_eq!(s.get("default", t.id).await.unwrap(), Some(changed.clone()));

    let claims = serde_json::json!({"repository": "acme/app", "run_id": 42});
    let session = |seed: u8, temporary: bool| RefreshGrant {
        federated: Some(super::FederatedGrant {
            expires: t0() + Duration::hours(1),
            temporary,
            claims: claims.as_object().unwrap().clone(),
        }),
        ..grant(&t, seed, t0() + Duration::seconds(seed.into()))
    };
    s.add_refresh(&session(1, false), 10).await.unwrap();
    s.add_refresh(&session(2, true), 10).await.unwrap();
    for (seed, temporary) in [(1, false), (2, true)] {
        assert_eq!(
            s.find_refresh(&SecretHash([seed; 32])).await.unwrap(),
            Some(session(seed, temporary))
        );
    }
    assert!(session(1, false).is_live(t0() + Duration::minutes(59)));
    assert!(!session(1, false).is_live(t0() + Duration::hours(1)));
    // The cap counts them together, oldest out.
    s.add_refresh(&session(3, true), 2).await.unwrap();
    assert_eq!(alive(s, 1..=3).await, [2, 3]);
    s.update(&Token {
        status: Status::Disabled,
        ..changed
    })
    .await
    .unwrap();
    assert_eq!(alive(s, 1..=3).await, [0u8; 0], "disable ends them");
}

/// Grants added while their token is disabled either fail or are revoked with it: none
/// survives the disable.
pub(crate) async fn grants_racing_disable_never_survive(s: &dyn Store) {
    for round in 0..20 {
        let t = token("default", &format!("round-{round}"));
        s.create(&t).await.unwrap();
        let disabled = Token {
            status: Status::Disabled,
            ..t.clone()
        };
        let added = grants_racing(s, &t, async {
            s.update(&disabled).await.unwrap();
        })
        .await;
        assert_eq!(alive(s, added).await, [0u8; 0], "{round}");
    }
}

/// A delivery reporting an event `n` about `t` (its id is derived from `n` and the url).
fn report_of(t: &Token, n: u8) -> crate::domain::webhook::Delivery {
    crate::domain::webhook::Delivery::new(
        Uuid::from_bytes([n; 16]),
        crate::domain::webhook::WebhookEvent::TokenCreated,
        "http://hook.test/",
        format!("{{\"token\":\"{}\",\"n\":{n}}}", t.name.as_str()),
        t0(),
    )
}

/// [`Store::write`]: a change and the deliveries reporting it commit together; a write
/// that fails (taken name, missing token) adds no delivery; a delivery id already in the
/// outbox stays as it was.
pub(crate) async fn writes_commit_with_their_deliveries(s: std::sync::Arc<dyn Store>) {
    use super::TokenWrite;
    let outbox = s.clone().outbox();
    let t = token("default", "ci-push");
    let created = report_of(&t, 1);
    assert!(s
        .write(TokenWrite::Create(&t), std::slice::from_ref(&created))
        .await
        .unwrap());
    assert_eq!(s.get("default", t.id).await.unwrap().as_ref(), Some(&t));
    assert_eq!(
        outbox.delivery(created.id).await.unwrap(),
        Some(created.clone())
    );

    // A failed create: no token, no delivery.
    let twin = token("default", "ci-push");
    let lost = report_of(&twin, 2);
    assert!(matches!(
        s.write(TokenWrite::Create(&twin), std::slice::from_ref(&lost))
            .await,
        Err(StoreError::NameTaken(_))
    ));
    assert_eq!(
        outbox.delivery(lost.id).await.unwrap(),
        None,
        "create failed"
    );

    // An update with two webhooks' deliveries; one id already queued stays as it was.
    let mut changed = t.clone();
    changed.status = Status::Disabled;
    let mut again = created.clone();
    again.body = "{\"changed\":true}".into();
    let updated = report_of(&changed, 3);
    assert!(s
        .write(TokenWrite::Update(&changed), &[again, updated.clone()])
        .await
        .unwrap());
    assert_eq!(
        s.get("default", t.id).await.unwrap().as_ref(),
        Some(&changed)
    );
    assert_eq!(
        outbox.delivery(created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        outbox.delivery(updated.id).await.unwrap(),
        Some(updated.clone())
    );

    // Updating or deleting a token that is not there writes nothing.
    let ghost = token("default", "ghost");
    let (g1, g2) = (report_of(&ghost, 4), report_of(&ghost, 5));
    assert!(matches!(
        s.write(TokenWrite::Update(&ghost), std::slice::from_ref(&g1))
            .await,
        Err(StoreError::NotFound)
    ));
    let existed = s
        .write(
            TokenWrite::Delete {
                registry: "default",
                id: ghost.id,
            },
            std::slice::from_ref(&g2),
        )
        .await
        .unwrap();
    assert!(!existed);
    assert_eq!(outbox.delivery(g1.id).await.unwrap(), None, "update failed");
    assert_eq!(
        outbox.delivery(g2.id).await.unwrap(),
        None,
        "nothing deleted"
    );
    // Right id, wrong registry: not there either.
    let other = report_of(&t, 6);
    assert!(!s
        .write(
            TokenWrite::Delete {
                registry: "staging",
                id: t.id
            },
            std::slice::from_ref(&other),
        )
        .await
        .unwrap());
    assert_eq!(outbox.delivery(other.id).await.unwrap(), None);

    let deleted = report_of(&t, 7);
    assert!(s
        .write(
            TokenWrite::Delete {
                registry: "default",
                id: t.id
            },
            std::slice::from_ref(&deleted),
        )
        .await
        .unwrap());
    assert_eq!(s.get("default", t.id).await.unwrap(), None);
    assert_eq!(outbox.delivery(deleted.id).await.unwrap(), Some(deleted));
    assert_eq!(outbox.pending().await.unwrap(), 3);
}

/// [`Store::delete_expired_reporting`]: each expired token's deliveries are written with its
/// deletion, and only those.
pub(crate) async fn expired_deletions_commit_with_their_deliveries(s: std::sync::Arc<dyn Store>) {
    let outbox = s.clone().outbox();
    let now = t0() + Duration::days(1);
    let a = expiring("default", "aaa", now - Duration::hours(1));
    let b = expiring("staging", "bbb", now);
    let later = expiring("default", "later", now + Duration::hours(1));
    for t in [&a, &b, &later] {
        s.create(t).await.unwrap();
    }
    let n = |t: &Token| t.name.as_str().as_bytes()[0];
    let report = |t: &Token| vec![report_of(t, n(t))];
    let mut gone = s.delete_expired_reporting(now, &report).await.unwrap();
    gone.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(names(&gone), ["aaa", "bbb"]);
    for t in [&a, &b] {
        assert_eq!(
            outbox.delivery(report_of(t, n(t)).id).await.unwrap(),
            Some(report_of(t, n(t))),
            "{}",
            t.name
        );
    }
    assert_eq!(
        outbox
            .delivery(report_of(&later, n(&later)).id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(outbox.pending().await.unwrap(), 2);
    // Nothing left to delete: nothing reported.
    assert!(s
        .delete_expired_reporting(now, &report)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(outbox.pending().await.unwrap(), 2);
}

/// One test per suite function, for a backend built by `$make` (an expression evaluating
/// to `(store, guard)` inside the test's async body; the guard lives as long as the test,
/// e.g. a temp dir).
macro_rules! conformance {
    ($make:expr) => {
        conformance!(@tests $make;
            create_get_find, policy_fields_round_trip, name_unique_per_registry, id_unique_everywhere,
            list_sorted_paged, list_matching_filters_by_substring,
            update_replaces_and_reindexes, update_not_found,
            update_rename_keeps_indexes, delete_removes_token_and_grants,
            delete_expired_boundaries, refresh_add_find_cap, count_across_registries,
            racing_creates_one_winner, racing_grants_respect_cap,
            grants_racing_delete_die_with_token, disable_revokes_refresh_grants,
            grants_racing_disable_never_survive, record_uses_sets_last_use_only,
            expiring_reads_the_expiry_index, admins_create_replace_delete,
            federated_tokens_and_grants);
        conformance!(@arc $make; writes_commit_with_their_deliveries,
            expired_deletions_commit_with_their_deliveries);
    };
    (@arc $make:expr; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $make;
                super::$name(std::sync::Arc::new(store)).await;
            }
        )+
    };
    (@tests $make:expr; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $make;
                super::$name(&store).await;
            }
        )+
    };
}

mod memory {
    use crate::store::MemoryStore;
    conformance!((MemoryStore::new(), ()));
}

mod sled {
    use crate::store::SledStore;

    fn open() -> (SledStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (SledStore::open(dir.path()).unwrap(), dir)
    }
    conformance!(open());
}

/// On a private PostgreSQL cluster (one per test binary), a database per test.
mod postgres {
    conformance!(crate::store::postgres::tests::open().await);
}

/// The webhooks' outbox ([`super::outbox::Outbox`]): each delivery id once, claims lease,
/// outcomes saved, newest first, pruning keeps pending deliveries.
pub(crate) mod outbox {
    use chrono::Duration;
    use uuid::Uuid;

    use super::t0;
    use crate::domain::webhook::{Delivery, DeliverySettings, DeliveryState, WebhookEvent};
    use crate::store::outbox::Outbox;
    use crate::store::StoreError;

    fn delivery(n: u8, url: &str, at: chrono::DateTime<chrono::Utc>) -> Delivery {
        Delivery::new(
            Uuid::from_bytes([n; 16]),
            WebhookEvent::TokenCreated,
            url,
            format!("{{\"n\":{n}}}"),
            at,
        )
    }

    pub(crate) async fn stores_each_delivery_once(s: &dyn Outbox) {
        let a = delivery(1, "http://a", t0());
        let b = delivery(1, "http://b", t0());
        assert_ne!(a.id, b.id, "one event, two webhooks: two deliveries");
        assert_eq!(s.enqueue(vec![a.clone(), b.clone()]).await.unwrap(), 2);
        assert_eq!(
            s.enqueue(vec![a.clone()]).await.unwrap(),
            0,
            "noticed twice"
        );
        assert_eq!(s.pending().await.unwrap(), 2);
        assert_eq!(s.delivery(a.id).await.unwrap(), Some(a));
        assert_eq!(s.delivery(Uuid::nil()).await.unwrap(), None);
    }

    pub(crate) async fn claims_lease_due_deliveries(s: &dyn Outbox) {
        let now = t0();
        let due = delivery(1, "http://a", now - Duration::seconds(5));
        let later = delivery(2, "http://a", now);
        let mut later = later;
        later.next_at = now + Duration::seconds(20);
        s.enqueue(vec![due.clone(), later.clone()]).await.unwrap();
        let lease = now + Duration::seconds(30);
        let claimed = s.claim(now, lease, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, due.id);
        assert_eq!(claimed[0].lease_until, Some(lease));
        // Leased: not claimed again while the lease runs, by anyone.
        assert!(s.claim(now, lease, 10).await.unwrap().is_empty());
        // The claimer died: once the lease ran out, it is due again.
        let after = lease + Duration::seconds(1);
        let again = s
            .claim(after, after + Duration::seconds(30), 10)
            .await
            .unwrap();
        let ids: Vec<Uuid> = again.iter().map(|d| d.id).collect();
        assert_eq!(ids, [due.id, later.id], "oldest due first");
        // Racing claims never hand one delivery out twice.
        let many: Vec<Delivery> = (10..40).map(|n| delivery(n, "http://r", now)).collect();
        s.enqueue(many).await.unwrap();
        let (x, y) = tokio::join!(s.claim(now, lease, 100), s.claim(now, lease, 100));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.len() + y.len(), 30);
        assert!(x.iter().all(|d| !y.iter().any(|e| e.id == d.id)));
    }

    pub(crate) async fn saves_outcomes_and_lists_newest_first(s: &dyn Outbox) {
        let settings = DeliverySettings::default();
        let mut a = delivery(1, "http://a", t0());
        let b = delivery(2, "http://a", t0() + Duration::seconds(1));
        s.enqueue(vec![a.clone(), b.clone()]).await.unwrap();
        a.attempted(t0() + Duration::seconds(10), Some(204), None, &settings);
        s.save(&a).await.unwrap();
        assert_eq!(s.delivery(a.id).await.unwrap().unwrap(), a);
        assert_eq!(s.pending().await.unwrap(), 1);
        let recent = s.recent(10).await.unwrap();
        assert_eq!(recent[0], a, "attempted last: listed first");
        assert_eq!(recent[1].id, b.id);
        assert_eq!(s.recent(1).await.unwrap().len(), 1);
        let gone = delivery(9, "http://a", t0());
        assert!(matches!(s.save(&gone).await, Err(StoreError::NotFound)));
        // Pruning deletes finished deliveries created before the time, never pending ones.
        assert_eq!(s.prune(t0() + Duration::days(1)).await.unwrap(), 1);
        assert_eq!(s.delivery(a.id).await.unwrap(), None);
        assert_eq!(
            s.delivery(b.id).await.unwrap().unwrap().state,
            DeliveryState::Pending
        );
    }

    mod memory {
        conformance!(@tests (crate::store::outbox::MemoryOutbox::default(), ()); stores_each_delivery_once, claims_lease_due_deliveries,
            saves_outcomes_and_lists_newest_first);
    }

    mod sled {
        fn open() -> (crate::store::outbox::SledOutbox, tempfile::TempDir) {
            let dir = tempfile::tempdir().unwrap();
            let a = crate::store::activity::SledActivity::open(dir.path()).unwrap();
            (a.outbox().unwrap(), dir)
        }
        conformance!(@tests open(); stores_each_delivery_once, claims_lease_due_deliveries,
            saves_outcomes_and_lists_newest_first);
    }

    mod postgres {
        conformance!(@tests crate::store::postgres::tests::open().await; stores_each_delivery_once, claims_lease_due_deliveries,
            saves_outcomes_and_lists_newest_first);
    }
}
