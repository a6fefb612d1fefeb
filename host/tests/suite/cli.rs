//! The `boram` binary end to end, as a user runs it.

use super::{FIRST_PARTY_TOOLS, workspace_dir};
use std::process::{Command, Output};

/// `boram ARGS` from the checkout, with its data directory at `data_dir`
/// and no policy, tools directory or config file from the environment.
pub(super) fn boram(args: &[&str], data_dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boram"))
        .args(args)
        .current_dir(workspace_dir())
        .env("BORAM_DATA_DIR", data_dir)
        .env_remove("BORAM_POLICY")
        .env_remove("BORAM_TOOLS_DIR")
        .env_remove("BORAM_CONFIG")
        .output()
        .expect("run boram")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(super) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn tool_list_shows_every_tool_with_its_grants() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = boram(&["tool", "list", "--policy", "policies/dev.toml"], data.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for tool in FIRST_PARTY_TOOLS {
        assert!(
            text.lines().any(|l| l.starts_with(tool)),
            "{tool} missing from:\n{text}"
        );
    }
    assert!(
        text.contains("allow; fs /workspace (ro)") && text.contains("prompt; fs /workspace (rw)"),
        "{text}"
    );
}

#[test]
fn tool_call_prints_the_result_and_json_on_request() {
    let data = tempfile::tempdir().expect("tempdir");
    let args = [
        "tool",
        "call",
        "read_file",
        r#"{"path":"/workspace/notes.txt"}"#,
        "--policy",
        "policies/dev.toml",
    ];
    let out = boram(&args, data.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = std::fs::read_to_string(workspace_dir().join("workspace/notes.txt")).expect("notes");
    let printed: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("stdout is the output JSON");
    assert_eq!(printed["content"], expected.as_str());

    let out = boram(&[&args[..], &["--json"]].concat(), data.path());
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON report");
    assert_eq!(report["outcome"], "ok");
    assert_eq!(report["output"]["content"], expected.as_str());
    assert!(report["duration_us"].as_u64().is_some() && report["memory_peak_bytes"].as_u64() > Some(0));

    let audit = std::fs::read_to_string(data.path().join("audit.jsonl")).expect("audit log");
    let events: Vec<String> = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["event"].to_string())
        .collect();
    assert_eq!(
        events,
        [
            r#""tool_call_started""#,
            r#""tool_call""#,
            r#""tool_call_started""#,
            r#""tool_call""#
        ],
        "an intent line and an outcome line per call"
    );
}

#[test]
fn tool_call_failures_set_the_exit_code() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = boram(
        &[
            "tool",
            "call",
            "read_file",
            r#"{"path":"/etc/passwd"}"#,
            "--policy",
            "policies/dev.toml",
        ],
        data.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("No such file"), "{}", stderr(&out));
    let out = boram(&["tool", "call", "read_file", "not json"], data.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("the input is not JSON"));
    let out = boram(&["tool", "call", "raed_file", "{}"], data.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("did you mean `read_file`"));
}

