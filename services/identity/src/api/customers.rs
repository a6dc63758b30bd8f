//! Reading customers: by id (aliases answer their survivor) and by exact identifier.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use crm_envelope::Profile;
use crm_service::Code;
use crm_service::{Problem, TenantPath};
use serde::Deserialize;

use super::bodies::{Identifier, Identifiers, ProfileList};
use super::{customer_not_found, ApiState, CustomerPath};
use crate::domain::standardise::EmailAddress;
use crate::store::profile;
use crate::store::settings;
use crm_envelope::TenantId;

pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}",
            get(get_customer),
        )
        .route(
            "/internal/v1/tenants/{tenant}/customers/lookup",
            post(lookup_customers),
        )
        .route(
            "/internal/v1/tenants/{tenant}/customers",
            get(find_customers),
        )
        .route(
            "/internal/v1/tenants/{tenant}/customers/{id}/identifiers",
            get(identifiers),
        )
}

/// The identifiers of the customer `id` answers to (itself or its survivor), by kind.
async fn identifiers(
    State(ApiState { pool, .. }): State<ApiState>,
    CustomerPath(tenant, id): CustomerPath,
) -> Result<Json<Identifiers>, Problem> {
    let mut conn = pool.acquire().await?;
    let customer = crate::store::profile::canonical_id(&mut conn, &tenant, id)
        .await?
        .ok_or_else(customer_not_found)?;
    let items: Vec<Identifier> = sqlx::query_as(
        "SELECT kind, value, first_seen_at FROM identifiers
         WHERE tenant_id = $1 AND customer_id = $2 ORDER BY kind, first_seen_at, value",
    )
    .bind(tenant.as_str())
    .bind(customer)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(Identifiers {
        customer_id: customer,
        items,
    }))
}

async fn get_customer(
    State(ApiState { pool, .. }): State<ApiState>,
    CustomerPath(tenant, id): CustomerPath,
) -> Result<Json<Profile>, Problem> {
    let mut conn = pool.acquire().await?;
    profile::load_following_alias(&mut conn, &tenant, id)
        .await?
        .map(Json)
        .ok_or_else(customer_not_found)
}

#[derive(Deserialize)]
struct Lookup {
    user_id: Option<String>,
    anonymous_id: Option<String>,
    email: Option<String>,
}

/// `GET …/customers?user_id=` or `?anonymous_id=`: emails are personal data and query strings
/// end up in access logs, so an email lookup is a POST (see [`lookup_customers`]).
async fn find_customers(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
    Query(q): Query<Lookup>,
) -> Result<Json<ProfileList>, Problem> {
    if q.email.is_some() {
        return Err(pii_in_query());
    }
    lookup(&state, &tenant, q).await
}

/// `POST …/customers/lookup` with `{"user_id" | "anonymous_id" | "email": …}` in the body.
async fn lookup_customers(
    State(state): State<ApiState>,
    TenantPath(tenant): TenantPath,
    body: axum::body::Bytes,
) -> Result<Json<ProfileList>, Problem> {
    let q: Lookup = serde_json::from_slice(&body).map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidLookup,
            "the body is {\"user_id\" | \"anonymous_id\" | \"email\": \"…\"}",
        )
    })?;
    lookup(&state, &tenant, q).await
}

/// 400 for an email in a query string.
fn pii_in_query() -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        Code::PiiInQuery,
        "emails are personal data and query strings end up in logs: POST /v1/customers/lookup with {\"email\": \"…\"}",
    )
}

/// Customers holding an exact identifier (0 or 1 in this slice).
async fn lookup(
    ApiState { pool, .. }: &ApiState,
    tenant: &TenantId,
    q: Lookup,
) -> Result<Json<ProfileList>, Problem> {
    let (kind, value) = match (q.user_id, q.anonymous_id, q.email) {
        (Some(v), None, None) => ("user_id", v.trim().to_owned()),
        (None, Some(v), None) => ("anonymous_id", v.trim().to_owned()),
        (None, None, Some(v)) => {
            let mut conn = pool.acquire().await?;
            ("email", email_lookup_key(&mut conn, tenant, &v).await?)
        }
        _ => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                Code::InvalidLookup,
                "give exactly one of user_id, anonymous_id or email",
            ))
        }
    };
    let mut conn = pool.acquire().await?;
    let mut items = Vec::new();
    if let Some(id) = profile::find_by_identifier(&mut conn, tenant, kind, &value).await? {
        if let Some(p) = profile::load(&mut conn, tenant, id).await? {
            items.push(p);
        }
    }
    Ok(Json(ProfileList { items }))
}

/// The matching key an email is stored under, with the tenant's provider rules.
async fn email_lookup_key(
    conn: &mut sqlx::PgConnection,
    tenant: &TenantId,
    raw: &str,
) -> Result<String, Problem> {
    let Some(address) = EmailAddress::parse(raw) else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidEmail,
            "email is not a valid address",
        ));
    };
    let settings = settings::load(conn, tenant).await?;
    Ok(address.key(settings.email_provider_rules))
}
