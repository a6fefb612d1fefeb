//! Production: `boram serve --check` (preflight) names each problem and
//! its fix; `boram serve --supervise` restarts a killed service, kills and
//! restarts a hung one, and backs off (then gives up) on repeated crashes —
//! each restart audited with its reason.

use super::{output_text, tools_dir};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn serve(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_boram"));
    cmd.arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .stdin(Stdio::null());
    cmd
}

fn tools_copy(dir: &Path) -> std::path::PathBuf {
    let tools = dir.join("tools");
    std::fs::create_dir_all(&tools).expect("tools");
    std::fs::copy(tools_dir().join("text_stats.wasm"), tools.join("text_stats.wasm")).expect("copy");
    tools
}

#[test]
fn preflight_names_each_problem_and_its_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools = tools_copy(dir.path());
    std::fs::write(dir.path().join("policy.toml"), "version = 1\n").expect("policy");
    let tools_arg = tools.display().to_string();
    let policy_arg = dir.path().join("policy.toml").display().to_string();
    std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
    let ok = serve(
        dir.path(),
        &[
            "--check",
            "--addr",
            "127.0.0.1:0",
            "--tools-dir",
            &tools_arg,
            "--policy",
            &policy_arg,
        ],
    )
    .output()
    .expect("run");
    assert!(ok.status.success(), "{}", output_text(&ok));
    assert!(output_text(&ok).contains("1 tools load"), "{}", output_text(&ok));

    // A broken tool, a taken port, an invalid policy — all reported at once.
    std::fs::write(tools.join("broken.wasm"), b"not a component").expect("broken");
    std::fs::write(
        dir.path().join("bad.toml"),
        "version = 1\n[defaults]\napproval = \"sometimes\"\n",
    )
    .expect("bad");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    let bad_policy = dir.path().join("bad.toml").display().to_string();
    let out = serve(
        dir.path(),
        &[
            "--check",
            "--addr",
            &port,
            "--tools-dir",
            &tools_arg,
            "--policy",
            &bad_policy,
        ],
    )
    .output()
    .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let message = output_text(&out);
    for expected in [
        "the service cannot start",
        "broken.wasm does not load",
        "fix the tool or remove the file",
        "bad.toml:3",
        &format!("cannot listen on {port}"),
        "next_free_port = true",
    ] {
        assert!(message.contains(expected), "missing {expected:?} in:\n{message}");
    }

    // An unwritable data directory (a file where the directory should be).
    std::fs::remove_file(tools.join("broken.wasm")).expect("rm");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("file");
    let out = Command::new(env!("CARGO_BIN_EXE_boram"))
        .args([
            "serve",
            "--check",
            "--addr",
            "127.0.0.1:0",
            "--tools-dir",
            &tools_arg,
            "--policy",
            &policy_arg,
        ])
        .arg("--data-dir")
        .arg(&file)
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains("pass --data-dir"), "{}", output_text(&out));

    // With next_free_port the taken port is stepped over.
    std::fs::create_dir_all(dir.path().join("config/boram")).expect("config dir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[serve]\nnext_free_port = true\n").expect("config");
    let out = serve(
        dir.path(),
        &[
            "--check",
            "--addr",
            &port,
            "--tools-dir",
            &tools_arg,
            "--policy",
            &policy_arg,
            "--config",
            &config.display().to_string(),
        ],
    )
    .output()
    .expect("run");
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("is in use; using"), "{}", output_text(&out));
    drop(taken);
}

/// A supervised service and its log file.
struct Supervised {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Supervised {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(dir, extra, &[])
    }

    fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let tools = tools_copy(dir);
        std::fs::write(dir.join("policy.toml"), "version = 1\n").expect("policy");
        let log = dir.join("supervisor.log");
        let child = serve(
            dir,
            &["--supervise", "--health-interval-ms", "200", "--backoff-ms", "100"],
        )
        .args(extra)
        .arg("--tools-dir")
        .arg(&tools)
        .arg("--policy")
        .arg(dir.join("policy.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .envs(env.iter().copied())
        .spawn()
        .expect("spawn");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has `n` "listening on" lines; returns the last address.
    fn wait_listening(&self, n: usize) -> String {
        wait_listening(&self.log, n)
    }
}

/// Waits until `log` has `n` "listening on" lines; returns the `n`-th address.
fn wait_listening(log: &Path, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // Whole lines only: a read can land between the writes of one.
        let found: Vec<&str> = text
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .filter_map(|l| l.split("listening on ").nth(1))
            .filter_map(|r| r.split_whitespace().next())
            .collect();
        if found.len() >= n {
            return found[n - 1].to_string();
        }
        assert!(Instant::now() < deadline, "no listening line #{n}:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn health(url: &str) -> Value {
    let addr = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    use std::io::{Read as _, Write as _};
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let body = response.split("\r\n\r\n").nth(1).expect("body");
    serde_json::from_str(body).expect("json")
}

fn audit_events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("data/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"].as_str().is_some_and(|k| k.starts_with("supervisor_")))
        .collect()
}

fn signal(pid: u64, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill")
            .success()
    );
}

