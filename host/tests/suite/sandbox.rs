//! Hostile guests: each tries to escape the sandbox or exhaust a limit, is
//! stopped with a clear error, and the host serves the next call normally.

use super::{call, host_with, hostile_wasm, output};
use boram_host::registry::ToolHost;
use boram_host::runtime::Outcome;
use serde_json::json;

const SECRET: &str = "top secret host file";

/// `ro/` holds a secret-free file plus symlinks pointing out of the
/// sandbox; `rw/` is writable; `outside/` is on the host but never granted.
fn policy() -> String {
    r#"
version = 1
[defaults]
approval = "allow"
[tools.fs_op]
fs = [
  { host = "ro", guest = "/ro", access = "ro" },
  { host = "rw", guest = "/rw", access = "rw" },
]
[tools.env_get]
env = ["CARGO_PKG_NAME"]
[tools.env_list]
env = ["CARGO_PKG_NAME"]
[tools.spin]
timeout_ms = 300
[tools.sleep]
timeout_ms = 300
[tools.alloc]
memory_mb = 32
[tools.output]
max_output_kb = 64
"#
    .to_string()
}

async fn setup() -> (tempfile::TempDir, ToolHost) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for d in ["ro", "rw", "outside/sub"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("ro/notes.txt"), "readable").expect("write");
    std::fs::write(root.join("outside/secret.txt"), SECRET).expect("write");
    std::os::unix::fs::symlink(root.join("outside/secret.txt"), root.join("ro/link_out")).expect("symlink");
    std::os::unix::fs::symlink(root.join("outside"), root.join("ro/dir_out")).expect("symlink");
    std::os::unix::fs::symlink("../outside/secret.txt", root.join("ro/relative_out")).expect("symlink");
    let host = host_with(&[hostile_wasm()], root, &policy()).await;
    (dir, host)
}

/// After every attack, a normal call must still work.
async fn assert_still_serves(host: &ToolHost) {
    let out = output(&call(host, "echo", json!({"text": "still here"})).await);
    assert_eq!(out, json!({"text": "still here"}));
}

/// Runs one fs operation and asserts it failed without leaking the secret.
async fn assert_fs_denied(host: &ToolHost, op: &str, path: &str, arg: &str) -> String {
    let report = call(host, "fs_op", json!({"op": op, "path": path, "arg": arg})).await;
    assert_eq!(
        report.outcome,
        Outcome::Failed,
        "{op} {path} {arg} should fail: {:?}",
        report.output
    );
    let error = report.error.clone().expect("error");
    assert!(!error.contains(SECRET) && !format!("{:?}", report.output).contains(SECRET));
    assert_still_serves(host).await;
    error
}

#[tokio::test]
async fn reads_outside_the_preopens_are_denied() {
    let (_dir, host) = setup().await;
    // Positive control: the granted file is readable, so denials below are real.
    let ok = output(&call(&host, "fs_op", json!({"op": "read", "path": "/ro/notes.txt"})).await);
    assert_eq!(ok, json!("readable"));

    let e = assert_fs_denied(&host, "read", "/etc/passwd", "").await;
    assert!(e.contains("No such file"), "{e}");
    let e = assert_fs_denied(&host, "read", "/ro/../outside/secret.txt", "").await;
    assert!(e.contains("not permitted") || e.contains("No such file"), "{e}");
    assert_fs_denied(&host, "read", "/ro/../../../../etc/passwd", "").await;
    assert_fs_denied(&host, "read", "/ro/link_out", "").await;
    assert_fs_denied(&host, "read", "/ro/relative_out", "").await;
    assert_fs_denied(&host, "read_dir", "/ro/dir_out/", "").await;
    assert_fs_denied(&host, "read", "/ro/dir_out/secret.txt", "").await;
    assert_fs_denied(&host, "read_dir", "/", "").await;
}

#[tokio::test]
async fn writes_into_a_read_only_grant_are_denied() {
    let (dir, host) = setup().await;
    // Positive control: the rw grant accepts writes.
    output(
        &call(
            &host,
            "fs_op",
            json!({"op": "write", "path": "/rw/ok.txt", "arg": "fine"}),
        )
        .await,
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rw/ok.txt")).expect("read"),
        "fine"
    );

    assert_fs_denied(&host, "create", "/ro/new.txt", "").await;
    assert_fs_denied(&host, "write", "/ro/notes.txt", "overwritten").await;
    assert_fs_denied(&host, "truncate", "/ro/notes.txt", "").await;
    assert_fs_denied(&host, "remove", "/ro/notes.txt", "").await;
    assert_fs_denied(&host, "rename", "/ro/notes.txt", "/rw/stolen.txt").await;
    assert_fs_denied(&host, "hard_link", "/ro/notes.txt", "/rw/linked.txt").await;
    assert_fs_denied(&host, "write", "/ro/link_out", "through a symlink").await;

    assert_eq!(
        std::fs::read_to_string(dir.path().join("ro/notes.txt")).expect("read"),
        "readable"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("outside/secret.txt")).expect("read"),
        SECRET
    );
    for absent in ["ro/new.txt", "rw/stolen.txt", "rw/linked.txt"] {
        assert!(!dir.path().join(absent).exists(), "{absent} must not exist");
    }
}

