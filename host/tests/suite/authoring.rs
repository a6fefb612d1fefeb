//! Writing tools, end to end: `boram tool new` → `tool build` → `tool test`
//! (examples in the real sandbox), a failed build keeping the last good
//! component, `tool build --watch` rebuilding on save; and the model's own
//! `create_tool` through a scripted model: a taken name refused, a compile
//! error returned, the fixed source built, loaded and called in the same
//! session with no capabilities.

use super::agent::{Harness, Setup, offered, policy};
use super::output_text;
use boram_host::agent::{PromptMode, Stop};
use scripted_llm::ScriptedServer;
use scripted_llm::anthropic::AnthropicReply;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn boram(args: &[&str], data_dir: &Path, tools_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boram"))
        .args(args)
        .arg("--tools-dir")
        .arg(tools_dir)
        .env("BORAM_DATA_DIR", data_dir)
        .env_remove("BORAM_POLICY")
        .output()
        .expect("run boram")
}

/// A tool crate scaffolded by `boram tool new NAME --dir <root>/crates`,
/// with a data dir and a tools dir beside it.
struct Scaffolded {
    root: tempfile::TempDir,
    data: std::path::PathBuf,
    crates: std::path::PathBuf,
    tools: std::path::PathBuf,
    crates_arg: String,
}

fn scaffold(name: &str) -> Scaffolded {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, crates, tools) = (
        root.path().join("data"),
        root.path().join("crates"),
        root.path().join("tools"),
    );
    let crates_arg = crates.display().to_string();
    let out = boram(&["tool", "new", name, "--dir", &crates_arg], &data, &tools);
    assert!(out.status.success(), "{}", output_text(&out));
    Scaffolded {
        root,
        data,
        crates,
        tools,
        crates_arg,
    }
}

