//! Loyalty through the gateway: the programme, customers' balances and statements, manual
//! adjustments, rewards, redemptions (reserve, confirm, cancel) and the liability report. Every
//! write takes an `Idempotency-Key` (see `idempotency.rs`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use crm_service::Problem;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{needs, Caller, Scope};
use crate::idempotency::write_once;
use crate::proxy::{json_body as body_of, query_of, LOYALTY};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/loyalty/programme",
            needs(Scope::Read, get(read_programme))
                .merge(needs(Scope::Admin, put(write_programme))),
        )
        .route(
            "/v1/loyalty/customers/{id}",
            needs(Scope::Read, get(account)),
        )
        .route(
            "/v1/loyalty/customers/{id}/statement",
            needs(Scope::Read, get(statement)),
        )
        .route(
            "/v1/loyalty/customers/{id}/adjustments",
            needs(Scope::WriteLoyalty, post(adjust)),
        )
        .route("/v1/loyalty/liability", needs(Scope::Read, get(liability)))
        .route(
            "/v1/loyalty/rewards",
            needs(Scope::Read, get(list_rewards)).merge(needs(Scope::Admin, post(create_reward))),
        )
        .route(
            "/v1/loyalty/rewards/{id}",
            needs(Scope::Admin, put(update_reward)),
        )
        .route(
            "/v1/loyalty/redemptions",
            needs(Scope::WriteLoyalty, post(reserve)),
        )
        .route(
            "/v1/loyalty/redemptions/{id}",
            needs(Scope::Read, get(read_redemption)),
        )
        .route(
            "/v1/loyalty/redemptions/{id}/confirm",
            needs(Scope::WriteLoyalty, post(confirm)),
        )
        .route(
            "/v1/loyalty/redemptions/{id}/cancel",
            needs(Scope::WriteLoyalty, post(cancel)),
        )
}

async fn read(
    app: &AppState,
    caller: &Caller,
    path: &str,
    query: &[(&str, &str)],
) -> Result<Response, Problem> {
    LOYALTY
        .relay(app, caller, reqwest::Method::GET, path, query, None)
        .await
}

async fn write(
    app: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    method: reqwest::Method,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<Response, Problem> {
    write_once(app, &LOYALTY, caller, headers, method, path, body).await
}

/// The tenant's programme: currency, earn rate and rounding, category multipliers, caps,
/// bonuses, expiry, tiers (docs/loyalty.md).
#[utoipa::path(get, path = "/v1/loyalty/programme", tag = "loyalty",
    responses((status = 200, description = "The programme", body = crm_loyalty::bodies::Programme), (status = 409, description = "No programme yet (no_programme)", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_programme(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "loyalty/programme", &[]).await
}

/// Configure the programme (unknown fields refused). Needs `Idempotency-Key`.
#[utoipa::path(put, path = "/v1/loyalty/programme", tag = "loyalty",
    params(("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_loyalty::bodies::Programme, description = "{\"currency\": \"points\", \"earn_rate\": 1, \"rounding\": \"floor|nearest|ceil\", \"category_multipliers\": {\"shoes\": 2}, \"caps\": [{\"period\": \"day|week|month\", \"max_points\": 500}], \"bonuses\": {\"sign_up\", \"birthday\", \"referral\", \"review\", \"positive_mention\"}, \"expiry_days\": 365, \"allow_negative\": false, \"tiers\": [{\"name\", \"threshold\", \"multiplier\"}], \"tier_window_days\": 365, \"tier_period_days\": 365, \"reservation_timeout_secs\": 900}"),
    responses((status = 200, description = "Stored", body = crm_loyalty::bodies::Programme), (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid programme, or key reused with other parameters", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn write_programme(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = body_of(body)?;
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::PUT,
        "loyalty/programme",
        Some(&body),
    )
    .await
}

/// A customer's balance, reserved points, tier, qualifying points and expiring lots.
#[utoipa::path(get, path = "/v1/loyalty/customers/{id}", tag = "loyalty", params(("id" = Uuid, Path, description = "Customer id")),
    responses((status = 200, description = "The account", body = crm_loyalty::bodies::AccountView)),
    security(("api_key" = ["read"])))]
pub(crate) async fn account(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("loyalty/customers/{id}"), &[]).await
}

/// Which page of a statement.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct StatementQuery {
    /// Page size, 1 to 500 (default 50).
    limit: Option<u32>,
    /// `next` of the previous page.
    before: Option<i64>,
}

/// A customer's statement: entries newest first, each with its transaction's kind, reason and
/// source event.
#[utoipa::path(get, path = "/v1/loyalty/customers/{id}/statement", tag = "loyalty", params(("id" = Uuid, Path, description = "Customer id"), StatementQuery),
    responses((status = 200, description = "A page of entries, newest first", body = crm_loyalty::bodies::Statement)),
    security(("api_key" = ["read"])))]
pub(crate) async fn statement(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<StatementQuery>,
) -> Result<Response, Problem> {
    let pairs = [
        ("limit", q.limit.map(|l| l.to_string())),
        ("before", q.before.map(|b| b.to_string())),
    ];
    read(
        &app,
        &caller,
        &format!("loyalty/customers/{id}/statement"),
        &query_of(&pairs),
    )
    .await
}

