//! Runs tool components under wasmtime: one engine (component model, epoch
//! interruption, pooling allocator), a compile cache on disk, a pre-linked
//! `InstancePre` per component, and a fresh `Store` per call built from the
//! tool's sandbox template.
//!
//! Start at [`Runtime::load`] (a `.wasm` file to a [`LoadedComponent`]) and
//! [`Runtime::call`] (one sandboxed call to a [`CallReport`]).

mod admission;
mod bindings;
mod cache;
mod call;
mod capture;
pub mod compile_worker;
mod component;
mod egress;
mod engine;
mod error;
mod linker;
mod preopen;
mod sandbox;
mod state;

pub use admission::DEFAULT_MEMORY_BUDGET_MB;
pub use cache::{ArtifactOrigin, CacheStats, remembered_names};
pub use call::{CallReport, Outcome};
pub use capture::Captured;
pub use component::{LoadedComponent, ToolSpec};
pub use egress::{HttpRecord, HttpRecordSink};
pub use engine::{Allocator, EPOCH_TICK};
pub use error::{Error, Result};
pub use sandbox::SandboxTemplate;
pub use state::{LogLine, Progress, ProgressSink};

use crate::policy::is_tool_name;
use bindings::ToolPre;
use cache::CompileCache;
use engine::EpochTicker;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Linker;

/// Largest component file loaded: 64 MiB (first-party tools are ~100 KiB,
/// a Python tool with its interpreter ~40 MiB).
pub const MAX_COMPONENT_BYTES: u64 = 64 << 20;
/// Longest a component may take to compile before its load is given up
/// (the previous version keeps serving). The compile runs on a blocking
/// thread, so the async runtime (and `/health`) keeps answering meanwhile.
pub const COMPILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How to build a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Directory of the compile cache; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Use on-demand instance allocation even where pooling works.
    pub no_pooling: bool,
    /// Sum of the memory limits of calls running at once, in MiB
    /// (`None`: [`DEFAULT_MEMORY_BUDGET_MB`]); calls past it wait.
    pub memory_budget_mb: Option<u64>,
    /// Compile in a child process with a memory cap (the CLI and the
    /// service); `None` compiles on a thread of this process.
    pub compile_worker: Option<compile_worker::CompileWorker>,
    /// Say on stderr when a compile takes longer than this
    /// (`compiling py_summarize.wasm (18.2 MB)…`), so the CLI's long waits
    /// are visible; `None`: silent.
    pub announce_slow_compiles: Option<std::time::Duration>,
}

/// The CLI announces compiles that take longer than this.
pub const SLOW_COMPILE: std::time::Duration = std::time::Duration::from_millis(500);

/// The engine, linker and compile cache shared by every tool.
pub struct Runtime {
    engine: Engine,
    linker: Linker<state::StoreState>,
    cache: std::sync::Arc<CompileCache>,
    allocator: Allocator,
    admission: admission::Admission,
    compile_worker: Option<compile_worker::CompileWorker>,
    announce_slow_compiles: Option<std::time::Duration>,
    _ticker: EpochTicker,
}

impl Runtime {
    pub fn new(options: &RuntimeOptions) -> Result<Self> {
        let (engine, allocator) =
            engine::build_engine(!options.no_pooling).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let linker = linker::build_linker(&engine).map_err(|e| Error::Engine(format!("{e:#}")))?;
        let cache = CompileCache::open(options.cache_dir.as_deref(), &engine).map_err(|source| Error::Cache {
            path: options.cache_dir.clone().unwrap_or_default(),
            source,
        })?;
        let ticker = EpochTicker::start(&engine);
        let budget = options.memory_budget_mb.unwrap_or(DEFAULT_MEMORY_BUDGET_MB);
        Ok(Self {
            engine,
            linker,
            cache: std::sync::Arc::new(cache),
            allocator,
            admission: admission::Admission::new(budget, engine::POOL_INSTANCES),
            compile_worker: options.compile_worker.clone(),
            announce_slow_compiles: options.announce_slow_compiles,
            _ticker: ticker,
        })
    }

    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Whether loading the component at `path` would compile it: there is
    /// no compile cache, or it holds nothing for these bytes. Reads and
    /// hashes the file; an unreadable one counts as cached (its load fails
    /// at once).
    pub fn needs_compile(&self, path: &Path) -> bool {
        match std::fs::read(path) {
            Ok(bytes) => !self.cache.has_entry(&hex::encode(Sha256::digest(&bytes))),
            Err(_) => false,
        }
    }

