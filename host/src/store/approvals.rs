//! Remembered ("always") approvals behind one seam: a book per user, kept
//! in the data directory (`approvals.json`) or, in cluster mode, in the
//! shared store (table `approvals`), so an answer given once holds on
//! every replica.
//!
//! An entry is a [`Grant`]: the tool, its content hash and its grant
//! fingerprint (and, for networked tools, the origins it covers). The
//! approval logic ([`crate::agent::approval`]) decides what a grant
//! covers; this module only keeps them. Answers come from the terminal
//! (`a` at a prompt) or, for service users, from `POST /v1/approvals`.

use crate::agent::approval::ApprovalRequest;
use crate::store::StoreError;
use crate::store::postgres::PgStore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// File name of the remembered approvals inside the data directory.
pub const APPROVALS_FILE: &str = "approvals.json";

/// What one remembered answer covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub tool: String,
    pub sha256: String,
    /// [`crate::agent::approval::grant_fingerprint`]; an entry without one
    /// (older files) covers nothing.
    #[serde(default)]
    pub grant: String,
    /// For a networked tool: the origins covered.
    #[serde(default)]
    pub origins: BTreeSet<String>,
    /// Any host the policy allows (networked tools, an explicit answer).
    #[serde(default)]
    pub any_host: bool,
}

impl Grant {
    /// The grant an answer to `request` gives: for a networked tool, the
    /// origins its input names (or any host).
    pub fn new(request: &ApprovalRequest, any_host: bool) -> Self {
        Self {
            tool: request.tool.clone(),
            sha256: request.tool_hash.clone(),
            grant: request.grant.clone(),
            origins: if request.networked && !any_host {
                request.origins()
            } else {
                BTreeSet::new()
            },
            any_host,
        }
    }

    /// Whether this answer covers `request`; `Some(origins)` its calls are
    /// limited to (empty: no limit beyond the policy).
    pub fn covers(&self, request: &ApprovalRequest) -> Option<BTreeSet<String>> {
        if self.tool != request.tool
            || self.sha256 != request.tool_hash
            || self.grant.is_empty()
            || self.grant != request.grant
        {
            return None;
        }
        if !request.networked || self.any_host {
            return Some(BTreeSet::new());
        }
        let wanted = request.origins();
        (!wanted.is_empty() && wanted.is_subset(&self.origins)).then(|| self.origins.clone())
    }
}

/// A remembered answer as stored, with when it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedApproval {
    /// Names the entry for `DELETE /v1/approvals/{id}`: a row number in
    /// the shared store, a digest of the entry in a file (older files have
    /// no ids; they get theirs when read).
    #[serde(default)]
    pub id: String,
    #[serde(flatten)]
    pub grant: Grant,
    pub granted: String,
}

impl RememberedApproval {
    fn digest_id(&self) -> String {
        use sha2::Digest as _;
        let text = serde_json::to_string(&(&self.grant, &self.granted)).unwrap_or_default();
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..6])
    }
}

/// Where one user's remembered approvals live.
pub enum ApprovalBook {
    /// `approvals.json` in a data directory.
    File(FileBook),
    /// The shared store of cluster mode, for one user.
    Shared { store: PgStore, user: String },
}

impl ApprovalBook {
    /// The book in `data_dir`.
    pub fn in_dir(data_dir: &Path) -> Self {
        ApprovalBook::File(FileBook::load(data_dir.join(APPROVALS_FILE)))
    }

    /// The first remembered answer covering `request` (see [`Grant::covers`]).
    /// An unreachable database covers nothing (the call is then decided as
    /// if nothing were remembered: refused in a service run).
    pub async fn covering(&self, request: &ApprovalRequest) -> Option<BTreeSet<String>> {
        match self {
            ApprovalBook::File(file) => file.covering(request),
            ApprovalBook::Shared { store, user } => {
                match crate::store::postgres::approvals::of_tool(store, user, &request.tool, &request.tool_hash).await {
                    Ok(entries) => entries.iter().find_map(|e| e.grant.covers(request)),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the remembered approvals; asking as if none");
                        None
                    }
                }
            }
        }
    }

    /// Remembers `grant` (now); the stored entry.
    pub async fn remember(&self, grant: Grant) -> Result<RememberedApproval, StoreError> {
        let granted = crate::audit::now();
        match self {
            ApprovalBook::File(file) => file.add(grant, granted).map_err(io_error),
            ApprovalBook::Shared { store, user } => {
                crate::store::postgres::approvals::add(store, user, grant, granted).await
            }
        }
    }

    /// Every remembered answer, oldest first.
    pub async fn list(&self) -> Result<Vec<RememberedApproval>, StoreError> {
        match self {
            ApprovalBook::File(file) => Ok(file.entries()),
            ApprovalBook::Shared { store, user } => crate::store::postgres::approvals::list(store, user).await,
        }
    }

    /// Forgets the entry `id`; `Ok(false)` when there is none.
    pub async fn forget(&self, id: &str) -> Result<bool, StoreError> {
        match self {
            ApprovalBook::File(file) => file.remove(id).map_err(io_error),
            ApprovalBook::Shared { store, user } => crate::store::postgres::approvals::remove(store, user, id).await,
        }
    }
}

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Refused(format!("cannot update {APPROVALS_FILE}: {e}"))
}

