//! The API's one way to write an instant: RFC 3339, whole seconds, `Z`
//! (`2026-12-01T10:00:00Z`). The admin API, the token endpoint and the CLI all use it.
use chrono::{DateTime, SecondsFormat, Utc};

/// `t` as RFC 3339 with whole seconds and `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Serde `with` module for a `DateTime<Utc>` field in the API's format. Reading accepts any
/// RFC 3339 offset and fraction.
pub mod whole_seconds {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time")))
    }
}

/// [`whole_seconds`] for an `Option<DateTime<Utc>>` field (`null` when `None`).
pub mod option_whole_seconds {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<std::borrow::Cow<'de, str>>::deserialize(d)?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time"))
                    })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde::{Deserialize, Serialize};

    #[test]
    fn whole_seconds_and_z() {
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
            + chrono::Duration::milliseconds(750);
        assert_eq!(rfc3339(t), "2026-12-01T10:00:00Z");
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct At {
        #[serde(with = "whole_seconds")]
        at: DateTime<Utc>,
        #[serde(with = "option_whole_seconds")]
        until: Option<DateTime<Utc>>,
    }

    #[test]
    fn serde_round_trip() {
        let v: At =
            serde_json::from_str(r#"{"at":"2026-12-01T11:00:00+01:00","until":null}"#).unwrap();
        assert_eq!(v.at, Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap());
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"at":"2026-12-01T10:00:00Z","until":null}"#
        );
        let e = serde_json::from_str::<At>(r#"{"at":"tomorrow","until":null}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"tomorrow\" is not an RFC 3339 time"),
            "{e}"
        );
    }
}