#[tokio::test]
async fn only_granted_environment_keys_are_visible() {
    let (_dir, host) = setup().await;
    let granted = std::env::var("CARGO_PKG_NAME").expect("cargo sets CARGO_PKG_NAME for tests");
    assert!(std::env::var("PATH").is_ok(), "the host has PATH");
    assert_eq!(
        output(&call(&host, "env_get", json!({"key": "CARGO_PKG_NAME"})).await),
        json!(granted)
    );
    assert_eq!(
        output(&call(&host, "env_get", json!({"key": "PATH"})).await),
        json!(null)
    );
    assert_eq!(
        output(&call(&host, "env_list", json!({})).await),
        json!(["CARGO_PKG_NAME"])
    );
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_the_timeout() {
    let (_dir, host) = setup().await;
    let report = call(&host, "spin", json!({})).await;
    assert_eq!(report.outcome, Outcome::Timeout);
    assert_eq!(report.error.as_deref(), Some("stopped after the 300 ms time limit"));
    assert_still_serves(&host).await;
}

#[tokio::test]
async fn time_blocked_in_a_host_call_counts_against_the_timeout() {
    let (_dir, host) = setup().await;
    let report = call(&host, "sleep", json!({"ms": 60_000})).await;
    assert_eq!(report.outcome, Outcome::Timeout);
    // A short sleep under the same limit completes: the limit is what stopped the long one.
    assert_eq!(output(&call(&host, "sleep", json!({"ms": 1})).await), json!(1));
    assert_still_serves(&host).await;
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_at_the_limit() {
    let (_dir, host) = setup().await;
    let report = call(&host, "alloc", json!({"mb": 512})).await;
    assert_eq!(report.outcome, Outcome::OutOfMemory, "{:?}", report.error);
    assert!(
        report.memory_peak_bytes <= 32 << 20,
        "peak {} over the limit",
        report.memory_peak_bytes
    );
    assert!(report.error.expect("error").contains("32 MiB"));
    // Within the limit the same tool succeeds, so the limit is what stopped it.
    assert_eq!(output(&call(&host, "alloc", json!({"mb": 4})).await), json!(4));
    assert_still_serves(&host).await;
}

#[tokio::test]
async fn a_huge_output_is_refused() {
    let (_dir, host) = setup().await;
    let report = call(&host, "output", json!({"bytes": 1 << 20})).await;
    assert_eq!(report.outcome, Outcome::OutputTooLarge);
    assert!(report.output.is_none());
    assert!(report.error.expect("error").contains("over the 65536 byte limit"));
    assert_eq!(
        output(&call(&host, "output", json!({"bytes": 10})).await),
        json!("xxxxxxxxxx")
    );
    assert_still_serves(&host).await;
}

#[tokio::test]
async fn deep_recursion_crashes_the_call_not_the_host() {
    let (_dir, host) = setup().await;
    let report = call(&host, "recurse", json!({"depth": 100_000_000u64})).await;
    assert_eq!(report.outcome, Outcome::Crashed, "{:?}", report.error);
    assert_eq!(output(&call(&host, "recurse", json!({"depth": 10})).await), json!(11));
    assert_still_serves(&host).await;
}

#[tokio::test]
async fn a_panic_is_reported_with_its_message() {
    let (_dir, host) = setup().await;
    let report = call(&host, "panic", json!({})).await;
    assert_eq!(report.outcome, Outcome::Crashed);
    let error = report.error.expect("error");
    assert!(error.contains("panicked") && error.contains("on purpose"), "{error}");
    assert_still_serves(&host).await;
}

#[tokio::test]
async fn stdout_and_stderr_are_captured_and_bounded() {
    let (_dir, host) = setup().await;
    let report = call(&host, "print", json!({"bytes": 200 * 1024})).await;
    assert_eq!(output(&report), json!("printed"));
    assert_eq!(report.stdout.text.len(), 64 * 1024);
    assert_eq!(report.stdout.dropped_bytes, 136 * 1024);
    assert_eq!(report.stderr.text, "to stderr\n");
    assert_eq!(report.logs.len(), 1);
    assert_eq!(
        (report.logs[0].level, report.logs[0].message.as_str()),
        ("info", "logged from the guest")
    );
}

/// A component that imports `wasi:sockets` loads (language runtimes import
/// all of WASI), but every socket operation is refused.
#[tokio::test]
async fn sockets_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let netprobe = hostile_wasm().with_file_name("netprobe.wasm");
    let host = host_with(
        &[netprobe],
        dir.path(),
        "version = 1\n[defaults]\napproval = \"allow\"\n",
    )
    .await;
    let server = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = server.local_addr().expect("addr").to_string();
    for target in [addr.as_str(), "localhost:80"] {
        let report = call(&host, "connect", json!({ "addr": target })).await;
        assert_eq!(report.outcome, Outcome::Failed, "{target}: {:?}", report.error);
        let error = report.error.unwrap_or_default();
        assert!(error.contains(&format!("connect {target}")), "{error}");
    }
    server.set_nonblocking(true).expect("nonblocking");
    assert!(server.accept().is_err(), "nothing may have connected");
}

#[tokio::test]
async fn many_concurrent_calls_each_get_their_own_instance() {
    let (_dir, host) = setup().await;
    let host = std::sync::Arc::new(host);
    let calls = (0..32).map(|i| {
        let host = host.clone();
        tokio::spawn(async move { call(&host, "echo", json!({"text": format!("call {i}")})).await })
    });
    for (i, handle) in calls.enumerate() {
        let report = handle.await.expect("join");
        assert_eq!(output(&report), json!({"text": format!("call {i}")}));
    }
}