/// Add or remove points by hand, with a reason. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/loyalty/customers/{id}/adjustments", tag = "loyalty",
    params(("id" = Uuid, Path, description = "Customer id"), ("Idempotency-Key" = String, Header, description = "Unique per intended adjustment")),
    request_body(content = crm_loyalty::bodies::Adjustment, description = "{\"points\": -50, \"reason\": \"goodwill\"}"),
    responses((status = 201, description = "Posted", body = crm_loyalty::bodies::Adjusted),
        (status = 409, description = "Not enough points (insufficient_points)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Key reused with other parameters, or bad points / reason", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["write:loyalty"])))]
pub(crate) async fn adjust(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = body_of(body)?;
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        &format!("loyalty/customers/{id}/adjustments"),
        Some(&body),
    )
    .await
}

/// The programme's liability: points outstanding (available and reserved) beside issued,
/// redeemed and expired totals.
#[utoipa::path(get, path = "/v1/loyalty/liability", tag = "loyalty",
    responses((status = 200, description = "What the programme owes", body = crm_loyalty::bodies::Liability)),
    security(("api_key" = ["read"])))]
pub(crate) async fn liability(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "loyalty/liability", &[]).await
}

/// The reward catalogue.
#[utoipa::path(get, path = "/v1/loyalty/rewards", tag = "loyalty", responses((status = 200, description = "The rewards, cheapest first", body = crm_loyalty::bodies::RewardList)), security(("api_key" = ["read"])))]
pub(crate) async fn list_rewards(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "loyalty/rewards", &[]).await
}

/// Add a reward. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/loyalty/rewards", tag = "loyalty",
    params(("Idempotency-Key" = String, Header, description = "Unique per intended reward")),
    request_body(content = crm_loyalty::bodies::RewardBody, description = "{\"name\", \"cost\", \"stock\" (absent: unlimited), \"valid_from\", \"valid_to\", \"active\"}"),
    responses((status = 201, description = "The reward", body = crm_loyalty::bodies::Reward), (status = 422, description = "Invalid reward", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn create_reward(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = body_of(body)?;
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        "loyalty/rewards",
        Some(&body),
    )
    .await
}

/// Replace a reward. Needs `Idempotency-Key`.
#[utoipa::path(put, path = "/v1/loyalty/rewards/{id}", tag = "loyalty",
    params(("id" = Uuid, Path, description = "Reward id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_loyalty::bodies::RewardBody, description = "As for creation"),
    responses((status = 200, description = "The reward", body = crm_loyalty::bodies::Reward), (status = 404, description = "No such reward", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn update_reward(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = body_of(body)?;
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::PUT,
        &format!("loyalty/rewards/{id}"),
        Some(&body),
    )
    .await
}

/// Reserve a reward for a customer: the points are held until confirmed or cancelled, or
/// released after the programme's timeout. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/loyalty/redemptions", tag = "loyalty",
    params(("Idempotency-Key" = String, Header, description = "Unique per intended redemption")),
    request_body(content = crm_loyalty::bodies::ReserveBody, description = "{\"customer_id\", \"reward_id\"}"),
    responses((status = 201, description = "Reserved: the points are held until confirmed, cancelled or released", body = crm_loyalty::bodies::Redemption),
        (status = 409, description = "Not enough points (insufficient_points), reward unavailable or out of stock (reward_unavailable)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Key reused with other parameters", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["write:loyalty"])))]
pub(crate) async fn reserve(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = body_of(body)?;
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        "loyalty/redemptions",
        Some(&body),
    )
    .await
}

/// One redemption.
#[utoipa::path(get, path = "/v1/loyalty/redemptions/{id}", tag = "loyalty", params(("id" = Uuid, Path, description = "Redemption id")),
    responses((status = 200, description = "The redemption, with its coupon once confirmed", body = crm_loyalty::bodies::Redemption)), security(("api_key" = ["read"])))]
pub(crate) async fn read_redemption(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("loyalty/redemptions/{id}"), &[]).await
}

/// Confirm a reservation: points redeemed, a coupon code unique to the tenant issued. Needs
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/loyalty/redemptions/{id}/confirm", tag = "loyalty",
    params(("id" = Uuid, Path, description = "Redemption id"), ("Idempotency-Key" = String, Header, description = "Unique per intended confirmation")),
    responses((status = 200, description = "Confirmed, with its coupon_code", body = crm_loyalty::bodies::Redemption),
        (status = 409, description = "Not reserved any more (invalid_state)", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["write:loyalty"])))]
pub(crate) async fn confirm(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        &format!("loyalty/redemptions/{id}/confirm"),
        None,
    )
    .await
}

/// Cancel a reservation: the points return to the customer. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/loyalty/redemptions/{id}/cancel", tag = "loyalty",
    params(("id" = Uuid, Path, description = "Redemption id"), ("Idempotency-Key" = String, Header, description = "Unique per intended cancellation")),
    responses((status = 200, description = "Cancelled", body = crm_loyalty::bodies::Redemption),
        (status = 409, description = "Not reserved any more (invalid_state)", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["write:loyalty"])))]
pub(crate) async fn cancel(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        &format!("loyalty/redemptions/{id}/cancel"),
        None,
    )
    .await
}
