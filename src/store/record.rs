//! The bytes of the records in sled's `tokens` and `refresh` trees. Part of `store`: depends
//! on `domain` (and postcard, serde) only; `sled.rs` calls the four functions below.
//!
//! Every record starts with a format byte:
//!
//! - `5` (tokens, written for federated tokens only): postcard of [`TokenV5`]: exactly the
//!   format-4 fields, then the federation as JSON text. A token without a federation is
//!   still written as format 4, which older binaries read.
//! - `3` (grants, written for federated logins only): postcard of [`GrantV3`]: the format-2
//!   fields, then the session's end, whether it is a temporary password, and the ID token's
//!   claims as JSON text. Other grants are still written as format 2.
//! - `4` (tokens, written now): postcard of [`TokenV4`]: exactly the format-3 fields, then the
//!   allowed networks (address as 4 or 16 bytes, prefix length), the owner and the
//!   description (each optional text). A format-3 token decodes as one with no networks
//!   (usable anywhere), no owner and no description.
//! - `3` (tokens, read only): postcard of [`TokenV3`]: exactly the format-2 fields, then the
//!   previous password of a rotation (hash, end of grace) and the last use (instant, client
//!   address as 4 or 16 bytes, grant type byte), each optional. A format-2 token decodes as
//!   one that was never rotated nor used.
//! - `2` (grants, written now; tokens, read only): postcard of [`TokenV2`] / [`GrantV2`]. Ids and the secret hash are
//!   raw bytes, timestamps are (seconds, nanoseconds) since 1970, a scope's type is one byte
//!   and its actions a bit set; text fields are borrowed from the record while decoding. A
//!   token read (the token endpoint's hot path) parses no text beyond re-validating the
//!   name and patterns, and allocates only the decoded token's own strings.
//! - `1` (read only): postcard of the domain types' serde form, with timestamps as RFC 3339
//!   text and the hash as hex. Written by regauth before format 2; such records keep
//!   working and are rewritten as format 2 when their token next changes.
//!
//! Decoding validates as much as the admin API does on input, so a damaged record is an
//! error naming its key (in `sled.rs`), never a token that breaks a domain rule.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{FederatedGrant, RefreshGrant};
use crate::domain::{
    validate_scope_list, ActionSet, Description, GrantKind, LastUse, Network, Owner,
    PreviousSecret, RegistryTarget, Scope, ScopeTarget, SecretHash, Status, Token, TokenName,
    MAX_NETWORKS,
};

/// The legacy serde form.
const FORMAT_SERDE: u8 = 1;
/// [`TokenV2`] and [`GrantV2`].
const FORMAT_COMPACT: u8 = 2;
/// [`TokenV3`].
const FORMAT_LIFECYCLE: u8 = 3;
/// [`TokenV4`].
const FORMAT_POLICY: u8 = 4;
/// [`TokenV5`] (federated tokens only; others stay format 4).
const FORMAT_FEDERATED: u8 = 5;
/// [`GrantV3`] (grants of federated logins only; others stay format 2).
const FORMAT_FEDERATED_GRANT: u8 = 3;

/// An instant as whole seconds since 1970 and the nanoseconds within that second.
type Instant = (i64, u32);

fn instant(t: DateTime<Utc>) -> Instant {
    (t.timestamp(), t.timestamp_subsec_nanos())
}

fn datetime((secs, nanos): Instant) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| format!("timestamp ({secs} s, {nanos} ns) out of range"))
}

/// Scope type byte.
const REPOSITORY: u8 = 0;
const REGISTRY: u8 = 1;

#[derive(Serialize, Deserialize)]
struct ScopeV2<'a> {
    kind: u8,
    /// The repository pattern, or `catalog` / `*` for a registry scope.
    name: &'a str,
    /// [`ActionSet::bits`].
    actions: u8,
}

#[derive(Serialize, Deserialize)]
struct TokenV2<'a> {
    id: [u8; 16],
    registry: &'a str,
    name: &'a str,
    enabled: bool,
    expiry: Option<Instant>,
    #[serde(borrow)]
    scopes: Vec<ScopeV2<'a>>,
    secret_hash: [u8; 32],
    created: Instant,
    created_by: &'a str,
    modified: Instant,
    modified_by: &'a str,
}

