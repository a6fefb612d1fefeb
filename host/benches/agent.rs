//! Agent-loop benchmark: what the loop itself adds to each round, measured
//! against a scripted model server on 127.0.0.1 (so the model's own time is
//! zero and what is left is ours: HTTP + SSE parsing, transcript and usage
//! writes, approvals, the tool call in its sandbox).
//!
//! `cargo bench -p boram-host --bench agent` prints a Markdown table:
//! - one gateway call alone (HTTP request, streamed SSE reply, assembled);
//! - one `read_file` call alone through the tool host;
//! - a whole two-round turn (tool call, then answer) through the loop;
//! - per round: the turn divided by its two rounds — an upper bound on the
//!   loop's own overhead, since it still contains a local HTTP exchange and
//!   (in one round of two) a sandboxed tool call. (Subtracting the
//!   separately measured pieces is not reliable: on a 2-core machine the
//!   pieces measured alone vary by more than the difference.)

use boram_host::agent::profiles::Profiles;
use boram_host::agent::{AgentEvent, EventSink, PromptMode};
use boram_host::app::{AgentKit, AgentPlace, Extras};
use boram_host::audit::JsonlFile;
use boram_host::config::model::ModelConfig;
use boram_host::llm::{ChatRequest, Endpoint, Gateway, GatewayOptions, Message, PriceTable, ProviderKind, ToolChoice};
use boram_host::policy::Policy;
use boram_host::registry::{Registry, ToolHost};
use boram_host::runtime::{Runtime, RuntimeOptions};
use scripted_llm::anthropic::AnthropicReply;
use scripted_llm::{Chunking, ScriptedServer};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const TURNS: usize = 400;
const WARMUP: usize = 20;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).expect("ws");
    std::fs::write(ws.join("notes.txt"), "Meeting moved to Thursday.\n".repeat(20)).expect("notes");
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(
        &policy_path,
        "version = 1\n[tools.read_file]\napproval = \"allow\"\nfs = [{ host = \"ws\", guest = \"/workspace\", access = \"ro\" }]\n",
    )
    .expect("policy");
    let runtime = Arc::new(
        Runtime::new(&RuntimeOptions {
            cache_dir: Some(dir.path().join("cache")),
            no_pooling: false,
            memory_budget_mb: None,
            ..RuntimeOptions::default()
        })
        .expect("runtime"),
    );
    let mut registry = Registry::new(runtime);
    let tools = PathBuf::from(env!("BORAM_WORKSPACE_DIR")).join("tools");
    assert!(
        registry.load_file(&tools.join("read_file.wasm")).await,
        "read_file loads"
    );
    let host = Arc::new(ToolHost::new(
        registry,
        Policy::load(&policy_path).expect("policy"),
        None,
    ));

    let server = ScriptedServer::start(Vec::new()).await;
    let gateway = gateway_for(&server).with_usage_log(JsonlFile::open(&dir.path().join("usage.jsonl")).expect("usage"));

    // The same request shape the loop sends: system prompt, the tool's schema, a prompt.
    let tools = boram_host::agent::tool_defs(&host);
    let request = ChatRequest {
        model: "claude-sonnet-4-5".into(),
        system: "s".into(),
        messages: vec![Message::user_text("read")],
        tools,
        tool_choice: ToolChoice::Auto,
        max_tokens: 1024,
    };
    let gateway_alone = measure(
        &server,
        || whole(AnthropicReply::new().text("done").usage(100, 5)),
        || async {
            gateway.send(&request, &|_| {}, "bench").await.expect("gateway call");
        },
    )
    .await;

    let input = json!({"path": "/workspace/notes.txt"}).to_string();
    let tool_alone = measure(
        &server,
        || AnthropicReply::new().build(),
        || async {
            let report = host.call("read_file", &input, None).await.expect("tool");
            assert!(report.outcome.is_ok());
        },
    )
    .await;
    // The tool measurement queued replies it never used: a fresh server.
    let server = ScriptedServer::start(Vec::new()).await;
    // The agent as the app builds it for `boram run`, minus the extras
    // (memory, create_tool, delegate) this bench does not measure.
    let kit = AgentKit::with_gateway(gateway_for(&server), settings_for(&server), Profiles::default())
        .with_extras(Extras::none());
    let sink: EventSink = Arc::new(|_: &AgentEvent| {});
    let mut turns = Vec::with_capacity(TURNS);
    for i in 0..WARMUP + TURNS {
        server.push(whole(
            AnthropicReply::new()
                .tool_use(&format!("t{i}"), "read_file", json!({"path": "/workspace/notes.txt"}))
                .usage(100, 5),
        ));
        server.push(whole(AnthropicReply::new().text("done").usage(100, 5)));
        // A new session each turn keeps the request size the same.
        let place = AgentPlace {
            host: host.clone(),
            data_dir: dir.path(),
            tools_dir: dir.path(),
            workspace: None,
            shared: None,
        };
        let mode = PromptMode::Unattended { yes: false };
        let mut agent = kit.agent(place, mode, None, None, None).expect("agent");
        let started = Instant::now();
        let result = agent.turn("read", &sink, &CancellationToken::new()).await;
        let elapsed = started.elapsed();
        assert!(result.stop.is_success(), "{result:?}");
        if i >= WARMUP {
            turns.push(elapsed);
        }
    }

    let (g, t, turn) = (p50(&gateway_alone), p50(&tool_alone), p50(&turns));
    println!("| measurement | median | p95 | notes |");
    println!("|---|---|---|---|");
    println!(
        "| model call via gateway (scripted server, 127.0.0.1) | {} | {} | HTTP + SSE parse + usage line, {TURNS} calls |",
        us(g),
        us(p95(&gateway_alone))
    );
    println!(
        "| read_file tool call via tool host | {} | {} | fresh sandbox per call |",
        us(t),
        us(p95(&tool_alone))
    );
    println!(
        "| two-round turn through the loop | {} | {} | tool_use round + answer round, {TURNS} turns |",
        us(turn),
        us(p95(&turns))
    );
    println!(
        "| **per round, everything included** | {} | {} | turn / 2: the loop's own overhead per round is at most this |",
        us(turn / 2),
        us(p95(&turns) / 2)
    );
}

