//! Hot reload of the policy under `boram serve`: when the file changes,
//! each user's policy is rebuilt from it (with that user's `${workspace}`)
//! and applied to the next call; an invalid edit is rejected for everyone
//! and the previous policy stays. Outcomes go to the log, the metrics
//! (`boram_reloads_total`) and every user's audit log.

use super::metrics::Metrics;
use super::tenants::{Tenant, policy_for};
use crate::registry::check_grants;
use crate::registry::watch::{Watching, watch_dirs};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after the last event before the file is read.
const DEBOUNCE: Duration = Duration::from_millis(200);

pub fn watch(
    policy: &Path,
    tenants: Vec<Arc<Tenant>>,
    metrics: Arc<Metrics>,
    mcp: Arc<crate::mcp::http::McpEndpoints>,
) -> notify::Result<Watching> {
    let policy = std::path::absolute(policy).unwrap_or_else(|_| policy.to_path_buf());
    // The directory, not the file: editors replace files by renaming.
    let dirs: Vec<PathBuf> = policy.parent().map(Path::to_path_buf).into_iter().collect();
    watch_dirs(&dirs, DEBOUNCE, move |changed| {
        let applied = changed.contains(&policy) && apply(&policy, &tenants, &metrics);
        let mcp = mcp.clone();
        async move {
            // A new policy can show or hide tools: MCP clients list them again.
            if applied {
                mcp.tools_changed().await;
            }
        }
    })
}

/// Rebuilds every user's policy from the file; all or nothing. Whether
/// the new policy was applied.
fn apply(path: &Path, tenants: &[Arc<Tenant>], metrics: &Metrics) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    // Every user's policy is built and checked before any is applied.
    let built: Result<Vec<_>, String> = tenants
        .iter()
        .map(|t| {
            let policy = policy_for(path, &text, t.workspace.as_deref())?;
            check_grants(&policy, t.host.trusted())?;
            Ok(policy)
        })
        .collect();
    let applied = built.is_ok();
    let event = match built {
        Ok(policies) => {
            for (tenant, policy) in tenants.iter().zip(policies) {
                tenant.host.set_checked_policy(policy);
            }
            tracing::info!(path = %path.display(), "policy reloaded");
            json!({"event": "policy_reloaded", "path": path})
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "policy edit rejected; the previous policy stays");
            json!({"event": "policy_rejected", "path": path, "error": error})
        }
    };
    let mut line = event;
    line["time"] = json!(crate::audit::now());
    metrics.reload(&line);
    for tenant in tenants {
        if let Some(audit) = tenant.host.audit() {
            audit.event(&line);
        }
    }
    applied
}
