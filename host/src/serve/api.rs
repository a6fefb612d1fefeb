//! The HTTP handlers: health, metrics, tools, tool calls, runs (with SSE
//! events), stats and sessions. Every `/v1` handler works on the calling
//! user's [`Tenant`] only.

use super::AppState;
use super::tenants::Tenant;
use crate::policy::Approval;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) type Error = (StatusCode, Json<Value>);

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Error {
    (status, Json(json!({"error": message.into()})))
}

/// `GET /health`: liveness, tool count, uptime. No authentication.
pub async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let tools = state.tenants.first().map_or(0, |t| t.host.registry().names().count());
    let mut health = json!({
        "status": "ok",
        "tools": tools,
        "uptime_s": state.started.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
    });
    // In cluster mode: which replica answered, and whether it reaches the
    // database (the process is healthy either way: a balancer must not
    // take every replica out when the database is down).
    if state.runs.shared_store().is_some() {
        health["replica"] = json!(state.runs.replica());
        health["store"] = json!(match state.runs.ping().await {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        });
    }
    Json(health)
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    if super::metrics::wants_openmetrics(accept) {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            state.metrics.encode(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            state.metrics.encode_text_004(),
        )
            .into_response()
    }
}

/// `GET /v1/tools`: the user's tools with their input schemas and grants.
pub async fn tools(Extension(tenant): Extension<Arc<Tenant>>) -> Json<Value> {
    let registry = tenant.host.registry();
    let policy = tenant.host.policy();
    let tools: Vec<Value> = registry
        .tools()
        .map(|(spec, component)| {
            let tool_policy = policy.tool(&spec.name);
            json!({
                "name": spec.name,
                "description": spec.description,
                "input_schema": spec.input_schema,
                "approval": tool_policy.approval,
                "grants": crate::policy::summary(&tool_policy),
                "sha256": component.sha256,
            })
        })
        .collect();
    Json(json!({ "tools": tools }))
}

/// `POST /v1/tools/{name}/call` with the input as the JSON body: the call
/// report (200, whatever the outcome), 404 for an unknown tool, 403 when
/// the policy does not let it run unattended, 400 for a body that is not a
/// JSON object.
pub async fn call_tool(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Error> {
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| error(StatusCode::BAD_REQUEST, format!("the body is not JSON: {e}")))?
    };
    if !input.is_object() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object: the tool's input",
        ));
    }
    let Some((hash, source)) = tenant
        .host
        .registry()
        .get(&name)
        .map(|(_, c)| (c.sha256.clone(), c.path.display().to_string()))
    else {
        return Err(error(StatusCode::NOT_FOUND, format!("no tool named `{name}`")));
    };
    let tool_policy = tenant.host.policy().tool(&name);
    // A `prompt` tool runs when the user approved it beforehand
    // (`POST /v1/approvals`), limited to the origins approved (`None`: no
    // limit beyond the policy).
    let mut origins: Option<Arc<[String]>> = None;
    if tool_policy.approval == Approval::Prompt && !state.approve_prompt {
        let (_, request) = crate::agent::approval::ApprovalRequest::for_call(&tenant.host, &name, &input, hash, source);
        let Some(approved) = state.approvals_of(&tenant).covering(&request).await else {
            state.metrics.denial("approval");
            if let Some(audit) = tenant.host.audit() {
                audit.event(&json!({
                    "time": crate::audit::now(),
                    "event": "tool_denied",
                    "tool": name,
                    "by": "unattended",
                    "reason": "a `prompt` tool called over HTTP, with nobody to ask",
                }));
            }
            return Err(error(
                StatusCode::FORBIDDEN,
                format!(
                    "`{name}` needs approval (approval = \"prompt\" in {}) and a service cannot ask; approve it \
                     beforehand (POST /v1/approvals {{\"tool\": \"{name}\"}}), allow it in the policy or set [serve] \
                     approve_prompt = true",
                    tool_policy.approval_source(&name)
                ),
            ));
        };
        origins = (!approved.is_empty()).then(|| approved.into_iter().collect());
    }
    let report = tenant
        .host
        .call_within(&name, &input.to_string(), None, origins)
        .await
        .map_err(|e| error(StatusCode::NOT_FOUND, e.to_string()))?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    prompt: String,
    /// Run as this agent profile.
    profile: Option<String>,
}

/// `POST /v1/runs {"prompt": "…"}`: starts an agent run; 202 with its id.
pub async fn start_run(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
    body: Bytes,
) -> Result<Response, Error> {
    let request: RunRequest = serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("{e}; expected {{\"prompt\": \"…\"}}")))?;
    if request.prompt.trim().is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "`prompt` is empty"));
    }
    if state.agents.is_none() {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no model is configured for this service (set ANTHROPIC_API_KEY / OPENAI_API_KEY, --base-url or --replay)",
        ));
    }
    let id = state
        .runs
        .start(&tenant, request.profile.as_deref(), request.prompt, None)
        .await
        .map_err(run_error)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "events": format!("/v1/runs/{id}/events")})),
    )
        .into_response())
}

