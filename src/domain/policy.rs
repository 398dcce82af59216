//! Who may use a token from where, and who it belongs to: allowed networks ([`Network`]),
//! [`Owner`] and [`Description`], and the registry's maximum token lifetime
//! ([`check_lifetime`]).
//!
//! A token's networks are checked by the auth service on every password login and refresh
//! grant; an empty list means anywhere. The registry JWT is not bound to an address.
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::ValidationError;

/// At most this many allowed networks per token.
pub const MAX_NETWORKS: usize = 64;
/// Longest owner, in characters.
pub const MAX_OWNER: usize = 128;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 500;

/// An IPv4 or IPv6 network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`); a bare address is
/// the single-address network. The address has no bits set past the prefix, so what is
/// stored is what was meant. IPv4-mapped IPv6 addresses are compared as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// `addr/prefix`, refused when the prefix is too long or host bits are set.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Network, String> {
        let max = max_prefix(addr);
        if prefix > max {
            return Err(format!("prefix /{prefix} is longer than {max} bits"));
        }
        let n = Network { addr, prefix };
        if mask(addr, prefix) != addr {
            return Err(format!(
                "host bits are set: did you mean {}/{prefix}?",
                mask(addr, prefix)
            ));
        }
        Ok(n)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.addr
            }
            _ => false,
        }
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `addr` with every bit past `prefix` cleared (`prefix` at most the address's width).
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for Network {
    type Err = String;
    /// `address/prefix` or a bare address. The error says what is wrong with the entry.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not a network like 10.0.0.0/8 or 2001:db8::/32"))?;
        // A mapped address is stored as the IPv4 network it means.
        let (addr, shift) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), 96),
                None => (addr, 0),
            },
            v4 => (v4, 0),
        };
        let prefix = match prefix {
            None => max_prefix(addr),
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
                let p: u8 = p
                    .parse()
                    .map_err(|_| format!("{s:?}: prefix {p:?} is not a number of bits"))?;
                if shift > 0 && p < shift {
                    return Err(format!(
                        "{s:?}: an IPv4-mapped prefix must be at least /{shift}"
                    ));
                }
                p - shift
            }
            Some(p) => return Err(format!("{s:?}: prefix {p:?} is not a number of bits")),
        };
        Network::new(addr, prefix).map_err(|e| format!("{s:?}: {e}"))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl TryFrom<String> for Network {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Network> for String {
    fn from(n: Network) -> String {
        n.to_string()
    }
}

/// Parses a token's allowed networks: at most [`MAX_NETWORKS`], no duplicates. Field name in
/// errors: `allowedNetworks[i]` (or `allowedNetworks` for the count).
pub fn parse_networks<S: AsRef<str>>(entries: &[S]) -> Result<Vec<Network>, ValidationError> {
    if entries.len() > MAX_NETWORKS {
        return Err(ValidationError::new(
            "allowedNetworks",
            format!("at most {MAX_NETWORKS} networks, got {}", entries.len()),
        ));
    }
    let mut out: Vec<Network> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let field = format!("allowedNetworks[{i}]");
        let n: Network = e
            .as_ref()
            .parse()
            .map_err(|rule| ValidationError::new(field.clone(), rule))?;
        if out.contains(&n) {
            return Err(ValidationError::new(
                field,
                format!("duplicate network {n}"),
            ));
        }
        out.push(n);
    }
    Ok(out)
}

/// Whether a client at `client` may use a token limited to `networks`: always when the list
/// is empty; otherwise only from a known address inside one of them.
pub fn network_allows(networks: &[Network], client: Option<IpAddr>) -> bool {
    if networks.is_empty() {
        return true;
    }
    client.is_some_and(|ip| networks.iter().any(|n| n.contains(ip)))
}

