//! The `Secret` newtype: every credential lives in one from the moment it is parsed.
//!
//! Why a type and not discipline: a token that can only be read through [`Secret::expose`] cannot
//! slip into a `{:?}` log line, an error message or a panic by accident.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A credential (token, client secret, private key, storage key). `Debug` and `Display` print
/// `***`; it has no `Serialize` so it cannot be written out by mistake.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The credential itself, for the one place that must send it (an HTTP header, a form).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the credential is the empty string (treated as absent by config validation).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("5Aep861KIwKdekr90I4iHdA");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
        assert_eq!(s.expose(), "5Aep861KIwKdekr90I4iHdA");
    }

    #[test]
    fn deserializes_from_a_json_string() {
        let s: Secret = serde_json::from_str("\"tok\"").unwrap();
        assert_eq!(s.expose(), "tok");
        assert!(serde_json::from_str::<Secret>("12").is_err());
    }
}