/// Format 3: format 2, then what rotation and last-use tracking add.
#[derive(Serialize, Deserialize)]
struct TokenV3<'a> {
    #[serde(borrow)]
    v2: TokenV2<'a>,
    /// The previous password's hash and the end of its grace period.
    previous: Option<([u8; 32], Instant)>,
    last_used: Option<UseV3>,
}

/// Format 4: format 3, then what access policy adds.
#[derive(Serialize, Deserialize)]
struct TokenV4<'a> {
    #[serde(borrow)]
    v3: TokenV3<'a>,
    /// Allowed networks: address and prefix length.
    networks: Vec<(Address, u8)>,
    owner: Option<&'a str>,
    description: Option<&'a str>,
}

/// Format 5: format 4, then the federation of a federated token, as the JSON of its serde
/// form (issuer, audiences, claim conditions, limits, inline JWKS): read on every login
/// with an ID token, which costs a signature check anyway.
#[derive(Serialize, Deserialize)]
struct TokenV5<'a> {
    #[serde(borrow)]
    v4: TokenV4<'a>,
    federation: &'a str,
}

#[derive(Serialize, Deserialize)]
struct UseV3 {
    at: Instant,
    client: Option<Address>,
    /// [`PASSWORD_GRANT`] or [`REFRESH_GRANT`].
    grant: u8,
}

