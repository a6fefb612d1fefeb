//! Session transcripts: `sessions/<id>.jsonl` in the data directory, one
//! record per event, appended as it happens (a crash loses at most the line
//! being written, and that torn line is cut off when the file is reopened).
//! The transcript keeps everything — compaction only adds a record saying
//! which messages the working conversation replaced — so a session can be
//! resumed exactly and audited later. Rebuilding the conversation from the
//! records is the agent's job ([`crate::agent::Agent::resume`]).

use crate::audit::{JsonlFile, now};
use crate::llm::{Message, Usage};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub mod index;

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Started {
        time: String,
        id: String,
        provider: String,
        model: String,
        /// The session of the agent that delegated this one (`delegate`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<String>,
    },
    /// A message added to the conversation (user prompt, assistant reply, tool results).
    Message {
        time: String,
        message: Message,
    },
    Usage {
        time: String,
        usage: Usage,
        cost_usd: Option<f64>,
    },
    Approval {
        time: String,
        tool: String,
        decision: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Tool call `id` passed its approval and is about to run. Written
    /// before the call starts, so on resume a call with this record and no
    /// result is known to have maybe run (its side effects are unknown).
    ToolStarted {
        time: String,
        id: String,
        tool: String,
    },
    /// Tool call `id` ended with this result (written as each call ends,
    /// before the round's results message): on resume a finished call's
    /// real result is given to the model, and the call is not run again.
    ToolFinished {
        time: String,
        id: String,
        tool: String,
        content: String,
        is_error: bool,
    },
    /// The first `replaced` messages of the working conversation were replaced by `summary`.
    Compaction {
        time: String,
        replaced: usize,
        summary: String,
    },
    TurnEnded {
        time: String,
        stop: String,
        rounds: u32,
    },
    /// Before a compaction the model saved this many notes to memory.
    NotesSaved {
        time: String,
        notes: usize,
    },
    /// A sub-agent ran (`delegate`): its transcript is session `session`;
    /// its cost counts towards this session's.
    Delegation {
        time: String,
        profile: String,
        session: String,
        stop: String,
        #[serde(default)]
        usage: Usage,
        cost_usd: f64,
    },
}

/// Which session an agent writes.
pub enum SessionChoice<'a> {
    /// A new one in the place's data directory.
    New,
    /// `--resume ID` (or `last`): continue one from the data directory.
    Resume(&'a str),
    /// This one, opened by the caller, with the records it holds.
    Given { session: Session, records: Vec<Record> },
}

/// An open transcript, appended to as the session runs.
#[derive(Debug)]
pub struct Session {
    id: String,
    journal: Journal,
}

/// Where a transcript is written.
#[derive(Debug)]
enum Journal {
    /// `sessions/<id>.jsonl` in the data directory: appends are handed to
    /// the file's writer thread; [`Session::sync`] waits for them.
    File(JsonlFile),
    /// The shared store (cluster mode): appends are queued to a writer
    /// task; [`Session::sync`] waits for them.
    Shared(crate::store::appender::Appender),
}

impl Session {
    /// Starts a new transcript in `dir` with a fresh id.
    pub fn create(dir: &Path, provider: &str, model: &str) -> std::io::Result<Self> {
        Self::create_with_parent(dir, provider, model, None)
    }

    /// [`Self::create`] for a sub-agent of session `parent`: `--resume
    /// last` never picks it.
    pub fn create_with_parent(dir: &Path, provider: &str, model: &str, parent: Option<&str>) -> std::io::Result<Self> {
        let (id, path) = claim_new_id(dir)?;
        let session = Self {
            journal: Journal::File(JsonlFile::open_exclusive(&path)?),
            id: id.clone(),
        };
        session.write_start(provider, model, parent)?;
        Ok(session)
    }

