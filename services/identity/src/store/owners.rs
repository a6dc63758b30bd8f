//! Who holds each identifier, as far as a batch knows: looked up for many identifiers in one
//! query, then kept up to date by the batch's own links, and forgotten after a merge (which
//! moves identifiers between customers).

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use crm_envelope::TenantId;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::identifiers::IdentifierKey;

/// The known owners of identifiers (`None`: known to be held by no one).
#[derive(Default)]
pub(crate) struct Owners {
    known: HashMap<(TenantId, IdentifierKey), Option<Uuid>>,
}

impl Owners {
    /// Looks up, in one query, the owners of those of `keys` not known yet.
    pub(crate) async fn fill<'k>(
        &mut self,
        conn: &mut PgConnection,
        tenant: &TenantId,
        keys: impl IntoIterator<Item = &'k IdentifierKey>,
    ) -> Result<(), sqlx::Error> {
        let mut kinds = Vec::new();
        let mut values = Vec::new();
        for key in keys {
            if let Entry::Vacant(slot) = self.known.entry((tenant.clone(), key.clone())) {
                slot.insert(None);
                kinds.push(key.kind.as_str());
                values.push(key.value.as_str());
            }
        }
        if kinds.is_empty() {
            return Ok(());
        }
        let held: Vec<(String, String, Uuid)> = sqlx::query_as(
            "SELECT i.kind, i.value, i.customer_id
             FROM unnest($2::text[], $3::text[]) AS k(kind, value)
             JOIN identifiers i ON i.tenant_id = $1 AND i.kind = k.kind AND i.value = k.value",
        )
        .bind(tenant.as_str())
        .bind(&kinds)
        .bind(&values)
        .fetch_all(conn)
        .await?;
        for (kind, value, customer) in held {
            self.known.insert(
                (tenant.clone(), IdentifierKey { kind, value }),
                Some(customer),
            );
        }
        Ok(())
    }

    /// Whether the owner of every one of `keys` is known.
    pub(crate) fn knows_all(&self, tenant: &TenantId, keys: &[IdentifierKey]) -> bool {
        keys.iter()
            .all(|k| self.known.contains_key(&(tenant.clone(), k.clone())))
    }

    /// The owner of `key`, if known and held.
    pub(crate) fn get(&self, tenant: &TenantId, key: &IdentifierKey) -> Option<Uuid> {
        self.known
            .get(&(tenant.clone(), key.clone()))
            .copied()
            .flatten()
    }

    /// The one customer holding all of `keys` (at least one), if there is one.
    pub(crate) fn sole_owner(&self, tenant: &TenantId, keys: &[IdentifierKey]) -> Option<Uuid> {
        let mut owner = None;
        for key in keys {
            let holder = self.get(tenant, key)?;
            if owner.is_some_and(|o| o != holder) {
                return None;
            }
            owner = Some(holder);
        }
        owner
    }

    /// Records that `customer` now holds `key`.
    pub(crate) fn linked(&mut self, tenant: &TenantId, key: IdentifierKey, customer: Uuid) {
        self.known.insert((tenant.clone(), key), Some(customer));
    }

    /// Forgets everything (identifiers moved).
    pub(crate) fn clear(&mut self) {
        self.known.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, value: &str) -> IdentifierKey {
        IdentifierKey {
            kind: kind.into(),
            value: value.into(),
        }
    }

    #[test]
    fn sole_owner_needs_every_key_held_by_one_customer() {
        let tenant = TenantId::parse("t").unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut owners = Owners::default();
        owners.linked(&tenant, key("user_id", "u1"), a);
        owners.linked(&tenant, key("email", "a@x.io"), a);
        owners.linked(&tenant, key("phone", "+441"), b);
        owners
            .known
            .insert((tenant.clone(), key("email", "new@x.io")), None);

        let both = [key("user_id", "u1"), key("email", "a@x.io")];
        assert_eq!(owners.sole_owner(&tenant, &both), Some(a));
        let two = [key("user_id", "u1"), key("phone", "+441")];
        assert_eq!(owners.sole_owner(&tenant, &two), None);
        let unheld = [key("user_id", "u1"), key("email", "new@x.io")];
        assert_eq!(owners.sole_owner(&tenant, &unheld), None);
        let unknown = [key("user_id", "u2")];
        assert_eq!(owners.sole_owner(&tenant, &unknown), None);
        assert!(!owners.knows_all(&tenant, &unknown));
        assert_eq!(owners.sole_owner(&tenant, &[]), None);
        let other = TenantId::parse("u").unwrap();
        assert_eq!(owners.sole_owner(&other, &both), None);
    }
}
