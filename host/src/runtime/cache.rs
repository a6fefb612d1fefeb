//! On-disk cache of compiled components, so a second start does not
//! recompile every tool.
//!
//! An entry is keyed by the engine's compatibility hash (wasmtime version and
//! every setting that changes code generation) and the component's SHA-256.
//! Loading a compiled artifact is `unsafe` in wasmtime (it is machine code),
//! so each entry carries an HMAC made with a key that only this data
//! directory holds: a file the host did not write itself, or one that was
//! truncated or altered, fails the check and is recompiled, never loaded.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

type HmacSha256 = Hmac<Sha256>;
const TAG_LEN: usize = 32;
const KEY_FILE: &str = "cache.key";

/// Where a loaded component's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactOrigin {
    /// Compiled now (and stored, when the cache is on).
    Compiled,
    /// Loaded from a verified cache entry.
    Cache,
}

/// Counters of cache use since the runtime started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries that failed verification (not written by us, or damaged).
    pub rejected: u64,
}

pub struct CompileCache {
    dir: Option<PathBuf>,
    key: [u8; 32],
    engine_tag: String,
    hits: AtomicU64,
    misses: AtomicU64,
    rejected: AtomicU64,
}

impl CompileCache {
    /// A cache in `dir` (created if needed), or none when `dir` is `None`.
    pub fn open(dir: Option<&Path>, engine: &Engine) -> std::io::Result<Self> {
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_tag = format!("{:016x}", hasher.finish());
        let key = match dir {
            Some(dir) => load_or_create_key(dir)?,
            None => [0; 32],
        };
        Ok(Self {
            dir: dir.map(Path::to_path_buf),
            key,
            engine_tag,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }

    /// Loads the compiled form of `wasm` (whose SHA-256 hex is `sha256`),
    /// or on a miss has `precompile` make the artifact (in this process, or
    /// in a capped compile worker running this same binary) and stores it.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        sha256: &str,
        precompile: impl FnOnce(&[u8]) -> wasmtime::Result<Vec<u8>>,
    ) -> wasmtime::Result<(Component, ArtifactOrigin)> {
        let path = self.entry_path(sha256);
        if let Some(component) = path.as_ref().and_then(|p| self.load_verified(engine, p, sha256)) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((component, ArtifactOrigin::Cache));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let artifact = precompile(wasm)?;
        if let (Some(dir), Some(path)) = (&self.dir, &path)
            && let Err(e) = self.store(dir, path, sha256, &artifact)
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot write compile cache entry");
        }
        // SAFETY: `artifact` was produced just now by this engine's
        // `precompile_component`, or by this same binary's compile worker
        // from the same configuration (wasmtime checks the settings match).
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        Ok((component, ArtifactOrigin::Compiled))
    }

    /// Whether an artifact for component `sha256` is in the cache (not
    /// verified here: a load still checks it). Always `false` without a cache.
    pub fn has_entry(&self, sha256: &str) -> bool {
        self.entry_path(sha256).is_some_and(|p| p.is_file())
    }

    fn entry_path(&self, sha256: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{}-{sha256}.cwasm", self.engine_tag)))
    }

    fn load_verified(&self, engine: &Engine, path: &Path, sha256: &str) -> Option<Component> {
        let bytes = std::fs::read(path).ok()?;
        let verified = bytes.len() > TAG_LEN && {
            let (tag, artifact) = bytes.split_at(TAG_LEN);
            self.mac(sha256, artifact).verify_slice(tag).is_ok()
        };
        if !verified {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(path = %path.display(), "compile cache entry failed verification; recompiling");
            return None;
        }
        // SAFETY: the HMAC proves this host wrote these bytes with
        // `precompile_component`, and wasmtime checks the engine settings.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, &bytes[TAG_LEN..]) };
        loaded
            .inspect_err(|e| tracing::warn!(error = %e, "cached artifact did not load; recompiling"))
            .ok()
    }

    fn store(&self, dir: &Path, path: &Path, sha256: &str, artifact: &[u8]) -> std::io::Result<()> {
        debug_assert!(path.starts_with(dir));
        let tag = self.mac(sha256, artifact).finalize().into_bytes();
        crate::store::atomic::write(path, &[&tag, artifact], Some(0o600))
    }

    /// Records the tool names component `sha256` describes, so commands that
    /// only need names (`policy check`) need not load it. Best effort, and
    /// written once per component hash: a load that finds the entry (every
    /// start, every swap back) writes nothing.
    pub fn remember_names(&self, sha256: &str, names: &[String]) {
        let Some(dir) = &self.dir else { return };
        let path = names_path(dir, sha256);
        if path.exists() {
            return;
        }
        let text = serde_json::to_vec(names).unwrap_or_default();
        if let Err(e) = crate::store::atomic::write(&path, &[&text], None) {
            tracing::debug!(path = %path.display(), error = %e, "cannot write the tool names index");
        }
    }

    /// The MAC binds the artifact to this engine and this component.
    fn mac(&self, sha256: &str, artifact: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(self.engine_tag.as_bytes());
        mac.update(sha256.as_bytes());
        mac.update(artifact);
        mac
    }
}

fn names_path(cache_dir: &Path, sha256: &str) -> PathBuf {
    cache_dir.join("names").join(format!("{sha256}.json"))
}

/// The tool names the component with `sha256` described when it was last
/// loaded with the cache in `cache_dir`; `None` if it never was. The index
/// only names tools (for typo warnings); it is never used to run one.
pub fn remembered_names(cache_dir: &Path, sha256: &str) -> Option<Vec<String>> {
    let text = std::fs::read(names_path(cache_dir, sha256)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Reads the cache's secret key, creating the directory (owner only) and
/// the key (owner read/write only) on first use. A key file anyone else
/// could have read or written — other permission bits, another owner, a
/// symlink — is not trusted: a new key replaces it, so every entry signed
/// with the old one is recompiled rather than loaded.
fn load_or_create_key(dir: &Path) -> std::io::Result<[u8; 32]> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    // The cache directory is the host's alone, even if something else made it.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let path = dir.join(KEY_FILE);
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        let private = meta.file_type().is_file()
            && meta.permissions().mode() & 0o077 == 0
            && meta.uid() == rustix::process::geteuid().as_raw();
        if private
            && let Ok(bytes) = std::fs::read(&path)
            && let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice())
        {
            return Ok(key);
        }
        if !private {
            tracing::warn!(path = %path.display(), "compile cache key is readable or writable by others; replacing it");
            std::fs::remove_file(&path)?;
        }
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    crate::store::atomic::write(&path, &[&key], Some(0o600))?;
    Ok(key)
}
