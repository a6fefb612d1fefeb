//! BoramClaw's host: runs AI-agent tools as sandboxed WebAssembly (WASI
//! preview 2) components, each able to touch only what a policy file grants.
//!
//! Layers, from the outside in (each depends only on those after it):
//! - [`cli`]: the `boram` command line;
//! - [`app`]: the composition root: settings resolved once, every layer built there;
//! - [`authoring`]: scaffolding, building and testing tools; the agent's `create_tool`;
//! - [`mcp`]: the tools as an MCP server (stdio);
//! - [`agent`]: the ReAct loop (rounds, approvals, repeat guard, budget, compaction);
//! - [`session`]: crash-safe transcripts and resume;
//! - [`memory`]: long-term notes and the failure store (SQLite);
//! - [`llm`]: model providers behind one gateway (retries, circuit breaker, usage, record/replay);
//! - [`registry`]: loaded tools by name; [`registry::ToolHost`] is where every call goes through;
//! - [`runtime`]: wasmtime engine, compile cache, sandboxes, one fresh store per call;
//! - [`policy`]: the policy file format and its decisions (no wasmtime here);
//! - [`audit`] and [`config`]: the audit log and where files live.

pub mod agent;
pub mod app;
pub mod audit;
pub mod authoring;
pub mod cli;
pub mod config;
pub mod embed;
pub mod llm;
pub mod mcp;
pub mod memory;
pub mod policy;
pub mod registry;
pub mod runtime;
pub mod schedule;
pub mod scrub;
pub mod serve;
pub mod session;
pub mod store;
mod suggest;
pub mod supervise;
pub mod terminal;
