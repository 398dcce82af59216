//! `--expires`: a duration from now (`2w`, `30d`, `12h`, `90m`) of at least the server's
//! minimum lifetime (one hour), a date (`2027-01-01`, that day's 00:00 UTC) or an RFC 3339
//! instant.
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};

use crate::api::rfc3339;

use crate::domain::token::MIN_LIFETIME;

/// A parsed `--expires` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    /// This long from now.
    In(Duration),
    /// At this instant.
    At(DateTime<Utc>),
}

impl Expires {
    /// The instant to send. A duration counts from `now` and is rounded up to the next whole
    /// minute, so the expiry is never sooner than asked (the request takes a moment, and the
    /// server wants an expiry at least an hour ahead: `--expires 1h` must not arrive as 59:59).
    /// Err when the duration reaches beyond what a timestamp can hold.
    pub fn resolve(self, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
        match self {
            Expires::At(t) => Ok(t),
            Expires::In(d) => {
                let minute = Duration::minutes(1);
                now.checked_add_signed(d)
                    .and_then(|t| t.duration_trunc(minute).ok())
                    .and_then(|t| t.checked_add_signed(minute))
                    .ok_or_else(|| format!("an expiry {d} from now is too far in the future"))
            }
        }
    }
}

impl FromStr for Expires {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Expires::parse(text, Utc::now())
    }
}

impl Expires {
    /// Parses `text`; `now` only dates the examples in the error message (a month ahead, so
    /// an example is never in the past).
    pub fn parse(text: &str, now: DateTime<Utc>) -> Result<Self, String> {
        let text = text.trim();
        let example = now + Duration::days(31);
        let help = format!(
            "use a duration of at least 1h like 2w, 30d, 12h or 90m, a date like {} \
             (00:00 UTC), or an RFC 3339 time at least an hour ahead like {}",
            example.format("%Y-%m-%d"),
            example.format("%Y-%m-%dT10:00:00Z"),
        );
        if let Some(unit) = text.chars().last().filter(|c| c.is_ascii_alphabetic()) {
            let digits = &text[..text.len() - 1];
            if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                let n: i64 = digits
                    .parse()
                    .map_err(|_| format!("{text:?} is too large"))?;
                let d = match unit {
                    'w' => Duration::try_weeks(n),
                    'd' => Duration::try_days(n),
                    'h' => Duration::try_hours(n),
                    'm' => Duration::try_minutes(n),
                    _ => return Err(format!("unknown unit {unit:?} in {text:?}: {help}")),
                }
                .ok_or_else(|| format!("{text:?} is too large"))?;
                if n == 0 {
                    return Err(format!("{text:?} is not in the future: {help}"));
                }
                // The server refuses these whatever the moment: say so before asking it.
                if d < MIN_LIFETIME {
                    return Err(format!(
                        "{text:?} is too soon: a token must live at least one hour ({help})"
                    ));
                }
                return Ok(Expires::In(d));
            }
        }
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(Expires::At(day.and_time(chrono::NaiveTime::MIN).and_utc()));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|t| Expires::At(t.with_timezone(&Utc)))
            .map_err(|_| format!("{text:?} is not a valid expiry: {help}"))
    }
}

impl fmt::Display for Expires {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expires::In(d) => write!(f, "in {d}"),
            Expires::At(t) => f.write_str(&rfc3339(*t)),
        }
    }
}

