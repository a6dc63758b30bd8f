//! `/openapi.json`, generated from the handlers' annotations.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "CRM suite API", description = "The public REST facade of the CRM suite. Authenticate with 'Authorization: Bearer <key>' or 'X-Api-Key'. Errors are application/problem+json with a stable 'code'."),
    paths(
        crate::events::post_events,
        crate::cloudevents::post_cloudevents,
        crate::segment::identify,
        crate::segment::track,
        crate::segment::page,
        crate::segment::screen,
        crate::segment::group,
        crate::segment::alias,
        crate::segment::batch,
        crate::customers::get_customer,
        crate::accounts::read_account,
        crate::customers::find_customers,
        crate::customers::lookup_customers,
        crate::keys::issue_key,
        crate::keys::keys,
        crate::keys::revoke,
        crate::reviews::list_reviews,
        crate::reviews::accept_review,
        crate::reviews::reject_review,
        crate::reviews::data_quality,
        crate::merges::customer_merges,
        crate::merges::customer_identifiers,
        crate::merges::unmerge,
        crate::privacy::read_consent,
        crate::privacy::record_consent,
        crate::privacy::export,
        crate::privacy::erase,
        crate::timeline::timeline,
        crate::settings::read_settings,
        crate::settings::write_settings,
        crate::settings::search_customers,
        crate::settings::list_prospects,
        crate::imports::start_import,
        crate::imports::import_status,
        crate::imports::cleanup,
        crate::segments::create_segment,
        crate::segments::list_segments,
        crate::segments::read_segment,
        crate::segments::update_segment,
        crate::segments::delete_segment,
        crate::segments::segment_versions,
        crate::segments::preview_segment,
        crate::segments::segment_members,
        crate::segments::recompute_segment,
        crate::segments::customer_segments,
        crate::segments::customer_scores,
        crate::segments::customer_activity,
        crate::segments::rfm_report,
        crate::segments::lifecycle_report,
        crate::segments::run_scoring,
        crate::segments::scoring_runs,
        crate::jobs::read_job,
        crate::segments::read_settings,
        crate::segments::write_settings,
        crate::loyalty::read_programme,
        crate::loyalty::write_programme,
        crate::loyalty::account,
        crate::loyalty::statement,
        crate::loyalty::adjust,
        crate::loyalty::liability,
        crate::loyalty::list_rewards,
        crate::loyalty::create_reward,
        crate::loyalty::update_reward,
        crate::loyalty::reserve,
        crate::loyalty::read_redemption,
        crate::loyalty::confirm,
        crate::loyalty::cancel,
        crate::journeys::list_journeys,
        crate::journeys::create_journey,
        crate::journeys::read_journey,
        crate::journeys::update_journey,
        crate::journeys::journey_versions,
        crate::journeys::publish_journey,
        crate::journeys::pause_journey,
        crate::journeys::resume_journey,
        crate::journeys::archive_journey,
        crate::journeys::migrate_journey,
        crate::journeys::test_send_journey,
        crate::suppressions::list_suppressions,
        crate::suppressions::add_suppression,
        crate::suppressions::remove_suppression,
        crate::messaging::list_templates,
        crate::messaging::read_template,
        crate::messaging::put_template,
        crate::messaging::delete_template,
        crate::messaging::preview_template,
        crate::messaging::preview_draft,
        crate::messaging::test_send,
        crate::messaging::list_channels,
        crate::messaging::read_channel,
        crate::messaging::put_channel,
        crate::messaging::rotate_channel,
        crate::messaging::read_policy,
        crate::messaging::put_policy,
        crate::messaging::customer_messages,
        crate::messaging::customer_journeys,
        crate::messaging::journey_report,
        crate::offers::list_offers,
        crate::offers::create_offer,
        crate::offers::read_offer,
        crate::offers::update_offer,
        crate::offers::archive_offer,
        crate::offers::read_decision_settings,
        crate::offers::write_decision_settings,
        crate::offers::decide,
        crate::offers::read_decision,
        crate::offers::report_outcome,
        crate::offers::customer_decisions,
        crate::offers::list_experiments,
        crate::offers::create_experiment,
        crate::offers::read_experiment,
        crate::offers::update_experiment,
        crate::offers::start_experiment,
        crate::offers::stop_experiment,
        crate::offers::experiment_results,
        crate::offers::assign_experiment,
        crate::pipeline::open_lead,
        crate::pipeline::import_leads,
        crate::social::create_connector,
        crate::social::list_connectors,
        crate::social::read_connector,
        crate::social::change_connector,
        crate::social::list_conversations,
        crate::social::read_conversation,
        crate::social::change_conversation,
        crate::social::reply_conversation,
        crate::surveys::create_survey,
        crate::surveys::list_surveys,
        crate::surveys::read_survey,
        crate::surveys::change_survey,
        crate::surveys::delete_survey,
        crate::surveys::create_link,
        crate::surveys::list_answers,
        crate::surveys::report,
        crate::pipeline::list_leads,
        crate::pipeline::read_lead,
        crate::pipeline::change_lead,
        crate::pipeline::convert_lead,
        crate::pipeline::lead_queue,
        crate::pipeline::read_lead_settings,
        crate::pipeline::write_lead_settings,
        crate::pipeline::list_pipelines,
        crate::pipeline::create_pipeline,
        crate::pipeline::read_pipeline,
        crate::pipeline::replace_pipeline,
        crate::pipeline::open_opportunity,
        crate::pipeline::list_opportunities,
        crate::pipeline::read_opportunity,
        crate::pipeline::change_opportunity,
        crate::pipeline::pipeline_report,
        crate::pipeline::lead_report,
        crate::pipeline::create_task,
        crate::pipeline::list_tasks,
        crate::pipeline::read_task,
        crate::pipeline::change_task,
        crate::pipeline::lead_notes,
        crate::pipeline::add_lead_note,
        crate::pipeline::opportunity_notes,
        crate::pipeline::add_opportunity_note,
        crate::webhooks::api::create_webhook,
        crate::webhooks::api::list_webhooks,
        crate::webhooks::api::read_webhook,
        crate::webhooks::api::update_webhook,
        crate::webhooks::api::delete_webhook,
        crate::webhooks::api::rotate_webhook_secret,
        crate::webhooks::api::list_webhook_deliveries,
        crate::webhooks::api::read_webhook_delivery,
        crate::webhooks::api::replay_webhook_delivery,
        crate::webhooks::api::recover_webhook,
    ),
    components(schemas(crm_envelope::Envelope, crm_envelope::EventError, crm_service::Problem, crm_campaign::bodies::LeadImportResult)),
    modifiers(&Security),
)]
struct ApiDoc;