#[test]
fn new_build_test_and_a_failed_build_keeps_the_last_good_component() {
    let Scaffolded {
        root: _root,
        data,
        crates,
        tools,
        crates_arg,
    } = scaffold("count_chars");
    assert!(crates.join("count_chars/examples.toml").exists());

    let out = boram(&["tool", "build", "count_chars", "--dir", &crates_arg], &data, &tools);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("count_chars.wasm"), "{}", output_text(&out));
    let wasm = tools.join("count_chars.wasm");
    let good = std::fs::read(&wasm).expect("component placed in the tools dir");

    // The scaffolded examples pass in the sandbox.
    let out = boram(&["tool", "test", "count_chars", "--dir", &crates_arg], &data, &tools);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("2 passed, 0 failed"),
        "{}",
        output_text(&out)
    );

    // A wrong expectation fails with what differed.
    let examples = crates.join("count_chars/examples.toml");
    let edited = std::fs::read_to_string(&examples)
        .expect("examples")
        .replace("length = 5", "length = 6");
    std::fs::write(&examples, edited).expect("write");
    let out = boram(&["tool", "test", "count_chars", "--dir", &crates_arg], &data, &tools);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out)
            .contains("FAIL  counts characters: expected output {\"length\":6}, got output {\"length\":5}"),
        "{}",
        output_text(&out)
    );

    // A compile error: exit 1, the error with its line, the old component untouched.
    let lib = crates.join("count_chars/src/lib.rs");
    let broken = std::fs::read_to_string(&lib)
        .expect("lib")
        .replace("input.text.chars().count()", "input.txt.chars().count()");
    std::fs::write(&lib, broken).expect("write");
    let out = boram(&["tool", "build", "count_chars", "--dir", &crates_arg], &data, &tools);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("no field `txt`") && output_text(&out).contains("src/lib.rs:"),
        "{}",
        output_text(&out)
    );
    assert_eq!(std::fs::read(&wasm).expect("still there"), good);
    // `tool test` notices the sources are newer than the component.
    let out = boram(&["tool", "test", "count_chars", "--dir", &crates_arg], &data, &tools);
    assert!(
        output_text(&out).contains("sources changed after"),
        "{}",
        output_text(&out)
    );

    // No such crate: a usage error that says what to do.
    let out = boram(&["tool", "build", "nope", "--dir", &crates_arg], &data, &tools);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        output_text(&out).contains("boram tool new nope"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn build_watch_rebuilds_on_save() {
    let Scaffolded {
        root,
        data,
        crates,
        tools,
        crates_arg: _,
    } = scaffold("watched");
    let log = root.path().join("watch.log");
    // Relative directories, as a user types them (issue 17: a save under a
    // relative --dir never triggered a rebuild).
    let mut child = Command::new(env!("CARGO_BIN_EXE_boram"))
        .args([
            "tool",
            "build",
            "watched",
            "--watch",
            "--dir",
            "crates",
            "--tools-dir",
            "tools",
        ])
        .current_dir(root.path())
        .env("BORAM_DATA_DIR", &data)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn watch");
    let wasm = tools.join("watched.wasm");
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(300);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("the first build", &|| log_text().contains("watching "));
    let first = std::fs::read(&wasm).expect("first build placed");

    let lib = crates.join("watched/src/lib.rs");
    let doubled = std::fs::read_to_string(&lib)
        .expect("lib")
        .replace("input.text.chars().count()", "input.text.chars().count() * 2");
    std::fs::write(&lib, &doubled).expect("save");
    wait_for("the rebuild", &|| std::fs::read(&wasm).is_ok_and(|b| b != first));
    // One save, one rebuild: the build's own reads of the sources are not saves.
    std::thread::sleep(Duration::from_secs(3));
    let rebuilds = || log_text().matches("change detected; rebuilding").count();
    assert_eq!(rebuilds(), 1, "{}", log_text());

    // Ctrl-C during a rebuild stops it, cargo included.
    std::fs::write(&lib, format!("{doubled}\n// touched\n")).expect("save again");
    wait_for("the second rebuild to start", &|| rebuilds() == 2);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "Ctrl-C did not stop the watch:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{}", log_text());
    let manifest = crates.join("watched/Cargo.toml").display().to_string();
    assert_eq!(
        processes_mentioning(&manifest),
        Vec::<String>::new(),
        "cargo still runs"
    );

    let out = boram(&["tool", "call", "watched", r#"{"text":"abc"}"#], &data, &tools);
    assert!(out.status.success(), "{}", output_text(&out));
    let output: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(output, json!({"length": 6}));
    assert!(log_text().contains("change detected; rebuilding"), "{}", log_text());
}

/// Command lines of running processes that contain `needle` (from /proc).
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

/// Does not compile: `txt` is not defined.
const BROKEN_SOURCE: &str = r#"use boram_tool_sdk::prelude::*;

/// Reverses the order of the words in a text.
#[derive(Deserialize, JsonSchema)]
struct Input {
    /// The text, e.g. "one two three".
    text: String,
}

#[derive(Serialize)]
struct Output {
    reversed: String,
}

fn reverse_words(input: Input) -> Result<Output, ToolError> {
    Ok(Output { reversed: txt.split_whitespace().rev().collect::<Vec<_>>().join(" ") })
}

boram_tool_sdk::export_tools!("reverse_words" => reverse_words);
"#;

/// The fix; it also reports what the sandbox lets it see, to prove it was
/// granted nothing.
const GOOD_SOURCE: &str = r#"use boram_tool_sdk::prelude::*;

/// Reverses the order of the words in a text.
#[derive(Deserialize, JsonSchema)]
struct Input {
    /// The text, e.g. "one two three".
    text: String,
}

#[derive(Serialize)]
struct Output {
    reversed: String,
    can_read_root: bool,
    env_vars: usize,
}

fn reverse_words(input: Input) -> Result<Output, ToolError> {
    Ok(Output {
        reversed: input.text.split_whitespace().rev().collect::<Vec<_>>().join(" "),
        can_read_root: std::fs::read_dir("/").is_ok(),
        env_vars: std::env::vars().count(),
    })
}

boram_tool_sdk::export_tools!("reverse_words" => reverse_words);
"#;

fn create(id: &str, name: &str, source: &str) -> scripted_llm::Reply {
    AnthropicReply::new()
        .tool_use(
            id,
            "create_tool",
            json!({"name": name, "description": "Reverses the order of words.", "source": source}),
        )
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_model_writes_a_tool_fixes_its_compile_error_and_calls_it() {
    let server = ScriptedServer::start(vec![
        create("toolu_1", "read_file", GOOD_SOURCE),
        create("toolu_2", "reverse_words", BROKEN_SOURCE),
        create("toolu_3", "reverse_words", GOOD_SOURCE),
        AnthropicReply::new()
            .tool_use("toolu_4", "reverse_words", json!({"text": "one two three"}))
            .build(),
        AnthropicReply::new().text("Done: three two one.").build(),
    ])
    .await;
    let setup = Setup {
        // The file tools are granted the workspace and `CARGO_PKG_NAME`-style
        // env is not: the created tool must inherit none of it.
        policy: policy("[tools.create_tool]\napproval = \"allow\"\n"),
        tool_factory: true,
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    let result = h
        .turn("Write a tool that reverses words, then use it on 'one two three'.")
        .await;
    assert_eq!(result.stop, Stop::Answered, "{result:?}");

    let results = h.tool_results();
    assert_eq!(results.len(), 4, "{results:?}");
    // Taking over a first-party tool's name (and its grants) is refused.
    assert_eq!(
        (results[0].1.as_str(), results[0].2),
        ("invalid_input", true),
        "{results:?}"
    );
    assert!(results[0].3.contains("already exists"), "{}", results[0].3);
    // The compile error comes back with rustc's message and location.
    assert_eq!((results[1].1.as_str(), results[1].2), ("failed", true), "{results:?}");
    assert!(
        results[1].3.contains("does not compile") && results[1].3.contains("cannot find value `txt`"),
        "{}",
        results[1].3
    );
    assert!(results[1].3.contains("src/lib.rs:"), "{}", results[1].3);
    // The fix is built and loaded, with nothing granted.
    assert_eq!((results[2].1.as_str(), results[2].2), ("ok", false), "{}", results[2].3);
    let created: Value = serde_json::from_str(&results[2].3).expect("json");
    assert_eq!(created["created"], "reverse_words");
    assert!(
        created["grants"]
            .as_str()
            .is_some_and(|g| g.contains("no capabilities")),
        "{created}"
    );
    // Called in the same session: it works, and sees no files and no environment.
    assert_eq!((results[3].1.as_str(), results[3].2), ("ok", false), "{}", results[3].3);
    let output: Value = serde_json::from_str(&results[3].3).expect("json");
    assert_eq!(
        output,
        json!({"reversed": "three two one", "can_read_root": false, "env_vars": 0})
    );

    // The model was offered the new tool from the request after it was created.
    let requests = server.requests();
    let offered = |i: usize| offered(&requests[i].body);
    assert!(!offered(2).is_empty() && !offered(2).contains(&"reverse_words".to_string()));
    assert!(offered(3).contains(&"reverse_words".to_string()), "{:?}", offered(3));
    assert!(offered(0).contains(&"create_tool".to_string()));

    // The crate is kept under the data directory; the component in the tools directory.
    let dir = h.dir.path();
    assert_eq!(
        std::fs::read_to_string(dir.join("created-tools/reverse_words/src/lib.rs")).expect("crate"),
        GOOD_SOURCE
    );
    assert!(dir.join("tools/reverse_words.wasm").exists());
    // Every attempt is audited; the load too, with its hash.
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).expect("audit");
    let events: Vec<Value> = audit.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let outcomes: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "tool_create")
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, ["invalid_input", "compile_error", "created"]);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "tool_loaded" && e["new_sha256"] == created["sha256"]),
        "{audit}"
    );
}

