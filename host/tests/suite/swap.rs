//! Hot swap through the real file watcher: a tool replaced again and again
//! while calls keep coming (no call fails, each is answered by the old or
//! the new version); broken and truncated `.wasm` files and one whose
//! `describe` traps rejected while the old version keeps serving; a policy edit applied, a bad one rejected.

use super::{hostile_wasm, shared_runtime};
use boram_host::policy::Policy;
use boram_host::registry::watch::{ReloadEvent, watch};
use boram_host::registry::{Registry, ToolHost};
use boram_host::runtime::Outcome;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn echo_v2() -> PathBuf {
    PathBuf::from(env!("BORAM_FIXTURES_DIR")).join("echo_v2.wasm")
}

/// Puts `from` at `dir/echo.wasm` the way a build should: write aside, rename into place.
fn install(from: &[u8], dir: &Path) {
    let tmp = dir.join(".echo.partial");
    std::fs::write(&tmp, from).expect("write");
    std::fs::rename(&tmp, dir.join("echo.wasm")).expect("rename");
}

struct Setup {
    dir: tempfile::TempDir,
    host: Arc<ToolHost>,
    events: Arc<Mutex<Vec<ReloadEvent>>>,
    _watching: boram_host::registry::watch::Watching,
}

async fn setup(policy: &str) -> Setup {
    setup_on(shared_runtime(), policy).await
}

/// [`setup`] over `runtime`.
async fn setup_on(runtime: Arc<boram_host::runtime::Runtime>, policy: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools = dir.path().join("tools");
    std::fs::create_dir_all(&tools).expect("tools dir");
    install(&std::fs::read(hostile_wasm()).expect("v1"), &tools);
    let policy_path = dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy).expect("policy");
    let registry = Registry::load_dir(runtime, &tools).await.expect("load");
    let host = Arc::new(ToolHost::new(
        registry,
        Policy::load(&policy_path).expect("policy"),
        None,
    ));
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let watching = watch(
        host.clone(),
        &tools,
        Some(&policy_path),
        Arc::new(move |e: &ReloadEvent| sink.lock().expect("events").push(e.clone())),
    )
    .expect("watch");
    Setup {
        dir,
        host,
        events,
        _watching: watching,
    }
}

async fn echo(host: &ToolHost) -> (Outcome, String) {
    let report = host.call("echo", r#"{"text":"hi"}"#, None).await.expect("echo exists");
    (report.outcome, report.output.unwrap_or_default())
}

/// Waits (up to 30 s) until `check` holds.
async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    super::eventually(Duration::from_secs(30), || what.to_string(), check).await
}

