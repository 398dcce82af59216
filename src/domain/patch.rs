//! [`Patch<T>`]: a field of a partial update (PATCH) that can be absent (keep), `null`
//! (clear) or a value (set). JSON cannot say this with `Option<T>` alone.
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One field of a PATCH body.
///
/// Deserialize with `#[serde(default)]` so a missing key is [`Patch::Absent`]; serialize with
/// `#[serde(default, skip_serializing_if = "Patch::is_absent")]` so it stays missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// The key is not in the body: keep the current value.
    #[default]
    Absent,
    /// The key is `null`: remove the value.
    Null,
    /// The key has a value: set it.
    Value(T),
}

impl<T> Patch<T> {
    /// True when the key was not sent.
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    /// Converts the value, keeping absent and null as they are.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Patch<U> {
        match self {
            Patch::Absent => Patch::Absent,
            Patch::Null => Patch::Null,
            Patch::Value(v) => Patch::Value(f(v)),
        }
    }

    /// Converts the value with a fallible `f`.
    pub fn try_map<U, E>(self, f: impl FnOnce(T) -> Result<U, E>) -> Result<Patch<U>, E> {
        Ok(match self {
            Patch::Absent => Patch::Absent,
            Patch::Null => Patch::Null,
            Patch::Value(v) => Patch::Value(f(v)?),
        })
    }

    /// Borrows the value.
    pub fn as_ref(&self) -> Patch<&T> {
        match self {
            Patch::Absent => Patch::Absent,
            Patch::Null => Patch::Null,
            Patch::Value(v) => Patch::Value(v),
        }
    }

    /// The value as an `Option`, with absent and null both `None` (a full replace, where a
    /// missing key and `null` mean the same).
    pub fn into_option(self) -> Option<T> {
        match self {
            Patch::Value(v) => Some(v),
            Patch::Absent | Patch::Null => None,
        }
    }

    /// Applies the change to `current`.
    pub fn apply_to(self, current: &mut Option<T>) {
        match self {
            Patch::Absent => {}
            Patch::Null => *current = None,
            Patch::Value(v) => *current = Some(v),
        }
    }
}

impl<T> From<Option<T>> for Patch<T> {
    /// `Some` sets, `None` clears.
    fn from(o: Option<T>) -> Self {
        o.map_or(Patch::Null, Patch::Value)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    /// Called only when the key is present (the field needs `#[serde(default)]`), so `null`
    /// is [`Patch::Null`], never absent.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(Patch::from)
    }
}

impl<T: Serialize> Serialize for Patch<T> {
    /// `null` for [`Patch::Null`] and for [`Patch::Absent`] (which a field skips with
    /// `skip_serializing_if = "Patch::is_absent"`).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Patch::Value(v) => s.serialize_some(v),
            Patch::Absent | Patch::Null => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Body {
        #[serde(default, skip_serializing_if = "Patch::is_absent")]
        field: Patch<String>,
    }

    #[test]
    fn absent_null_and_value_deserialize_apart() {
        let b: Body = serde_json::from_value(json!({})).unwrap();
        assert_eq!(b.field, Patch::Absent);
        let b: Body = serde_json::from_value(json!({"field": null})).unwrap();
        assert_eq!(b.field, Patch::Null);
        let b: Body = serde_json::from_value(json!({"field": "x"})).unwrap();
        assert_eq!(b.field, Patch::Value("x".to_string()));
        assert!(serde_json::from_value::<Body>(json!({"field": 5})).is_err());
    }

    #[test]
    fn serializes_back_to_the_same_json() {
        for v in [json!({}), json!({"field": null}), json!({"field": "x"})] {
            let b: Body = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(&b).unwrap(), v);
        }
    }

    #[test]
    fn applies_and_converts() {
        let mut cur = Some(1);
        Patch::Absent.apply_to(&mut cur);
        assert_eq!(cur, Some(1));
        Patch::Value(2).apply_to(&mut cur);
        assert_eq!(cur, Some(2));
        Patch::Null.apply_to(&mut cur);
        assert_eq!(cur, None);
        assert_eq!(Patch::Value(2).map(|v| v * 10), Patch::Value(20));
        assert_eq!(Patch::<i32>::Null.map(|v| v * 10), Patch::Null);
        assert_eq!(
            Patch::Value("7").try_map(str::parse::<u8>),
            Ok(Patch::Value(7))
        );
        assert!(Patch::Value("x").try_map(str::parse::<u8>).is_err());
        assert_eq!(Patch::Value(3).into_option(), Some(3));
        assert_eq!(Patch::<i32>::Null.into_option(), None);
        assert_eq!(Patch::<i32>::Absent.into_option(), None);
        assert_eq!(Patch::from(Some(1)), Patch::Value(1));
        assert_eq!(Patch::<i32>::from(None), Patch::Null);
    }
}
