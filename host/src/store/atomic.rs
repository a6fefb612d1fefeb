//! The one way a whole file of state is replaced: written to a temporary
//! file beside it (a unique name, so two writers never share one), flushed
//! to disk, renamed over the old file, and the directory flushed too. A
//! crash at any point leaves the old file or the new one, never a mix, and
//! a rename that returned survives a power loss.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `parts` written one after another; the new file
/// gets `mode` (e.g. `0o600`) before any byte is written, when given.
/// Parent directories are created as needed.
pub fn write(path: &Path, parts: &[&[u8]], mode: Option<u32>) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        ))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    for part in parts {
        tmp.write_all(part)?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // The rename is durable once the directory entry is.
    std::fs::File::open(dir)?.sync_all()
}

/// Runs `change` holding an exclusive lock on `path` (an advisory `flock`
/// on `<path>.lock`, which is never replaced): a read-modify-write of a
/// state file by two processes (the CLI and the service), or by two
/// handles in one, happens one after the other, so neither loses the
/// other's update.
pub fn locked<T>(path: &Path, change: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::path::PathBuf::from(lock_path))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)?;
    // Closing the file releases the lock, also when `change` panics.
    change()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_with_its_mode_and_no_temporary_left() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/state.json");
        write(&path, &[b"{\"a\":", b"1}"], Some(0o600)).expect("first");
        write(&path, &[b"{\"a\":2}"], Some(0o600)).expect("second");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{\"a\":2}");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<String> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["state.json"], "no temporary file is left");
    }
}
