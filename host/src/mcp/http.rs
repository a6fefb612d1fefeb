//! MCP over streamable HTTP at `/mcp` on `boram serve`: the same
//! [`McpServer`] as `boram mcp`, one per user, behind the service's bearer
//! tokens — a client sees that user's tools under that user's policy (its
//! workspace), and its calls are audited and counted like every other call.
//!
//! The transport is rmcp's streamable HTTP server, which serves both
//! protocol generations on one endpoint: clients that start with
//! `initialize` (2025-11-25 and older) get a session (`Mcp-Session-Id`,
//! server-to-client requests such as elicitation and `list_changed` over
//! SSE), and 2026-07-28 clients are served statelessly. Sessions live in
//! this process; a client whose session is unknown (a restart, another
//! replica) gets 404 and initializes again, as the spec says.
//!
//! rmcp checks the `Host` header against loopback names to stop DNS
//! rebinding attacks on local servers. That check is kept for an open
//! service (no token, loopback only); when every user needs a token a
//! rebinding page cannot call the service anyway, so any host name the
//! operator's clients use is accepted.

use super::{McpServer, Unattended};
use crate::serve::tenants::Tenant;
use axum::response::{IntoResponse as _, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

type Endpoint = StreamableHttpService<McpServer, LocalSessionManager>;

/// The `/mcp` endpoint of every user.
pub struct McpEndpoints {
    by_user: HashMap<String, (McpServer, Endpoint)>,
}

impl McpEndpoints {
    /// One endpoint per user of `tenants`. `approve_prompt` runs `prompt`
    /// tools for clients that cannot ask their user; `shutdown` ends every
    /// session's streams; bodies over `body_limit` bytes get 413.
    /// `notes_for` gives a user's memory notes (for `memory_search` and
    /// `memory_save`; `None`: no memory tools).
    pub fn new(
        tenants: &[Arc<Tenant>],
        notes_for: &dyn Fn(&Tenant) -> Option<Arc<crate::memory::Notes>>,
        approve_prompt: bool,
        shutdown: &CancellationToken,
        body_limit: usize,
    ) -> Self {
        let unattended = match approve_prompt {
            true => Unattended::Approve,
            false => Unattended::Refuse,
        };
        let all_need_tokens = tenants.iter().all(|t| !t.is_open());
        let by_user = tenants
            .iter()
            .map(|tenant| {
                let mut server = McpServer::new(tenant.host.clone(), unattended)
                    .with_unattended_fix("set [serve] approve_prompt = true in the service's config");
                if let Some(notes) = notes_for(tenant) {
                    server = server.with_memory(notes);
                }
                let mut config = StreamableHttpServerConfig::default()
                    .with_cancellation_token(shutdown.child_token())
                    .with_max_request_body_bytes(body_limit);
                if all_need_tokens {
                    config = config.disable_allowed_hosts();
                }
                let sessions = server.clone();
                let endpoint = StreamableHttpService::new(
                    move || Ok(sessions.session()),
                    Arc::new(LocalSessionManager::default()),
                    config,
                );
                (tenant.name.clone(), (server, endpoint))
            })
            .collect();
        Self { by_user }
    }

    /// Serves one request of `tenant` (authenticated by the caller).
    pub async fn handle(&self, tenant: &Tenant, request: axum::extract::Request) -> Response {
        match self.by_user.get(&tenant.name) {
            Some((_, endpoint)) => endpoint.handle(request).await.map(axum::body::Body::new),
            None => (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"error": "no MCP endpoint for this user"})),
            )
                .into_response(),
        }
    }

    /// Tells every MCP client of every user that the tools changed (a
    /// policy edit rebuilds every user's policy).
    pub async fn tools_changed(&self) {
        for (server, _) in self.by_user.values() {
            server.tools_changed().await;
        }
    }

    /// Tells `user`'s MCP clients that their tools changed (a hot swap in
    /// that user's tool host).
    pub async fn tools_changed_for(&self, user: &str) {
        if let Some((server, _)) = self.by_user.get(user) {
            server.tools_changed().await;
        }
    }
}
