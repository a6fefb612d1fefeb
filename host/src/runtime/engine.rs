//! The one wasmtime `Engine` every tool runs on, and the thread that
//! advances its epoch so running calls can be interrupted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. Every tick a running guest yields to the
/// async executor, which is where a timed-out call gets cancelled; 5 ms
/// keeps timeouts precise at a negligible cost.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Instances the pooling allocator keeps slots for. Calls beyond this many
/// at once fail to instantiate (and report it), they do not crash.
pub const POOL_INSTANCES: u32 = 128;
/// Largest linear memory a pooled slot can hold: the policy maximum (4 GiB).
const POOL_MAX_MEMORY: usize = 4 << 30;

/// Slots returned to the pool before their memory is decommitted in one go:
/// 1, so a call's memory goes back to the system as soon as it ends.
/// (Batches of 16 saved ~6 µs a call but left up to 15 finished calls'
/// memory resident: 2.5 GB after 20 calls at `memory_mb = 512`.)
const DECOMMIT_BATCH: usize = 1;

/// Which instance allocator the engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocator {
    /// Pre-reserved slots: fastest instantiation.
    Pooling,
    /// Memory mapped per instance: used when pooling cannot reserve its slots.
    OnDemand,
}

/// Builds the engine: component model, epoch interruption, pooling allocator
/// when the machine lets it reserve the address space, on-demand otherwise.
pub fn build_engine(prefer_pooling: bool) -> wasmtime::Result<(Engine, Allocator)> {
    if prefer_pooling {
        let mut config = base_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config()));
        match Engine::new(&config) {
            Ok(engine) => return Ok((engine, Allocator::Pooling)),
            Err(e) => tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation"),
        }
    }
    Ok((Engine::new(&base_config())?, Allocator::OnDemand))
}

/// The compile worker's engine: the same code generation, on-demand
/// allocation (a capped address space cannot hold the pool), and one
/// compiler thread — under the memory cap a failed allocation then ends the
/// worker at once, where a helper thread dying could leave the others
/// waiting for it.
pub fn build_compile_engine() -> wasmtime::Result<Engine> {
    let mut config = base_config();
    config.parallel_compilation(false);
    Engine::new(&config)
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config
}

fn pooling_config() -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES);
    pool.total_core_instances(POOL_INSTANCES * 4);
    pool.total_memories(POOL_INSTANCES * 2);
    pool.total_tables(POOL_INSTANCES * 4);
    pool.max_memory_size(POOL_MAX_MEMORY);
    // Returning a slot to the pool costs an madvise and, on a multi-core
    // machine, a TLB shootdown; see DECOMMIT_BATCH for why it is not batched.
    // Nothing is kept resident between calls (the default, said here).
    pool.decommit_batch_size(DECOMMIT_BATCH);
    pool.linear_memory_keep_resident(0);
    pool.table_keep_resident(0);
    pool
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("boram-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