/// A run backend's error: 503 when the shared store is unreachable.
fn run_error(e: super::runs::RunError) -> Error {
    match e {
        super::runs::RunError::Unavailable(message) => error(StatusCode::SERVICE_UNAVAILABLE, message),
        super::runs::RunError::Other(message) => error(StatusCode::INTERNAL_SERVER_ERROR, message),
    }
}

/// `GET /v1/runs`: the user's runs, newest first.
pub async fn list_runs(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
) -> Result<Json<Value>, Error> {
    let runs = state.runs.list(&tenant.name, LISTED_RUNS).await.map_err(run_error)?;
    Ok(Json(json!({ "runs": runs })))
}

/// At most this many runs are listed.
const LISTED_RUNS: usize = 500;

/// `GET /v1/runs/{id}`.
pub async fn get_run(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Error> {
    let run = state
        .runs
        .get(&tenant.name, &id)
        .await
        .map_err(run_error)?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    Ok(Json(serde_json::to_value(run).unwrap_or_default()))
}

/// `GET /v1/runs/{id}/events`: server-sent events, past then live, ending
/// with `done`; also ends when the service shuts down.
pub async fn run_events(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let events = state
        .runs
        .events(&tenant.name, &id)
        .await
        .map_err(run_error)?
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    let shutdown = state.shutdown.clone();
    let events = events
        .map(|event| {
            let kind = event["type"].as_str().unwrap_or("event").to_string();
            Ok::<_, std::convert::Infallible>(Event::default().event(kind).data(event.to_string()))
        })
        .take_until(async move { shutdown.cancelled().await });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// `GET /v1/sessions/{id}/transcript`: the user's session as JSON Lines, one
/// record a line (the `sessions/<id>.jsonl` format), from wherever it is
/// kept; another user's session is a 404.
pub async fn transcript(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let missing = || error(StatusCode::NOT_FOUND, format!("no session {id}"));
    let records = state
        .sessions_of(&tenant)
        .records(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(missing)?;
    let mut body = String::new();
    for record in &records {
        body.push_str(&serde_json::to_string(record).unwrap_or_default());
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8")], body).into_response())
}

/// `GET /v1/stats`: the dashboard's figures (service-wide), plus this
/// user's recent runs and sessions.
pub async fn stats(State(state): State<Arc<AppState>>, Extension(tenant): Extension<Arc<Tenant>>) -> Json<Value> {
    let sessions = state.sessions_of(&tenant).newest(10).await.unwrap_or_else(|e| {
        tracing::warn!(user = %tenant.name, error = %e, "cannot list the sessions for the dashboard");
        Vec::new()
    });
    let sessions: Vec<Value> = sessions
        .into_iter()
        .rev()
        .map(|s| serde_json::to_value(s).unwrap_or_default())
        .collect();
    Json(json!({
        "user": tenant.name,
        "stats": state.metrics.stats(),
        "runs": state.runs.list(&tenant.name, 10).await.unwrap_or_default(),
        "sessions": sessions,
        "uptime_s": state.started.elapsed().as_secs(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSchedule {
    name: String,
    cron: String,
    profile: Option<String>,
    task: String,
}

/// `GET /v1/schedules`: the user's schedules, each with its next run.
pub async fn list_schedules(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
) -> Result<Json<Value>, Error> {
    let listed = state.schedules_of(&tenant).list().await.map_err(store_error)?;
    let now = chrono::Utc::now();
    let schedules = listed
        .into_iter()
        .map(|s| {
            let next = s.next_after(s.last_run.unwrap_or(s.created).max(now));
            let mut value = serde_json::to_value(&s).unwrap_or_default();
            value["next_run"] = json!(next);
            value
        })
        .collect::<Vec<_>>();
    Ok(Json(json!({ "schedules": schedules })))
}

/// A shared store's error: 503 when it is unreachable.
pub(super) fn store_error(e: crate::store::StoreError) -> Error {
    let status = if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    error(status, e.to_string())
}

/// `POST /v1/schedules {"name", "cron", "profile"?, "task"}`: 201, or 400
/// with the reason (bad cron, bad or taken name).
pub async fn add_schedule(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
    body: Bytes,
) -> Result<Response, Error> {
    let new: NewSchedule = serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("{e}; expected {{\"name\", \"cron\", \"profile\"?, \"task\"}}"),
        )
    })?;
    if new.task.trim().is_empty() {
        return Err(error(StatusCode::BAD_REQUEST, "`task` is empty"));
    }
    let schedule = crate::schedule::Schedule::new(new.name, new.cron, new.profile, new.task, chrono::Utc::now());
    let next = schedule.next_after(schedule.created);
    match state.schedules_of(&tenant).add(schedule.clone()).await {
        Ok(()) => {}
        Err(crate::store::schedules::AddError::Refused(reason)) => return Err(error(StatusCode::BAD_REQUEST, reason)),
        Err(crate::store::schedules::AddError::Store(e)) => return Err(store_error(e)),
    }
    let mut value = serde_json::to_value(&schedule).unwrap_or_default();
    value["next_run"] = json!(next);
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

/// `DELETE /v1/schedules/{name}`: 204, or 404.
pub async fn remove_schedule(
    State(state): State<Arc<AppState>>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    let removed = state.schedules_of(&tenant).remove(&name).await.map_err(store_error)?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(error(StatusCode::NOT_FOUND, format!("no schedule named `{name}`")))
    }
}
