//! Each first-party tool: the happy path and bad input, run in the real
//! sandbox under a policy.

use super::{FIRST_PARTY_TOOLS, call, host_with, output, tools_dir};
use boram_host::registry::ToolHost;
use boram_host::runtime::Outcome;
use serde_json::json;

const POLICY: &str = r#"
version = 1
[defaults]
approval = "allow"
[tools.read_file]
fs = [{ host = "ws", guest = "/workspace", access = "ro" }]
[tools.list_dir]
fs = [{ host = "ws", guest = "/workspace", access = "ro" }]
[tools.grep]
fs = [{ host = "ws", guest = "/workspace", access = "ro" }]
[tools.text_stats]
fs = [{ host = "ws", guest = "/workspace", access = "ro" }]
[tools.json_query]
fs = [{ host = "ws", guest = "/workspace", access = "ro" }]
[tools.write_file]
fs = [{ host = "out", guest = "/out", access = "rw" }]
"#;

/// A workspace with a few files, and a host loading every first-party tool.
async fn setup() -> (tempfile::TempDir, ToolHost) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("src/nested")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("out")).expect("mkdir");
    std::fs::write(ws.join("notes.txt"), "the cat sat on the mat\nthe end\n").expect("write");
    std::fs::write(
        ws.join("src/main.rs"),
        "fn main() {\n    // TODO: greet\n    println!(\"hi\");\n}\n",
    )
    .expect("write");
    std::fs::write(ws.join("src/nested/lib.rs"), "pub fn todo() {} // todo later\n").expect("write");
    std::fs::write(
        ws.join("data.json"),
        r#"{"items":[{"name":"a","n":1},{"name":"b","n":2}]}"#,
    )
    .expect("write");
    std::fs::write(ws.join("blob.bin"), [0u8, 159, 146, 150]).expect("write");
    let components: Vec<_> = FIRST_PARTY_TOOLS
        .iter()
        .map(|n| tools_dir().join(format!("{n}.wasm")))
        .collect();
    let host = host_with(&components, dir.path(), POLICY).await;
    (dir, host)
}

#[tokio::test]
async fn read_file_reads_and_windows_text() {
    let (_dir, host) = setup().await;
    let out = output(&call(&host, "read_file", json!({"path": "/workspace/notes.txt"})).await);
    assert_eq!(out["content"], "the cat sat on the mat\nthe end\n");
    assert_eq!(out["truncated"], false);
    let out = output(
        &call(
            &host,
            "read_file",
            json!({"path": "/workspace/notes.txt", "offset": 4, "max_bytes": 3}),
        )
        .await,
    );
    assert_eq!(out["content"], "cat");
    assert_eq!(out["truncated"], true);
}

#[tokio::test]
async fn read_file_rejects_bad_input_with_the_expected_fields() {
    let (_dir, host) = setup().await;
    let report = call(&host, "read_file", json!({"file": "/workspace/notes.txt"})).await;
    assert_eq!(report.outcome, Outcome::InvalidInput);
    let error = report.error.expect("error");
    assert!(
        error.contains("'file' was unexpected") && error.contains("path (string, required)"),
        "{error}"
    );
    let report = call(
        &host,
        "read_file",
        json!({"path": "/workspace/notes.txt", "max_bytes": 0}),
    )
    .await;
    assert_eq!(report.outcome, Outcome::InvalidInput);
    let report = call(&host, "read_file", json!({"path": "/workspace/blob.bin"})).await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.error.expect("error").contains("not UTF-8"));
}

