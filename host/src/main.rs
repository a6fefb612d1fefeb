//! The `boram` binary; everything lives in [`boram_host::cli`].

fn main() -> std::process::ExitCode {
    restore_default_sigpipe();
    boram_host::cli::main()
}

/// Rust ignores SIGPIPE, so `boram tool inspect x.wasm | head` would panic
/// on the closed pipe; a command-line tool should just stop, as `cat` does.
#[allow(unsafe_code)]
fn restore_default_sigpipe() {
    // SAFETY: called first thing in main, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