#[test]
fn tool_inspect_shows_specs_imports_size_and_hash() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = boram(&["tool", "inspect", "tools/grep.wasm", "--json"], data.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let bytes = std::fs::read(workspace_dir().join("tools/grep.wasm")).expect("wasm");
    assert_eq!(info["size_bytes"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(info["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(info["tools"][0]["name"], "grep");
    assert_eq!(
        info["tools"][0]["input_schema"]["required"],
        serde_json::json!(["pattern", "path"])
    );
    let imports: Vec<&str> = info["imports"]
        .as_array()
        .expect("imports")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(imports.iter().any(|i| i.starts_with("boram:tool/")), "{imports:?}");
    assert!(imports.iter().any(|i| i.starts_with("wasi:filesystem/")), "{imports:?}");
    assert!(!imports.iter().any(|i| i.starts_with("wasi:sockets/")), "{imports:?}");

    let text = stdout(&boram(&["tool", "inspect", "tools/grep.wasm"], data.path()));
    assert!(
        text.contains("sha256:") && text.contains("input schema:") && text.contains("\"pattern\""),
        "{text}"
    );
}

#[test]
fn policy_check_and_explain() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = boram(&["policy", "check", "policies/dev.toml"], data.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("policies/dev.toml: ok"));

    let out = boram(
        &["policy", "check", "tests/golden/policy/unknown_key.toml"],
        data.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown key `netwrk` in [tools.http_get] (did you mean `net`?)"),
        "{}",
        stderr(&out)
    );

    let out = boram(
        &["policy", "explain", "read_file", "--policy", "policies/dev.toml"],
        data.path(),
    );
    let text = stdout(&out);
    assert!(
        text.contains("may read (not change)") && text.contains("/workspace"),
        "{text}"
    );
    let out = boram(&["policy", "explain", "grep"], data.path());
    assert!(
        stdout(&out).contains("is not listed in the built-in deny-all policy"),
        "{}",
        stdout(&out)
    );
}

/// Scaffolds a tool with `boram tool new`, builds it for wasm32-wasip2 (the
/// guest target dir is shared, so the SDK's dependencies are already built)
/// and calls it in the sandbox: the template is a working tool.
/// Scaffolding and its usage errors; building and testing the crate is in
/// `authoring.rs`.
#[test]
fn tool_new_scaffolds_a_crate_and_refuses_bad_names() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().display().to_string();
    let out = boram(&["tool", "new", "greet_user", "--dir", &dir_arg], data.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("[tools.greet_user]"), "{}", stdout(&out));
    assert!(stdout(&out).contains("boram tool build greet_user"), "{}", stdout(&out));
    for file in ["Cargo.toml", "Cargo.lock", "src/lib.rs", "examples.toml"] {
        assert!(dir.path().join("greet_user").join(file).exists(), "{file}");
    }
    let source = std::fs::read_to_string(dir.path().join("greet_user/src/lib.rs")).expect("lib");
    assert!(source.contains("what `greet_user` does"), "{source}");
    assert_eq!(
        boram(&["tool", "new", "greet_user", "--dir", &dir_arg], data.path())
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        boram(&["tool", "new", "Bad-Name", "--dir", &dir_arg], data.path())
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn tool_new_joins_a_tools_workspace() {
    let data = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"a\", \"b\"]\n",
    )
    .expect("ws");
    let out = boram(
        &["tool", "new", "c_tool", "--dir", &dir.path().display().to_string()],
        data.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let ws = std::fs::read_to_string(dir.path().join("Cargo.toml")).expect("ws");
    assert!(ws.contains("members = [\"a\", \"b\", \"c_tool\"]"), "{ws}");
    let manifest = std::fs::read_to_string(dir.path().join("c_tool/Cargo.toml")).expect("manifest");
    assert!(manifest.contains("boram-tool-sdk = { workspace = true }"), "{manifest}");
}

/// The shipped multi-user policy checks out, `${workspace}` standing in
/// for each user's directory.
#[test]
fn policy_check_accepts_the_multi_user_example() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = boram(&["policy", "check", "policies/prod.example.toml"], data.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("policies/prod.example.toml: ok"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("${workspace} is each user's workspace"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes_issue_17() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = boram(&["-vv", "tool", "list", "--policy", "policies/dev.toml"], data.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(log.contains("INFO") || log.contains("DEBUG"), "some log lines: {log}");
    assert!(!log.contains('\u{1b}'), "ANSI codes in a piped log: {log:?}");
}

#[test]
fn policy_check_loads_no_component_and_checks_names_from_the_cache_issue_17() {
    let data = tempfile::tempdir().expect("tempdir");
    let policy = data.path().join("typo.toml");
    std::fs::write(&policy, "version = 1\n[tools.read_fiel]\napproval = \"allow\"\n").expect("policy");
    let policy_arg = policy.display().to_string();
    let out = boram(&["policy", "check", &policy_arg], data.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("tool names not checked"), "{}", stderr(&out));
    let compiled = std::fs::read_dir(data.path().join("cache"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(compiled, 0, "policy check compiled components");

    // Once the tools were loaded here, the same check catches the typo.
    assert!(boram(&["tool", "list"], data.path()).status.success());
    let out = boram(&["policy", "check", &policy_arg], data.path());
    assert!(
        stderr(&out).contains("[tools.read_fiel] names no loaded tool (did you mean `read_file`?)"),
        "{}",
        stderr(&out)
    );
}