/// With no `[tools.create_tool]` table, creating a tool asks first even
/// when `[defaults]` allows everything; unattended, that is a denial.
#[tokio::test(flavor = "multi_thread")]
async fn create_tool_asks_first_unless_the_policy_says_otherwise() {
    let server = ScriptedServer::start(vec![
        create("toolu_1", "reverse_words", GOOD_SOURCE),
        AnthropicReply::new().text("I may not.").build(),
    ])
    .await;
    let setup = Setup {
        tool_factory: true,
        mode: PromptMode::Unattended { yes: false },
        ..Setup::default()
    };
    let mut h = Harness::new(&server, setup).await;
    h.turn("Write a tool.").await;
    let results = h.tool_results();
    assert_eq!(results[0].1, "denied", "{results:?}");
    assert!(!h.dir.path().join("created-tools/reverse_words").exists());
}

/// `tools/py_summarize` is Python, built by componentize-py (installed from
/// PyPI by its build script) against the same WIT: it loads unchanged and
/// runs under the same policy as a Rust tool — it reads a file only where
/// the policy grants a directory.
#[tokio::test(flavor = "multi_thread")]
async fn a_python_tool_runs_unchanged_under_the_same_policy() {
    let root = super::workspace_dir();
    let wasm = root.join("target/py/py_summarize.wasm");
    let built = Command::new("bash")
        .arg(root.join("tools/py_summarize/build.sh"))
        .arg(&wasm)
        .output()
        .expect("run build.sh");
    assert!(built.status.success(), "{}", output_text(&built));

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    std::fs::write(
        dir.path().join("ws/doc.txt"),
        "Rust is a systems language. Rust has ownership and borrowing. The weather was nice. \
         Ownership rules make Rust memory safe without a garbage collector. I had lunch.",
    )
    .expect("doc");
    let granted = "version = 1\n[defaults]\napproval = \"allow\"\n[tools.py_summarize]\n\
                   fs = [{ host = \"ws\", guest = \"/workspace\", access = \"ro\" }]\n";
    let host = super::host_with(std::slice::from_ref(&wasm), dir.path(), granted).await;
    let spec = host
        .registry()
        .get("py_summarize")
        .map(|(s, _)| s.clone())
        .expect("loaded");
    assert!(spec.description.starts_with("Summarise a text"), "{}", spec.description);

    let report = super::call(
        &host,
        "py_summarize",
        json!({"path": "/workspace/doc.txt", "sentences": 2}),
    )
    .await;
    assert_eq!(
        super::output(&report),
        json!({
            "summary": [
                "Rust has ownership and borrowing.",
                "Ownership rules make Rust memory safe without a garbage collector."
            ],
            "sentence_count": 5,
            "word_count": 27
        })
    );
    let report = super::call(
        &host,
        "py_summarize",
        json!({"text": "x", "path": "/workspace/doc.txt"}),
    )
    .await;
    assert_eq!(report.outcome, boram_host::runtime::Outcome::InvalidInput);

    // Without the grant the same component cannot see the file.
    let other = tempfile::tempdir().expect("tempdir");
    let bare = super::host_with(&[wasm], other.path(), "version = 1\n[defaults]\napproval = \"allow\"\n").await;
    let report = super::call(&bare, "py_summarize", json!({"path": "/workspace/doc.txt"})).await;
    assert_eq!(
        report.outcome,
        boram_host::runtime::Outcome::Failed,
        "{:?}",
        report.error
    );
    assert!(
        report
            .error
            .as_deref()
            .is_some_and(|e| e.contains("cannot read /workspace/doc.txt")),
        "{:?}",
        report.error
    );
}

