//! [`Pii`]: personal data (an email, a phone number, a name, a handle) that serialises as itself
//! but never prints: `Debug` and `Display` show `<redacted>`. A value wrapped where it enters the
//! suite cannot reach a log line by `?envelope`, `{error}` or a `dbg!`; code that needs the
//! value says so with [`Pii::expose`] (or a deref), which a reviewer can grep for.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Serialize};

/// Personal data that serialises transparently and prints as `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pii<T>(T);

impl<T> Pii<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself, for code that stores, compares or sends it (never for logs).
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The value, unwrapped.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Pii<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl From<&str> for Pii<String> {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<T> Deref for Pii<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Pii<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq<str> for Pii<String> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Pii<String> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_redacted_and_serialises_as_itself() {
        let email = Pii::from("ana@example.com");
        assert_eq!(format!("{email}"), "<redacted>");
        assert_eq!(format!("{email:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&email)), "Some(<redacted>)");
        assert_eq!(
            serde_json::to_string(&email).unwrap(),
            "\"ana@example.com\""
        );
        let back: Pii<String> = serde_json::from_str("\"ana@example.com\"").unwrap();
        assert_eq!(back, email);
        assert_eq!(email.expose(), "ana@example.com");
        assert!(email == "ana@example.com");
    }
}
