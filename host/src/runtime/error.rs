//! Errors of the runtime itself: fatal for a load or for the host, never
//! caused by what a tool did during a call (those are [`super::Outcome`]s).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    #[error("cannot open the compile cache in {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid component: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("{path} cannot be linked: {message}")]
    Link { path: PathBuf, message: String },
    #[error("{path} did not describe itself: {message}")]
    Describe { path: PathBuf, message: String },
    #[error("{path} describes an invalid tool: {message}")]
    InvalidSpec { path: PathBuf, message: String },
}
