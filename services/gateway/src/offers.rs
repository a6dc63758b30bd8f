//! Personalize through the gateway, relayed to campaign: the offer catalogue (admin; every
//! change takes an `Idempotency-Key`), the decision settings, decisions and their outcomes
//! (the `decide` scope a storefront's key holds), a decision, a customer's decisions, and
//! experiments (drafts, start, stop, assignments, results).
//! A decision is not replayed by `Idempotency-Key`: each call is a new decision, and outcomes
//! are recorded once per decision, offer and kind whatever the retries.

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
use crate::proxy::{json_body, query_of, CAMPAIGN};
use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/offers",
            needs(Scope::Read, get(list_offers)).merge(needs(Scope::Admin, post(create_offer))),
        )
        .route(
            "/v1/offers/{id}",
            needs(Scope::Read, get(read_offer))
                .merge(needs(Scope::Admin, put(update_offer).delete(archive_offer))),
        )
        .route(
            "/v1/decisions/settings",
            needs(Scope::Read, get(read_decision_settings))
                .merge(needs(Scope::Admin, put(write_decision_settings))),
        )
        .route("/v1/decisions", needs(Scope::Decide, post(decide)))
        .route("/v1/decisions/{id}", needs(Scope::Read, get(read_decision)))
        .route(
            "/v1/decisions/{id}/outcomes",
            needs(Scope::Decide, post(report_outcome)),
        )
        .route(
            "/v1/customers/{id}/decisions",
            needs(Scope::Read, get(customer_decisions)),
        )
}

async fn read(app: &AppState, caller: &Caller, path: &str) -> Result<Response, Problem> {
    CAMPAIGN
        .relay(app, caller, reqwest::Method::GET, path, &[], None)
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
    write_once(app, &CAMPAIGN, caller, headers, method, path, body).await
}

/// The tenant's offers that are not archived, by name.
#[utoipa::path(get, path = "/v1/offers", tag = "offers",
    responses((status = 200, description = "The offers", body = crm_campaign::bodies::OfferList)),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_offers(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "offers").await
}

