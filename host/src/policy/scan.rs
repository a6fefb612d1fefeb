//! A look inside the granted directories when a policy is loaded (issue 14).
//!
//! Two things a policy cannot see from its paths alone. A FIFO, device or
//! socket inside a grant: opening a FIFO blocks the host thread that opens
//! it until a writer comes, past the tool's timeout, and enough of them
//! starve every tool's file calls — so a grant holding one is refused (WASI
//! cannot create them, so a tool never makes one itself). And a regular
//! file with more than one hard link inside a `rw` grant may be the same
//! file as one outside it, so a write reaches outside: a warning, since the
//! host cannot tell where the other link is.
//!
//! The walk never follows symlinks and stops after [`MAX_SCANNED_ENTRIES`]
//! entries per grant (with a warning), so a huge tree costs a bounded time.

use super::model::{Access, Policy};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Entries looked at per granted directory before the scan gives up.
pub const MAX_SCANNED_ENTRIES: usize = 100_000;

/// What the scan of one policy found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Special files: each one refuses the policy.
    pub errors: Vec<String>,
    /// Hard-linked files in `rw` grants, and scans cut short.
    pub warnings: Vec<String>,
}

/// Walks every granted directory of `policy` once.
pub fn scan_grants(policy: &Policy) -> ScanReport {
    let mut report = ScanReport::default();
    let mut scanned: Vec<(&Path, Access)> = Vec::new();
    for (tool, tool_policy) in &policy.tools {
        for grant in &tool_policy.fs {
            if scanned.contains(&(grant.host.as_path(), grant.access)) {
                continue;
            }
            scanned.push((grant.host.as_path(), grant.access));
            let place = format!("{}:{}: [tools.{tool}]", policy.display_source(), grant.line);
            scan_one(&grant.host, grant.access, &place, &mut report);
        }
    }
    report
}

fn scan_one(root: &Path, access: Access, place: &str, report: &mut ScanReport) {
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_SCANNED_ENTRIES {
                report.warnings.push(format!(
                    "{place} stopped looking inside {} after {MAX_SCANNED_ENTRIES} entries; \
                     special files or hard links further in were not checked",
                    root.display()
                ));
                return;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let kind = meta.file_type();
            if kind.is_dir() {
                pending.push(path);
            } else if let Some(what) = special_kind(&kind) {
                report.errors.push(format!(
                    "{place} granted directory {} holds {what} {}: opening it would block the host; \
                     remove it or grant a directory without it",
                    root.display(),
                    path.display()
                ));
            } else if kind.is_file() && meta.nlink() > 1 && access == Access::ReadWrite {
                report.warnings.push(format!(
                    "{place} {} has {} hard links: if one lies outside {}, writes through the grant reach it",
                    path.display(),
                    meta.nlink(),
                    root.display()
                ));
            }
        }
    }
}

fn special_kind(kind: &std::fs::FileType) -> Option<&'static str> {
    if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() || kind.is_block_device() {
        Some("a device")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_over(root: &Path, access: &str) -> Policy {
        let text =
            format!("version = 1\n[tools.t]\nfs = [{{ host = \"g\", guest = \"/g\", access = \"{access}\" }}]\n");
        Policy::parse(&text, "p.toml", root).expect("policy")
    }

    #[test]
    fn a_fifo_in_a_grant_is_an_error_and_a_hard_link_in_rw_a_warning_issue_14() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("g/deep")).expect("mkdir");
        std::fs::write(root.join("outside.txt"), "outside").expect("write");
        std::fs::hard_link(root.join("outside.txt"), root.join("g/link.txt")).expect("link");
        let clean = scan_grants(&policy_over(root, "ro"));
        assert_eq!(clean, ScanReport::default(), "a hard link in a ro grant is harmless");
        let rw = scan_grants(&policy_over(root, "rw"));
        assert!(rw.errors.is_empty());
        assert_eq!(rw.warnings.len(), 1);
        assert!(
            rw.warnings[0].contains("link.txt has 2 hard links"),
            "{:?}",
            rw.warnings
        );

        let status = std::process::Command::new("mkfifo")
            .arg(root.join("g/deep/pipe"))
            .status()
            .expect("mkfifo");
        assert!(status.success());
        let fifo = scan_grants(&policy_over(root, "ro"));
        assert_eq!(fifo.errors.len(), 1);
        assert!(
            fifo.errors[0].starts_with("p.toml:3: [tools.t] granted directory"),
            "{}",
            fifo.errors[0]
        );
        assert!(fifo.errors[0].contains("holds a FIFO"), "{}", fifo.errors[0]);
    }
}