    /// Reopens a transcript to continue it; returns it with its records.
    pub fn open(dir: &Path, id: &str) -> std::io::Result<(Self, Vec<Record>)> {
        let path = dir.join(format!("{id}.jsonl"));
        if !path.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no session `{id}` in {} (see `boram sessions list`)", dir.display()),
            ));
        }
        // One writer per transcript: a second process appending would
        // interleave its turns with ours (and its open would cut our tail).
        let file = JsonlFile::open_exclusive(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    format!(
                        "session `{id}` is open in another boram process; quit it there first \
                         (one process at a time may continue a session)"
                    ),
                )
            } else {
                e
            }
        })?;
        let records = read_records(&path)?;
        Ok((
            Self {
                id: id.to_string(),
                journal: Journal::File(file),
            },
            records,
        ))
    }

    /// The transcript `<id>.jsonl` in `dir` for a queued run, whose id was
    /// chosen when it was queued: created if it is not there yet (its
    /// records empty), else reopened with its records to resume it. One
    /// writer at a time, as [`Self::open`].
    pub fn claim_file(dir: &Path, id: &str) -> std::io::Result<(Self, Vec<Record>)> {
        if !is_session_id(id) {
            return Err(std::io::Error::other(format!("`{id}` cannot name a session")));
        }
        std::fs::create_dir_all(dir)?;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(session_path(dir, id))
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        Self::open(dir, id)
    }

    /// A session whose transcript is in the shared store, written through
    /// `appender` (which numbers the records after those already there).
    pub fn shared(id: &str, appender: crate::store::appender::Appender) -> Self {
        Self {
            id: id.to_string(),
            journal: Journal::Shared(appender),
        }
    }

    /// A new session's first record (for a [`Session::shared`] one, whose
    /// row was made when its run was queued).
    pub fn start(&self, provider: &str, model: &str) -> std::io::Result<()> {
        self.write_start(provider, model, None)
    }

    fn write_start(&self, provider: &str, model: &str, parent: Option<&str>) -> std::io::Result<()> {
        self.append(Record::Started {
            time: now(),
            id: self.id.clone(),
            provider: provider.to_string(),
            model: model.to_string(),
            parent: parent.map(str::to_string),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The transcript file, for a session kept in the data directory.
    pub fn file_path(&self) -> Option<&Path> {
        match &self.journal {
            Journal::File(file) => Some(file.path()),
            Journal::Shared(_) => None,
        }
    }

    /// Where the transcript is, for messages.
    pub fn location(&self) -> String {
        match &self.journal {
            Journal::File(file) => file.path().display().to_string(),
            Journal::Shared(_) => format!("session {} in the shared store", self.id),
        }
    }

    pub fn append(&self, record: Record) -> std::io::Result<()> {
        match &self.journal {
            Journal::File(file) => file.append(&record),
            Journal::Shared(appender) => {
                // The same secret scrubbing as every JSONL file gets.
                let text = serde_json::to_string(&record)?;
                let value = serde_json::from_str(&crate::scrub::scrub(&text))?;
                appender.append(value).map(|_| ())
            }
        }
    }

    /// Waits until every record appended so far is durable: a crash after
    /// this finds them when the session is resumed. Fails when they never
    /// will be (a shared run's lease was lost): the caller must stop.
    pub async fn sync(&self) -> std::io::Result<()> {
        match &self.journal {
            Journal::File(file) => file.flush().await,
            Journal::Shared(appender) => appender.sync().await,
        }
    }

    pub fn message(&self, message: &Message) -> std::io::Result<()> {
        self.append(Record::Message {
            time: now(),
            message: message.clone(),
        })
    }
}

/// Every readable record of a transcript; an unreadable line (from a newer
/// version, or damaged) is skipped with a warning rather than losing the
/// rest, and bytes that are not UTF-8 (a crash that cut a character) read
/// as U+FFFD instead of failing the whole file.
pub fn read_records(path: &Path) -> std::io::Result<Vec<Record>> {
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        match serde_json::from_str(line) {
            Ok(record) => records.push(record),
            Err(e) => {
                tracing::warn!(file = %path.display(), line = n + 1, error = %e, "skipping an unreadable transcript line")
            }
        }
    }
    Ok(records)
}

/// A line of `boram sessions list`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionSummary {
    pub id: String,
    pub started: String,
    pub model: String,
    /// Prompts typed by the user.
    pub prompts: usize,
    /// The first prompt, shortened.
    pub title: String,
    pub cost_usd: f64,
    /// The delegating session, for a sub-agent's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The `boram serve` user whose directory holds it (`None`: the CLI's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// Every session in `dir`, oldest first (ids sort by time).
pub fn list(dir: &Path) -> std::io::Result<Vec<SessionSummary>> {
    list_newest(dir, usize::MAX)
}

/// The `n` newest sessions in `dir` (by id, which sorts by start time),
/// oldest first. Only the directory and the files' metadata are read for
/// the rest; their lines come from the sessions index ([`index`]), and a
/// transcript is read only when it changed since it was indexed.
pub fn list_newest(dir: &Path, n: usize) -> std::io::Result<Vec<SessionSummary>> {
    let mut ids: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".jsonl").map(str::to_string)
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    ids.sort();
    let skip = ids.len().saturating_sub(n);
    let complete = skip == 0;
    Ok(index::summaries(dir, ids.split_off(skip), complete))
}

fn summarize(path: &Path, id: String) -> std::io::Result<SessionSummary> {
    Ok(summarize_records(id, read_records(path)?))
}

