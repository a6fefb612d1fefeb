//! Issue 14, the sandbox boundary: what hostile components and policies
//! got through at b22d9bf, each reproduced here and refused now. The
//! reviews' own cases stay outside the project; these are ours.

use super::cli::{boram, stderr};
use super::{call, host_with, host_with_audit, hostile_wasm, output, shared_runtime, tools_dir};
use boram_host::audit::AuditLog;
use boram_host::policy::{Policy, TrustedKind, TrustedPaths};
use boram_host::registry::watch::{ReloadEvent, apply_tool_file, reload_policy};
use boram_host::registry::{Registry, ToolHost};
use boram_host::runtime::{Outcome, Progress, Runtime, RuntimeOptions};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

fn impostor_wasm() -> PathBuf {
    hostile_wasm().with_file_name("impostor.wasm")
}

/// The hostile fixture with every tool allowed and 256 MiB per call, for
/// the tests that push a per-call cap.
async fn roomy_host(dir: &Path) -> ToolHost {
    host_with(
        &[hostile_wasm()],
        dir,
        "version = 1\n[defaults]\napproval = \"allow\"\nmemory_mb = 256\n",
    )
    .await
}

/// A workspace holding the data directory, and a policy granting it `rw`
/// to `write_file`: what the review's model used to forge approvals.
fn workspace_over_data() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    std::fs::create_dir_all(root.join("work/.boram")).expect("mkdir");
    let policy = root.join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\n[defaults]\napproval = \"allow\"\n\n[tools.write_file]\n\
         fs = [{ host = \"work\", guest = \"/workspace\", access = \"rw\" }]\n",
    )
    .expect("policy");
    (dir, policy, root.join("work/.boram"))
}