    /// Loads the component at `path`: compile (or take from the cache),
    /// link, and ask it to describe its tools in a
    /// sandbox with no capabilities.
    pub async fn load(&self, path: &Path) -> Result<LoadedComponent> {
        self.load_announcing(path, self.announce_slow_compiles).await
    }

    /// [`Self::load`] that never announces a slow compile: for a compile
    /// the caller already said is going on in the background.
    pub async fn load_quietly(&self, path: &Path) -> Result<LoadedComponent> {
        self.load_announcing(path, None).await
    }

    async fn load_announcing(&self, path: &Path, announce: Option<std::time::Duration>) -> Result<LoadedComponent> {
        let compile_error = |message: String| Error::Compile {
            path: path.to_path_buf(),
            message,
        };
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if size > MAX_COMPONENT_BYTES {
            return Err(compile_error(format!(
                "it is {size} bytes, over the {MAX_COMPONENT_BYTES} byte limit for a component"
            )));
        }
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let bytes = std::sync::Arc::new(bytes);
        let compiling = self.compile(bytes.clone(), sha256.clone());
        let (component, origin) = if let Some(after) = announce {
            tokio::pin!(compiling);
            match tokio::time::timeout(after, &mut compiling).await {
                Ok(done) => done,
                Err(_) => {
                    let name = path
                        .file_name()
                        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
                    eprintln!("compiling {name} ({:.1} MB)…", size as f64 / 1e6);
                    compiling.await
                }
            }
        } else {
            compiling.await
        }
        .map_err(compile_error)?;
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(&self.engine).map(|(name, _)| name.to_string()).collect();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(name, _)| name.to_string()).collect();
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(ToolPre::new)
            .map_err(|e| Error::Link {
                path: path.to_path_buf(),
                message: format!("{e:#}"),
            })?;
        let specs = self.describe(path, &pre).await?;
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        self.cache.remember_names(&sha256, &names);
        Ok(LoadedComponent {
            path: path.to_path_buf(),
            sha256,
            size_bytes: bytes.len() as u64,
            origin,
            specs,
            imports,
            exports,
            pre,
        })
    }

    /// Compiles (or loads from the cache) on a blocking thread, giving up
    /// after [`COMPILE_TIMEOUT`]: a compile bomb must not stall every
    /// request of a running service.
    async fn compile(
        &self,
        bytes: std::sync::Arc<Vec<u8>>,
        sha256: String,
    ) -> std::result::Result<(wasmtime::component::Component, ArtifactOrigin), String> {
        let (engine, cache) = (self.engine.clone(), self.cache.clone());
        let worker = self.compile_worker.clone();
        let job = tokio::task::spawn_blocking(move || {
            cache.load_or_compile(&engine, &bytes, &sha256, |wasm| match &worker {
                Some(worker) => worker.compile(wasm, COMPILE_TIMEOUT).map_err(wasmtime::Error::msg),
                None => engine.precompile_component(wasm),
            })
        });
        // The worker kills itself at the timeout; this bounds the wait for
        // an in-process compile (whose thread cannot be stopped).
        match tokio::time::timeout(COMPILE_TIMEOUT + std::time::Duration::from_secs(5), job).await {
            Ok(Ok(Ok(compiled))) => Ok(compiled),
            Ok(Ok(Err(e))) => Err(format!("{e:#}")),
            Ok(Err(e)) => Err(format!("the compiler crashed: {e}")),
            Err(_) => Err(format!(
                "compiling took longer than {} s; it is not loaded",
                COMPILE_TIMEOUT.as_secs()
            )),
        }
    }

    /// Runs tool `tool` of `component` on `input` inside `sandbox`.
    pub async fn call(
        &self,
        component: &LoadedComponent,
        tool: &str,
        input: &str,
        sandbox: &SandboxTemplate,
        progress: Option<ProgressSink>,
    ) -> CallReport {
        self.call_within(component, tool, input, sandbox, progress, None).await
    }

    /// [`Self::call`], its HTTP requests limited to `origins` when given.
    pub async fn call_within(
        &self,
        component: &LoadedComponent,
        tool: &str,
        input: &str,
        sandbox: &SandboxTemplate,
        progress: Option<ProgressSink>,
        origins: Option<std::sync::Arc<[String]>>,
    ) -> CallReport {
        let limits = sandbox.limits;
        let admit = self.admission.admit(&sandbox.queue, limits.memory_bytes);
        let Ok(_ticket) = tokio::time::timeout(limits.timeout, admit).await else {
            return CallReport::waited_too_long(tool, &component.sha256, limits, self.admission.budget_mb());
        };
        call::invoke(
            &self.engine,
            &component.pre,
            &component.sha256,
            tool,
            input,
            sandbox,
            call::CallScope { progress, origins },
        )
        .await
    }

    async fn describe(&self, path: &Path, pre: &ToolPre<state::StoreState>) -> Result<Vec<ToolSpec>> {
        let describe_error = |message: String| Error::Describe {
            path: path.to_path_buf(),
            message,
        };
        let stdout = capture::Capture::new(4096);
        let stderr = capture::Capture::new(4096);
        let sandbox = SandboxTemplate::empty();
        let wasi = sandbox
            .wasi_ctx(&stdout, &stderr)
            .map_err(|e| describe_error(e.to_string()))?;
        let state = state::StoreState::new(
            wasi,
            sandbox.egress.hooks(),
            sandbox.limits.memory_bytes,
            "describe",
            None,
        );
        let mut store = call::new_store(&self.engine, state);
        let run = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_describe(&mut store).await
        };
        let raw = tokio::time::timeout(sandbox.limits.timeout, run)
            .await
            .map_err(|_| describe_error("timed out".into()))?
            .map_err(|e| describe_error(format!("{e:#}")))?;
        let mut specs = Vec::with_capacity(raw.len());
        for spec in raw {
            specs.push(validate_spec(path, spec, &specs)?);
        }
        if specs.is_empty() {
            return Err(describe_error("it lists no tools".into()));
        }
        Ok(specs)
    }
}

fn validate_spec(path: &Path, spec: bindings::WitToolSpec, seen: &[ToolSpec]) -> Result<ToolSpec> {
    let invalid = |message: String| Error::InvalidSpec {
        path: path.to_path_buf(),
        message,
    };
    if !is_tool_name(&spec.name) {
        return Err(invalid(format!(
            "`{}` is not a valid tool name ([a-z][a-z0-9_]{{0,63}})",
            spec.name
        )));
    }
    if seen.iter().any(|s| s.name == spec.name) {
        return Err(invalid(format!("tool `{}` is listed twice", spec.name)));
    }
    let input_schema: serde_json::Value = serde_json::from_str(&spec.input_schema)
        .map_err(|e| invalid(format!("the input schema of `{}` is not JSON: {e}", spec.name)))?;
    if !input_schema.is_object() {
        return Err(invalid(format!(
            "the input schema of `{}` is not a JSON object",
            spec.name
        )));
    }
    Ok(ToolSpec {
        name: spec.name,
        description: spec.description,
        input_schema,
    })
}
