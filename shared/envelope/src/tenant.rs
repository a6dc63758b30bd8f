use std::fmt;

use serde::{Deserialize, Serialize};

/// A tenant's identifier: 1 to 63 characters of `a-z`, `0-9`, `-` and `_`, starting with a letter
/// or digit. It appears in Kafka keys, Redis keys and URLs, so the alphabet is deliberately small.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

/// Why a string is not a valid [`TenantId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant id must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
)]
pub struct TenantIdError;

impl TenantId {
    /// Parses a tenant id.
    pub fn parse(value: &str) -> Result<Self, TenantIdError> {
        let bytes = value.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_');
        if first_ok && rest_ok && bytes.len() <= 63 {
            Ok(Self(value.to_owned()))
        } else {
            Err(TenantIdError)
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = TenantIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A tenant id binds as `text`, so a query takes `&TenantId` where it took `&str`, and a
/// `tenant_id` column reads back as a checked id (a stored value that does not parse is an
/// error, not a silently accepted string).
#[cfg(feature = "sqlx")]
mod sql {
    use sqlx::encode::IsNull;
    use sqlx::error::BoxDynError;
    use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
    use sqlx::{Decode, Encode, Postgres, Type};

    use super::TenantId;

    impl Type<Postgres> for TenantId {
        fn type_info() -> PgTypeInfo {
            <String as Type<Postgres>>::type_info()
        }

        fn compatible(ty: &PgTypeInfo) -> bool {
            <String as Type<Postgres>>::compatible(ty)
        }
    }

    impl PgHasArrayType for TenantId {
        fn array_type_info() -> PgTypeInfo {
            <String as PgHasArrayType>::array_type_info()
        }
    }

    impl Encode<'_, Postgres> for TenantId {
        fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
            <&str as Encode<Postgres>>::encode(self.as_str(), buf)
        }
    }

    impl<'r> Decode<'r, Postgres> for TenantId {
        fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
            let text = <&str as Decode<Postgres>>::decode(value)?;
            Ok(TenantId::parse(text)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_slugs_and_rejects_the_rest() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(TenantId::parse("acme-eu_2").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("-acme").is_err());
        assert!(TenantId::parse("Acme").is_err());
        assert!(TenantId::parse("ac:me").is_err());
        assert!(TenantId::parse(&"a".repeat(64)).is_err());
    }

    proptest! {
        #[test]
        fn a_parsed_id_never_contains_a_key_separator(s in "\\PC{0,80}") {
            if let Ok(t) = TenantId::parse(&s) {
                prop_assert!(!t.as_str().contains(':'));
                prop_assert!(!t.as_str().contains('/'));
                prop_assert!(t.as_str().len() <= 63);
            }
        }
    }
}