const V1: &str = r#"{"text":"hi"}"#;
const V2: &str = r#"{"text":"HI"}"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_swapped_under_load_never_fails_a_call() {
    let s = setup("version = 1\n[defaults]\napproval = \"allow\"\n").await;
    let versions = [
        std::fs::read(hostile_wasm()).expect("v1"),
        std::fs::read(echo_v2()).expect("v2"),
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let caller = {
        let (host, stop) = (s.host.clone(), stop.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                answers.push(echo(&host).await);
            }
            answers
        })
    };
    let tools = s.dir.path().join("tools");
    const SWAPS: usize = 6;
    for i in 1..=SWAPS {
        install(&versions[i % 2], &tools);
        let expected = if i % 2 == 1 { V2 } else { V1 };
        eventually("the new version to answer", async || echo(&s.host).await.1 == expected).await;
    }
    stop.store(true, Ordering::Relaxed);
    let answers = caller.await.expect("caller");
    assert!(answers.len() > SWAPS, "{} calls", answers.len());
    for (outcome, output) in &answers {
        assert_eq!(*outcome, Outcome::Ok);
        assert!(output == V1 || output == V2, "{output}");
    }
    let swaps = s
        .events
        .lock()
        .expect("events")
        .iter()
        .filter(|e| matches!(e, ReloadEvent::ToolSwapped { .. }))
        .count();
    assert_eq!(swaps, SWAPS);
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_truncated_and_undescribable_files_are_rejected_and_the_old_version_serves() {
    let s = setup("version = 1\n[defaults]\napproval = \"allow\"\n").await;
    let tools = s.dir.path().join("tools");
    let v2 = std::fs::read(echo_v2()).expect("v2");
    let bad_describe =
        std::fs::read(PathBuf::from(env!("BORAM_FIXTURES_DIR")).join("bad_describe.wasm")).expect("fixture");
    for bad in [
        b"definitely not wasm".to_vec(),
        v2[..v2.len() / 2].to_vec(),
        bad_describe,
    ] {
        let before = s.events.lock().expect("events").len();
        install(&bad, &tools);
        eventually("the rejection", async || {
            s.events.lock().expect("events").len() > before
        })
        .await;
        let event = s.events.lock().expect("events").last().cloned().expect("event");
        assert!(
            matches!(
                event,
                ReloadEvent::ToolRejected {
                    old_sha256: Some(_),
                    ..
                }
            ),
            "{event:?}"
        );
        assert_eq!(
            echo(&s.host).await,
            (Outcome::Ok, V1.to_string()),
            "the old version still serves"
        );
    }
    // A good build after the broken ones is taken.
    install(&v2, &tools);
    eventually("v2", async || echo(&s.host).await.1 == V2).await;
    // Removing the file unloads the tool.
    std::fs::remove_file(tools.join("echo.wasm")).expect("remove");
    eventually("the unload", async || s.host.call("echo", "{}", None).await.is_err()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_edit_applies_and_a_bad_one_is_rejected() {
    let s = setup("version = 1\n[tools.echo]\napproval = \"allow\"\n").await;
    let path = s.dir.path().join("policy.toml");
    assert_eq!(echo(&s.host).await.0, Outcome::Ok);
    std::fs::write(&path, "version = 1\n[tools.echo]\napproval = \"deny\"\n").expect("edit");
    eventually("the deny", async || echo(&s.host).await.0 == Outcome::Denied).await;
    std::fs::write(&path, "version = 1\n[tools.echo]\napprovl = \"allow\"\n").expect("bad edit");
    eventually("the rejection", async || {
        s.events
            .lock()
            .expect("events")
            .iter()
            .any(|e| matches!(e, ReloadEvent::PolicyRejected { .. }))
    })
    .await;
    let rejected = s.events.lock().expect("events").iter().find_map(|e| match e {
        ReloadEvent::PolicyRejected { error, .. } => Some(error.clone()),
        _ => None,
    });
    assert!(rejected.expect("rejected").contains("approvl"));
    assert_eq!(echo(&s.host).await.0, Outcome::Denied, "the previous policy stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_save_is_exactly_one_reload_and_then_the_watcher_is_idle_issue_17() {
    // A runtime of its own, so its load counters are this test's alone.
    let cache = tempfile::tempdir().expect("cache");
    let runtime = Arc::new(
        boram_host::runtime::Runtime::new(&boram_host::runtime::RuntimeOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            ..Default::default()
        })
        .expect("runtime"),
    );
    let policy = "version = 1\n[defaults]\napproval = \"allow\"\n";
    let s = setup_on(runtime.clone(), policy).await;
    let (tools, policy_path, events) = (
        s.dir.path().join("tools"),
        s.dir.path().join("policy.toml"),
        s.events.clone(),
    );
    let count = |f: fn(&ReloadEvent) -> bool| events.lock().expect("events").iter().filter(|e| f(e)).count();

    // One policy save.
    std::fs::write(&policy_path, format!("{policy}# edited\n")).expect("edit");
    eventually("the policy reload", async || {
        count(|e| matches!(e, ReloadEvent::PolicyReloaded { .. })) == 1
    })
    .await;
    // One new build of the tool.
    let loads_before = runtime.cache_stats();
    install(&std::fs::read(echo_v2()).expect("v2"), &tools);
    eventually("the swap", async || {
        count(|e| matches!(e, ReloadEvent::ToolSwapped { .. })) == 1
    })
    .await;
    // Then a few quiet seconds: reading the files must not count as edits.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(|e| matches!(e, ReloadEvent::PolicyReloaded { .. })), 1);
    assert_eq!(count(|e| matches!(e, ReloadEvent::ToolSwapped { .. })), 1);
    assert_eq!(
        events.lock().expect("events").len(),
        2,
        "{:?}",
        events.lock().expect("events")
    );
    let loads_after = runtime.cache_stats();
    assert_eq!(
        (loads_after.hits + loads_after.misses) - (loads_before.hits + loads_before.misses),
        1,
        "the new build was loaded once: {loads_before:?} -> {loads_after:?}"
    );
    // Saving the same bytes again is not a reload.
    std::fs::write(&policy_path, format!("{policy}# edited\n")).expect("same again");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(|e| matches!(e, ReloadEvent::PolicyReloaded { .. })), 1);
}
