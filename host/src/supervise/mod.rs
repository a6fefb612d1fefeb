//! `boram serve --supervise`: keeps the service alive. The supervisor runs
//! the service as a child process, forwards its output, and restarts it
//! when it exits or when `GET /health` fails `health_failures` times in a
//! row (a hung process is killed first). Restarts back off exponentially
//! (capped); the backoff resets once the child has stayed healthy for a
//! while; after `max_restarts` consecutive failed starts it gives up.
//! Every restart is written to the audit log with its reason. With
//! [`recovery`] on, repeated crashes also ask the model to pick one action
//! from a fixed, safe list.

pub mod recovery;

use crate::audit::AuditLog;
use recovery::Recovery;
use serde_json::json;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

pub struct SuperviseOptions {
    /// The program and arguments of the service (without `--supervise`).
    pub program: PathBuf,
    pub args: Vec<String>,
    pub health_interval: Duration,
    /// Consecutive failed health checks that count as a hang.
    pub health_failures: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Consecutive restarts without a healthy spell before giving up.
    pub max_restarts: u32,
    /// Healthy this long and the backoff starts over.
    pub stable_after: Duration,
    /// Ask the model for a recovery action after repeated crashes.
    pub recovery: Option<Recovery>,
}

/// Log lines of the service kept for recovery.
const LOG_TAIL: usize = 40;

impl SuperviseOptions {
    pub fn new(program: PathBuf, args: Vec<String>) -> Self {
        Self {
            program,
            args,
            health_interval: Duration::from_secs(5),
            health_failures: 3,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_restarts: 10,
            stable_after: Duration::from_secs(60),
            recovery: None,
        }
    }

    /// Delay before restart number `attempt` (1-based): base · 2^(attempt-1), capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        self.backoff_base.saturating_mul(factor).min(self.backoff_max)
    }
}

/// Why the child stopped serving.
#[derive(Debug, Clone, PartialEq)]
enum Ended {
    Exited(String),
    Unhealthy(u32),
}

/// Runs the service under supervision until it exits cleanly (status 0:
/// a requested shutdown) or the restart limit is reached (an error).
pub async fn supervise(options: &SuperviseOptions, audit: Option<&AuditLog>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(options.health_interval.min(Duration::from_secs(2)))
        .build()?;
    // Recovery may change the next start's arguments (port, policy).
    let mut args = options.args.clone();
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let mut child = spawn(options, &args)?;
        let output = forward_output(&mut child);
        let ended = watch(options, &client, &mut child, &output, &args).await;
        let reason = match &ended {
            Ok(()) => {
                eprintln!("supervisor: the service stopped; not restarting");
                return Ok(());
            }
            Err(Ended::Exited(status)) => format!("exited: {status}"),
            Err(Ended::Unhealthy(n)) => format!("/health failed {n} times in a row; killed"),
        };
        if started.elapsed() >= options.stable_after {
            failures = 0;
        }
        failures += 1;
        if failures > options.max_restarts {
            record(audit, &reason, failures, None);
            anyhow::bail!(
                "the service failed {failures} times in a row (last: {reason}); giving up — see its output above"
            );
        }
        let delay = options.backoff(failures);
        eprintln!(
            "supervisor: service {reason}; restart {failures} in {:.1} s",
            delay.as_secs_f64()
        );
        record(audit, &reason, failures, Some(delay));
        if let Some(recovery) = &options.recovery
            && failures >= recovery.after
        {
            // Let the reader thread catch the child's last lines.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let tail: Vec<String> = output
                .log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned()
                .collect();
            recovery.recover(&tail, failures, &mut args, audit).await;
        }
        tokio::time::sleep(delay).await;
    }
}

fn record(audit: Option<&AuditLog>, reason: &str, attempt: u32, delay: Option<Duration>) {
    if let Some(audit) = audit {
        audit.event(&json!({
            "time": crate::audit::now(),
            "event": if delay.is_some() { "supervisor_restart" } else { "supervisor_gave_up" },
            "reason": reason,
            "attempt": attempt,
            "backoff_ms": delay.map(|d| d.as_millis() as u64),
        }));
    }
}

