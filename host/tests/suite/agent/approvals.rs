//! Approvals in each mode: policy allow and deny, `prompt` answered once /
//! for the session / always (remembered, bound to the content hash) / deny
//! with a reason, and `prompt` without anyone to ask (deny, or `--yes`).

use super::*;
use boram_host::agent::Approvals;
use boram_host::agent::Stop;
use boram_host::agent::approval::{Answer, ApprovalRequest, Decision, LinePrompter, Prompter};
use boram_host::policy::Approval;
use scripted_llm::anthropic::AnthropicReply;
use serde_json::json;
use std::io::Cursor;

/// A model that writes `n` different files, one per round, then answers.
fn writes(n: usize) -> Vec<scripted_llm::Reply> {
    let mut script: Vec<_> = (0..n)
        .map(|i| {
            AnthropicReply::new()
                .tool_use(
                    &format!("w{i}"),
                    "write_file",
                    json!({"path": format!("/workspace/out{i}.txt"), "content": "x"}),
                )
                .build()
        })
        .collect();
    script.push(AnthropicReply::new().text("done").build());
    script
}

fn prompted(answers: &str) -> Setup {
    let prompter = LinePrompter::new(Box::new(Cursor::new(answers.to_string())), Box::new(std::io::sink()));
    Setup {
        mode: PromptMode::Ask(Arc::new(prompter)),
        ..Setup::default()
    }
    .with_write_file_prompting()
}

impl Setup {
    /// write_file asks first; the rest is allowed.
    fn with_write_file_prompting(mut self) -> Self {
        self.policy = self
            .policy
            .replace("[tools.write_file]\n", "[tools.write_file]\napproval = \"prompt\"\n");
        self
    }
}