#[test]
fn a_service_dies_with_its_supervisor_issue_17() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut supervised = Supervised::start(dir.path(), &["--addr", "127.0.0.1:0"]);
    let url = supervised.wait_listening(1);
    let pid = health(&url)["pid"].as_u64().expect("pid");
    // SIGKILL: the supervisor cannot clean up; the kernel must stop the child.
    supervised.child.kill().expect("kill -9 the supervisor");
    supervised.child.wait().expect("wait");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
    {
        assert!(Instant::now() < deadline, "the service {pid} outlived its supervisor");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The port is free again.
    let addr = url.trim_start_matches("http://");
    assert!(std::net::TcpStream::connect(addr).is_err(), "{addr} still answers");
}

#[test]
fn a_killed_service_is_restarted_and_a_hung_one_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let supervised = Supervised::start(dir.path(), &["--addr", "127.0.0.1:0"]);
    let first = supervised.wait_listening(1);
    let pid = health(&first)["pid"].as_u64().expect("pid");

    signal(pid, "-KILL");
    let second = supervised.wait_listening(2);
    let new_pid = health(&second)["pid"].as_u64().expect("pid");
    assert_ne!(pid, new_pid);

    // Hung (stopped): /health fails three times in a row → killed, restarted.
    signal(new_pid, "-STOP");
    let third = supervised.wait_listening(3);
    assert_ne!(health(&third)["pid"].as_u64(), Some(new_pid));

    let events = audit_events(dir.path());
    let reasons: Vec<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert_eq!(reasons.len(), 2, "{events:?}");
    assert!(reasons[0].contains("signal: 9"), "{reasons:?}");
    assert!(reasons[1].contains("/health failed 3 times"), "{reasons:?}");
    assert!(
        supervised.log().contains("supervisor: service exited"),
        "{}",
        supervised.log()
    );

    // SIGTERM to the supervisor stops the service too, cleanly.
    let last_pid = health(&third)["pid"].as_u64().expect("pid");
    let mut supervised = supervised;
    signal(u64::from(supervised.child.id()), "-TERM");
    let status = supervised.child.wait().expect("wait");
    assert!(status.success(), "{}", supervised.log());
    assert!(
        supervised.log().contains("the service stopped; not restarting"),
        "{}",
        supervised.log()
    );
    let alive = Command::new("kill")
        .args(["-0", &last_pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .expect("kill -0");
    assert!(!alive.success(), "the service must not outlive its supervisor");
}

#[test]
fn repeated_crashes_back_off_then_give_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The port is taken, so every start fails at once.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").to_string();
    let mut supervised = Supervised::start(dir.path(), &["--addr", &port, "--restart-limit", "3"]);
    let status = supervised.child.wait().expect("wait");
    assert_eq!(status.code(), Some(1), "{}", supervised.log());
    assert!(supervised.log().contains("giving up"), "{}", supervised.log());
    let events = audit_events(dir.path());
    let backoffs: Vec<Option<u64>> = events.iter().map(|e| e["backoff_ms"].as_u64()).collect();
    assert_eq!(backoffs, [Some(100), Some(200), Some(400), None], "{events:?}");
    assert_eq!(events.last().expect("last")["event"], "supervisor_gave_up");
    assert!(
        events[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("exit status: 2")),
        "{events:?}"
    );
    drop(taken);
}