/// A session's listing line from its records (wherever they are kept).
pub fn summarize_records(id: String, records: Vec<Record>) -> SessionSummary {
    let mut summary = SessionSummary {
        id,
        started: String::new(),
        model: String::new(),
        prompts: 0,
        title: String::new(),
        cost_usd: 0.0,
        parent: None,
        user: None,
    };
    for record in records {
        match record {
            Record::Started {
                time, model, parent, ..
            } => {
                summary.started = time;
                summary.model = model;
                summary.parent = parent;
            }
            Record::Message { message, .. } if message.role == crate::llm::Role::User && !message.is_tool_results() => {
                if summary.prompts == 0 {
                    summary.title = shorten(&message.text(), 60);
                }
                summary.prompts += 1;
            }
            Record::Usage { cost_usd, .. } => summary.cost_usd += cost_usd.unwrap_or(0.0),
            Record::Delegation { cost_usd, .. } => summary.cost_usd += cost_usd,
            _ => {}
        }
    }
    summary
}

/// Whether `id` can name a session: letters, digits, `-` and `_` only, so
/// it can never reach outside the sessions directory.
pub fn is_session_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 100 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `last` means the newest session; anything else is an id.
pub fn resolve_id(dir: &Path, wanted: &str) -> std::io::Result<String> {
    if wanted != "last" {
        return Ok(wanted.to_string());
    }
    // The top-level session written to last — not the highest id (a clock
    // set back makes older-looking ids), and never a sub-agent's.
    let modified = |id: &str| {
        std::fs::metadata(dir.join(format!("{id}.jsonl")))
            .and_then(|m| m.modified())
            .ok()
    };
    let last = list(dir)?
        .into_iter()
        .filter(|s| s.parent.is_none())
        .max_by_key(|s| (modified(&s.id), s.id.clone()));
    last.map(|s| s.id).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("there is no session to resume in {}", dir.display()),
        )
    })
}