/// Free text of at most `max` characters, no control characters, not blank.
fn check_text(field: &str, s: &str, max: usize) -> Result<(), ValidationError> {
    let len = s.chars().count();
    if len > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters, got {len}"),
        ));
    }
    if s.trim().is_empty() {
        return Err(ValidationError::new(
            field,
            "must not be empty (send null to remove it)",
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters (newlines, tabs, escapes)",
        ));
    }
    // Bidi overrides and isolates make a line read differently from what it holds.
    if s.chars()
        .any(|c| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
    {
        return Err(ValidationError::new(
            field,
            "must not contain bidirectional control characters",
        ));
    }
    Ok(())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                check_text($field, s, $max)?;
                Ok($name(s.to_string()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                check_text($field, &s, $max)?;
                Ok($name(s))
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// Who a token belongs to (a person's email, a service's name): up to 128 characters,
    /// no control characters. Field name in errors: `owner`.
    Owner,
    "owner",
    MAX_OWNER
);
text_type!(
    /// What a token is for: up to 500 characters, no control characters. Field name in
    /// errors: `description`.
    Description,
    "description",
    MAX_DESCRIPTION
);

/// The rule a registry's `max_token_lifetime` sets, as the 400 names it.
pub fn lifetime_rule(limit: TimeDelta) -> String {
    let days = limit.num_days();
    let text = if limit == TimeDelta::days(days) {
        format!("{days}d")
    } else {
        format!("{}s", limit.num_seconds())
    };
    format!("max_token_lifetime ({text}) of this registry")
}

/// Whether a token with `expiry` keeps the registry's lifetime rule at `now`: it must expire,
/// at most `limit` from now. Field name in errors: `expiryDate`.
pub fn check_lifetime(
    expiry: Option<DateTime<Utc>>,
    limit: Option<TimeDelta>,
    now: DateTime<Utc>,
) -> Result<(), ValidationError> {
    let Some(limit) = limit else { return Ok(()) };
    let rule = lifetime_rule(limit);
    match expiry {
        None => Err(ValidationError::new(
            "expiryDate",
            format!("is required by the {rule}: a token must expire"),
        )),
        Some(e) if now.checked_add_signed(limit).is_some_and(|max| e > max) => {
            Err(ValidationError::new(
                "expiryDate",
                format!(
                    "{} is beyond the {rule}: at most now + the limit",
                    e.to_rfc3339()
                ),
            ))
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_print() {
        for (text, shown) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("192.0.2.7", "192.0.2.7/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("::1", "::1/128"),
            ("::/0", "::/0"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
        ] {
            let n: Network = text.parse().unwrap();
            assert_eq!(n.to_string(), shown, "{text}");
            assert_eq!(n.to_string().parse::<Network>().unwrap(), n);
        }
    }

    #[test]
    fn bad_networks_say_what_is_wrong() {
        for (text, says) in [
            ("10.0.0.1/8", "host bits are set: did you mean 10.0.0.0/8"),
            ("2001:db8::1/32", "host bits are set"),
            ("10.0.0.0/33", "longer than 32 bits"),
            ("::/129", "longer than 128 bits"),
            ("10.0.0.0/", "is not a number of bits"),
            ("10.0.0.0/-1", "is not a number of bits"),
            ("10.0.0.0/ 8", "is not a number of bits"),
            ("10.0.0.0/0008", "is not a number of bits"),
            ("example.com", "is not a network like"),
            ("", "is not a network like"),
            ("::ffff:10.0.0.0/8", "at least /96"),
        ] {
            let e = text.parse::<Network>().unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn membership_and_mapped_addresses() {
        let v4: Network = "10.0.0.0/8".parse().unwrap();
        assert!(v4.contains(ip("10.255.0.1")));
        assert!(!v4.contains(ip("11.0.0.0")));
        assert!(v4.contains(ip("::ffff:10.1.2.3")), "mapped IPv6 is IPv4");
        assert!(!v4.contains(ip("2001:db8::1")));
        let v6: Network = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let one: Network = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));

        assert!(network_allows(&[], None), "no networks: anywhere");
        assert!(network_allows(&[], Some(ip("192.0.2.1"))));
        assert!(network_allows(&[v4, v6], Some(ip("2001:db8::5"))));
        assert!(!network_allows(&[v4, v6], Some(ip("192.0.2.1"))));
        assert!(!network_allows(&[v4], None), "unknown address: refused");
    }

    #[test]
    fn network_lists_are_bounded_and_name_the_entry() {
        let ok = parse_networks(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        assert_eq!(ok.len(), 2);
        let e = parse_networks(&["10.0.0.0/8", "10.0.0.1/8"]).unwrap_err();
        assert_eq!(e.field, "allowedNetworks[1]");
        assert!(e.rule.contains("host bits"), "{}", e.rule);
        let e = parse_networks(&["10.0.0.0/8", "10.0.0.0/8"]).unwrap_err();
        assert_eq!(e.field, "allowedNetworks[1]");
        assert!(e.rule.contains("duplicate"), "{}", e.rule);
        let many: Vec<String> = (0..=MAX_NETWORKS)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        let e = parse_networks(&many).unwrap_err();
        assert_eq!(e.field, "allowedNetworks");
        assert!(e.rule.contains("at most 64"), "{}", e.rule);
        assert_eq!(parse_networks(&many[..MAX_NETWORKS]).unwrap().len(), 64);
    }

    #[test]
    fn owner_and_description_limits() {
        assert_eq!(
            "alice@example.com".parse::<Owner>().unwrap().as_str(),
            "alice@example.com"
        );
        assert!(
            "ü".repeat(128).parse::<Owner>().is_ok(),
            "characters, not bytes"
        );
        let e = "a".repeat(129).parse::<Owner>().unwrap_err();
        assert_eq!(e.field, "owner");
        assert!(
            e.rule.contains("at most 128 characters, got 129"),
            "{}",
            e.rule
        );
        assert!("d".repeat(500).parse::<Description>().is_ok());
        let e = "d".repeat(501).parse::<Description>().unwrap_err();
        assert_eq!(e.field, "description");
        assert!(e.rule.contains("at most 500"), "{}", e.rule);
        for bad in ["a\nb", "tab\there", "esc\u{1b}[31m", "nul\0"] {
            let e = bad.parse::<Description>().unwrap_err();
            assert!(e.rule.contains("control characters"), "{bad:?}: {}", e.rule);
        }
        let e = "evil\u{202e}txt".parse::<Owner>().unwrap_err();
        assert!(e.rule.contains("bidirectional"), "{}", e.rule);
        assert!(" ".parse::<Owner>().is_err());
        let o: Owner = serde_json::from_str("\"bob\"").unwrap();
        assert_eq!(serde_json::to_string(&o).unwrap(), "\"bob\"");
        assert!(serde_json::from_str::<Owner>("\"a\\nb\"").is_err());
    }

    #[test]
    fn lifetime_rule_needs_an_expiry_within_the_limit() {
        let now = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let limit = Some(TimeDelta::days(90));
        assert_eq!(check_lifetime(None, None, now), Ok(()));
        assert_eq!(check_lifetime(Some(now), None, now), Ok(()));
        let e = check_lifetime(None, limit, now).unwrap_err();
        assert_eq!(e.field, "expiryDate");
        assert!(e.rule.contains("max_token_lifetime (90d)"), "{}", e.rule);
        assert!(e.rule.contains("must expire"), "{}", e.rule);
        assert_eq!(
            check_lifetime(Some(now + TimeDelta::days(90)), limit, now),
            Ok(())
        );
        let e = check_lifetime(
            Some(now + TimeDelta::days(90) + TimeDelta::seconds(1)),
            limit,
            now,
        )
        .unwrap_err();
        assert!(
            e.rule.contains("beyond the max_token_lifetime (90d)"),
            "{}",
            e.rule
        );
        assert_eq!(
            lifetime_rule(TimeDelta::hours(36)),
            "max_token_lifetime (129600s) of this registry"
        );
    }
}
