//! The agent commands: `boram run` (one task, then exit), `boram chat`
//! (interactive) and `boram sessions` (list transcripts). `args` builds the
//! agent from flags, config and environment; `render` draws its events.

pub(crate) mod args;
mod chat;
mod markdown;
mod render;
mod run;
mod sessions;

pub use chat::ChatCommand;
pub use run::RunCommand;
pub use sessions::SessionsCommand;

/// The human-readable event printer of `boram run`.
pub fn render_sink() -> crate::agent::EventSink {
    render::human_sink()
}

/// Cancels `cancel` on every Ctrl-C until the returned guard is dropped.
/// The first Ctrl-C cancels the current turn; the process keeps running.
fn cancel_on_ctrl_c(cancel: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    })
}
