//! A tool's sandbox template: what its policy grants, prepared once, from
//! which every call builds a fresh WASI context.

use super::capture::Capture;
use super::egress::{EgressTemplate, HttpRecordSink};
use super::preopen::DirHandle;
use crate::policy::{Access, Limits, ToolPolicy};
use std::sync::Arc;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

/// Bytes of stdout (and, separately, stderr) kept per call.
pub const STDIO_CAPTURE_BYTES: usize = 64 * 1024;
/// Largest `wasi:random` request one call may make (wasmtime's default is
/// 64 MiB, allocated by the host on the guest's say-so); larger ones trap.
pub const MAX_RANDOM_BYTES: u64 = 1 << 20;

/// A granted directory: held open since the template was built (or why it
/// could not be), the path the guest sees, and its permissions.
type Preopen = (Result<DirHandle, String>, String, FsPerms);

/// The capabilities and limits of one tool, ready to instantiate.
#[derive(Debug, Clone)]
pub struct SandboxTemplate {
    preopens: Vec<Preopen>,
    env: Vec<(String, String)>,
    pub limits: Limits,
    /// Outgoing HTTP: the `net` rules, secrets and limits.
    pub(super) egress: Arc<EgressTemplate>,
    /// Places for this tool's calls running at once (`concurrency`).
    pub(super) queue: Arc<tokio::sync::Semaphore>,
}

impl SandboxTemplate {
    /// The template for `policy`, without an audit sink for HTTP requests.
    pub fn from_policy(policy: &ToolPolicy) -> Self {
        Self::for_tool("", policy, None)
    }

    /// The template for tool `name` under `policy`; each outgoing HTTP
    /// request is also given to `http_sink` (the audit log). Environment and
    /// secret values are read from the host now; keys the host does not
    /// have are simply absent.
    pub fn for_tool(name: &str, policy: &ToolPolicy, http_sink: Option<HttpRecordSink>) -> Self {
        let preopens = policy
            .fs
            .iter()
            .map(|g| {
                let perms = match g.access {
                    Access::ReadOnly => FsPerms::ReadOnly,
                    Access::ReadWrite => FsPerms::ReadWrite,
                };
                let handle = DirHandle::open(&g.host)
                    .map_err(|e| format!("cannot open granted directory {}: {e}", g.host.display()));
                (handle, g.guest.clone(), perms)
            })
            .collect();
        let env = policy
            .env
            .iter()
            .filter_map(|e| std::env::var(&e.key).ok().map(|v| (e.key.clone(), v)))
            .collect();
        Self {
            preopens,
            env,
            limits: policy.limits,
            egress: Arc::new(EgressTemplate::from_policy(name, policy, http_sink)),
            queue: Arc::new(tokio::sync::Semaphore::new(policy.limits.concurrency.max(1) as usize)),
        }
    }

    /// No capabilities at all, default limits: used to ask a component to describe itself.
    pub fn empty() -> Self {
        Self::from_policy(&crate::policy::Policy::deny_all().tool(""))
    }

    /// A fresh WASI context for one call: only the granted directories
    /// (reopened from the handles held since the template was built) and
    /// environment keys, stdin empty, stdout/stderr into `stdout`/`stderr`,
    /// `wasi:random` requests capped at [`MAX_RANDOM_BYTES`], no sockets:
    /// TCP, UDP and name lookup off, and wasmtime's address check (which
    /// denies every address unless set) left alone. Outgoing HTTP goes
    /// through wasi:http and the egress filter instead.
    pub fn wasi_ctx(&self, stdout: &Capture, stderr: &Capture) -> std::io::Result<WasiCtx> {
        let mut builder = WasiCtxBuilder::new();
        builder.stdout(stdout.clone()).stderr(stderr.clone()).envs(&self.env);
        builder.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        builder.max_random_size(MAX_RANDOM_BYTES);
        for (handle, guest, perms) in &self.preopens {
            let handle = handle.as_ref().map_err(|e| std::io::Error::other(e.clone()))?;
            builder
                .preopened_dir(handle.reopen_path(), guest, *perms)
                .map_err(|e| {
                    std::io::Error::other(format!(
                        "cannot open granted directory {}: {e:#}",
                        handle.host.display()
                    ))
                })?;
        }
        Ok(builder.build())
    }
}