/// "in 29d 23h", "in 59m", "2h ago": how far `t` is from `now`, for people.
pub fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = t - now;
    let (past, d) = if d < Duration::zero() {
        (true, -d)
    } else {
        (false, d)
    };
    let (days, hours, minutes) = (d.num_days(), d.num_hours() % 24, d.num_minutes() % 60);
    let text = if days > 0 {
        if hours > 0 {
            format!("{days}d {hours}h")
        } else {
            format!("{days}d")
        }
    } else if hours > 0 {
        if minutes > 0 {
            format!("{hours}h {minutes}m")
        } else {
            format!("{hours}h")
        }
    } else if minutes > 0 {
        format!("{minutes}m")
    } else {
        "less than a minute".to_string()
    };
    if past {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn durations() {
        assert_eq!("30d".parse(), Ok(Expires::In(Duration::days(30))));
        assert_eq!("12h".parse(), Ok(Expires::In(Duration::hours(12))));
        assert_eq!("90m".parse(), Ok(Expires::In(Duration::minutes(90))));
        assert_eq!("60m".parse(), Ok(Expires::In(Duration::hours(1))));
        assert_eq!(" 1h ".parse(), Ok(Expires::In(Duration::hours(1))));
        assert_eq!("2w".parse(), Ok(Expires::In(Duration::days(14))));
    }

    #[test]
    fn a_date_is_its_midnight_utc() {
        assert_eq!(
            "2027-01-01".parse(),
            Ok(Expires::At(at("2027-01-01T00:00:00Z")))
        );
        assert!("2027-02-30".parse::<Expires>().is_err());
    }

    #[test]
    fn the_examples_are_in_the_future() {
        let now = at("2031-06-15T12:00:00Z");
        let err = Expires::parse("soon", now).unwrap_err();
        assert!(err.contains("like 2031-07-16 (00:00 UTC)"), "{err}");
        assert!(err.contains("like 2031-07-16T10:00:00Z"), "{err}");
    }

    #[test]
    fn instants() {
        assert_eq!(
            "2026-12-01T10:00:00Z".parse(),
            Ok(Expires::At(at("2026-12-01T10:00:00Z")))
        );
        assert_eq!(
            "2026-12-01T12:00:00+02:00".parse(),
            Ok(Expires::At(at("2026-12-01T10:00:00Z")))
        );
    }

    #[test]
    fn rejects_nonsense() {
        for (text, needle) in [
            ("", "not a valid expiry"),
            ("30", "not a valid expiry"),
            ("d", "not a valid expiry"),
            ("30s", "unknown unit 's'"),
            ("3y", "unknown unit 'y'"),
            ("0w", "not in the future"),
            ("-1h", "not a valid expiry"),
            ("0h", "not in the future"),
            ("45m", "at least one hour"),
            ("59m", "at least one hour"),
            ("99999999999999999999d", "too large"),
            ("999999999999d", "too large"),
            ("2026-12-01T10:00", "not a valid expiry"),
            ("tomorrow", "not a valid expiry"),
        ] {
            let err = text.parse::<Expires>().unwrap_err();
            assert!(err.contains(needle), "{text:?} gave {err:?}");
            // Never suggests a value that is always refused.
            let advice = err.replace(&format!("{text:?}"), "");
            assert!(!advice.contains("45m"), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn durations_round_up_to_the_next_minute() {
        let now = at("2026-01-01T10:00:30Z");
        assert_eq!(
            Expires::In(Duration::hours(1)).resolve(now),
            Ok(at("2026-01-01T11:01:00Z"))
        );
        let now = at("2026-01-01T10:00:00Z");
        assert_eq!(
            Expires::In(Duration::days(30)).resolve(now),
            Ok(at("2026-01-31T10:01:00Z"))
        );
        let fixed = at("2027-05-05T05:05:05Z");
        assert_eq!(Expires::At(fixed).resolve(now), Ok(fixed));
        let far: Expires = "100000000d".parse().unwrap();
        assert!(far.resolve(now).unwrap_err().contains("too far"));
    }

    #[test]
    fn relative_text() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(relative(at("2026-01-31T00:00:00Z"), now), "in 30d");
        assert_eq!(relative(at("2026-01-02T05:00:00Z"), now), "in 1d 5h");
        assert_eq!(relative(at("2026-01-01T01:30:00Z"), now), "in 1h 30m");
        assert_eq!(relative(at("2026-01-01T00:45:10Z"), now), "in 45m");
        assert_eq!(
            relative(at("2026-01-01T00:00:10Z"), now),
            "in less than a minute"
        );
        assert_eq!(relative(at("2025-12-31T22:00:00Z"), now), "2h ago");
        assert_eq!(
            rfc3339(at("2026-01-01T00:00:00.5+01:00")),
            "2025-12-31T23:00:00Z"
        );
    }
}
