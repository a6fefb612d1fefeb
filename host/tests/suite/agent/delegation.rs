//! Delegation with a scripted model: the sub-agent gets only its profile's
//! tools (a tool outside them is refused), its answer becomes the parent's
//! tool result, its cost rolls up into the parent's spend and its
//! transcript is linked; at the depth limit `delegate` is not offered.

use super::*;
use boram_host::agent::Stop;
use boram_host::agent::profiles::ProfileToml;
use boram_host::session::Record;
use scripted_llm::anthropic::AnthropicReply;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn reader_profiles() -> Profiles {
    let mut config = BTreeMap::new();
    config.insert(
        "reader".to_string(),
        ProfileToml {
            description: Some("Reads files.".into()),
            system_prompt: Some("You read files and report.".into()),
            tools: Some(vec!["read_file".into()]),
            max_rounds: Some(4),
            ..Default::default()
        },
    );
    Profiles::new(&config)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sub_agent_uses_only_its_tools_and_its_cost_rolls_up() {
    let server = ScriptedServer::start(vec![
        // The parent delegates.
        AnthropicReply::new()
            .tool_use(
                "toolu_1",
                "delegate",
                json!({"profile": "reader", "task": "Read /workspace/notes.txt and say when the meeting is."}),
            )
            .usage(1000, 50)
            .build(),
        // The sub-agent tries a tool outside its profile, then reads.
        AnthropicReply::new()
            .tool_use(
                "toolu_2",
                "write_file",
                json!({"path": "/workspace/x.txt", "content": "x"}),
            )
            .usage(400, 20)
            .build(),
        AnthropicReply::new()
            .tool_use("toolu_3", "read_file", json!({"path": "/workspace/notes.txt"}))
            .usage(500, 20)
            .build(),
        AnthropicReply::new().text("Thursday.").usage(600, 5).build(),
        // The parent answers with the sub-agent's result.
        AnthropicReply::new()
            .text("The meeting is on Thursday.")
            .usage(1200, 10)
            .build(),
    ])
    .await;
    let setup = Setup {
        profiles: Some(reader_profiles()),
        prices: boram_host::llm::PriceTable::default(),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    let result = h.turn("When is the meeting? Ask the reader.").await;
    assert_eq!(result.stop, Stop::Answered, "{result:?}");
    assert_eq!(result.text, "The meeting is on Thursday.");

    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    let parent_tools = offered(&requests[0].body);
    assert!(parent_tools.contains(&"delegate".to_string()) && parent_tools.contains(&"write_file".to_string()));
    // The sub-agent: its own prompt, only read_file (and delegate, one level down).
    assert_eq!(requests[1].body["system"][0]["text"], "You read files and report.");
    let mut sub_tools = offered(&requests[1].body);
    sub_tools.sort();
    assert_eq!(sub_tools, ["delegate", "read_file"]);
    // Its out-of-profile call was refused, not run.
    let refused = last_tool_results(&requests[2].body);
    assert_eq!(refused[0]["is_error"], true);
    assert!(
        refused[0]["content"]
            .as_str()
            .is_some_and(|c| c.contains("not available to this agent")),
        "{refused:?}"
    );
    assert!(!h.dir.path().join("ws/x.txt").exists());
    // The parent got the sub-agent's answer as the delegate result.
    let delegated = last_tool_results(&requests[4].body);
    let result: Value = serde_json::from_str(delegated[0]["content"].as_str().expect("content")).expect("json");
    assert_eq!(result["answer"], "Thursday.");
    assert_eq!(result["profile"], "reader");

    // Cost roll-up: the parent's spend is every call's, the sub-agent's included.
    let usage = std::fs::read_to_string(h.dir.path().join("usage.jsonl")).expect("usage");
    let total: f64 = usage
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["cost_usd"].as_f64())
        .sum();
    assert!(total > 0.0, "the test model has a price");
    assert!(
        (h.agent.spent_usd() - total).abs() < 1e-9,
        "{} vs {total}",
        h.agent.spent_usd()
    );
    assert!((result["cost_usd"].as_f64().expect("cost") - (total - parent_cost(&usage))).abs() < 1e-9);

    // The sub-agent's transcript is linked from the parent's.
    let sub_session = result["session"].as_str().expect("session");
    let parent = std::fs::read_to_string(
        h.dir
            .path()
            .join("sessions")
            .join(format!("{}.jsonl", h.agent.session().id())),
    )
    .expect("parent transcript");
    let link = parent
        .lines()
        .filter_map(|l| serde_json::from_str::<Record>(l).ok())
        .find_map(|r| match r {
            Record::Delegation { session, profile, .. } => Some((session, profile)),
            _ => None,
        })
        .expect("a delegation record");
    assert_eq!(link, (sub_session.to_string(), "reader".to_string()));
    assert!(h.dir.path().join(format!("sessions/{sub_session}.jsonl")).exists());
}

/// The parent's own calls (first and last lines of usage.jsonl belong to
/// the parent session).
fn parent_cost(usage: &str) -> f64 {
    let lines: Vec<Value> = usage.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let parent = lines[0]["session"].clone();
    lines
        .iter()
        .filter(|l| l["session"] == parent)
        .filter_map(|l| l["cost_usd"].as_f64())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn delegation_depth_is_limited() {
    let task = |id: &str| {
        AnthropicReply::new()
            .tool_use(
                id,
                "delegate",
                json!({"profile": "general", "task": "go one level deeper"}),
            )
            .build()
    };
    let server = ScriptedServer::start(vec![
        task("toolu_1"),                               // depth 0 delegates
        task("toolu_2"),                               // depth 1 delegates
        AnthropicReply::new().text("deepest").build(), // depth 2 answers
        AnthropicReply::new().text("middle").build(),  // depth 1 answers
        AnthropicReply::new().text("top").build(),     // depth 0 answers
    ])
    .await;
    let setup = Setup {
        profiles: Some(Profiles::default()),
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    let result = h.turn("delegate twice").await;
    assert_eq!(result.text, "top", "{result:?}");
    let requests = server.requests();
    assert!(offered(&requests[0].body).contains(&"delegate".to_string()));
    assert!(offered(&requests[1].body).contains(&"delegate".to_string()));
    assert!(
        !offered(&requests[2].body).contains(&"delegate".to_string()),
        "depth 2 must not delegate: {:?}",
        offered(&requests[2].body)
    );
}