/// The document, built once: it depends on nothing but the code.
static DOCUMENT: std::sync::LazyLock<utoipa::openapi::OpenApi> =
    std::sync::LazyLock::new(ApiDoc::openapi);

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: 'Authorization: Bearer crm_…'"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "Segment's write-key authentication: the API key as the user name, an empty password",
                    ))
                    .build(),
            ),
        );
        // Every route that takes an API key takes it as a Bearer token too, with the same
        // scope: each `api_key` requirement gets its `bearer` alternative.
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                let Some(security) = op.security.as_mut() else {
                    continue;
                };
                let bearer: Vec<SecurityRequirement> = security
                    .iter()
                    .filter_map(|r| serde_json::to_value(r).ok())
                    .filter_map(|r| {
                        serde_json::from_value::<Vec<String>>(r["api_key"].clone()).ok()
                    })
                    .map(|scopes| SecurityRequirement::new("bearer", scopes))
                    .collect();
                security.extend(bearer);
            }
        }
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(|| async { Json(&*DOCUMENT) }))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// What a client generator needs of each operation, listed as violations.
    fn violations(doc: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let at = format!("{method} {path}");
                match op["operationId"].as_str() {
                    Some(id) if ids.insert(id.to_owned()) => {}
                    Some(id) => out.push(format!("{at}: operationId {id} is not unique")),
                    None => out.push(format!("{at}: no operationId")),
                }
                if let Some(body) = op.get("requestBody") {
                    for (ct, media) in body["content"].as_object().into_iter().flatten() {
                        if !typed(&media["schema"]) {
                            out.push(format!("{at}: request body {ct} is untyped"));
                        }
                    }
                }
                for (status, response) in op["responses"].as_object().into_iter().flatten() {
                    let content = response["content"].as_object();
                    if status.starts_with('2') && status != "204" {
                        match content {
                            None => out.push(format!("{at}: {status} has no body schema")),
                            Some(c) => {
                                for (ct, media) in c {
                                    if !typed(&media["schema"]) {
                                        out.push(format!("{at}: {status} {ct} is untyped"));
                                    }
                                }
                            }
                        }
                    }
                    if status.starts_with('4') || status.starts_with('5') {
                        let problem = content
                            .and_then(|c| c.get("application/problem+json"))
                            .is_some_and(|m| m["schema"]["$ref"] == "#/components/schemas/Problem");
                        if !problem {
                            out.push(format!("{at}: {status} is not a Problem"));
                        }
                    }
                }
            }
        }
        out
    }

    /// A schema that says more than "any JSON": a reference, or a type with properties or
    /// items.
    fn typed(schema: &Value) -> bool {
        if schema.get("$ref").is_some() {
            return true;
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            if let Some(parts) = schema[key].as_array() {
                return parts.iter().all(typed);
            }
        }
        match schema["type"].as_str() {
            Some("object") => schema.get("properties").is_some(),
            Some("array") => typed(&schema["items"]),
            Some(_) => true,
            None => false,
        }
    }

    #[test]
    fn every_operation_is_typed_for_client_generators() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let found = violations(&doc);
        assert!(
            found.is_empty(),
            "{} operations a client generator cannot type:\n{found:#?}",
            found.len()
        );
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let names: Vec<&str> = op["security"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_object())
                    .flat_map(|r| r.keys().map(String::as_str))
                    .collect();
                if names.contains(&"api_key") {
                    assert!(
                        names.contains(&"bearer"),
                        "{method} {path} takes an API key but does not say it takes a Bearer token"
                    );
                }
            }
        }
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(schemes["basic"]["scheme"], "basic");
    }
}