/// `20261121-153012-a1b2`: sorts by start time; the random tail keeps two
/// sessions started in the same second apart.
/// A fresh id whose transcript file this call created (`create_new`, so
/// two sessions started in the same second with the same random suffix
/// never share a file: the second one draws again).
fn claim_new_id(dir: &Path) -> std::io::Result<(String, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let mut last = None;
    for _ in 0..64 {
        let id = new_id();
        let path = session_path(dir, &id);
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(_) => return Ok((id, path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free session id")))
}

fn new_id() -> String {
    format!("{}-{:04x}", id_stamp(), fastrand::u16(..))
}

/// A session id made by one of many replicas at once (a queued run's):
/// 32 random bits instead of 16, so thousands a second do not collide.
pub fn new_shared_id() -> String {
    format!("{}-{:08x}", id_stamp(), fastrand::u32(..))
}

/// `YYYYMMDD-HHMMSS` in UTC: ids sort by time.
fn id_stamp() -> String {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
    let (date, time) = digits.split_at(8.min(digits.len()));
    format!("{date}-{time}")
}

fn shorten(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max {
        return line.to_string();
    }
    let cut: String = line.chars().take(max - 1).collect();
    format!("{cut}…")
}

/// Every directory of transcripts under `data_dir`: the local user's (the
/// CLI, its schedules, a service without configured users) and each
/// configured `boram serve` user's, so that every session id `boram`
/// prints can be listed and resumed.
pub fn all_dirs(data_dir: &Path) -> Vec<(Option<String>, PathBuf)> {
    let mut dirs = vec![(
        Some(crate::config::LOCAL_USER.to_string()),
        crate::config::sessions_dir(data_dir),
    )];
    if let Ok(users) = std::fs::read_dir(data_dir.join("users")) {
        let mut users: Vec<(Option<String>, PathBuf)> = users
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let dir = crate::config::sessions_dir(&e.path());
                dir.is_dir().then_some((Some(name), dir))
            })
            .collect();
        users.sort();
        dirs.extend(users);
    }
    dirs
}

/// The directory under `data_dir` that holds session `id`: the CLI's own
/// first, then the service users'.
pub fn find_dir(data_dir: &Path, id: &str) -> Option<PathBuf> {
    all_dirs(data_dir)
        .into_iter()
        .map(|(_, dir)| dir)
        .find(|dir| dir.join(format!("{id}.jsonl")).is_file())
}

/// The transcript directory's path, for messages.
pub fn session_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.jsonl"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_listed_with_its_first_prompt_and_cost() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sessions");
        let session = Session::create(&dir, "anthropic", "m").expect("create");
        session.message(&Message::user_text("hello there")).expect("append");
        session
            .append(Record::Usage {
                time: now(),
                usage: Usage::default(),
                cost_usd: Some(0.25),
            })
            .expect("append");
        let listed = list(&dir).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].title, "hello there");
        assert_eq!(listed[0].prompts, 1);
        assert_eq!(listed[0].cost_usd, 0.25);
        assert_eq!(resolve_id(&dir, "last").expect("last"), session.id());
    }

    #[test]
    fn sessions_started_in_the_same_second_never_share_a_transcript_issue_16() {
        // A busy service starts many runs a second; ids have 16 random bits.
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sessions");
        let sessions: Vec<Session> = (0..2000)
            .map(|_| Session::create(&dir, "anthropic", "m").expect("create"))
            .collect();
        let ids: std::collections::BTreeSet<&str> = sessions.iter().map(|s| s.id()).collect();
        assert_eq!(ids.len(), 2000);
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 2000);
    }

    #[test]
    fn a_torn_last_line_is_repaired_when_resuming() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sessions");
        let session = Session::create(&dir, "anthropic", "m").expect("create");
        session.message(&Message::user_text("kept")).expect("append");
        let path = session.file_path().expect("a file session").to_path_buf();
        drop(session);
        let mut text = std::fs::read_to_string(&path).expect("read");
        text.push_str("{\"type\":\"message\",\"ti");
        std::fs::write(&path, text).expect("write");
        let id = resolve_id(&dir, "last").expect("last");
        let (_, records) = Session::open(&dir, &id).expect("open");
        assert_eq!(records.len(), 2);
        assert!(std::fs::read_to_string(&path).expect("read").ends_with("}\n"));
    }

    #[test]
    fn a_session_being_written_cannot_be_opened_a_second_time_issue_16() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sessions");
        let session = Session::create(&dir, "anthropic", "m").expect("create");
        let id = session.id().to_string();
        let err = Session::open(&dir, &id).expect_err("a second writer");
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        assert!(
            err.to_string()
                .contains(&format!("session `{id}` is open in another boram process")),
            "{err}"
        );
        drop(session);
        let (_, records) = Session::open(&dir, &id).expect("free once the first closed");
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn listing_survives_damaged_files_and_last_is_the_latest_written_top_level_session_issue_17() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sessions");
        let older = Session::create(&dir, "anthropic", "m").expect("create");
        older.message(&Message::user_text("older")).expect("append");
        let newer = Session::create(&dir, "anthropic", "m").expect("create");
        newer.message(&Message::user_text("newer")).expect("append");
        let child = Session::create_with_parent(&dir, "anthropic", "m", Some(newer.id())).expect("child");
        child.message(&Message::user_text("sub task")).expect("append");
        // A crash cut a character in the middle of one transcript; another "file" cannot be read.
        let mut cut = std::fs::read(newer.file_path().expect("a file")).expect("read");
        cut.extend_from_slice("{\"type\":\"message\",\"time\":\"t\",\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"\u{d55c}".as_bytes().split_last().expect("bytes").1);
        cut.push(b'\n');
        std::fs::write(newer.file_path().expect("a file"), &cut).expect("damage");
        std::fs::create_dir(dir.join("broken.jsonl")).expect("a directory named like a transcript");
        // The older session is written to last: it is "last", whatever its id says.
        std::thread::sleep(std::time::Duration::from_millis(20));
        older.message(&Message::user_text("again")).expect("append");
        let listed = list(&dir).expect("the listing survives");
        assert_eq!(listed.len(), 3, "{listed:?}");
        assert!(listed.iter().any(|s| s.title == "newer"), "{listed:?}");
        assert_eq!(
            listed
                .iter()
                .find(|s| s.title == "sub task")
                .and_then(|s| s.parent.clone()),
            Some(newer.id().to_string())
        );
        assert_eq!(resolve_id(&dir, "last").expect("last"), older.id());
    }

    #[test]
    fn only_the_newest_sessions_are_read_for_the_dashboard_issue_16() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sessions");
        for (id, prompt) in [
            ("20260101-000000-0001", "one"),
            ("20260102-000000-0002", "two"),
            ("20260103-000000-0003", "three"),
        ] {
            let file = JsonlFile::open(&dir.join(format!("{id}.jsonl"))).expect("file");
            file.append(&Record::Message {
                time: now(),
                message: Message::user_text(prompt),
            })
            .expect("append");
        }
        let newest = list_newest(&dir, 2).expect("newest");
        let titles: Vec<&str> = newest.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles, ["two", "three"]);
        assert_eq!(list(&dir).expect("all").len(), 3);
    }
}
