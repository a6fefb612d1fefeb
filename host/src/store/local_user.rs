//! The local user's state lives in the data directory itself: the CLI
//! (`boram run`, `chat`, `memory`), `boram schedule` without `--user` and
//! a `boram serve` without `[[serve.users]]` are one user, `local`, so a
//! note saved with `boram memory save` is found by a service run and a
//! session a schedule started is resumed by `chat --resume` (issue 17).
//!
//! Earlier builds kept the service's and the schedules' `local` user apart
//! in `DATA/users/local/`. [`adopt_legacy_dir`] moves that directory's
//! state into the data directory on the first open, once, under a lock:
//! transcripts are moved (a name taken in both is kept aside and named),
//! memory notes and recorded failures are copied into the data directory's
//! `memory.db`, usage and audit lines are appended to its logs, and a
//! schedules or approvals file is moved when the data directory has none.
//! What could not be merged stays where it was, and the returned notes
//! say what and where.

use crate::config::LOCAL_USER;
use std::path::{Path, PathBuf};

/// The directory earlier builds used for the `local` user.
pub fn legacy_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("users").join(LOCAL_USER)
}

/// Moves `DATA/users/local/` into `DATA` (see the module comment). Returns
/// one line per thing moved or left behind, for the log; nothing when
/// there was nothing to adopt.
pub fn adopt_legacy_dir(data_dir: &Path) -> std::io::Result<Vec<String>> {
    let legacy = legacy_dir(data_dir);
    if !legacy.is_dir() {
        return Ok(Vec::new());
    }
    crate::store::atomic::locked(&data_dir.join("users").join(".local-adoption"), || {
        // A second process waited on the lock while the first adopted it.
        if !legacy.is_dir() {
            return Ok(Vec::new());
        }
        let mut notes = Vec::new();
        adopt_sessions(&legacy, data_dir, &mut notes)?;
        adopt_memory(&legacy, data_dir, &mut notes)?;
        for log in [crate::config::USAGE_FILE, crate::audit::AUDIT_FILE] {
            append_log(&legacy.join(log), &data_dir.join(log), &mut notes)?;
        }
        for file in [crate::schedule::FILE, crate::agent::approval::APPROVALS_FILE] {
            move_if_absent(&legacy.join(file), &data_dir.join(file), &mut notes)?;
        }
        remove_leftover_locks(&legacy);
        match std::fs::remove_dir(&legacy) {
            Ok(()) => notes.push(format!(
                "{} is merged into {} and removed",
                legacy.display(),
                data_dir.display()
            )),
            Err(_) => notes.push(format!(
                "{} still holds files that could not be merged (listed above); nothing reads them now",
                legacy.display()
            )),
        }
        Ok(notes)
    })
}

fn adopt_sessions(legacy: &Path, data_dir: &Path, notes: &mut Vec<String>) -> std::io::Result<()> {
    let from = crate::config::sessions_dir(legacy);
    let Ok(entries) = std::fs::read_dir(&from) else {
        return Ok(());
    };
    let to = crate::config::sessions_dir(data_dir);
    std::fs::create_dir_all(&to)?;
    let (mut moved, mut kept) = (0, 0);
    for entry in entries.flatten() {
        let target = to.join(entry.file_name());
        if target.exists() {
            kept += 1;
            notes.push(format!(
                "{} is kept where it is: {} exists",
                entry.path().display(),
                target.display()
            ));
        } else {
            std::fs::rename(entry.path(), &target)?;
            moved += 1;
        }
    }
    if moved > 0 {
        notes.push(format!("{moved} session file(s) moved to {}", to.display()));
    }
    if kept == 0 {
        let _ = std::fs::remove_dir(&from);
    }
    Ok(())
}

/// Copies every note and failure of the legacy `memory.db` into the data
/// directory's (created if missing), in one transaction, then removes the
/// legacy database.
fn adopt_memory(legacy: &Path, data_dir: &Path, notes: &mut Vec<String>) -> std::io::Result<()> {
    let from = legacy.join(crate::memory::MEMORY_FILE);
    if !from.is_file() {
        return Ok(());
    }
    let sql_err = |e: rusqlite::Error| std::io::Error::other(format!("merging {}: {e}", from.display()));
    // Creates the tables (and the full-text triggers that index copied rows).
    drop(crate::memory::MemoryStore::open(data_dir).map_err(|e| std::io::Error::other(e.to_string()))?);
    let conn = rusqlite::Connection::open(data_dir.join(crate::memory::MEMORY_FILE)).map_err(sql_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql_err)?;
    conn.execute("ATTACH DATABASE ?1 AS legacy", [from.to_string_lossy()])
        .map_err(sql_err)?;
    let has_table = |name: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT count(*) FROM legacy.sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    let (has_notes, has_failures) = (
        has_table("notes").map_err(sql_err)?,
        has_table("failures").map_err(sql_err)?,
    );
    let tx = conn.unchecked_transaction().map_err(sql_err)?;
    let copied_notes = if has_notes {
        tx.execute(
            "INSERT INTO main.notes (text, tags, created) SELECT text, tags, created FROM legacy.notes ORDER BY id",
            [],
        )
        .map_err(sql_err)?
    } else {
        0
    };
    let copied_failures = if has_failures {
        tx.execute(
            "INSERT INTO main.failures (time, session, tool, input_digest, input, kind, message, fixed_by)
             SELECT time, session, tool, input_digest, input, kind, message, fixed_by FROM legacy.failures ORDER BY id",
            [],
        )
        .map_err(sql_err)?
    } else {
        0
    };
    tx.commit().map_err(sql_err)?;
    conn.execute("DETACH DATABASE legacy", []).map_err(sql_err)?;
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let mut path = from.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
    notes.push(format!(
        "{copied_notes} memory note(s) and {copied_failures} recorded failure(s) copied into {}",
        data_dir.join(crate::memory::MEMORY_FILE).display()
    ));
    Ok(())
}

