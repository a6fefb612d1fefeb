//! A tool's sandbox template: what its policy grants, prepared once, from
//! which every call builds a fresh WASI context.

use super::capture::Capture;
use super::egress::{EgressTemplate, HttpRecordSink};
use crate::policy::{Access, Limits, ToolPolicy};
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

/// Bytes of stdout (and, separately, stderr) kept per call.
pub const STDIO_CAPTURE_BYTES: usize = 64 * 1024;

/// The capabilities and limits of one tool, ready to instantiate.
#[derive(Debug, Clone)]
pub struct SandboxTemplate {
    preopens: Vec<(PathBuf, String, FsPerms)>,
    env: Vec<(String, String)>,
    pub limits: Limits,
    /// Outgoing HTTP: the `net` rules, secrets and limits.
    pub(super) egress: Arc<EgressTemplate>,
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
                (g.host.clone(), g.guest.clone(), perms)
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
        }
    }

    /// No capabilities at all, default limits: used to ask a component to describe itself.
    pub fn empty() -> Self {
        Self::from_policy(&crate::policy::Policy::deny_all().tool(""))
    }

    /// A fresh WASI context for one call: only the granted directories and
    /// environment keys, stdin empty, stdout/stderr into `stdout`/`stderr`,
    /// no sockets: TCP, UDP and name lookup off, and wasmtime's address check
    /// (which denies every address unless set) left alone. Outgoing HTTP
    /// goes through wasi:http and the egress filter instead.
    pub fn wasi_ctx(&self, stdout: &Capture, stderr: &Capture) -> std::io::Result<WasiCtx> {
        let mut builder = WasiCtxBuilder::new();
        builder.stdout(stdout.clone()).stderr(stderr.clone()).envs(&self.env);
        builder.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        for (host, guest, perms) in &self.preopens {
            builder.preopened_dir(host, guest, *perms).map_err(|e| {
                std::io::Error::other(format!("cannot open granted directory {}: {e:#}", host.display()))
            })?;
        }
        Ok(builder.build())
    }
}
