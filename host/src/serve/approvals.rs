//! `/v1/approvals`: a service user's remembered ("always") approvals.
//!
//! A service run has nobody to ask, so a `prompt` tool is refused in it
//! unless the user approved that tool beforehand: `POST /v1/approvals`
//! remembers an answer bound to the tool as it is now (its content hash
//! and its grant under the policy in force, and for a networked tool the
//! origins named or any host), exactly as `a` at a terminal prompt does.
//! Runs and direct calls of that user honour it on every replica (cluster
//! mode keeps the book in the shared store); a rebuilt tool or a changed
//! grant needs a new answer. `GET` lists them (with whether each still
//! matches the tool), `DELETE /v1/approvals/{id}` forgets one.

use super::AppState;
use super::api::{Error, error, store_error};
use super::tenants::Tenant;
use crate::agent::approval::ApprovalRequest;
use crate::policy::Approval;
use crate::store::approvals::Grant;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// The content hash and source of `name` as the agent would call it now
/// (a component of the registry, or a built-in); `None`: no such tool.
pub fn identity_of(tenant: &Tenant, name: &str) -> Option<(String, String)> {
    if let Some((_, component)) = tenant.host.registry().get(name) {
        return Some((component.sha256.clone(), component.path.display().to_string()));
    }
    crate::agent::builtin::BUILTIN_NAMES
        .contains(&name)
        .then(|| (format!("builtin:{name}"), "built in".to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApproval {
    tool: String,
    /// For a networked tool: the origins (or URLs) the answer covers.
    #[serde(default)]
    origins: Vec<String>,
    /// For a networked tool: any host its policy allows.
    #[serde(default)]
    any_host: bool,
}

const EXPECTED: &str = "expected {\"tool\", \"origins\"?: [\"https://host\"], \"any_host\"?: bool}";

/// `POST /v1/approvals`: 201 with the remembered entry; 404 an unknown
/// tool; 400 a tool that needs no approval or an answer that does not fit it.
pub async fn add(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
    body: Bytes,
) -> Result<Response, Error> {
    let new: NewApproval =
        serde_json::from_slice(&body).map_err(|e| error(StatusCode::BAD_REQUEST, format!("{e}; {EXPECTED}")))?;
    let Some((hash, source)) = identity_of(&tenant, &new.tool) else {
        let names: Vec<String> = tenant.host.registry().names().map(str::to_string).collect();
        let known = names
            .iter()
            .map(String::as_str)
            .chain(crate::agent::builtin::BUILTIN_NAMES.iter().copied());
        let hint = crate::suggest::did_you_mean(&new.tool, known).unwrap_or_default();
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("no tool named `{}`{hint}", new.tool),
        ));
    };
    // The origins become the input the approval is judged on, normalised
    // as a call's URLs are.
    let mut origins = Vec::new();
    for origin in &new.origins {
        let target = crate::policy::net::parse_target(origin)
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("origins: {e}")))?;
        origins.push(Value::String(target.to_string()));
    }
    let (approval, request) = ApprovalRequest::for_call(&tenant.host, &new.tool, &Value::Array(origins), hash, source);
    if approval != Approval::Prompt {
        let word = if approval == Approval::Allow { "allow" } else { "deny" };
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "`{}` needs no approval: its policy says approval = \"{word}\", so a remembered answer would change nothing",
                new.tool
            ),
        ));
    }
    match (request.networked, new.any_host, new.origins.is_empty()) {
        (false, true, _) | (false, _, false) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!(
                    "`{}` has no `net` rules: `origins` and `any_host` do not apply",
                    new.tool
                ),
            ));
        }
        (true, false, true) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!(
                    "`{}` reaches the network: name the origins the answer covers (\"origins\": [\"https://host\"]) \
                     or allow any host its policy allows (\"any_host\": true)",
                    new.tool
                ),
            ));
        }
        _ => {}
    }
    let entry = state
        .approvals_of(&tenant)
        .remember(Grant::new(&request, new.any_host))
        .await
        .map_err(store_error)?;
    audit_change(&tenant, "approval_remembered", &entry.grant.tool, &entry.id);
    Ok((StatusCode::CREATED, Json(listed(&tenant, entry))).into_response())
}

/// `GET /v1/approvals`: the user's remembered answers, oldest first, each
/// with `current`: whether it still covers the tool as it is now.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
) -> Result<Json<Value>, Error> {
    let entries = state.approvals_of(&tenant).list().await.map_err(store_error)?;
    let approvals: Vec<Value> = entries.into_iter().map(|e| listed(&tenant, e)).collect();
    Ok(Json(json!({ "approvals": approvals })))
}

/// `DELETE /v1/approvals/{id}`: 204, or 404.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    if state.approvals_of(&tenant).forget(&id).await.map_err(store_error)? {
        audit_change(&tenant, "approval_forgotten", "", &id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(error(StatusCode::NOT_FOUND, format!("no remembered approval `{id}`")))
    }
}

/// An entry as the API shows it.
fn listed(tenant: &Tenant, entry: crate::store::approvals::RememberedApproval) -> Value {
    let current = identity_of(tenant, &entry.grant.tool).is_some_and(|(hash, source)| {
        let (_, now) = ApprovalRequest::for_call(&tenant.host, &entry.grant.tool, &json!({}), hash, source);
        now.tool_hash == entry.grant.sha256 && now.grant == entry.grant.grant
    });
    let mut value = serde_json::to_value(&entry).unwrap_or_default();
    value["current"] = json!(current);
    value
}

/// Who approves what is part of the audit trail.
fn audit_change(tenant: &Tenant, event: &str, tool: &str, id: &str) {
    if let Some(audit) = tenant.host.audit() {
        audit.event(&json!({
            "time": crate::audit::now(),
            "event": event,
            "tool": tool,
            "id": id,
            "user": tenant.name,
        }));
    }
}