/// Appends the legacy log's whole lines to `to` (or moves it when `to` is
/// missing). A torn last line of the legacy log is dropped, as opening it
/// would.
fn append_log(from: &Path, to: &Path, notes: &mut Vec<String>) -> std::io::Result<()> {
    if !from.is_file() {
        return Ok(());
    }
    if !to.exists() {
        return std::fs::rename(from, to);
    }
    let text = std::fs::read(from)?;
    let whole = match text.iter().rposition(|&b| b == b'\n') {
        Some(end) => &text[..=end],
        None => &[][..],
    };
    // Opening repairs a torn tail of the target, so the lines start on a line.
    drop(crate::audit::JsonlFile::open(to)?);
    let lines = whole.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(to)?.write_all(whole)?;
    std::fs::remove_file(from)?;
    notes.push(format!(
        "{lines} line(s) of {} appended to {}",
        from.display(),
        to.display()
    ));
    Ok(())
}

fn move_if_absent(from: &Path, to: &Path, notes: &mut Vec<String>) -> std::io::Result<()> {
    if !from.is_file() {
        return Ok(());
    }
    if to.exists() {
        notes.push(format!(
            "{} is kept where it is: {} exists",
            from.display(),
            to.display()
        ));
        return Ok(());
    }
    std::fs::rename(from, to)
}

/// `*.lock` files are only ever locked, never read: they go with the rest.
fn remove_leftover_locks(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().extension().is_some_and(|x| x == "lock") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note_texts(data_dir: &Path) -> Vec<String> {
        let conn = rusqlite::Connection::open(data_dir.join(crate::memory::MEMORY_FILE)).expect("open");
        let mut stmt = conn.prepare("SELECT text FROM notes ORDER BY id").expect("prepare");
        stmt.query_map([], |row| row.get(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    }

    #[test]
    fn the_legacy_local_user_is_merged_into_the_data_directory_once_issue_17() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path();
        let legacy = legacy_dir(data);
        // The CLI's own state…
        let cli_memory = crate::memory::MemoryStore::open(data).expect("cli memory");
        cli_memory.save("CLI note", &[]).expect("save");
        drop(cli_memory);
        std::fs::create_dir_all(crate::config::sessions_dir(data)).expect("mkdir");
        std::fs::write(crate::config::sessions_dir(data).join("both.jsonl"), "{\"cli\":1}\n").expect("write");
        std::fs::write(data.join(crate::config::USAGE_FILE), "{\"u\":1}\n").expect("write");
        // …and the service's `local` user of an earlier build.
        let service_memory = crate::memory::MemoryStore::open(&legacy).expect("legacy memory");
        service_memory
            .save("프로젝트 마감일은 3월 1일이야", &["일정".into()])
            .expect("save");
        drop(service_memory);
        std::fs::create_dir_all(crate::config::sessions_dir(&legacy)).expect("mkdir");
        std::fs::write(
            crate::config::sessions_dir(&legacy).join("run-1.jsonl"),
            "{\"svc\":1}\n",
        )
        .expect("write");
        std::fs::write(crate::config::sessions_dir(&legacy).join("both.jsonl"), "{\"svc\":2}\n").expect("write");
        // The last usage line is torn (a crash mid-write): it is not carried over.
        std::fs::write(legacy.join(crate::config::USAGE_FILE), "{\"u\":2}\n{\"u\":").expect("write");
        std::fs::write(legacy.join(crate::schedule::FILE), "[]").expect("write");

        let notes = adopt_legacy_dir(data).expect("adopt");

        assert_eq!(note_texts(data), ["CLI note", "프로젝트 마감일은 3월 1일이야"]);
        let found = crate::memory::MemoryStore::open(data)
            .expect("open")
            .search("마감일은", 5)
            .expect("search");
        assert_eq!(found.len(), 1, "the copied note is in the full-text index");
        assert_eq!(
            std::fs::read_to_string(crate::config::sessions_dir(data).join("run-1.jsonl")).expect("moved"),
            "{\"svc\":1}\n"
        );
        assert_eq!(
            std::fs::read_to_string(crate::config::sessions_dir(data).join("both.jsonl")).expect("kept"),
            "{\"cli\":1}\n",
            "a name taken in both is never overwritten"
        );
        assert_eq!(
            std::fs::read_to_string(data.join(crate::config::USAGE_FILE)).expect("usage"),
            "{\"u\":1}\n{\"u\":2}\n"
        );
        assert!(data.join(crate::schedule::FILE).is_file());
        assert!(
            notes.iter().any(|n| n.contains("both.jsonl is kept where it is")),
            "{notes:?}"
        );
        let left: Vec<String> = walk(&legacy);
        assert_eq!(left, ["sessions/both.jsonl"], "only the clashing transcript stays");

        // A second open finds nothing new to do and copies nothing twice.
        std::fs::remove_file(crate::config::sessions_dir(&legacy).join("both.jsonl")).expect("rm");
        let again = adopt_legacy_dir(data).expect("again");
        assert_eq!(note_texts(data).len(), 2);
        assert!(!legacy.exists(), "{again:?}");
        assert!(adopt_legacy_dir(data).expect("third").is_empty());
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() {
                out.extend(walk(&entry.path()).into_iter().map(|n| format!("{name}/{n}")));
            } else {
                out.push(name);
            }
        }
        out.sort();
        out
    }
}
