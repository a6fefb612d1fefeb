//! The `boram` binary; everything lives in [`boram_host::cli`].

fn main() -> std::process::ExitCode {
    boram_host::cli::main()
}
