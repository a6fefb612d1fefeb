//! Granted directories, opened once when the sandbox template is built
//! (issue 14).
//!
//! wasmtime-wasi opens a preopen by path at every call. A path can change
//! between two calls — a guest with `rw` on a parent could rename the
//! granted directory away and put a symlink in its place — so each granted
//! directory is opened here once, one path component at a time with
//! `O_NOFOLLOW` (no symlink anywhere along the way), and kept open. Every
//! call then preopens `/proc/self/fd/N`: the kernel resolves that to the
//! very directory this handle holds, whatever has happened to its path since.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// One granted directory held open.
#[derive(Debug, Clone)]
pub struct DirHandle {
    /// The path it was granted under, for messages.
    pub host: PathBuf,
    fd: Arc<OwnedFd>,
}

impl DirHandle {
    /// Opens the directory at absolute `host`, refusing a symlink at any
    /// component (the policy's paths are already resolved, so a symlink
    /// here appeared after the policy was read).
    pub fn open(host: &Path) -> std::io::Result<Self> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY;
        let mut dir = rustix::fs::open("/", flags, Mode::empty())?;
        for component in host.components() {
            match component {
                Component::RootDir => {}
                Component::Normal(name) => {
                    dir = rustix::fs::openat(&dir, name, flags, Mode::empty()).map_err(|e| {
                        std::io::Error::other(format!(
                            "{} (at `{}`: a symlink or not a directory?)",
                            std::io::Error::from(e),
                            name.to_string_lossy()
                        ))
                    })?;
                }
                other => {
                    return Err(std::io::Error::other(format!(
                        "`{}` is not an absolute, resolved path (found `{}`)",
                        host.display(),
                        other.as_os_str().to_string_lossy()
                    )));
                }
            }
        }
        Ok(Self {
            host: host.to_path_buf(),
            fd: Arc::new(dir),
        })
    }

    /// The path that reopens exactly this directory.
    pub fn reopen_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_keeps_the_directory_it_opened_after_a_symlink_swap_issue_14() {
        let dir = tempfile::tempdir().expect("test setup");
        let root = dir.path().canonicalize().expect("test setup");
        std::fs::create_dir_all(root.join("work/data")).expect("test setup");
        std::fs::write(root.join("work/data/mine.txt"), "mine").expect("test setup");
        let handle = DirHandle::open(&root.join("work/data")).expect("test setup");
        // What the guest did: rename the granted directory away, symlink `/` in its place.
        std::fs::rename(root.join("work/data"), root.join("work/moved")).expect("test setup");
        std::os::unix::fs::symlink("/", root.join("work/data")).expect("test setup");
        let seen: Vec<String> = std::fs::read_dir(handle.reopen_path())
            .expect("test setup")
            .map(|e| e.expect("test setup").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(seen, ["mine.txt"]);
        // And a fresh open through the swapped path is refused.
        let err = DirHandle::open(&root.join("work/data")).expect_err("must be refused");
        assert!(err.to_string().contains("symlink"), "{err}");
    }
}
