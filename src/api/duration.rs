//! Durations on the wire and on the command line: whole seconds (`3600`) or a number with a
//! unit, `s`, `m`, `h`, `d` or `w` (`90s`, `30m`, `12h`, `7d`, `2w`). Used by the token list's
//! `expiringWithin` filter and the CLI's `--expiring` and `--grace`.
use chrono::TimeDelta;

/// Parses `text` as a duration of zero or more. The error says what was expected.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    const HELP: &str = "use whole seconds (3600) or a number with a unit s, m, h, d or w (7d)";
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], Some(c)),
        _ => (text, None),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a duration: {HELP}"));
    }
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is too large"))?;
    match unit {
        None | Some('s') => TimeDelta::try_seconds(n),
        Some('m') => TimeDelta::try_minutes(n),
        Some('h') => TimeDelta::try_hours(n),
        Some('d') => TimeDelta::try_days(n),
        Some('w') => TimeDelta::try_weeks(n),
        Some(other) => return Err(format!("unknown unit {other:?} in {text:?}: {HELP}")),
    }
    .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_seconds() {
        for (text, secs) in [
            ("0", 0),
            ("3600", 3600),
            ("90s", 90),
            ("30m", 1800),
            ("12h", 43_200),
            ("7d", 604_800),
            ("2w", 1_209_600),
            (" 1h ", 3600),
        ] {
            assert_eq!(parse_duration(text), Ok(TimeDelta::seconds(secs)), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        for bad in ["", "d", "-1", "1.5h", "7 d", "abc", "h7"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("not a duration"), "{bad:?}: {e}");
        }
        let e = parse_duration("3y").unwrap_err();
        assert!(e.contains("unknown unit 'y'"), "{e}");
        let e = parse_duration("99999999999999999999").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        let e = parse_duration("9999999999999999w").unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }
}
