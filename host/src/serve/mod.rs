//! `boram serve`: the tools and the agent as an HTTP service (axum).
//!
//! - `GET /health` (open), `GET /metrics` (Prometheus), `GET /v1/tools`,
//!   `POST /v1/tools/{name}/call`, `POST /v1/runs` + `GET /v1/runs/{id}/events`
//!   (SSE), `GET /v1/runs`, `GET /v1/stats`, `/v1/schedules` (list, add,
//!   remove), MCP over streamable HTTP at `/mcp` ([`crate::mcp::http`]),
//!   and the dashboard at `/`.
//! - Bearer tokens map to users ([`tenants`]); each user has its own tool
//!   host (its workspace as `${workspace}` in the policy) and data
//!   directory. Without configured users the service is open, which it
//!   refuses unless bound to a loopback address.
//! - Request bodies are capped (413), every request gets an `x-request-id`
//!   (kept if the client sent one) that the logs carry, and shutdown stops
//!   accepting, lets requests in flight finish, ends event streams and gives
//!   running agent runs a grace period.

pub mod api;
pub mod approvals;
pub mod client_errors;
mod dashboard;
pub mod metrics;
pub mod policy_watch;
pub mod runs;
pub mod tenants;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics::Metrics;
use runs::{AgentFactory, RunQueue};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tenants::Tenant;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// How long running agent runs may take to finish after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything the handlers share.
pub struct AppState {
    pub started: Instant,
    /// Every user; the open local user alone when none is configured.
    pub tenants: Vec<Arc<Tenant>>,
    pub metrics: Arc<Metrics>,
    pub runs: Arc<RunQueue>,
    /// `None` when no model is configured: runs are refused, tools still work.
    pub agents: Option<AgentFactory>,
    /// Run `prompt` tools without asking (`[serve] approve_prompt`).
    pub approve_prompt: bool,
    /// Cancelled on shutdown; ends event streams.
    pub shutdown: CancellationToken,
    /// Server paths no response may name.
    pub hidden_paths: Arc<client_errors::HiddenPaths>,
    /// MCP over streamable HTTP at `/mcp`, per user.
    pub mcp: Arc<crate::mcp::http::McpEndpoints>,
}

impl AppState {
    /// `tenant`'s remembered approvals: the shared store's in cluster
    /// mode, else `approvals.json` in the user's data directory.
    pub fn approvals_of(&self, tenant: &Tenant) -> crate::store::approvals::ApprovalBook {
        match self.runs.shared_store() {
            Some(store) => crate::store::approvals::ApprovalBook::Shared {
                store: store.clone(),
                user: tenant.name.clone(),
            },
            None => crate::store::approvals::ApprovalBook::in_dir(&tenant.data_dir),
        }
    }

    /// `tenant`'s schedules, from the same place.
    pub fn schedules_of(&self, tenant: &Tenant) -> crate::store::schedules::ScheduleBook {
        match self.runs.shared_store() {
            Some(store) => crate::store::schedules::ScheduleBook::Shared {
                store: store.clone(),
                user: tenant.name.clone(),
            },
            None => crate::store::schedules::ScheduleBook::File(tenant.data_dir.clone()),
        }
    }

    /// `tenant`'s sessions, from the same place.
    pub fn sessions_of(&self, tenant: &Tenant) -> crate::store::sessions::SessionBook {
        match self.runs.shared_store() {
            Some(store) => crate::store::sessions::SessionBook::Shared {
                store: store.clone(),
                user: tenant.name.clone(),
            },
            None => crate::store::sessions::SessionBook::Files(crate::config::sessions_dir(&tenant.data_dir)),
        }
    }
}

/// Refuses an open service on a non-loopback address.
pub fn check_exposure(addr: &SocketAddr, tenants: &[Arc<Tenant>]) -> Result<(), String> {
    check_exposure_of(addr, tenants.iter().any(|t| t.is_open()))
}

/// [`check_exposure`] for a service with (`open`) or without a user that needs no token.
pub fn check_exposure_of(addr: &SocketAddr, open: bool) -> Result<(), String> {
    if !addr.ip().is_loopback() && open {
        return Err(format!(
            "refusing to listen on {addr} without authentication: add [[serve.users]] with tokens to the config \
             (or set BORAM_SERVE_TOKEN), or bind to 127.0.0.1"
        ));
    }
    Ok(())
}

/// The whole application.
pub fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    let v1 = Router::new()
        .route("/tools", get(api::tools))
        .route("/tools/{name}/call", post(api::call_tool))
        .route("/runs", post(api::start_run).get(api::list_runs))
        .route("/runs/{id}", get(api::get_run))
        .route("/runs/{id}/events", get(api::run_events))
        .route("/stats", get(api::stats))
        .route("/sessions/{id}/transcript", get(api::transcript))
        .route("/schedules", get(api::list_schedules).post(api::add_schedule))
        .route("/schedules/{name}", axum::routing::delete(api::remove_schedule))
        .route("/approvals", get(approvals::list).post(approvals::add))
        .route("/approvals/{id}", axum::routing::delete(approvals::remove));
    let authenticated = Router::new()
        .nest("/v1", v1)
        .route("/metrics", get(api::metrics))
        .route("/mcp", axum::routing::any(mcp))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(authenticated)
        .route("/health", get(api::health))
        .merge(dashboard::routes())
        .layer(middleware::from_fn_with_state(
            state.hidden_paths.clone(),
            client_errors::client_errors,
        ))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), count_request))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path())
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RequestIds::default()))
        .with_state(state)
}

/// `/mcp`: the user's MCP endpoint (streamable HTTP, either protocol generation).
async fn mcp(
    State(state): State<Arc<AppState>>,
    axum::Extension(tenant): axum::Extension<Arc<Tenant>>,
    request: Request,
) -> Response {
    state.mcp.handle(&tenant, request).await
}

/// `Authorization: Bearer TOKEN` → the user, put in the request's
/// extensions; 401 otherwise. The open local user needs no token.
async fn authenticate(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let tenant = match token {
        Some(token) => state.tenants.iter().find(|t| t.accepts(token)),
        None => state.tenants.iter().find(|t| t.is_open()),
    };
    match tenant {
        Some(tenant) => {
            request.extensions_mut().insert(tenant.clone());
            next.run(request).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            axum::Json(serde_json::json!({"error": "a valid `Authorization: Bearer TOKEN` header is required"})),
        )
            .into_response(),
    }
}

/// Counts every request by its route pattern (`/v1/runs/{id}`, not the
/// id: one series per route, not per run), method and status, and times it
/// to its response headers.
async fn count_request(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.http_request(&route, &method, response.status().as_u16(), started.elapsed());
    response
}

/// Request ids: a per-process random prefix and a counter.
#[derive(Clone)]
struct RequestIds {
    prefix: String,
    next: Arc<AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        Self {
            prefix: format!("{:08x}", fastrand::u32(..)),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// Serves until `shutdown` completes, then drains: requests in flight
/// finish, event streams end, runs get [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    body_limit: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone(), body_limit);
    let stop = state.shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
            stop.cancel();
        })
        .await?;
    state.runs.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}