#[tokio::test]
async fn write_file_writes_appends_and_refuses_to_clobber() {
    let (dir, host) = setup().await;
    let out = output(
        &call(
            &host,
            "write_file",
            json!({"path": "/out/a/b.txt", "content": "one", "create_dirs": true}),
        )
        .await,
    );
    assert_eq!(out["bytes_written"], 3);
    output(
        &call(
            &host,
            "write_file",
            json!({"path": "/out/a/b.txt", "content": "+two", "mode": "append"}),
        )
        .await,
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out/a/b.txt")).expect("read"),
        "one+two"
    );
    let report = call(
        &host,
        "write_file",
        json!({"path": "/out/a/b.txt", "content": "x", "mode": "create_new"}),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    let report = call(
        &host,
        "write_file",
        json!({"path": "/out/x.txt", "content": "x", "mode": "replace"}),
    )
    .await;
    assert_eq!(report.outcome, Outcome::InvalidInput);
    let error = report.error.expect("error");
    assert!(error.contains(r#""replace" is not one of"#), "{error}");
}

#[tokio::test]
async fn list_dir_lists_sorted_and_recursive() {
    let (_dir, host) = setup().await;
    let out = output(&call(&host, "list_dir", json!({"path": "/workspace"})).await);
    let paths: Vec<&str> = out["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        [
            "/workspace/blob.bin",
            "/workspace/data.json",
            "/workspace/notes.txt",
            "/workspace/src"
        ]
    );
    let out = output(
        &call(
            &host,
            "list_dir",
            json!({"path": "/workspace", "recursive": true, "max_entries": 6}),
        )
        .await,
    );
    assert_eq!(out["entries"].as_array().expect("entries").len(), 6);
    assert_eq!(out["truncated"], true);
    let report = call(&host, "list_dir", json!({"path": "/workspace", "recursive": "yes"})).await;
    assert_eq!(report.outcome, Outcome::InvalidInput);
}

#[tokio::test]
async fn text_stats_counts_and_ranks_words() {
    let (_dir, host) = setup().await;
    let out = output(&call(&host, "text_stats", json!({"path": "/workspace/notes.txt", "top": 2})).await);
    assert_eq!((out["lines"].as_u64(), out["words"].as_u64()), (Some(2), Some(8)));
    assert_eq!(
        out["top_words"],
        json!([{"word": "the", "count": 3}, {"word": "cat", "count": 1}])
    );
    let out = output(&call(&host, "text_stats", json!({"text": "Ünïcode ünïcode"})).await);
    assert_eq!((out["chars"].as_u64(), out["bytes"].as_u64()), (Some(15), Some(19)));
    let report = call(
        &host,
        "text_stats",
        json!({"text": "a", "path": "/workspace/notes.txt"}),
    )
    .await;
    assert_eq!(report.outcome, Outcome::InvalidInput);
    assert!(report.error.expect("error").contains("exactly one of"));
}

#[tokio::test]
async fn json_query_selects_with_pointers_and_paths() {
    let (_dir, host) = setup().await;
    let out = output(
        &call(
            &host,
            "json_query",
            json!({"path": "/workspace/data.json", "query": "/items/1/name"}),
        )
        .await,
    );
    assert_eq!(out["matches"], json!(["b"]));
    let out = output(
        &call(
            &host,
            "json_query",
            json!({"path": "/workspace/data.json", "query": "items[*].n"}),
        )
        .await,
    );
    assert_eq!(out["matches"], json!([1, 2]));
    let out = output(
        &call(
            &host,
            "json_query",
            json!({"document": {"a": {"b": [10, 20]}}, "query": "a.b[1]"}),
        )
        .await,
    );
    assert_eq!(out["matches"], json!([20]));
    let report = call(
        &host,
        "json_query",
        json!({"document": {"a": {"b": 1}}, "query": "/a/c"}),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Failed);
    assert!(report.error.expect("error").contains("keys there: b"));
    let report = call(&host, "json_query", json!({"document": {}, "query": "a[x]"})).await;
    assert_eq!(report.outcome, Outcome::InvalidInput);
}

#[tokio::test]
async fn grep_finds_lines_and_rejects_bad_regex() {
    let (_dir, host) = setup().await;
    let out = output(
        &call(
            &host,
            "grep",
            json!({"pattern": "todo", "path": "/workspace", "ignore_case": true, "suffix": ".rs"}),
        )
        .await,
    );
    let hits: Vec<(String, u64)> = out["matches"]
        .as_array()
        .expect("matches")
        .iter()
        .map(|m| {
            (
                m["path"].as_str().expect("path").to_string(),
                m["line"].as_u64().expect("line"),
            )
        })
        .collect();
    assert_eq!(
        hits,
        [
            ("/workspace/src/main.rs".to_string(), 2),
            ("/workspace/src/nested/lib.rs".to_string(), 1)
        ]
    );
    let out = output(&call(&host, "grep", json!({"pattern": "\\x00", "path": "/workspace"})).await);
    assert_eq!(out["matches"], json!([]), "binary files are skipped");
    let report = call(&host, "grep", json!({"pattern": "(unclosed", "path": "/workspace"})).await;
    assert_eq!(report.outcome, Outcome::InvalidInput);
    assert!(report.error.expect("error").contains("not a valid regex"));
}

#[tokio::test]
async fn an_unknown_tool_name_suggests_the_closest() {
    let (_dir, host) = setup().await;
    let err = host.call("raed_file", "{}", None).await.expect_err("no such tool");
    assert_eq!(err.to_string(), "no tool named `raed_file` (did you mean `read_file`?)");
}

/// Every keyword path in `schema` that clients reject: a `type` array (a
/// nullable type: use `anyOf` with `{"type": "null"}`) or a `format` JSON
/// Schema does not define (`uint32`, `double`, …).
fn unportable(schema: &serde_json::Value, at: &str, found: &mut Vec<String>) {
    match schema {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let path = format!("{at}/{key}");
                if key == "type" && value.is_array() {
                    found.push(format!("{path} = {value}"));
                }
                if key == "format"
                    && value.as_str().is_some_and(|f| {
                        ![
                            "date-time",
                            "date",
                            "uri",
                            "email",
                            "uuid",
                            "regex",
                            "ipv4",
                            "ipv6",
                            "hostname",
                        ]
                        .contains(&f)
                    })
                {
                    found.push(format!("{path} = {value}"));
                }
                // A property may be called `type` or `format`: only schemas are checked.
                if key == "properties" || key == "$defs" {
                    if let serde_json::Value::Object(props) = value {
                        for (name, schema) in props {
                            unportable(schema, &format!("{path}/{name}"), found);
                        }
                    }
                } else {
                    unportable(value, &path, found);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (n, item) in items.iter().enumerate() {
                unportable(item, &format!("{at}/{n}"), found);
            }
        }
        _ => {}
    }
}

/// Input schemas every client takes (issue 18: the MCP Inspector's strict
/// check warned 14 times): no nullable `type` arrays, no Rust-only formats,
/// in every first-party tool; an optional field
/// still accepts `null`.
#[tokio::test]
async fn every_input_schema_is_portable_and_optional_fields_take_null_issue_18() {
    let (_dir, host) = setup().await;
    let mut found = Vec::new();
    let mut checked = 0;
    for (spec, _) in host.registry().tools() {
        unportable(&spec.input_schema, &spec.name, &mut found);
        checked += 1;
    }
    assert_eq!(checked, FIRST_PARTY_TOOLS.len());
    assert!(found.is_empty(), "unportable schema keywords:\n{}", found.join("\n"));
    // read_file's optional `max_bytes` takes null as well as a number.
    let report = call(
        &host,
        "read_file",
        json!({"path": "/workspace/notes.txt", "max_bytes": null}),
    )
    .await;
    assert_eq!(report.outcome, Outcome::Ok, "{report:?}");
}