/// Times `op` TURNS times after a warm-up, queueing one scripted reply per run.
async fn measure<R, F, Fut>(server: &ScriptedServer, reply: R, op: F) -> Vec<Duration>
where
    R: Fn() -> scripted_llm::Reply,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(TURNS);
    for i in 0..WARMUP + TURNS {
        server.push(reply());
        let started = Instant::now();
        op().await;
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    samples
}

fn endpoint_for(server: &ScriptedServer) -> Endpoint {
    Endpoint {
        kind: ProviderKind::Anthropic,
        base_url: server.url(),
        api_key: Some("k".into()),
        max_event_bytes: boram_host::llm::DEFAULT_MAX_EVENT_BYTES,
    }
}

/// A gateway to `server`.
fn gateway_for(server: &ScriptedServer) -> Gateway {
    let provider = boram_host::llm::connect(&endpoint_for(server)).expect("provider");
    Gateway::new(provider, GatewayOptions::default(), PriceTable::default())
}

/// The model settings of the bench's agents: the loop's request shape.
fn settings_for(server: &ScriptedServer) -> ModelConfig {
    ModelConfig {
        endpoint: endpoint_for(server),
        model: "claude-sonnet-4-5".into(),
        max_tokens: 1024,
        context_tokens: 200_000,
        gateway: GatewayOptions::default(),
        prices: PriceTable::default(),
        system_prompt: Some("s".into()),
        selection: None,
    }
}

/// A reply sent in one write: the bench measures our side, not the server's pacing.
fn whole(reply: AnthropicReply) -> scripted_llm::Reply {
    reply.build().chunked(Chunking::Whole)
}

fn p50(samples: &[Duration]) -> Duration {
    percentile(samples, 50)
}

fn p95(samples: &[Duration]) -> Duration {
    percentile(samples, 95)
}

fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}