/// "Always" answers in one file, replaced atomically under its lock. The
/// entries are cached and read again when the file changed (another
/// process, or the service's API, remembered or forgot one).
pub struct FileBook {
    path: PathBuf,
    cache: Mutex<(Option<SystemTime>, Vec<RememberedApproval>)>,
}

impl FileBook {
    pub fn load(path: PathBuf) -> Self {
        let cache = (modified(&path), read(&path));
        Self {
            path,
            cache: Mutex::new(cache),
        }
    }

    fn entries(&self) -> Vec<RememberedApproval> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = modified(&self.path);
        if now != cache.0 {
            *cache = (now, read(&self.path));
        }
        cache.1.clone()
    }

    fn covering(&self, request: &ApprovalRequest) -> Option<BTreeSet<String>> {
        self.entries().iter().find_map(|e| e.grant.covers(request))
    }

    /// Adds `grant` to what the file holds now (another process may have
    /// remembered answers since this one loaded it: they are kept).
    fn add(&self, grant: Grant, granted: String) -> std::io::Result<RememberedApproval> {
        let mut entry = RememberedApproval {
            id: String::new(),
            grant,
            granted,
        };
        entry.id = entry.digest_id();
        let added = entry.clone();
        self.rewrite(move |entries| entries.push(entry))?;
        Ok(added)
    }

    fn remove(&self, id: &str) -> std::io::Result<bool> {
        let mut found = false;
        self.rewrite(|entries| {
            let before = entries.len();
            entries.retain(|e| e.id != id);
            found = entries.len() != before;
        })?;
        Ok(found)
    }

    /// Reads, changes and replaces the file under its lock.
    fn rewrite(&self, change: impl FnOnce(&mut Vec<RememberedApproval>)) -> std::io::Result<()> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        crate::store::atomic::locked(&self.path, || {
            let mut entries = read(&self.path);
            change(&mut entries);
            let text = serde_json::to_vec_pretty(&entries).map_err(std::io::Error::other)?;
            crate::store::atomic::write(&self.path, &[&text], Some(0o600))?;
            *cache = (modified(&self.path), entries);
            Ok(())
        })
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(path: &Path) -> Vec<RememberedApproval> {
    let mut entries: Vec<RememberedApproval> = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable approvals file");
            Vec::new()
        }),
        Err(_) => Vec::new(),
    };
    for entry in entries.iter_mut().filter(|e| e.id.is_empty()) {
        entry.id = entry.digest_id();
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(tool: &str) -> Grant {
        Grant {
            tool: tool.into(),
            sha256: "ab".into(),
            grant: "g".into(),
            origins: BTreeSet::new(),
            any_host: false,
        }
    }

    #[test]
    fn two_handles_on_one_approvals_file_keep_each_others_answers_issue_16() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(APPROVALS_FILE);
        // Two processes (chat and serve) loaded the file before either answered.
        let (first, second) = (FileBook::load(path.clone()), FileBook::load(path.clone()));
        first.add(grant("write_file"), "t1".into()).expect("add");
        second.add(grant("http_get"), "t2".into()).expect("add");
        let stored: Vec<RememberedApproval> =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let tools: Vec<&str> = stored.iter().map(|e| e.grant.tool.as_str()).collect();
        assert_eq!(tools, ["write_file", "http_get"]);
        // And each handle sees the other's answer without reloading by hand.
        let seen: Vec<String> = first.entries().into_iter().map(|e| e.grant.tool).collect();
        assert_eq!(seen, ["write_file", "http_get"]);
    }

    #[test]
    fn an_entry_of_an_older_file_gets_a_stable_id_and_can_be_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(APPROVALS_FILE);
        // As written before entries had ids.
        std::fs::write(
            &path,
            r#"[{"tool":"write_file","sha256":"ab","grant":"g","granted":"2026-01-01T00:00:00Z"},
                {"tool":"http_get","sha256":"cd","grant":"g","granted":"2026-01-02T00:00:00Z"}]"#,
        )
        .expect("write");
        let book = FileBook::load(path.clone());
        let ids: Vec<String> = book.entries().into_iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        assert_eq!(
            ids,
            FileBook::load(path.clone())
                .entries()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        );
        assert!(book.remove(&ids[0]).expect("remove"));
        assert!(!book.remove(&ids[0]).expect("remove again"));
        let left: Vec<String> = book.entries().into_iter().map(|e| e.grant.tool).collect();
        assert_eq!(left, ["http_get"]);
    }
}