/// `[serve] recovery = true`: after two crashes (the port is taken) the
/// supervisor asks the model, which picks `use_free_port` from the fixed
/// list; the next start comes up on a free port. A choice outside the list
/// is refused and audited.
#[tokio::test(flavor = "multi_thread")]
async fn the_model_picks_a_safe_recovery_action() {
    use scripted_llm::ScriptedServer;
    use scripted_llm::anthropic::AnthropicReply;
    for (choice, recovers) in [("use_free_port", true), ("run_shell", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("addr").to_string();
        let model = ScriptedServer::start(vec![
            AnthropicReply::new()
                .tool_use("r1", choice, serde_json::json!({"command": "rm -rf /tmp/x"}))
                .build(),
        ])
        .await;
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "[serve]\nrecovery = true\nrecovery_after = 2\n").expect("config");
        let (config_arg, url) = (config.display().to_string(), model.url());
        let mut supervised = Supervised::start_with_env(
            dir.path(),
            &[
                "--addr",
                &port,
                "--restart-limit",
                "4",
                "--config",
                &config_arg,
                "--provider",
                "anthropic",
                "--base-url",
                &url,
            ],
            &[("ANTHROPIC_API_KEY", "k")],
        );
        if recovers {
            let log = supervised.log.clone();
            let address = tokio::task::spawn_blocking(move || wait_listening(&log, 1))
                .await
                .expect("join");
            assert_ne!(address, format!("http://{port}"));
            assert_eq!(health(&address)["status"], "ok");
        } else {
            let status = tokio::task::spawn_blocking(move || {
                let status = supervised.child.wait().expect("wait");
                (status, supervised)
            })
            .await
            .expect("join");
            assert_eq!(status.0.code(), Some(1), "{}", status.1.log());
            supervised = status.1;
        }
        let events: Vec<Value> = std::fs::read_to_string(dir.path().join("data/audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|e: &Value| e["event"].as_str().is_some_and(|k| k.starts_with("recovery_")))
            .collect();
        if recovers {
            assert_eq!(events.len(), 1, "{events:?}");
            assert_eq!(
                (events[0]["event"].as_str(), events[0]["ok"].as_bool()),
                (Some("recovery_action"), Some(true))
            );
        } else {
            assert_eq!(events[0]["event"], "recovery_rejected", "{events:?}");
            assert!(
                events[0]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("not one of the allowed"))
            );
        }
        // The model was shown the service's own error.
        let request = model.requests()[0].body.to_string();
        assert!(request.contains("Address already in use"), "{request}");
        drop(supervised);
        drop(taken);
    }
}

/// A preflight changes nothing (issue 18): users whose workspaces and a data
/// directory that do not exist are reported with the `mkdir -p` that
/// creates them, and none is created.
#[test]
fn preflight_reports_missing_directories_and_creates_none_issue_18() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tools = tools_copy(dir.path());
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "version = 1\n[tools.text_stats]\nfs = [{ host = \"${workspace}\", guest = \"/workspace\", access = \"ro\" }]\n",
    )
    .expect("policy");
    let (alice, bob) = (dir.path().join("srv/alice"), dir.path().join("srv/bob"));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[serve.users]]\nname = \"alice\"\ntoken_env = \"T\"\nworkspace = \"{}\"\n\
             [[serve.users]]\nname = \"bob\"\ntoken_env = \"T\"\nworkspace = \"{}\"\n",
            alice.display(),
            bob.display()
        ),
    )
    .expect("config");
    let policy_arg = policy.display().to_string();
    let run = || {
        serve(
            dir.path(),
            &["--check", "--addr", "127.0.0.1:0", "--policy", &policy_arg],
        )
        .arg("--tools-dir")
        .arg(&tools)
        .arg("--config")
        .arg(&config)
        .env("T", "token")
        .output()
        .expect("run")
    };
    let out = run();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let message = output_text(&out);
    let data = dir.path().join("data");
    let expected = format!(
        "the data directory {} does not exist; create it: mkdir -p {}",
        data.display(),
        data.display()
    );
    assert!(message.contains(&expected), "missing {expected:?} in:\n{message}");
    assert!(
        !data.exists() && !alice.exists() && !bob.exists(),
        "the preflight created a directory"
    );

    // With the data directory there, the workspaces are what is missing.
    std::fs::create_dir_all(&data).expect("data");
    let out = run();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    let message = output_text(&out);
    for (user, path) in [("alice", &alice), ("bob", &bob)] {
        let expected = format!(
            "user `{user}`: the workspace {} does not exist; create it: mkdir -p {}",
            path.display(),
            path.display()
        );
        assert!(message.contains(&expected), "missing {expected:?} in:\n{message}");
    }
    assert!(!alice.exists() && !bob.exists(), "the preflight created a workspace");
    assert!(!data.join("users").exists(), "the preflight created a user directory");

    std::fs::create_dir_all(&alice).expect("alice");
    std::fs::create_dir_all(&bob).expect("bob");
    let out = run();
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("policy valid for 2 user(s)"),
        "{}",
        output_text(&out)
    );
}

/// The README's `boram serve … --check` line, run as written (in a
/// directory holding the files it names, with this build's tools).
#[test]
fn the_readme_service_commands_work_as_written_issue_18() {
    let readme = std::fs::read_to_string(super::workspace_dir().join("README.md")).expect("README");
    let line = readme
        .lines()
        .find(|l| l.starts_with("boram serve ") && l.contains("--check"))
        .expect("a `boram serve … --check` line in README.md");
    let command = line.split('#').next().expect("command");
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    for file in ["policies/prod.example.toml", "examples/serve.toml"] {
        assert!(command.contains(file), "{command}");
        std::fs::create_dir_all(dir.path().join(file).parent().expect("parent")).expect("dir");
        std::fs::copy(super::workspace_dir().join(file), dir.path().join(file)).expect("copy");
    }
    std::fs::create_dir_all(dir.path().join("data")).expect("data");
    // The README's `mkdir -p ws` before it.
    assert!(readme.contains("mkdir -p ws"), "the README creates the workspace first");
    std::fs::create_dir_all(dir.path().join("ws")).expect("ws");
    let out = Command::new(env!("CARGO_BIN_EXE_boram"))
        .args(&args)
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tools-dir")
        .arg(tools_dir())
        .current_dir(dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env_remove("BORAM_SERVE_TOKEN")
        .output()
        .expect("run");
    assert!(out.status.success(), "{command}:\n{}", output_text(&out));
    assert!(output_text(&out).starts_with("ok: "), "{}", output_text(&out));
}