/// The fenced block after `marker` in README.md (`lang` its language).
fn readme_block(marker: &str, lang: &str) -> String {
    let readme = std::fs::read_to_string(super::workspace_dir().join("README.md")).expect("README.md");
    let from = readme.find(marker).unwrap_or_else(|| panic!("`{marker}` in README.md"));
    let fence = format!("```{lang}\n");
    let start = from + readme[from..].find(&fence).expect("the block") + fence.len();
    let end = start + readme[start..].find("```").expect("its end");
    readme[start..end].to_string()
}

#[test]
fn the_readme_word_count_guide_passes_its_own_examples_issue_17() {
    let Scaffolded {
        root,
        data,
        crates,
        tools,
        crates_arg,
    } = scaffold("word_count");
    // Step 2's source, step 4's grant (its `../workspace` is this checkout's), step 5's examples.
    std::fs::write(
        crates.join("word_count/src/lib.rs"),
        readme_block("**2. Write the function.**", "rust"),
    )
    .expect("lib");
    let workspace = super::workspace_dir().join("workspace").display().to_string();
    let stanza = readme_block("**4. Grant it something.**", "toml").replace("../workspace", &workspace);
    let policy = root.path().join("policy.toml");
    std::fs::write(&policy, format!("version = 1\n{stanza}")).expect("policy");
    std::fs::write(
        crates.join("word_count/examples.toml"),
        readme_block("**5. Test it in the sandbox.**", "toml"),
    )
    .expect("examples");
    let policy_arg = policy.display().to_string();
    let out = boram(&["tool", "build", "word_count", "--dir", &crates_arg], &data, &tools);
    assert!(out.status.success(), "{}", output_text(&out));
    let test = || {
        boram(
            &[
                "tool",
                "test",
                "word_count",
                "--dir",
                &crates_arg,
                "--policy",
                &policy_arg,
            ],
            &data,
            &tools,
        )
    };
    let out = test();
    assert!(
        out.status.success(),
        "the guide's examples fail:\n{}",
        output_text(&out)
    );
    assert!(!output_text(&out).contains("sources changed"), "{}", output_text(&out));

    // Touch the sources: the warning; rebuild (same bytes): the warning is gone.
    std::thread::sleep(Duration::from_millis(20));
    let lib = crates.join("word_count/src/lib.rs");
    std::fs::write(&lib, std::fs::read(&lib).expect("lib")).expect("touch");
    assert!(output_text(&test()).contains("sources changed"));
    let out = boram(&["tool", "build", "word_count", "--dir", &crates_arg], &data, &tools);
    assert!(output_text(&out).contains("unchanged"), "{}", output_text(&out));
    let out = test();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        !output_text(&out).contains("sources changed"),
        "the warning stays: {}",
        output_text(&out)
    );
}