/// Add an offer to the catalogue: placements, content or template, validity window, priority,
/// value, lever, caps, budget, reward, and eligibility in the segment rule language restricted
/// to decision-time nodes (docs/campaign.md). Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/offers", tag = "offers",
    params(("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::OfferSpec, example = json!({"name": "Boots 10% off", "placements": ["home_hero"], "content": {"headline": "Boots, 10% off"}, "value": 12.5, "customer_cap": 3, "eligibility": {"all": [{"stage": {"in": ["active", "at_risk"]}}, {"consent": {"purpose": "marketing"}}]}})),
    responses((status = 201, description = "The offer", body = crm_campaign::bodies::OfferRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "offer_name_taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_offer: `path` names the JSON pointer of the fault", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn create_offer(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        "offers",
        Some(&body),
    )
    .await
}

/// An offer (archived ones too).
#[utoipa::path(get, path = "/v1/offers/{id}", tag = "offers", params(("id" = Uuid, Path, description = "Offer id")),
    responses((status = 200, description = "The offer", body = crm_campaign::bodies::OfferRow),
        (status = 404, description = "offer_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_offer(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("offers/{id}")).await
}

/// Replace an offer's definition (its counts, decisions and outcomes stay). Needs
/// `Idempotency-Key`.
#[utoipa::path(put, path = "/v1/offers/{id}", tag = "offers",
    params(("id" = Uuid, Path, description = "Offer id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::OfferSpec),
    responses((status = 200, description = "The offer", body = crm_campaign::bodies::OfferRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "offer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "offer_name_taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_offer", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn update_offer(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    let path = format!("offers/{id}");
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::PUT,
        &path,
        Some(&body),
    )
    .await
}

/// Archive an offer: no longer offered or listed; its decisions and outcomes stay. Needs
/// `Idempotency-Key`.
#[utoipa::path(delete, path = "/v1/offers/{id}", tag = "offers",
    params(("id" = Uuid, Path, description = "Offer id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    responses((status = 204, description = "Archived"),
        (status = 404, description = "offer_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn archive_offer(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("offers/{id}");
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::DELETE,
        &path,
        None,
    )
    .await
}

/// The tenant's decision settings: arbitration (exploration, suppression), control group, TTL.
#[utoipa::path(get, path = "/v1/decisions/settings", tag = "offers",
    responses((status = 200, description = "The settings", body = crm_campaign::bodies::DecisionSettings)),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_decision_settings(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "decision-settings").await
}

/// Replace the decision settings. Needs `Idempotency-Key`.
#[utoipa::path(put, path = "/v1/decisions/settings", tag = "offers",
    params(("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::DecisionSettings, example = json!({"arbitration": {"explore": true, "max_impressions": 5, "max_rejections": 1, "window_days": 30}, "control_percent": 10, "ttl_seconds": 300})),
    responses((status = 200, description = "The settings", body = crm_campaign::bodies::DecisionSettings),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_decision_settings", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn write_decision_settings(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::PUT,
        "decision-settings",
        Some(&body),
    )
    .await
}

/// Decide the best offers for a customer at a placement: ranked offers with the conditions
/// that made each eligible and how arbitration scored it, a `decision_id` to report outcomes
/// with, and `expires_at`. A customer in the control group gets the fallback, flagged
/// `control`.
#[utoipa::path(post, path = "/v1/decisions", tag = "offers",
    request_body(content = crm_campaign::bodies::DecisionRequest, example = json!({"customer": {"user_id": "u-123"}, "placement": "home_hero", "context": {"channel": "web", "page": "home"}, "limit": 3})),
    responses((status = 201, description = "The decision", body = crm_campaign::bodies::DecisionRecord),
        (status = 400, description = "Bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: the customer was merged or erased while deciding; ask again", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_decision: `path` names the field", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["decide"])))]
pub(crate) async fn decide(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    CAMPAIGN
        .relay(
            &app,
            &caller,
            reqwest::Method::POST,
            "decisions",
            &[],
            Some(&body),
        )
        .await
}

/// A decision as it was answered.
#[utoipa::path(get, path = "/v1/decisions/{id}", tag = "offers", params(("id" = Uuid, Path, description = "Decision id")),
    responses((status = 200, description = "The decision", body = crm_campaign::bodies::DecisionRecord),
        (status = 404, description = "decision_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_decision(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("decisions/{id}")).await
}

/// Report what became of one of the decision's offers: `impression`, `click`, `accept` or
/// `reject`. Recorded once per kind (201; a repeat answers 200 with `recorded: false`); a
/// click or an acceptance implies the impression.
#[utoipa::path(post, path = "/v1/decisions/{id}/outcomes", tag = "offers", params(("id" = Uuid, Path, description = "Decision id")),
    request_body(content = crm_campaign::bodies::OutcomeReport, example = json!({"offer_id": "0190a4c8-0000-7000-8000-000000000001", "kind": "accept"})),
    responses((status = 201, description = "Recorded", body = crm_campaign::bodies::OutcomeRecorded),
        (status = 200, description = "Recorded already", body = crm_campaign::bodies::OutcomeRecorded),
        (status = 400, description = "Bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "decision_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_outcome: an offer the decision did not make, a time in the future", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["decide"])))]
pub(crate) async fn report_outcome(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    CAMPAIGN
        .relay(
            &app,
            &caller,
            reqwest::Method::POST,
            &format!("decisions/{id}/outcomes"),
            &[],
            Some(&body),
        )
        .await
}

/// How many.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct LimitQuery {
    /// Decisions, 1 to 500 (default 50).
    limit: Option<u32>,
}

/// A customer's latest decisions, newest first, with their outcomes.
#[utoipa::path(get, path = "/v1/customers/{id}/decisions", tag = "offers", params(("id" = Uuid, Path, description = "Customer id"), LimitQuery),
    responses((status = 200, description = "The decisions and outcomes", body = crm_campaign::bodies::CustomerDecisions),
        (status = 400, description = "Bad limit", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "contact_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn customer_decisions(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<LimitQuery>,
) -> Result<Response, Problem> {
    let pairs = [("limit", q.limit.map(|l| l.to_string()))];
    CAMPAIGN
        .relay(
            &app,
            &caller,
            reqwest::Method::GET,
            &format!("customers/{id}/decisions"),
            &query_of(&pairs),
            None,
        )
        .await
}

/// Experiment routes (`/v1/experiments`).
pub(crate) fn experiment_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/experiments",
            needs(Scope::Read, get(list_experiments))
                .merge(needs(Scope::Admin, post(create_experiment))),
        )
        .route(
            "/v1/experiments/{id}",
            needs(Scope::Read, get(read_experiment))
                .merge(needs(Scope::Admin, put(update_experiment))),
        )
        .route(
            "/v1/experiments/{id}/start",
            needs(Scope::Admin, post(start_experiment)),
        )
        .route(
            "/v1/experiments/{id}/stop",
            needs(Scope::Admin, post(stop_experiment)),
        )
        .route(
            "/v1/experiments/{id}/results",
            needs(Scope::Read, get(experiment_results)),
        )
        .route(
            "/v1/experiments/{id}/assignments",
            needs(Scope::Decide, post(assign_experiment)),
        )
}

/// The tenant's experiments, newest first.
#[utoipa::path(get, path = "/v1/experiments", tag = "experiments",
    responses((status = 200, description = "The experiments", body = crm_campaign::bodies::ExperimentList)),
    security(("api_key" = ["read"])))]
pub(crate) async fn list_experiments(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    read(&app, &caller, "experiments").await
}

/// Create an experiment as a draft: what it tests (the offers of a placement, message
/// variants, journeys), two to ten arms with weights (the first is the control), a holdout,
/// the goal event with its window and revenue property, and the minimum sample per arm.
/// Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/experiments", tag = "experiments",
    params(("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::ExperimentSpec, example = json!({"name": "Hero offers", "subject": {"offers": {"placement": "home_hero"}}, "arms": [{"key": "control", "weight": 50}, {"key": "boots_only", "weight": 50, "offer_ids": ["0190a4c8-0000-7000-8000-000000000001"]}], "holdout_percent": 10, "goal": {"event": "Order Completed", "revenue_property": "revenue", "window_days": 14}, "minimum_sample": 200})),
    responses((status = 201, description = "The experiment, as a draft", body = crm_campaign::bodies::ExperimentRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_experiment: `path` names the JSON pointer of the fault", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn create_experiment(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::POST,
        "experiments",
        Some(&body),
    )
    .await
}

/// An experiment.
#[utoipa::path(get, path = "/v1/experiments/{id}", tag = "experiments", params(("id" = Uuid, Path, description = "Experiment id")),
    responses((status = 200, description = "The experiment", body = crm_campaign::bodies::ExperimentRow),
        (status = 404, description = "experiment_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn read_experiment(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("experiments/{id}")).await
}

/// Replace a draft's definition (a started experiment keeps its plan). Needs
/// `Idempotency-Key`.
#[utoipa::path(put, path = "/v1/experiments/{id}", tag = "experiments",
    params(("id" = Uuid, Path, description = "Experiment id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    request_body(content = crm_campaign::bodies::ExperimentSpec),
    responses((status = 200, description = "The experiment", body = crm_campaign::bodies::ExperimentRow),
        (status = 400, description = "Missing Idempotency-Key or bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "experiment_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: not a draft", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_experiment", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn update_experiment(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    let path = format!("experiments/{id}");
    write(
        &app,
        &caller,
        &headers,
        reqwest::Method::PUT,
        &path,
        Some(&body),
    )
    .await
}

/// Start a draft: customers are exposed and assigned from now on. At most one experiment runs
/// per placement. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/experiments/{id}/start", tag = "experiments",
    params(("id" = Uuid, Path, description = "Experiment id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    responses((status = 200, description = "The experiment, running", body = crm_campaign::bodies::ExperimentRow),
        (status = 404, description = "experiment_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: not a draft, or the placement is taken", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn start_experiment(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("experiments/{id}/start");
    write(&app, &caller, &headers, reqwest::Method::POST, &path, None).await
}

/// Stop a running experiment: no more exposures; results stay, and goal events inside the
/// window of earlier exposures still count. Needs `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/experiments/{id}/stop", tag = "experiments",
    params(("id" = Uuid, Path, description = "Experiment id"), ("Idempotency-Key" = String, Header, description = "Unique per intended change")),
    responses((status = 200, description = "The experiment, stopped", body = crm_campaign::bodies::ExperimentRow),
        (status = 404, description = "experiment_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: not running", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["admin"])))]
pub(crate) async fn stop_experiment(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    let path = format!("experiments/{id}/stop");
    write(&app, &caller, &headers, reqwest::Method::POST, &path, None).await
}

/// Results: per arm the customers, conversions and revenue per customer; the holdout; the
/// sample-ratio check (flagged at p < 0.001); and, once every arm has the minimum sample, each
/// arm against the control: relative uplift with its 95% interval and p-value (Welch's t on
/// the relative difference, delta-method variance).
#[utoipa::path(get, path = "/v1/experiments/{id}/results", tag = "experiments", params(("id" = Uuid, Path, description = "Experiment id")),
    responses((status = 200, description = "The results", body = crm_campaign::bodies::ExperimentResults),
        (status = 404, description = "experiment_not_found", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["read"])))]
pub(crate) async fn experiment_results(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> Result<Response, Problem> {
    read(&app, &caller, &format!("experiments/{id}/results")).await
}

/// A customer's arm in a running experiment (a salted hash of the customer id: the same on
/// every call), recorded as an exposure: 201 the first time, 200 after.
#[utoipa::path(post, path = "/v1/experiments/{id}/assignments", tag = "experiments", params(("id" = Uuid, Path, description = "Experiment id")),
    request_body(content = crm_campaign::bodies::AssignmentRequest, example = json!({"customer": {"user_id": "u-123"}})),
    responses((status = 201, description = "First exposure", body = crm_campaign::bodies::AssignmentAnswer),
        (status = 200, description = "Exposed before", body = crm_campaign::bodies::AssignmentAnswer),
        (status = 400, description = "Bad JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "experiment_not_found, customer_not_found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "invalid_state: not running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "invalid_body", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = ["decide"])))]
pub(crate) async fn assign_experiment(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let body = json_body(body)?;
    CAMPAIGN
        .relay(
            &app,
            &caller,
            reqwest::Method::POST,
            &format!("experiments/{id}/assignments"),
            &[],
            Some(&body),
        )
        .await
}
