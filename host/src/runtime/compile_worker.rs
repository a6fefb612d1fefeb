//! Compiling a component in a child process with a memory cap.
//!
//! Cranelift's memory use grows faster than the input: a 2.2 MB component
//! built for the purpose took 1.9 GB and 26 s to compile, and inside the
//! host process nothing can stop a compile thread once it started. So the
//! CLI and the service compile in a worker: the same `boram` binary started
//! as `boram __compile-worker MB`, which caps its own address space at
//! what it uses at start plus `MB` MiB (`RLIMIT_AS`), reads the component
//! on stdin and writes the compiled artifact on stdout. A worker that runs
//! out of memory dies alone; one that runs past the compile timeout is
//! killed. The host then deserializes the artifact with its own engine
//! (wasmtime checks the settings match) and stores it in the compile cache
//! under its HMAC, as for an in-process compile.
//!
//! The worker's engine uses on-demand allocation (the pooling allocator
//! reserves terabytes of address space, which a capped process cannot) and
//! one compiler thread; neither changes the compiled code. Components still
//! compile in parallel: one worker per component, one per core.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The argument that turns `boram` into a compile worker.
pub const WORKER_ARG: &str = "__compile-worker";
/// Environment variable setting the compile memory cap, in MiB.
pub const MEMORY_ENV: &str = "BORAM_COMPILE_MEMORY_MB";
/// Memory one compile may use unless configured: ample for every tool
/// seen so far (first-party tools need under 100 MiB), and far below what
/// a compile bomb takes.
pub const DEFAULT_MEMORY_MB: u64 = 2048;

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct CompileWorker {
    /// The `boram` binary.
    pub program: PathBuf,
    /// Memory cap of one compile, MiB.
    pub memory_mb: u64,
}

impl CompileWorker {
    /// This binary as the worker, the cap from [`MEMORY_ENV`] or the default.
    pub fn this_binary() -> Option<Self> {
        let memory_mb = std::env::var(MEMORY_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_MEMORY_MB);
        Some(Self {
            program: std::env::current_exe().ok()?,
            memory_mb,
        })
    }

    /// Compiles `wasm` in a worker; the artifact, or why not. Blocks the
    /// calling thread (run it on a blocking thread) for at most `timeout`.
    pub fn compile(&self, wasm: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
        // The component goes in a file, not a pipe: a worker that dies while
        // reading (the cap) would otherwise make our write raise SIGPIPE,
        // which `boram` leaves fatal (for `boram … | head`).
        let mut input = tempfile::NamedTempFile::new().map_err(|e| format!("cannot stage the component: {e}"))?;
        input
            .write_all(wasm)
            .and_then(|()| input.flush())
            .map_err(|e| format!("cannot stage the component: {e}"))?;
        let mut child = Command::new(&self.program)
            .arg(WORKER_ARG)
            .arg(self.memory_mb.to_string())
            .stdin(std::fs::File::open(input.path()).map_err(|e| format!("cannot stage the component: {e}"))?)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the compile worker {}: {e}", self.program.display()))?;
        let mut stdout = child.stdout.take().expect("piped");
        let reader = std::thread::spawn(move || {
            let mut artifact = Vec::new();
            stdout.read_to_end(&mut artifact).map(|_| artifact)
        });
        let mut stderr = child.stderr.take().expect("piped");
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "compiling took longer than {} s; it is not loaded",
                        timeout.as_secs()
                    ));
                }
                Err(e) => return Err(format!("cannot wait for the compile worker: {e}")),
            }
        };
        let artifact = reader.join().ok().and_then(Result::ok).unwrap_or_default();
        let errors = errors.join().unwrap_or_default();
        if status.success() {
            return Ok(artifact);
        }
        let last = errors
            .trim()
            .lines()
            .last()
            .unwrap_or("the compile worker failed")
            .to_string();
        // Exit 1 is the worker's own answer (the component does not
        // compile). Anything else — an abort on a failed allocation, a
        // panic on a thread that could not be created — is the cap.
        if status.code() == Some(1) {
            return Err(last);
        }
        let said = errors
            .lines()
            .find(|l| l.contains("memory allocation") || l.contains("panicked"))
            .map_or(last.as_str(), str::trim)
            .to_string();
        Err(format!(
            "compiling needed more than {} MiB of memory and was stopped; it is not loaded \
             (raise {MEMORY_ENV} if this component is genuine; the worker said: {said})",
            self.memory_mb
        ))
    }
}

/// `boram __compile-worker MB`: compile stdin to stdout under the cap.
pub fn run(args: &[String]) -> ExitCode {
    let Some(memory_mb) = args.first().and_then(|a| a.parse::<u64>().ok()) else {
        eprintln!("usage: boram {WORKER_ARG} MEMORY_MB < component.wasm > artifact");
        return ExitCode::from(2);
    };
    if let Err(e) = cap_address_space(memory_mb) {
        eprintln!("cannot cap the compile worker's memory: {e}");
        return ExitCode::FAILURE;
    }
    // A worker outlives nothing: when `boram` goes (Ctrl-C while a
    // background compile runs, kill -9), so does its compile.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let mut wasm = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut wasm) {
        eprintln!("cannot read the component: {e}");
        // Out of memory is the cap (see `compile`), not a broken component.
        return ExitCode::from(if e.kind() == std::io::ErrorKind::OutOfMemory {
            3
        } else {
            1
        });
    }
    // Any panic ends the worker (the host reads it as the cap), never one
    // thread while the rest wait.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("compile worker: {info}");
        std::process::abort();
    }));
    let artifact = super::engine::build_compile_engine().and_then(|engine| engine.precompile_component(&wasm));
    match artifact {
        Ok(artifact) => match std::io::stdout().write_all(&artifact) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write the artifact: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Limits this process's address space to what it maps now plus `mb` MiB,
/// so the cap measures the compile, not the binary and its libraries.
fn cap_address_space(mb: u64) -> std::io::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let mapped_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let limit = mapped_kib
        .saturating_mul(1024)
        .saturating_add(mb.saturating_mul(1 << 20));
    let limit = rustix::process::Rlimit {
        current: Some(limit),
        maximum: Some(limit),
    };
    rustix::process::setrlimit(rustix::process::Resource::As, limit).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_artifact_from_the_worker_engine_loads_in_the_service_engine() {
        let wasm = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/read_file.wasm"))
            .expect("read_file.wasm (built by host/build.rs)");
        let worker = super::super::engine::build_compile_engine().expect("worker engine");
        let artifact = worker.precompile_component(&wasm).expect("precompile");
        let (service, _) = super::super::engine::build_engine(true).expect("service engine");
        // SAFETY: the artifact was just produced by an engine of this build.
        #[allow(unsafe_code)]
        let loaded = unsafe { wasmtime::component::Component::deserialize(&service, &artifact) };
        assert!(loaded.is_ok(), "{:?}", loaded.err());
    }
}