#[derive(Serialize, Deserialize)]
enum Address {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// Grant type byte.
const PASSWORD_GRANT: u8 = 0;
const REFRESH_GRANT: u8 = 1;

/// The token as format 1 stored it: the serde form of the domain token before rotation and
/// last use existed. Frozen: it must not follow later changes of [`Token`].
#[derive(Serialize, Deserialize)]
struct TokenV1 {
    id: Uuid,
    registry: String,
    name: TokenName,
    status: Status,
    expiry: Option<DateTime<Utc>>,
    scopes: Vec<Scope>,
    secret_hash: SecretHash,
    created: DateTime<Utc>,
    created_by: String,
    modified: DateTime<Utc>,
    modified_by: String,
}

impl From<TokenV1> for Token {
    fn from(r: TokenV1) -> Token {
        Token {
            id: r.id,
            registry: r.registry,
            name: r.name,
            status: r.status,
            expiry: r.expiry,
            scopes: r.scopes,
            secret_hash: r.secret_hash,
            created: r.created,
            created_by: r.created_by,
            modified: r.modified,
            modified_by: r.modified_by,
            previous: None,
            last_used: None,
            networks: vec![],
            owner: None,
            description: None,
            federation: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct GrantV2<'a> {
    hash: [u8; 32],
    token_id: [u8; 16],
    registry: &'a str,
    token_name: &'a str,
    service: &'a str,
    created: Instant,
}

/// Format 3 (grants): format 2, then what a login with an ID token adds: the end of the
/// session, whether it is a temporary password, and the ID token's claims as JSON text.
#[derive(Serialize, Deserialize)]
struct GrantV3<'a> {
    #[serde(borrow)]
    v2: GrantV2<'a>,
    expires: Instant,
    temporary: bool,
    claims: &'a str,
}

fn with_format(format: u8, value: &impl Serialize) -> Result<Vec<u8>, String> {
    let mut out = vec![format];
    postcard::to_io(value, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Splits off the format byte.
fn format_of(bytes: &[u8]) -> Result<(u8, &[u8]), String> {
    match bytes.split_first() {
        Some((&format, rest)) => Ok((format, rest)),
        None => Err("empty record".into()),
    }
}

fn unknown_format(format: u8) -> String {
    format!("unknown record format {format} (this regauth reads formats 1 to 5)")
}

/// A token's record, in the current format.
pub fn encode_token(token: &Token) -> Result<Vec<u8>, String> {
    let scopes = token
        .scopes
        .iter()
        .map(|s| ScopeV2 {
            kind: match s.target {
                ScopeTarget::Repository(_) => REPOSITORY,
                ScopeTarget::Registry(_) => REGISTRY,
            },
            name: s.name_str(),
            actions: s.actions.bits(),
        })
        .collect();
    let v2 = TokenV2 {
        id: *token.id.as_bytes(),
        registry: &token.registry,
        name: token.name.as_str(),
        enabled: token.status == Status::Enabled,
        expiry: token.expiry.map(instant),
        scopes,
        secret_hash: token.secret_hash.0,
        created: instant(token.created),
        created_by: &token.created_by,
        modified: instant(token.modified),
        modified_by: &token.modified_by,
    };
    let v3 = TokenV3 {
        v2,
        previous: token.previous.map(|p| (p.hash.0, instant(p.until))),
        last_used: token.last_used.map(|u| UseV3 {
            at: instant(u.at),
            client: u.client.map(|a| match a {
                IpAddr::V4(a) => Address::V4(a.octets()),
                IpAddr::V6(a) => Address::V6(a.octets()),
            }),
            grant: match u.grant {
                GrantKind::Password => PASSWORD_GRANT,
                GrantKind::Refresh => REFRESH_GRANT,
            },
        }),
    };
    let v4 = TokenV4 {
        v3,
        networks: token
            .networks
            .iter()
            .map(|n| (address(n.addr()), n.prefix()))
            .collect(),
        owner: token.owner.as_ref().map(|o| o.as_str()),
        description: token.description.as_ref().map(|d| d.as_str()),
    };
    match &token.federation {
        None => with_format(FORMAT_POLICY, &v4),
        Some(f) => {
            let federation = serde_json::to_string(f).map_err(|e| e.to_string())?;
            with_format(
                FORMAT_FEDERATED,
                &TokenV5 {
                    v4,
                    federation: &federation,
                },
            )
        }
    }
}

fn address(a: IpAddr) -> Address {
    match a {
        IpAddr::V4(a) => Address::V4(a.octets()),
        IpAddr::V6(a) => Address::V6(a.octets()),
    }
}

fn ip(a: Address) -> IpAddr {
    match a {
        Address::V4(a) => IpAddr::V4(Ipv4Addr::from(a)),
        Address::V6(a) => IpAddr::V6(Ipv6Addr::from(a)),
    }
}

/// A token from its record, in any format.
pub fn decode_token(bytes: &[u8]) -> Result<Token, String> {
    match format_of(bytes)? {
        (FORMAT_FEDERATED, rest) => {
            let r: TokenV5 = postcard::from_bytes(rest).map_err(|e| e.to_string())?;
            let federation =
                serde_json::from_str(r.federation).map_err(|e| format!("federation: {e}"))?;
            let mut token = token_from_v4(r.v4)?;
            token.federation = Some(federation);
            Ok(token)
        }
        (FORMAT_POLICY, rest) => {
            let r: TokenV4 = postcard::from_bytes(rest).map_err(|e| e.to_string())?;
            token_from_v4(r)
        }
        (FORMAT_LIFECYCLE, rest) => {
            let r: TokenV3 = postcard::from_bytes(rest).map_err(|e| e.to_string())?;
            token_from_v3(r)
        }
        (FORMAT_COMPACT, rest) => {
            let r: TokenV2 = postcard::from_bytes(rest).map_err(|e| e.to_string())?;
            token_from_v2(r)
        }
        (FORMAT_SERDE, rest) => postcard::from_bytes::<TokenV1>(rest)
            .map(Token::from)
            .map_err(|e| e.to_string())
            .and_then(checked),
        (other, _) => Err(unknown_format(other)),
    }
}

/// The rules on a whole scope list that the admin API applies on input (at most 100, one per
/// type and name): each scope is checked while decoding, the list here. Found by fuzzing
/// (docs/fuzzing.md): a record with two scopes for one name decoded as a token the API could
/// never have written.
fn checked(token: Token) -> Result<Token, String> {
    validate_scope_list(&token.scopes).map_err(|e| e.to_string())?;
    Ok(token)
}

fn token_from_v4(r: TokenV4<'_>) -> Result<Token, String> {
    let mut token = token_from_v3(r.v3)?;
    token.networks = r
        .networks
        .into_iter()
        .enumerate()
        .map(|(i, (a, prefix))| {
            Network::new(ip(a), prefix).map_err(|e| format!("networks[{i}]: {e}"))
        })
        .collect::<Result<_, _>>()?;
    if token.networks.len() > MAX_NETWORKS {
        return Err(format!(
            "networks: at most {MAX_NETWORKS}, got {}",
            token.networks.len()
        ));
    }
    token.owner = r
        .owner
        .map(|o| o.parse::<Owner>().map_err(|e| e.to_string()))
        .transpose()?;
    token.description = r
        .description
        .map(|d| d.parse::<Description>().map_err(|e| e.to_string()))
        .transpose()?;
    Ok(token)
}

fn token_from_v3(r: TokenV3<'_>) -> Result<Token, String> {
    let mut token = token_from_v2(r.v2)?;
    token.previous = r
        .previous
        .map(|(hash, until)| {
            datetime(until).map(|until| PreviousSecret {
                hash: SecretHash(hash),
                until,
            })
        })
        .transpose()?;
    token.last_used = r
        .last_used
        .map(|u| -> Result<LastUse, String> {
            Ok(LastUse {
                at: datetime(u.at)?,
                client: u.client.map(|a| match a {
                    Address::V4(a) => IpAddr::V4(Ipv4Addr::from(a)),
                    Address::V6(a) => IpAddr::V6(Ipv6Addr::from(a)),
                }),
                grant: match u.grant {
                    PASSWORD_GRANT => GrantKind::Password,
                    REFRESH_GRANT => GrantKind::Refresh,
                    other => return Err(format!("last use: unknown grant type byte {other}")),
                },
            })
        })
        .transpose()?;
    Ok(token)
}

fn token_from_v2(r: TokenV2<'_>) -> Result<Token, String> {
    let name: TokenName = r.name.parse().map_err(|e| format!("name: {e}"))?;
    let scopes = r
        .scopes
        .iter()
        .enumerate()
        .map(|(i, s)| scope_from_v2(s).map_err(|e| format!("scopes[{i}]: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    checked(Token {
        id: Uuid::from_bytes(r.id),
        registry: r.registry.to_string(),
        name,
        status: if r.enabled {
            Status::Enabled
        } else {
            Status::Disabled
        },
        expiry: r.expiry.map(datetime).transpose()?,
        scopes,
        secret_hash: SecretHash(r.secret_hash),
        created: datetime(r.created)?,
        created_by: r.created_by.to_string(),
        modified: datetime(r.modified)?,
        modified_by: r.modified_by.to_string(),
        previous: None,
        last_used: None,
        networks: vec![],
        owner: None,
        description: None,
        federation: None,
    })
}

fn scope_from_v2(s: &ScopeV2<'_>) -> Result<Scope, String> {
    let target = match (s.kind, s.name) {
        (REPOSITORY, pattern) => {
            ScopeTarget::Repository(pattern.parse().map_err(|e| format!("{e}"))?)
        }
        (REGISTRY, "catalog") => ScopeTarget::Registry(RegistryTarget::Catalog),
        (REGISTRY, "*") => ScopeTarget::Registry(RegistryTarget::Any),
        (REGISTRY, other) => return Err(format!("registry scope name {other:?}")),
        (kind, _) => return Err(format!("unknown scope type byte {kind}")),
    };
    let actions = ActionSet::from_bits(s.actions)
        .ok_or_else(|| format!("unknown action bits {:#04x}", s.actions))?;
    Scope::new(target, actions).map_err(|e| e.to_string())
}

/// A refresh grant's record: format 3 for a federated login's grant, else format 2 (which
/// every regauth since format 2 reads).
pub fn encode_grant(grant: &RefreshGrant) -> Result<Vec<u8>, String> {
    let v2 = GrantV2 {
        hash: grant.hash.0,
        token_id: *grant.token_id.as_bytes(),
        registry: &grant.registry,
        token_name: &grant.token_name,
        service: &grant.service,
        created: instant(grant.created),
    };
    match &grant.federated {
        None => with_format(FORMAT_COMPACT, &v2),
        Some(f) => {
            let claims = serde_json::to_string(&f.claims).map_err(|e| e.to_string())?;
            with_format(
                FORMAT_FEDERATED_GRANT,
                &GrantV3 {
                    v2,
                    expires: instant(f.expires),
                    temporary: f.temporary,
                    claims: &claims,
                },
            )
        }
    }
}

fn grant_from_v2(r: GrantV2<'_>) -> Result<RefreshGrant, String> {
    Ok(RefreshGrant {
        hash: SecretHash(r.hash),
        token_id: Uuid::from_bytes(r.token_id),
        registry: r.registry.to_string(),
        token_name: r.token_name.to_string(),
        service: r.service.to_string(),
        created: datetime(r.created)?,
        federated: None,
    })
}

/// A refresh grant from its record, in any format.
pub fn decode_grant(bytes: &[u8]) -> Result<RefreshGrant, String> {
    match format_of(bytes)? {
        (FORMAT_COMPACT, rest) => {
            let r: GrantV2 = postcard::from_bytes(rest).map_err(|e| e.to_string())?;
            grant_from_v2(r)
        }
        (FORMAT_FEDERATED_GRANT, rest) => {
            let r: GrantV3 = postcard::from_bytes(rest).map_err(|e| e.to_string())?;
            let mut grant = grant_from_v2(r.v2)?;
            grant.federated = Some(FederatedGrant {
                expires: datetime(r.expires)?,
                temporary: r.temporary,
                claims: serde_json::from_str(r.claims).map_err(|e| format!("claims: {e}"))?,
            });
            Ok(grant)
        }
        (FORMAT_SERDE, rest) => postcard::from_bytes::<GrantV1>(rest)
            .map(RefreshGrant::from)
            .map_err(|e| e.to_string()),
        (other, _) => Err(unknown_format(other)),
    }
}

/// The grant as format 1 stored it: the serde form of the grant before federated logins.
/// Frozen: it must not follow later changes of [`RefreshGrant`].
#[derive(Serialize, Deserialize)]
struct GrantV1 {
    hash: SecretHash,
    token_id: Uuid,
    registry: String,
    token_name: String,
    service: String,
    created: DateTime<Utc>,
}

impl From<GrantV1> for RefreshGrant {
    fn from(r: GrantV1) -> RefreshGrant {
        RefreshGrant {
            hash: r.hash,
            token_id: r.token_id,
            registry: r.registry,
            token_name: r.token_name,
            service: r.service,
            created: r.created,
            federated: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, nanos).unwrap()
    }

    fn scope(kind: &str, name: &str, actions: &[&str]) -> Scope {
        let actions: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
        Scope::parse(kind, name, &actions).unwrap()
    }

    fn token() -> Token {
        Token {
            id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            registry: "default".into(),
            name: "ci-deploy".parse().unwrap(),
            status: Status::Disabled,
            expiry: Some(at(1_900_000_000, 123_456_789)),
            scopes: vec![
                scope("repository", "team/*", &["pull", "push"]),
                scope("repository", "base", &["pull", "delete"]),
                scope("registry", "catalog", &["pull"]),
                scope("registry", "*", &["pull"]),
            ],
            secret_hash: SecretHash::of("rga_secret"),
            created: at(1_800_000_000, 1),
            created_by: "admin".into(),
            modified: at(-5, 999_999_999), // before 1970 too
            modified_by: "someone else".into(),
            previous: None,
            last_used: None,
            networks: vec![],
            owner: None,
            description: None,
            federation: None,
        }
    }

    /// [`token`] after a rotation and a use, with an IPv6 or IPv4 client.
    fn rotated_and_used(v6: bool) -> Token {
        Token {
            previous: Some(PreviousSecret {
                hash: SecretHash::of("rga_previous"),
                until: at(1_850_000_000, 7),
            }),
            last_used: Some(LastUse {
                at: at(1_840_000_000, 999),
                client: Some(if v6 {
                    "2001:db8::17".parse().unwrap()
                } else {
                    "192.0.2.9".parse().unwrap()
                }),
                grant: if v6 {
                    GrantKind::Refresh
                } else {
                    GrantKind::Password
                },
            }),
            ..token()
        }
    }

    /// A token in format 1's frozen serde form.
    fn v1(t: &Token) -> TokenV1 {
        TokenV1 {
            id: t.id,
            registry: t.registry.clone(),
            name: t.name.clone(),
            status: t.status,
            expiry: t.expiry,
            scopes: t.scopes.clone(),
            secret_hash: t.secret_hash,
            created: t.created,
            created_by: t.created_by.clone(),
            modified: t.modified,
            modified_by: t.modified_by.clone(),
        }
    }

    fn grant() -> RefreshGrant {
        RefreshGrant {
            hash: SecretHash::of("rgr_secret"),
            token_id: Uuid::from_u128(42),
            registry: "default".into(),
            token_name: "ci-deploy".into(),
            service: "registry.local".into(),
            created: at(1_800_000_123, 456),
            federated: None,
        }
    }

    /// [`grant`] as a federated login's temporary password.
    fn federated_grant() -> RefreshGrant {
        let claims = serde_json::json!({"repository": "acme/app", "run_id": 7, "ok": true});
        RefreshGrant {
            federated: Some(FederatedGrant {
                expires: at(1_800_003_723, 456),
                temporary: true,
                claims: claims.as_object().unwrap().clone(),
            }),
            ..grant()
        }
    }

    /// How format 1 was written (the serde form of the domain types).
    fn legacy(value: &impl Serialize) -> Vec<u8> {
        with_format(FORMAT_SERDE, value).unwrap()
    }

    #[test]
    fn tokens_round_trip_exactly() {
        let mut t = token();
        let bytes = encode_token(&t).unwrap();
        assert_eq!(bytes[0], FORMAT_POLICY);
        assert_eq!(decode_token(&bytes).unwrap(), t);
        t.status = Status::Enabled;
        t.expiry = None;
        t.scopes.clear();
        assert_eq!(decode_token(&encode_token(&t).unwrap()).unwrap(), t);
        for v6 in [false, true] {
            let t = rotated_and_used(v6);
            assert_eq!(decode_token(&encode_token(&t).unwrap()).unwrap(), t);
        }
        let mut t = rotated_and_used(false);
        t.last_used = t.last_used.map(|u| LastUse { client: None, ..u });
        t.previous = None;
        assert_eq!(decode_token(&encode_token(&t).unwrap()).unwrap(), t);
    }

    #[test]
    fn grants_round_trip_exactly() {
        let g = grant();
        let bytes = encode_grant(&g).unwrap();
        assert_eq!(bytes[0], FORMAT_COMPACT);
        assert_eq!(decode_grant(&bytes).unwrap(), g);
        // A federated login's grant: format 3, the format-2 bytes, then its additions.
        let f = federated_grant();
        let bytes = encode_grant(&f).unwrap();
        assert_eq!(bytes[0], FORMAT_FEDERATED_GRANT);
        assert!(bytes[1..].starts_with(&encode_grant(&g).unwrap()[1..]));
        assert_eq!(decode_grant(&bytes).unwrap(), f);
        // Damaged claims are an error naming them, not a grant with no claims.
        let mut damaged = bytes.clone();
        let at = damaged.iter().rposition(|&b| b == b'{').unwrap();
        damaged[at] = b'[';
        let e = decode_grant(&damaged).unwrap_err();
        assert!(e.starts_with("claims:"), "{e}");
    }

    #[test]
    fn format_1_records_still_decode() {
        let t = token();
        assert_eq!(decode_token(&legacy(&v1(&t))).unwrap(), t);
        let g = grant();
        let frozen = GrantV1 {
            hash: g.hash,
            token_id: g.token_id,
            registry: g.registry.clone(),
            token_name: g.token_name.clone(),
            service: g.service.clone(),
            created: g.created,
        };
        assert_eq!(decode_grant(&legacy(&frozen)).unwrap(), g);
    }

    #[test]
    fn compact_records_are_smaller_than_format_1() {
        let t = token();
        let (new, old) = (encode_token(&t).unwrap(), legacy(&v1(&t)));
        assert!(
            new.len() * 10 < old.len() * 7,
            "{} vs {}",
            new.len(),
            old.len()
        );
    }

    /// The layout is on disk: changing it needs a new format byte, not a silent change.
    /// Format 2 is no longer written, but records in it must keep decoding.
    #[test]
    fn format_2_layout_is_pinned() {
        let t = Token {
            id: Uuid::from_u128(1),
            registry: "r".into(),
            name: "abc".parse().unwrap(),
            status: Status::Enabled,
            expiry: None,
            scopes: vec![scope("repository", "a/*", &["pull", "push"])],
            secret_hash: SecretHash([7; 32]),
            created: at(2, 3),
            created_by: "x".into(),
            modified: at(4, 5),
            modified_by: "y".into(),
            previous: None,
            last_used: None,
            networks: vec![],
            owner: None,
            description: None,
            federation: None,
        };
        let mut expected = vec![2u8];
        expected.extend([0; 15]);
        expected.push(1); // id
        expected.extend([1, b'r', 3, b'a', b'b', b'c', 1, 0]); // registry, name, enabled, no expiry
        expected.extend([1, 0, 3, b'a', b'/', b'*', 3]); // one scope: repository "a/*" pull+push
        expected.extend([7; 32]); // hash
        expected.extend([4, 3, 1, b'x', 8, 5, 1, b'y']); // zigzag secs, nanos, name; twice
        assert_eq!(decode_token(&expected).unwrap(), t);
        // Format 3 of a token never rotated nor used: the same bytes, then two "none"s.
        let mut v3 = expected.clone();
        v3[0] = 3;
        v3.extend([0, 0]);
        assert_eq!(encode_token(&t).unwrap(), as_v4(&v3));
        assert_eq!(decode_token(&v3).unwrap(), t);
    }

    /// A format-3 record's format-4 form when there is nothing new to store: format byte 4,
    /// then no networks, no owner, no description.
    fn as_v4(v3: &[u8]) -> Vec<u8> {
        let mut v4 = v3.to_vec();
        v4[0] = 4;
        v4.extend([0, 0, 0]);
        v4
    }

    /// Format 4's additions, byte by byte; format 3 records decode without them.
    #[test]
    fn format_4_layout_is_pinned() {
        let base = rotated_and_used(true);
        let mut v3 = encode_token(&base).unwrap();
        v3.truncate(v3.len() - 3);
        v3[0] = 3;
        assert_eq!(decode_token(&v3).unwrap(), base, "format 3 still decodes");

        let t = Token {
            networks: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            owner: Some("al".parse().unwrap()),
            description: Some("ci".parse().unwrap()),
            ..base.clone()
        };
        let mut expected = v3.clone();
        expected[0] = 4;
        expected.push(2); // two networks
        expected.extend([0, 10, 0, 0, 0, 8]); // IPv4, octets, /8
        expected.extend([1, 0x20, 0x01, 0x0d, 0xb8]);
        expected.extend([0; 12]);
        expected.push(32); // IPv6 2001:db8::, /32
        expected.extend([1, 2, b'a', b'l', 1, 2, b'c', b'i']); // owner, description
        assert_eq!(encode_token(&t).unwrap(), expected);
        assert_eq!(decode_token(&expected).unwrap(), t);

        // Host bits set, or a control character: damaged, refused with the field.
        let mut bad = expected.clone();
        let pos = v3.len() + 1 + 4; // the first network's last octet
        bad[pos] = 1;
        let e = decode_token(&bad).unwrap_err();
        assert!(
            e.starts_with("networks[0]:") && e.contains("host bits"),
            "{e}"
        );
        let mut bad = expected.clone();
        let last = bad.len() - 1;
        bad[last] = b'\n';
        let e = decode_token(&bad).unwrap_err();
        assert!(e.contains("description") && e.contains("control"), "{e}");
    }

    /// Format 3's additions, byte by byte.
    #[test]
    fn format_3_layout_is_pinned() {
        let base = Token {
            id: Uuid::from_u128(1),
            registry: "r".into(),
            name: "abc".parse().unwrap(),
            status: Status::Enabled,
            expiry: None,
            scopes: vec![],
            secret_hash: SecretHash([7; 32]),
            created: at(2, 3),
            created_by: "x".into(),
            modified: at(4, 5),
            modified_by: "y".into(),
            previous: None,
            last_used: None,
            networks: vec![],
            owner: None,
            description: None,
            federation: None,
        };
        let mut head = vec![3u8];
        head.extend([0; 15]);
        head.push(1); // id
        head.extend([1, b'r', 3, b'a', b'b', b'c', 1, 0, 0]); // registry, name, enabled, no expiry, no scopes
        head.extend([7; 32]); // hash
        head.extend([4, 3, 1, b'x', 8, 5, 1, b'y']);

        let v4 = Token {
            previous: Some(PreviousSecret {
                hash: SecretHash([9; 32]),
                until: at(6, 7),
            }),
            last_used: Some(LastUse {
                at: at(10, 11),
                client: Some("192.0.2.1".parse().unwrap()),
                grant: GrantKind::Password,
            }),
            ..base.clone()
        };
        let mut expected = head.clone();
        expected.push(1); // a previous password
        expected.extend([9; 32]);
        expected.extend([12, 7]); // until: zigzag secs, nanos
        expected.extend([1, 20, 11]); // a last use at (10 s, 11 ns)
        expected.extend([1, 0, 192, 0, 2, 1]); // some client, IPv4, its octets
        expected.push(0); // password grant
        assert_eq!(encode_token(&v4).unwrap(), as_v4(&expected));
        assert_eq!(decode_token(&expected).unwrap(), v4);

        let v6 = Token {
            last_used: Some(LastUse {
                at: at(10, 11),
                client: Some("::1".parse().unwrap()),
                grant: GrantKind::Refresh,
            }),
            ..base.clone()
        };
        let mut expected = head.clone();
        expected.push(0); // no previous password
        expected.extend([1, 20, 11, 1, 1]); // a last use, some client, IPv6
        expected.extend([0; 15]);
        expected.push(1);
        expected.push(1); // refresh grant
        assert_eq!(encode_token(&v6).unwrap(), as_v4(&expected));
        assert_eq!(decode_token(&expected).unwrap(), v6);

        // An unknown grant type byte is an error, not a guess.
        let last = expected.len() - 1;
        expected[last] = 2;
        let e = decode_token(&expected).unwrap_err();
        assert!(e.contains("unknown grant type byte 2"), "{e}");
    }

    #[test]
    fn records_breaking_the_scope_list_rules_are_refused() {
        // Found by the `record` fuzz target: two scopes for one (type, name) decoded.
        let mut t = token();
        t.scopes = vec![
            scope("repository", "a", &["pull"]),
            scope("repository", "a", &["delete"]),
        ];
        for bytes in [encode_token(&t).unwrap(), legacy(&v1(&t))] {
            let e = decode_token(&bytes).unwrap_err();
            assert!(
                e.starts_with("scopes[1]:") && e.contains("duplicate scope"),
                "{e}"
            );
        }
        t.scopes = (0..=crate::domain::MAX_SCOPES)
            .map(|i| scope("repository", &format!("r{i}"), &["pull"]))
            .collect();
        let e = decode_token(&encode_token(&t).unwrap()).unwrap_err();
        assert!(e.contains("at most 100 scopes, got 101"), "{e}");
    }

    #[test]
    fn damaged_records_are_errors_that_say_what_is_wrong() {
        let good = encode_token(&rotated_and_used(true)).unwrap();
        assert_eq!(decode_token(&[]).unwrap_err(), "empty record");
        let e = decode_token(&[9, 1, 2]).unwrap_err();
        assert!(e.contains("unknown record format 9"), "{e}");
        // Truncated anywhere: an error, never a panic.
        for len in 1..good.len() {
            assert!(decode_token(&good[..len]).is_err(), "prefix of {len} bytes");
        }
        // Rule-breaking content is refused with the field.
        let mut t = token();
        t.scopes =
            vec![Scope::new(ScopeTarget::Registry(RegistryTarget::Any), ActionSet::ALL).unwrap()];
        let mut bytes = encode_token(&t).unwrap();
        let pos = bytes
            .windows(3)
            .position(|w| w == [REGISTRY, 1, b'*'])
            .expect("scope bytes");
        bytes[pos + 3] = 0x2; // push without pull
        let e = decode_token(&bytes).unwrap_err();
        assert!(
            e.starts_with("scopes[0]:") && e.contains("push requires pull"),
            "{e}"
        );
        bytes[pos + 3] = 0x10; // no such action
        let e = decode_token(&bytes).unwrap_err();
        assert!(e.contains("unknown action bits 0x10"), "{e}");
        bytes[pos + 3] = 0x1;
        bytes[pos] = 5; // no such scope type
        let e = decode_token(&bytes).unwrap_err();
        assert!(e.contains("unknown scope type byte 5"), "{e}");
    }
}