/// Set in the supervised child: the supervisor's pid. The child asks the
/// kernel for SIGTERM when its parent dies ([`die_with_supervisor`]), so a
/// supervisor killed with SIGKILL does not leave a service holding the port.
pub const SUPERVISOR_PID_ENV: &str = "BORAM_SUPERVISOR_PID";

/// In a supervised child: be sent SIGTERM when the supervisor dies, and
/// stop at once if it already has (it died before the request was made).
/// A no-op outside supervision.
pub fn die_with_supervisor() {
    let Some(supervisor) = std::env::var(SUPERVISOR_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    if let Err(e) = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM)) {
        tracing::warn!(error = %e, "cannot ask to be stopped with the supervisor");
    }
    let parent = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
    if parent != supervisor {
        eprintln!("the supervisor ({supervisor}) is gone; stopping");
        std::process::exit(1);
    }
}

fn spawn(options: &SuperviseOptions, args: &[String]) -> anyhow::Result<Child> {
    // The death signal is tied to the thread that forks, and tokio's worker
    // threads live as long as the supervisor: spawn from one of them.
    Command::new(&options.program)
        .args(args)
        .env(SUPERVISOR_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", options.program.display()))
}

/// What the supervisor reads from the child's stderr.
struct ChildOutput {
    /// The "listening on" address, once printed.
    address: Arc<Mutex<Option<String>>>,
    /// The last [`LOG_TAIL`] lines.
    log: Arc<Mutex<VecDeque<String>>>,
}

/// Copies the child's stderr to ours, picking up its "listening on" address
/// and keeping its last lines.
fn forward_output(child: &mut Child) -> ChildOutput {
    let output = ChildOutput {
        address: Arc::default(),
        log: Arc::default(),
    };
    if let Some(stderr) = child.stderr.take() {
        let (address, log) = (output.address.clone(), output.log.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("listening on ").nth(1)
                    && let Some(url) = rest.split_whitespace().next()
                {
                    *address.lock().unwrap_or_else(|e| e.into_inner()) = Some(url.to_string());
                }
                eprintln!("{line}");
                let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                log.push_back(line);
                if log.len() > LOG_TAIL {
                    log.pop_front();
                }
            }
        });
    }
    output
}

/// Keeps a copy of the policy the service just started healthy with, for
/// the `fall_back_to_last_good_policy` recovery action.
fn keep_last_good_policy(args: &[String]) {
    let Some(i) = args.iter().position(|a| a == "--policy") else {
        return;
    };
    let Some(policy) = args.get(i + 1).map(std::path::Path::new) else {
        return;
    };
    let copy = recovery::last_good_policy(policy);
    if policy != copy
        && let Err(e) = std::fs::copy(policy, &copy)
    {
        tracing::warn!(error = %e, "cannot keep a copy of the last good policy");
    }
}

/// Ctrl-C or SIGTERM to the supervisor.
async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Polls the child until it exits or stops answering `/health`.
async fn watch(
    options: &SuperviseOptions,
    client: &reqwest::Client,
    child: &mut Child,
    output: &ChildOutput,
    args: &[String],
) -> Result<(), Ended> {
    let mut failed = 0;
    let mut was_healthy = false;
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            // Stopping the supervisor stops the service the same way, and waits for it.
            _ = &mut stop => {
                if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
                }
                let _ = child.wait().await;
                return Ok(());
            }
            status = child.wait() => {
                return match status {
                    Ok(status) if status.success() => Ok(()),
                    Ok(status) => Err(Ended::Exited(status.to_string())),
                    Err(e) => Err(Ended::Exited(format!("cannot wait for it: {e}"))),
                };
            }
            _ = tokio::time::sleep(options.health_interval) => {}
        }
        let Some(url) = output.address.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            continue;
        };
        let healthy = client
            .get(format!("{url}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if healthy {
            failed = 0;
            if !was_healthy {
                was_healthy = true;
                keep_last_good_policy(args);
            }
            continue;
        }
        failed += 1;
        if failed >= options.health_failures {
            let _ = child.kill().await;
            return Err(Ended::Unhealthy(failed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut options = SuperviseOptions::new("x".into(), Vec::new());
        options.backoff_base = Duration::from_millis(100);
        options.backoff_max = Duration::from_millis(1000);
        let delays: Vec<u128> = (1..=6).map(|n| options.backoff(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(options.backoff(100), Duration::from_millis(1000));
    }
}