fn decisions(h: &Harness) -> Vec<String> {
    h.events()
        .into_iter()
        .filter_map(|e| match e {
            AgentEvent::Approval { name, decision, .. } if name == "write_file" => Some(decision),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn once_asks_every_time_and_session_asks_once() {
    let server = ScriptedServer::start(writes(3)).await;
    // once, then session (covers the third call without asking).
    let mut h = Harness::new(&server, prompted("o\ns\n")).await;
    assert_eq!(h.turn("write three files").await.stop, Stop::Answered);
    assert_eq!(decisions(&h), ["allow (once)", "allow (session)", "allow (session)"]);
    for i in 0..3 {
        assert!(h.dir.path().join(format!("ws/out{i}.txt")).exists());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_with_a_reason_reaches_the_model() {
    let server = ScriptedServer::start(writes(1)).await;
    let mut h = Harness::new(&server, prompted("d: write to /tmp instead\n")).await;
    assert_eq!(h.turn("write").await.stop, Stop::Answered);
    assert_eq!(decisions(&h), ["deny (user)"]);
    let result = &last_tool_results(&server.requests()[1].body)[0];
    assert_eq!(result["is_error"], true);
    assert!(
        result["content"]
            .as_str()
            .expect("content")
            .contains("write to /tmp instead"),
        "{result}"
    );
    assert!(!h.dir.path().join("ws/out0.txt").exists());
    let transcript =
        std::fs::read_to_string(h.agent.session().file_path().expect("a file session")).expect("transcript");
    assert!(transcript.contains("\"type\":\"approval\"") && transcript.contains("deny (user)"));
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_deny_and_unattended_prompt_are_denials_and_yes_allows() {
    // Policy deny.
    let server = ScriptedServer::start(writes(1)).await;
    let setup = Setup {
        policy: policy("").replace("[tools.write_file]\n", "[tools.write_file]\napproval = \"deny\"\n"),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    h.turn("write").await;
    assert_eq!(decisions(&h), ["deny (policy)"]);

    // Prompt with nobody to ask.
    let server = ScriptedServer::start(writes(1)).await;
    let mut h = Harness::new(&server, Setup::default().with_write_file_prompting()).await;
    h.turn("write").await;
    assert_eq!(decisions(&h), ["deny (unattended)"]);
    let result = &last_tool_results(&server.requests()[1].body)[0];
    assert!(
        result["content"].as_str().expect("content").contains("--yes"),
        "{result}"
    );

    // Prompt with --yes.
    let server = ScriptedServer::start(writes(1)).await;
    let setup = Setup {
        mode: PromptMode::Unattended { yes: true },
        ..Setup::default().with_write_file_prompting()
    };
    let mut h = Harness::new(&server, setup).await;
    h.turn("write").await;
    assert_eq!(decisions(&h), ["allow (--yes)"]);
    assert!(h.dir.path().join("ws/out0.txt").exists());
}

/// Counts the questions it is asked; always answers "always".
struct CountingPrompter(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl Prompter for CountingPrompter {
    async fn ask(&self, _: &ApprovalRequest) -> Answer {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Answer::Always
    }
}

#[tokio::test]
async fn always_is_remembered_across_runs_but_not_for_a_rebuilt_tool() {
    let data = tempfile::tempdir().expect("tempdir");
    let request = |hash: &str| ApprovalRequest {
        tool: "write_file".into(),
        tool_hash: hash.into(),
        source: "tools/write_file.wasm".into(),
        input: json!({}),
        grants: "fs /workspace (rw)".into(),
        grant: "fingerprint".into(),
        networked: false,
    };
    let prompter = Arc::new(CountingPrompter(0.into()));
    let first = Approvals::new(PromptMode::Ask(prompter.clone()), data.path());
    assert_eq!(
        first.decide(Approval::Prompt, &request("v1")).await,
        Decision::Allow("always")
    );
    assert_eq!(prompter.0.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A new process (new Approvals) remembers it for the same content hash…
    let second = Approvals::new(PromptMode::Unattended { yes: false }, data.path());
    assert_eq!(
        second.decide(Approval::Prompt, &request("v1")).await,
        Decision::Allow("always")
    );
    // …but a rebuilt tool (new hash) must be approved again.
    assert!(matches!(
        second.decide(Approval::Prompt, &request("v2")).await,
        Decision::Deny { .. }
    ));
    assert!(data.path().join("approvals.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_approval_for_one_origin_never_reaches_another_issue_15() {
    use super::super::egress::EchoServer;
    let a = EchoServer::start("127.0.0.1").await;
    let b = EchoServer::start("127.0.0.1").await;
    let fetch = |id: &str, url: String| AnthropicReply::new().tool_use(id, "fetch", json!({"url": url})).build();
    let server = ScriptedServer::start(vec![
        fetch("f1", format!("{}/hello", a.url())),
        // Covered (origin A), but redirected to B: the approval does not reach B.
        fetch("f2", format!("{}/redirect?to={}/echo", a.url(), b.url())),
        // Origin B: asked again, and denied.
        fetch("f3", format!("{}/hello", b.url())),
        AnthropicReply::new().text("done").build(),
    ])
    .await;
    let prompter = LinePrompter::new(Box::new(Cursor::new("s\nd\n".to_string())), Box::new(std::io::sink()));
    let setup = Setup {
        components: vec![super::super::hostile_wasm()],
        policy: format!(
            "version = 1\n[defaults]\napproval = \"allow\"\n[tools.fetch]\napproval = \"prompt\"\nnet = [\"{}\", \"{}\"]\n",
            a.url(),
            b.url()
        ),
        mode: PromptMode::Ask(Arc::new(prompter)),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    assert_eq!(h.turn("fetch things").await.stop, Stop::Answered);
    let decisions: Vec<String> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            AgentEvent::Approval { decision, .. } => Some(decision),
            _ => None,
        })
        .collect();
    assert_eq!(decisions, ["allow (session)", "allow (session)", "deny (user)"]);
    let results = h.tool_results();
    assert!(!results[0].2, "the approved call ran: {results:?}");
    assert!(results[1].2, "{results:?}");
    assert!(
        results[1].3.contains(&format!(
            "the user approved this call for {} only",
            a.url().trim_end_matches('/')
        )),
        "{}",
        results[1].3
    );
    assert_eq!(results[2].1, "denied");
    assert!(b.requests().is_empty(), "nothing reached B: {:?}", b.requests());
}
