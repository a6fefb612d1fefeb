//! Options every command shares, resolved into the [`App`] that opens the
//! runtime, registry and tool host.

use crate::app::App;
use crate::config;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Policy file granting tools their capabilities. Without one, every tool
    /// runs with no capabilities at all (the built-in deny-all policy).
    #[arg(long, global = true, env = config::POLICY_ENV, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Directory of tool components (`*.wasm`). Default: `./tools` if it holds
    /// components, else the `tools/` of the checkout `boram` was built from.
    #[arg(long, global = true, env = config::TOOLS_DIR_ENV, value_name = "DIR")]
    pub tools_dir: Option<PathBuf>,

    /// Data directory: audit log, compile cache. Default: ~/.local/share/boram.
    #[arg(long, global = true, env = config::DATA_DIR_ENV, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Compile every component instead of using the compile cache.
    #[arg(long, global = true)]
    pub no_cache: bool,

    /// Sum of the memory limits (`memory_mb`) of tool calls running at
    /// once, in MiB; calls past it wait their turn. Default: 4096.
    #[arg(long, global = true, env = config::MEMORY_BUDGET_ENV, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub memory_budget_mb: Option<u64>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). `RUST_LOG` also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Write logs as JSON lines (still on stderr).
    #[arg(long, global = true)]
    pub log_json: bool,
}

impl GlobalArgs {
    pub fn init_tracing(&self) {
        let default = match self.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
        // Colour only on a terminal: a log file or pipe gets plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(|| crate::scrub::ScrubbedStderr);
        if self.log_json {
            builder.json().init()
        } else {
            builder.init()
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(config::default_data_dir)
    }

    pub fn tools_dir(&self) -> PathBuf {
        self.tools_dir.clone().unwrap_or_else(config::default_tools_dir)
    }

    /// The app these flags resolve to, for a command whose config file is
    /// `config` (`None`: `BORAM_CONFIG` or the default one, when it exists).
    pub fn app(&self, config: Option<&Path>) -> App {
        App {
            data_dir: self.data_dir(),
            tools_dir: self.tools_dir(),
            policy: self.policy.clone(),
            config: config.map(Path::to_path_buf),
            no_cache: self.no_cache,
            memory_budget_mb: self.memory_budget_mb,
        }
    }
}
