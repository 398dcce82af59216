//! The PostgreSQL schema and its versioned migrations, embedded in the binary. Part of
//! `store::postgres`; depends on `tokio-postgres` only.
//!
//! `regauth_schema` lists the migrations applied (version, description, when). At start,
//! [`migrate`] takes a session advisory lock, so replicas starting together apply each
//! migration once, one after the other; each migration and its `regauth_schema` row commit in
//! one transaction. A database whose newest version is above [`LATEST`] was migrated by a newer
//! regauth: this one refuses to start rather than write rows that the newer schema does not
//! expect.
use tokio_postgres::Client;

use super::pg_error;
use crate::store::StoreError;

/// Key of the session advisory lock held while migrating (the bytes of `rgauth` and 1).
pub const MIGRATION_LOCK: i64 = 0x7267_6175_7468_0001;

/// Versions, descriptions and SQL, oldest first. Never edit one that was released: add one.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "tokens, refresh grants, settings",
        r#"
CREATE TABLE regauth_tokens (
    id uuid PRIMARY KEY,
    registry text NOT NULL,
    -- "C": byte order, as the API lists names (and sled stores them).
    name text COLLATE "C" NOT NULL,
    enabled boolean NOT NULL,
    expiry timestamptz,
    -- The whole token (scopes, hash, history) in regauth's record format; the columns above
    -- are copies for lookups, uniqueness, expiry and the grant rule, written with it.
    record bytea NOT NULL,
    CONSTRAINT regauth_tokens_name_key UNIQUE (registry, name)
);
CREATE INDEX regauth_tokens_expiry ON regauth_tokens (expiry) WHERE expiry IS NOT NULL;
CREATE TABLE regauth_refresh_grants (
    hash bytea PRIMARY KEY,
    token_id uuid NOT NULL REFERENCES regauth_tokens (id) ON DELETE CASCADE,
    created timestamptz NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX regauth_refresh_grants_token ON regauth_refresh_grants (token_id, created, hash);
CREATE TABLE regauth_settings (
    key text PRIMARY KEY,
    value text NOT NULL
);
"#,
    ),
    (
        2,
        "token owners",
        r#"
-- A copy of the owner in the record (format 4), for `filter.owner` and offboarding. Rows
-- written before have no owner: their records (formats 1-3) cannot hold one.
ALTER TABLE regauth_tokens ADD COLUMN owner text;
CREATE INDEX regauth_tokens_owner ON regauth_tokens (registry, owner, name) WHERE owner IS NOT NULL;
"#,
    ),
    (
        3,
        "named admins",
        r#"
-- Named admins with roles; `record` is the admin as JSON (name, role, registries, the SHA-256
-- of the secret, created, created by, last rotated). Never the secret itself.
CREATE TABLE regauth_admins (
    name text COLLATE "C" PRIMARY KEY,
    record text NOT NULL
);
"#,
    ),
    (
        4,
        "signing keyring",
        r#"
-- The signing keys' state shared by every replica (docs/key-rotation.md): one row, the
-- keyring (ids, states, times) as regauth's JSON and every published key's certificate
-- (id -> PEM, JSON), so that each replica can write the same bundle. No private key: those
-- are files the operator distributes. `version` grows by one on every change (compare and
-- set), and each change notifies channel regauth_keys with it.
CREATE TABLE regauth_keyring (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL,
    state text NOT NULL,
    certificates text NOT NULL,
    updated timestamptz NOT NULL DEFAULT now()
);
"#,
    ),
    (
        5,
        "registry activity events",
        r#"
-- Events reported by the registries' notifications (docs/activity.md): manifest pushes,
-- pulls and deletes. (registry, id) is the registry's event id: a retried envelope adds
-- nothing (ON CONFLICT DO NOTHING). Times are the registry's, in microseconds.
CREATE TABLE regauth_events (
    registry text NOT NULL,
    id text COLLATE "C" NOT NULL,
    time timestamptz NOT NULL,
    action text NOT NULL,
    repository text COLLATE "C" NOT NULL,
    tag text,
    digest text,
    media_type text,
    size bigint,
    actor text NOT NULL,
    client_addr text,
    user_agent text,
    instance text,
    PRIMARY KEY (registry, id)
);
CREATE INDEX regauth_events_time ON regauth_events (registry, time DESC, id DESC);
CREATE INDEX regauth_events_actor ON regauth_events (registry, actor, time DESC);
CREATE INDEX regauth_events_digest ON regauth_events (registry, digest) WHERE digest IS NOT NULL;
CREATE INDEX regauth_events_repository ON regauth_events (registry, repository, time DESC);
"#,
    ),
    (
        7,
        "federated tokens",
        r#"
-- Federated tokens (docs/keyless-ci.md): a token record of format 5 carries its federation,
-- and a grant record of format 3 is a federated login's refresh token or temporary password
-- (session end, kind, claims). Older regauth binaries cannot read them; this version stops
-- them from starting on this database. The session end is copied here so that an operator
-- can see (and a later sweep delete) the grants that have ended.
ALTER TABLE regauth_refresh_grants ADD COLUMN expires timestamptz;
"#,
    ),
];

/// The newest schema version this binary knows.
pub const LATEST: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Every migration's version, oldest first (what `regauth_schema` lists once all applied).
pub fn versions() -> impl Iterator<Item = i32> {
    MIGRATIONS.iter().map(|(v, _, _)| *v)
}

/// Brings the schema up to [`LATEST`] under [`MIGRATION_LOCK`]; returns the versions it
/// applied (none when another replica got there first). Refuses a newer schema.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| pg_error("taking the migration lock", e))?;
    let result = apply(client).await;
    // Closing the session would release it too; say so explicitly while the connection lives.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn apply(client: &mut Client) -> Result<Vec<i32>, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS regauth_schema (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(|e| pg_error("creating regauth_schema", e))?;
    let current: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM regauth_schema", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| pg_error("reading the schema version", e))?;
    if current > LATEST {
        return Err(StoreError::message(format!(
            "the database schema is at version {current}, newer than the newest this regauth \
             knows ({LATEST}): a newer regauth has migrated it. Run that newer regauth (on every \
             replica); regauth never downgrades a schema"
        )));
    }
    let mut applied = Vec::new();
    for (version, description, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        let context = |what: &str| format!("schema migration {version} ({description}): {what}");
        let tx = client
            .transaction()
            .await
            .map_err(|e| pg_error(context("begin"), e))?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| pg_error(context("apply"), e))?;
        tx.execute(
            "INSERT INTO regauth_schema (version, description) VALUES ($1, $2)",
            &[version, description],
        )
        .await
        .map_err(|e| pg_error(context("record"), e))?;
        tx.commit()
            .await
            .map_err(|e| pg_error(context("commit"), e))?;
        tracing::info!(version, description, "PostgreSQL schema migrated");
        applied.push(*version);
    }
    Ok(applied)
}