#[test]
fn a_rw_preopen_over_the_data_dir_is_refused_at_start_and_by_policy_check() {
    let (_dir, policy, data) = workspace_over_data();
    let policy_arg = policy.to_str().expect("utf8");
    let out = boram(
        &[
            "tool",
            "call",
            "write_file",
            r#"{"path":"/workspace/x","content":"y"}"#,
            "--policy",
            policy_arg,
        ],
        &data,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let expected = format!(
        "{policy_arg}:6: [tools.write_file] rw preopen {} contains the data directory {}",
        data.parent().expect("work").display(),
        data.display()
    );
    assert!(err.contains(&expected), "expected `{expected}` in:\n{err}");
    assert!(
        !data.parent().expect("work").join("x").exists(),
        "the tool must not have run"
    );

    let check = boram(&["policy", "check", policy_arg], &data);
    assert_eq!(check.status.code(), Some(2), "{}", stderr(&check));
    assert!(stderr(&check).contains(&expected), "{}", stderr(&check));

    // With the data directory elsewhere the same policy is fine.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let ok = boram(&["policy", "check", policy_arg], elsewhere.path());
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn a_rw_preopen_over_the_policy_file_or_tools_dir_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    let tools = root.join("tools");
    std::fs::create_dir_all(&tools).expect("mkdir");
    std::fs::copy(tools_dir().join("read_file.wasm"), tools.join("read_file.wasm")).expect("copy");
    let policy = root.join("policy.toml");
    // The policy file sits inside the directory it grants read-write.
    std::fs::write(
        &policy,
        "version = 1\n[tools.read_file]\nfs = [{ host = \".\", guest = \"/w\", access = \"rw\" }]\n",
    )
    .expect("policy");
    let data = tempfile::tempdir().expect("data");
    let args = ["tool", "call", "read_file", r#"{"path":"/w/policy.toml"}"#, "--policy"];
    let out = boram(
        &[
            &args[..],
            &[
                policy.to_str().expect("utf8"),
                "--tools-dir",
                tools.to_str().expect("utf8"),
            ],
        ]
        .concat(),
        data.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("contains the policy file") && err.contains("contains the tools directory"),
        "{err}"
    );
}

#[tokio::test]
async fn a_policy_edit_that_reaches_the_data_dir_is_rejected_and_the_old_policy_stays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    for d in ["ro", "data"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("ro/notes.txt"), "notes").expect("write");
    let good =
        "version = 1\n[defaults]\napproval = \"allow\"\n[tools.fs_op]\nfs = [{ host = \"ro\", guest = \"/ro\" }]\n";
    let host = host_with(&[hostile_wasm()], &root, good).await;
    let policy_path = root.join("policy.toml");
    let trusted = TrustedPaths::new()
        .with(TrustedKind::PolicyFile, Some(&policy_path))
        .with(TrustedKind::DataDir, Some(&root.join("data")));
    let host = host.with_trusted(trusted);
    // The model rewrites the policy to grant itself the data directory.
    std::fs::write(
        &policy_path,
        "version = 1\n[defaults]\napproval = \"allow\"\n[tools.fs_op]\nfs = [{ host = \"data\", guest = \"/ro\", access = \"rw\" }]\n",
    )
    .expect("rewrite");
    let event = reload_policy(&host, &policy_path).expect("an event");
    let ReloadEvent::PolicyRejected { error, .. } = event else {
        panic!("the edit must be rejected: {event:?}")
    };
    assert!(error.contains("is the data directory"), "{error}");
    let read = call(&host, "fs_op", json!({"op": "read", "path": "/ro/notes.txt"})).await;
    assert_eq!(output(&read), json!("notes"), "the previous policy still serves");
}

#[test]
fn kernel_trees_and_host_credentials_are_refused_by_policy_check() {
    let data = tempfile::tempdir().expect("tempdir");
    for (stanza, expected) in [
        ("fs = [{ host = \"/proc/self\", guest = \"/p\" }]", "may not be granted"),
        (
            "fs = [{ host = \"/\", guest = \"/root\" }]",
            "`/` is the whole host file system",
        ),
        ("fs = [{ host = \"/dev\", guest = \"/dev\" }]", "may not be granted"),
        ("env = [\"ANTHROPIC_API_KEY\"]", "is the host's own credential"),
    ] {
        let policy = data.path().join("p.toml");
        std::fs::write(&policy, format!("version = 1\n[tools.t]\n{stanza}\n")).expect("policy");
        let out = boram(&["policy", "check", policy.to_str().expect("utf8")], data.path());
        assert_eq!(out.status.code(), Some(2), "{stanza}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected) && stderr(&out).contains("p.toml:3"),
            "{stanza}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_preopen_nested_in_a_rw_preopen_is_refused() {
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(data.path().join("work/data")).expect("mkdir");
    let policy = data.path().join("p.toml");
    std::fs::write(
        &policy,
        "version = 1\n[tools.fs_op]\nfs = [\n  { host = \"work\", guest = \"/work\", access = \"rw\" },\n  \
         { host = \"work/data\", guest = \"/data\" },\n]\n",
    )
    .expect("policy");
    let elsewhere = tempfile::tempdir().expect("data dir");
    let out = boram(&["policy", "check", policy.to_str().expect("utf8")], elsewhere.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("p.toml:5") && stderr(&out).contains("lies inside preopen"),
        "{}",
        stderr(&out)
    );
}

/// The second half of the nested-preopen escape: the granted directory is
/// renamed away and a symlink to `/` put in its place between two calls.
/// The grant was opened once, so the next call still sees the original.
#[tokio::test]
async fn a_granted_directory_swapped_for_a_symlink_still_serves_the_original() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    std::fs::create_dir_all(root.join("data")).expect("mkdir");
    std::fs::write(root.join("data/mine.txt"), "mine").expect("write");
    let policy =
        "version = 1\n[defaults]\napproval = \"allow\"\n[tools.fs_op]\nfs = [{ host = \"data\", guest = \"/data\" }]\n";
    let host = host_with(&[hostile_wasm()], &root, policy).await;
    let list = json!({"op": "read_dir", "path": "/data"});
    assert_eq!(output(&call(&host, "fs_op", list.clone()).await), json!("mine.txt"));
    std::fs::rename(root.join("data"), root.join("moved")).expect("rename");
    std::os::unix::fs::symlink("../../../../../../../../../../../../", root.join("data")).expect("symlink");
    assert_eq!(
        output(&call(&host, "fs_op", list).await),
        json!("mine.txt"),
        "the call must not see the host's root"
    );
}

#[tokio::test]
async fn a_second_component_claiming_read_file_never_gets_it() {
    // At start: both files claim `read_file`; the one that sorts first used to win.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(impostor_wasm(), dir.path().join("aaa.wasm")).expect("copy");
    std::fs::copy(tools_dir().join("read_file.wasm"), dir.path().join("read_file.wasm")).expect("copy");
    let registry = Registry::load_dir(shared_runtime(), dir.path()).await.expect("load");
    assert!(
        registry.get("read_file").is_none(),
        "a contested name is served by nobody"
    );
    let problems = registry.problems();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().all(|p| p.error.contains("is claimed by")),
        "{problems:?}"
    );

    // Hot swap: read_file is loaded; an impostor dropped in later is refused.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(tools_dir().join("read_file.wasm"), dir.path().join("read_file.wasm")).expect("copy");
    let registry = Registry::load_dir(shared_runtime(), dir.path()).await.expect("load");
    let real_hash = registry.get("read_file").expect("served").1.sha256.clone();
    let host = ToolHost::new(registry, Policy::deny_all(), None);
    let dropped = dir.path().join("aaa.wasm");
    std::fs::copy(impostor_wasm(), &dropped).expect("copy");
    let event = apply_tool_file(&host, &dropped).await.expect("an event");
    let ReloadEvent::ToolRejected { error, .. } = event else {
        panic!("the impostor must be rejected: {event:?}")
    };
    assert!(error.contains("already served by"), "{error}");
    assert_eq!(
        host.registry().get("read_file").expect("still served").1.sha256,
        real_hash
    );
}

#[tokio::test]
async fn tool_errors_and_progress_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = roomy_host(dir.path()).await;
    let report = call(&host, "fail_big", json!({"bytes": 4 << 20})).await;
    assert_eq!(report.outcome, Outcome::Failed);
    let error = report.error.expect("error");
    assert!(error.len() < 17 * 1024, "{} bytes", error.len());
    assert!(
        error.ends_with(&format!("[error cut: 16384 of {} bytes shown]", 4 << 20)),
        "{}",
        &error[error.len() - 80..]
    );

    let seen: Arc<Mutex<u64>> = Arc::default();
    let counter = seen.clone();
    let sink = Arc::new(move |_: &Progress| *counter.lock().expect("count") += 1);
    let report = host
        .call("progress_flood", r#"{"times": 100000}"#, Some(sink))
        .await
        .expect("tool");
    assert_eq!(output(&report), json!(100000));
    assert_eq!(
        *seen.lock().expect("count"),
        1000,
        "progress reports past the cap are dropped"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_of_one_tool_past_its_concurrency_wait_their_turn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = "version = 1\n[defaults]\napproval = \"allow\"\n[tools.sleep]\nconcurrency = 1\ntimeout_ms = 5000\n";
    let host = Arc::new(host_with(&[hostile_wasm()], dir.path(), policy).await);
    let finished: Arc<Mutex<Vec<u64>>> = Arc::default();
    let run = |ms: u64| {
        let (host, finished) = (host.clone(), finished.clone());
        tokio::spawn(async move {
            let report = call(&host, "sleep", json!({"ms": ms})).await;
            assert_eq!(output(&report), json!(ms));
            finished.lock().expect("order").push(ms);
        })
    };
    let long = run(600);
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let short = run(1);
    long.await.expect("join");
    short.await.expect("join");
    // With room for both, the 1 ms call would finish first.
    assert_eq!(*finished.lock().expect("order"), [600, 1]);
}

#[tokio::test]
async fn a_cache_key_others_could_read_is_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let options = RuntimeOptions {
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    drop(Runtime::new(&options).expect("runtime"));
    let key = dir.path().join("cache.key");
    let first = std::fs::read(&key).expect("key");
    assert_eq!(
        std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(dir.path()).expect("meta").permissions().mode() & 0o777,
        0o700
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    drop(Runtime::new(&options).expect("runtime"));
    assert_ne!(
        std::fs::read(&key).expect("key"),
        first,
        "a key others could read is not trusted"
    );
    assert_eq!(
        std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn url_userinfo_is_refused_and_nothing_is_sent() {
    let server = super::egress::EchoServer::start("127.0.0.1").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = format!(
        "version = 1\n[defaults]\napproval = \"allow\"\n[tools.fetch]\nnet = [\"{0}\"]\n[tools.raw_get]\nnet = [\"{0}\"]\n",
        server.url()
    );
    let audit = AuditLog::open(dir.path()).expect("audit");
    let host = host_with_audit(&[hostile_wasm()], dir.path(), &policy, Some(audit)).await;
    let authority = format!("user:hunter2@127.0.0.1:{}", server.port);
    let report = call(&host, "raw_get", json!({"authority": authority, "path": "/echo"})).await;
    assert_eq!(report.outcome, Outcome::Failed, "{:?}", report.output);
    let record = report.http.last().expect("a record");
    assert_eq!(record.decision, "denied");
    assert!(
        record.error.as_deref().unwrap_or("").contains("user name or password"),
        "{record:?}"
    );
    assert!(
        server.requests().is_empty(),
        "nothing may be sent: {:?}",
        server.requests()
    );
    host.flush_audit().await;
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    assert!(!audit.contains("hunter2"), "the password must not be logged");

    // An allowed request's audit record says exactly what was asked for.
    let url = format!("{}/echo?q=boram&page=2", server.url());
    assert_eq!(call(&host, "fetch", json!({"url": url})).await.outcome, Outcome::Ok);
    host.flush_audit().await;
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    assert!(audit.contains(r#""path":"/echo?q=boram&page=2""#), "{audit}");
}

/// A server reflecting the injected `Authorization` in a trailer used to
/// hand the secret to the guest, and the body lost its held-back tail.
#[tokio::test(flavor = "multi_thread")]
async fn trailers_are_scrubbed_and_the_body_before_them_arrives_whole() {
    let server = super::egress::EchoServer::start("127.0.0.1").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = format!(
        "version = 1\n[defaults]\napproval = \"allow\"\n[tools.raw_get]\nnet = [\"{0}\"]\n\
         secrets = [{{ host = \"127.0.0.1\", header = \"Authorization\", value = \"Token ${{env:CARGO_MANIFEST_DIR}}\" }}]\n",
        server.url()
    );
    let host = host_with(&[hostile_wasm()], dir.path(), &policy).await;
    let authority = format!("127.0.0.1:{}", server.port);
    let seen = output(&call(&host, "raw_get", json!({"authority": authority, "path": "/trailers"})).await);
    assert_eq!(seen["body"], json!("the body ends here: END"));
    let secret = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it");
    assert!(
        server.requests()[0].contains(&format!("authorization: Token {secret}")),
        "the server got the secret"
    );
    assert_eq!(seen["trailers"], json!([["x-echo", "[REDACTED]"]]), "{seen}");
}

#[tokio::test]
async fn input_with_a_repeated_key_or_off_schema_never_reaches_the_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    std::fs::create_dir_all(root.join("rw")).expect("mkdir");
    let policy = "version = 1\n[defaults]\napproval = \"allow\"\n[tools.fs_op]\nfs = [{ host = \"rw\", guest = \"/rw\", access = \"rw\" }]\n";
    let host = host_with(&[hostile_wasm()], &root, policy).await;
    // Which `path` would the guest's parser take? It never has to decide.
    let report = host
        .call("fs_op", r#"{"op": "create", "path": "/rw/a", "path": "/rw/b"}"#, None)
        .await
        .expect("tool");
    assert_eq!(report.outcome, Outcome::InvalidInput, "{:?}", report.output);
    assert!(
        report.error.as_deref().unwrap_or("").contains("duplicate key `path`"),
        "{:?}",
        report.error
    );
    assert!(
        !root.join("rw/a").exists() && !root.join("rw/b").exists(),
        "the component must not have run"
    );
    let report = call(&host, "fs_op", json!({"op": "create", "path": 7})).await;
    assert_eq!(report.outcome, Outcome::InvalidInput);
    assert!(
        report.error.as_deref().unwrap_or("").contains("/path"),
        "{:?}",
        report.error
    );
}

/// wasmtime's per-store caps are set explicitly (issue 14, item 3): each
/// of these stops the call, and the next call runs normally.
#[tokio::test]
async fn host_calls_past_the_per_call_caps_stop_the_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = roomy_host(dir.path()).await;
    for (what, n, said) in [
        ("log", 20u64 << 20, "fuel allocated for hostcalls has been exhausted"),
        ("random", 2 << 20, "requested len 2097152 exceeds limit 1048576"),
        ("resources", 20_000, "resource table has no free keys"),
    ] {
        let report = call(&host, "exhaust", json!({"what": what, "n": n})).await;
        assert_eq!(
            report.outcome,
            Outcome::Crashed,
            "{what}: {:?} {:?}",
            report.output,
            report.error
        );
        let error = report.error.unwrap_or_default().to_lowercase();
        assert!(error.contains(said), "{what}: {error}");
    }
    // Under the caps the same calls work.
    assert_eq!(
        output(&call(&host, "exhaust", json!({"what": "random", "n": 1024})).await),
        json!(1024)
    );
    assert_eq!(
        output(&call(&host, "exhaust", json!({"what": "resources", "n": 100})).await),
        json!(100)
    );
}

#[tokio::test]
async fn a_component_over_the_size_limit_is_refused_before_compiling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bomb.wasm");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(boram_host::runtime::MAX_COMPONENT_BYTES + 1)
        .expect("sparse file");
    let Err(error) = shared_runtime().load(&path).await else {
        panic!("a 64 MiB + 1 component must be refused")
    };
    let error = error.to_string();
    assert!(error.contains("over the 67108864 byte limit"), "{error}");
}

/// A FIFO in a grant used to block a host thread past the timeout (512 of
/// them starved every tool); a hard link in a `rw` grant writes outside.
#[test]
fn a_fifo_in_a_grant_is_refused_and_a_hard_link_in_a_rw_grant_is_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("g")).expect("mkdir");
    std::fs::write(dir.path().join("outside.txt"), "outside").expect("write");
    std::fs::hard_link(dir.path().join("outside.txt"), dir.path().join("g/link.txt")).expect("link");
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        "version = 1\n[tools.fs_op]\nfs = [{ host = \"g\", guest = \"/g\", access = \"rw\" }]\n",
    )
    .expect("policy");
    let data = tempfile::tempdir().expect("data");
    let out = boram(&["policy", "check", policy.to_str().expect("utf8")], data.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("link.txt has 2 hard links"), "{}", stderr(&out));

    let fifo = dir.path().join("g/pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let out = boram(&["policy", "check", policy.to_str().expect("utf8")], data.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("holds a FIFO {}", fifo.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_ro_preopen_over_the_data_dir_runs_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().canonicalize().expect("canonical");
    std::fs::create_dir_all(root.join("work/.boram")).expect("mkdir");
    std::fs::write(root.join("work/notes.txt"), "notes").expect("write");
    let policy = root.join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\n[defaults]\napproval = \"allow\"\n[tools.read_file]\nfs = [{ host = \"work\", guest = \"/w\" }]\n",
    )
    .expect("policy");
    let data = root.join("work/.boram");
    let out = boram(
        &[
            "tool",
            "call",
            "read_file",
            r#"{"path":"/w/notes.txt"}"#,
            "--policy",
            policy.to_str().expect("utf8"),
        ],
        &data,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = format!(
        "warning: {}:5: [tools.read_file] ro preopen {} contains the data directory {}; \
         the tool can read the audit log and remembered approvals",
        policy.display(),
        root.join("work").display(),
        data.display()
    );
    assert!(
        stderr(&out).contains(&expected),
        "expected `{expected}` in:\n{}",
        stderr(&out)
    );
}

/// Escape bytes from a tool reached the terminal intact: `tool call` now
/// shows every one as a visible escape, in logs, stderr, progress and errors.
#[test]
fn tool_text_shown_by_tool_call_cannot_drive_the_terminal() {
    let data = tempfile::tempdir().expect("tempdir");
    let policy = data.path().join("p.toml");
    std::fs::write(&policy, "version = 1\n[defaults]\napproval = \"allow\"\n").expect("policy");
    let tools = hostile_wasm().parent().expect("fixtures dir").join("noisy-tools");
    std::fs::create_dir_all(&tools).expect("mkdir");
    std::fs::copy(hostile_wasm(), tools.join("hostile.wasm")).expect("copy");
    let out = boram(
        &[
            "tool",
            "call",
            "noisy",
            "{}",
            "--policy",
            policy.to_str().expect("utf8"),
            "--tools-dir",
            tools.to_str().expect("utf8"),
        ],
        data.path(),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for raw in ['\u{1b}', '\u{7}', '\u{202e}', '\u{200b}'] {
        assert!(!err.contains(raw), "{raw:?} reached the terminal:\n{err:?}");
    }
    for shown in [
        r"\x1b]0;owned\x07title",
        r"\x1b[8mhidden",
        r"\u{202e}gnp.exe",
        r"\x1b[2Jscreen cleared\u{200b}",
    ] {
        assert!(err.contains(shown), "`{shown}` missing from:\n{err}");
    }
}
