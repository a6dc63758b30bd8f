//! Customer search: by an exact identifier, or by part of a name or email, over a folded
//! search text kept with each customer.

use crm_envelope::TenantId;
use serde_json::{Map, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::standardise::name_key;

/// Traits whose values go into the search text.
const SEARCHED_TRAITS: &[&str] = &[
    "name",
    "first_name",
    "last_name",
    "given_name",
    "surname",
    "email",
    "company",
];

/// The search text of a customer: its searched traits and email identifiers, folded.
pub fn search_text(traits: &Map<String, Value>, emails: &[String]) -> String {
    let mut parts: Vec<String> = SEARCHED_TRAITS
        .iter()
        .filter_map(|k| traits.get(*k).and_then(Value::as_str))
        .map(name_key)
        .collect();
    parts.extend(emails.iter().map(|e| e.to_lowercase()));
    parts.retain(|p| !p.is_empty());
    parts.join(" | ")
}

/// Rewrites a customer's search text from its current traits and emails.
pub async fn refresh(
    tx: &mut PgConnection,
    tenant: &TenantId,
    customer: Uuid,
) -> Result<(), sqlx::Error> {
    let traits: sqlx::types::Json<Map<String, Value>> =
        sqlx::query_scalar("SELECT traits FROM customers WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(customer)
            .fetch_one(&mut *tx)
            .await?;
    let emails: Vec<String> = sqlx::query_scalar(
        "SELECT value FROM identifiers WHERE tenant_id = $1 AND customer_id = $2 AND kind = 'email'",
    )
    .bind(tenant.as_str())
    .bind(customer)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query("UPDATE customers SET search_text = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.as_str())
        .bind(customer)
        .bind(search_text(&traits.0, &emails))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The ids of active customers matching `query`, in id order after `after`: holding an
/// identifier equal to it (any kind), or with every word of it in their search text.
pub async fn search(
    conn: &mut PgConnection,
    tenant: &TenantId,
    query: &str,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let exact = query.trim();
    let words: Vec<String> = name_key(query)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| {
            format!(
                "%{}%",
                w.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        })
        .collect();
    sqlx::query_scalar(
        "SELECT c.id FROM customers c
         WHERE c.tenant_id = $1 AND c.status = 'active' AND ($4::uuid IS NULL OR c.id > $4)
           AND (EXISTS (SELECT 1 FROM identifiers i WHERE i.tenant_id = c.tenant_id
                        AND i.customer_id = c.id AND (i.value = $2 OR i.value = lower($2)))
                OR (cardinality($3::text[]) > 0 AND c.search_text LIKE ALL ($3::text[])))
         ORDER BY c.id LIMIT $5",
    )
    .bind(tenant.as_str())
    .bind(exact)
    .bind(&words)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn search_text_folds_names_and_keeps_emails() {
        let traits = json!({"first_name": "José", "last_name": "Núñez-Ruiz", "plan": "pro"});
        let text = search_text(
            traits.as_object().unwrap(),
            &["jose@example.com".to_owned()],
        );
        assert_eq!(text, "jose | nunez ruiz | jose@example.com");
    }
}
