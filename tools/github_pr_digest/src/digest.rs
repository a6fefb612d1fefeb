//! Assembles the digest of a pull request from the three GitHub REST API
//! answers (the pull, its files, its reviews), as plain JSON values so the
//! logic is tested on recorded responses without any network.

use boram_tool_sdk::serde_json::{self, Value};
use serde::{Deserialize, Serialize};

/// Characters of the description kept in `body_excerpt`.
const BODY_EXCERPT_CHARS: usize = 500;

/// What the model gets back.
#[derive(Debug, Serialize)]
pub struct Digest {
    pub title: String,
    pub number: u64,
    /// The pull request's page on GitHub.
    pub url: String,
    pub author: String,
    /// `open` or `closed` (a merged pull request is closed with `merged` true).
    pub state: String,
    pub draft: bool,
    pub merged: bool,
    /// Branch the changes go into.
    pub base: String,
    /// Branch the changes come from.
    pub head: String,
    pub created_at: String,
    pub additions: u64,
    pub deletions: u64,
    pub changed_files: u64,
    pub files: Vec<FileChange>,
    /// True when the pull request changes more files than `files` lists.
    pub files_truncated: bool,
    pub reviews: Reviewers,
    /// `changes_requested`, `approved`, `review_required` or `no_reviews`.
    pub review_state: &'static str,
    pub body_excerpt: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FileChange {
    pub filename: String,
    /// `added`, `modified`, `removed`, `renamed`, ...
    pub status: String,
    pub additions: u64,
    pub deletions: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_filename: Option<String>,
}

/// Reviewers by the state of their latest review that counts.
#[derive(Debug, Serialize, Default, PartialEq, Eq)]
pub struct Reviewers {
    pub approved: Vec<String>,
    pub changes_requested: Vec<String>,
    pub commented: Vec<String>,
}

// The parts of GitHub's answers the digest reads. Missing optional fields
// default rather than fail: GitHub omits some on old or odd pull requests.

#[derive(Deserialize)]
struct Pull {
    title: String,
    number: u64,
    html_url: String,
    user: Option<User>,
    state: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    merged: bool,
    base: Branch,
    head: Branch,
    created_at: String,
    #[serde(default)]
    additions: u64,
    #[serde(default)]
    deletions: u64,
    #[serde(default)]
    changed_files: u64,
    body: Option<String>,
    #[serde(default)]
    requested_reviewers: Vec<User>,
    #[serde(default)]
    requested_teams: Vec<Value>,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    name: String,
}

#[derive(Deserialize)]
struct File {
    filename: String,
    status: String,
    #[serde(default)]
    additions: u64,
    #[serde(default)]
    deletions: u64,
    previous_filename: Option<String>,
}

#[derive(Deserialize)]
struct Review {
    /// Null when the reviewer's account was deleted.
    user: Option<User>,
    state: String,
    submitted_at: Option<String>,
}

/// Builds the digest; the error names the answer GitHub sent in an
/// unexpected shape.
pub fn assemble(pull: Value, files: Value, reviews: Value, max_files: usize) -> Result<Digest, String> {
    let pull: Pull =
        serde_json::from_value(pull).map_err(|e| format!("unexpected pull request JSON from GitHub: {e}"))?;
    let files: Vec<File> =
        serde_json::from_value(files).map_err(|e| format!("unexpected files JSON from GitHub: {e}"))?;
    let reviews: Vec<Review> =
        serde_json::from_value(reviews).map_err(|e| format!("unexpected reviews JSON from GitHub: {e}"))?;

    let listed = files.len() as u64;
    let files_truncated = files.len() > max_files || pull.changed_files > listed;
    let files = files
        .into_iter()
        .take(max_files)
        .map(|f| FileChange {
            filename: f.filename,
            status: f.status,
            additions: f.additions,
            deletions: f.deletions,
            previous_filename: f.previous_filename,
        })
        .collect();
    let reviewers = latest_reviews(reviews);
    let awaiting = !pull.requested_reviewers.is_empty() || !pull.requested_teams.is_empty();
    let review_state = review_state(&reviewers, awaiting);

    Ok(Digest {
        title: pull.title,
        number: pull.number,
        url: pull.html_url,
        author: pull.user.map(|u| u.login).unwrap_or_else(|| "ghost".to_string()),
        state: pull.state,
        draft: pull.draft,
        merged: pull.merged,
        base: pull.base.name,
        head: pull.head.name,
        created_at: pull.created_at,
        additions: pull.additions,
        deletions: pull.deletions,
        changed_files: pull.changed_files,
        files,
        files_truncated,
        reviews: reviewers,
        review_state,
        body_excerpt: excerpt(pull.body.as_deref().unwrap_or_default()),
    })
}

#[derive(Clone, Copy)]
enum Standing {
    Commented,
    Approved,
    ChangesRequested,
}

/// Each reviewer's standing, as GitHub counts it: the latest approval or
/// change request decides, a later plain comment does not undo it, and a
/// dismissed review no longer counts (the reviewer is then listed as having
/// commented). Pending reviews are drafts nobody else sees and are skipped.
fn latest_reviews(mut reviews: Vec<Review>) -> Reviewers {
    // GitHub lists reviews oldest first already; sorting keeps that true for
    // any source. RFC 3339 UTC timestamps sort as text.
    reviews.sort_by(|a, b| a.submitted_at.cmp(&b.submitted_at));
    // Reviewers in the order they first reviewed, with their standing.
    let mut standing: Vec<(String, Standing)> = Vec::new();
    for review in &reviews {
        let Some(login) = review.user.as_ref().map(|u| u.login.clone()) else {
            continue;
        };
        // `None`: the review does not change the reviewer's standing.
        let decision = match review.state.as_str() {
            "APPROVED" => Some(Standing::Approved),
            "CHANGES_REQUESTED" => Some(Standing::ChangesRequested),
            "DISMISSED" => Some(Standing::Commented),
            "COMMENTED" => None,
            _ => continue,
        };
        let index = match standing.iter().position(|(l, _)| *l == login) {
            Some(i) => i,
            None => {
                standing.push((login, Standing::Commented));
                standing.len() - 1
            }
        };
        if let Some(decision) = decision {
            standing[index].1 = decision;
        }
    }
    let mut reviewers = Reviewers::default();
    for (login, state) in standing {
        match state {
            Standing::Approved => reviewers.approved.push(login),
            Standing::ChangesRequested => reviewers.changes_requested.push(login),
            Standing::Commented => reviewers.commented.push(login),
        }
    }
    reviewers
}

/// One word for where the review stands: any outstanding change request
/// wins, then any approval; reviews without a decision, or reviewers still
/// asked for, mean a review is still required.
fn review_state(reviewers: &Reviewers, awaiting_reviewers: bool) -> &'static str {
    if !reviewers.changes_requested.is_empty() {
        "changes_requested"
    } else if !reviewers.approved.is_empty() {
        "approved"
    } else if !reviewers.commented.is_empty() || awaiting_reviewers {
        "review_required"
    } else {
        "no_reviews"
    }
}

/// The first characters of the description, line endings normalised, with
/// `…` when cut.
fn excerpt(body: &str) -> String {
    let body = body.replace("\r\n", "\n");
    let body = body.trim();
    let mut cut: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
    if cut.len() < body.len() {
        cut = cut.trim_end().to_string();
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../../tests/fixtures/http/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    fn digest(max_files: usize) -> Digest {
        assemble(
            fixture("github_pr.json"),
            fixture("github_pr_files.json"),
            fixture("github_pr_reviews.json"),
            max_files,
        )
        .unwrap()
    }

    #[test]
    fn digests_the_fixture_pull_request() {
        let d = digest(50);
        assert_eq!(d.title, "Retry failed warehouse pushes with backoff");
        assert_eq!(
            (d.number, d.url.as_str()),
            (482, "https://github.com/acme-widgets/widget-sync/pull/482")
        );
        assert_eq!(
            (d.author.as_str(), d.state.as_str(), d.draft, d.merged),
            ("acme-ana", "open", false, false)
        );
        assert_eq!((d.base.as_str(), d.head.as_str()), ("main", "ana/retry-backoff"));
        assert_eq!(d.created_at, "2025-03-08T10:22:41Z");
        assert_eq!((d.additions, d.deletions, d.changed_files), (214, 56, 5));
        assert_eq!(d.files.len(), 5);
        assert!(!d.files_truncated);
        assert_eq!(
            d.files[3],
            FileChange {
                filename: "crates/sync-core/tests/retry_flow.rs".into(),
                status: "renamed".into(),
                additions: 23,
                deletions: 0,
                previous_filename: Some("crates/sync-core/tests/push_flow.rs".into()),
            }
        );
        // acme-ben requested changes, then commented, then approved;
        // acme-dmitri approved and later only commented.
        assert_eq!(
            d.reviews,
            Reviewers {
                approved: vec!["acme-ben".into(), "acme-dmitri".into()],
                changes_requested: vec![],
                commented: vec!["acme-chioma".into()],
            }
        );
        assert_eq!(d.review_state, "approved");
        assert!(
            d.body_excerpt.starts_with("## What\n\nRetries failed warehouse pushes"),
            "{}",
            d.body_excerpt
        );
        assert!(
            d.body_excerpt.ends_with('…') && d.body_excerpt.chars().count() <= 501,
            "{}",
            d.body_excerpt
        );
    }

    #[test]
    fn files_beyond_the_limit_are_cut() {
        let d = digest(2);
        assert_eq!(d.files.len(), 2);
        assert!(d.files_truncated);
        // GitHub lists at most 100 files per page; more changed files than
        // listed also means the list is incomplete.
        let mut pull = fixture("github_pr.json");
        pull["changed_files"] = json!(340);
        let d = assemble(pull, fixture("github_pr_files.json"), json!([]), 50).unwrap();
        assert!(d.files_truncated);
    }

    #[test]
    fn review_states() {
        let review =
            |login: &str, state: &str, at: &str| json!({"user": {"login": login}, "state": state, "submitted_at": at});
        let pull = fixture("github_pr.json");
        let run = |reviews: Value, pull: Value| assemble(pull, json!([]), reviews, 50).unwrap();

        let d = run(
            json!([
                review("a", "APPROVED", "2025-01-01T00:00:00Z"),
                review("b", "CHANGES_REQUESTED", "2025-01-02T00:00:00Z")
            ]),
            pull.clone(),
        );
        assert_eq!(d.review_state, "changes_requested");
        assert_eq!(d.reviews.changes_requested, vec!["b"]);

        let d = run(
            json!([
                review("a", "CHANGES_REQUESTED", "2025-01-01T00:00:00Z"),
                review("a", "DISMISSED", "2025-01-02T00:00:00Z")
            ]),
            pull.clone(),
        );
        assert_eq!(
            (d.reviews.commented.clone(), d.review_state),
            (vec!["a".to_string()], "review_required")
        );

        // Reviewers still asked for, no reviews yet.
        assert_eq!(run(json!([]), pull.clone()).review_state, "review_required");
        let mut lonely = pull.clone();
        lonely["requested_reviewers"] = json!([]);
        assert_eq!(run(json!([]), lonely.clone()).review_state, "no_reviews");
        // Pending drafts and deleted accounts are skipped.
        let d = run(
            json!([review("a", "PENDING", "2025-01-01T00:00:00Z"), {"user": null, "state": "APPROVED", "submitted_at": "2025-01-01T00:00:00Z"}]),
            lonely,
        );
        assert_eq!((d.reviews, d.review_state), (Reviewers::default(), "no_reviews"));
    }

    #[test]
    fn odd_shapes_are_reported() {
        let e = assemble(json!({"message": "Not Found"}), json!([]), json!([]), 50).unwrap_err();
        assert!(e.starts_with("unexpected pull request JSON from GitHub"), "{e}");
        let mut pull = fixture("github_pr.json");
        pull["user"] = Value::Null;
        pull["body"] = Value::Null;
        let d = assemble(pull, json!([]), json!([]), 50).unwrap();
        assert_eq!((d.author.as_str(), d.body_excerpt.as_str()), ("ghost", ""));
    }

    #[test]
    fn excerpt_cuts_on_characters() {
        assert_eq!(excerpt("short\r\nbody "), "short\nbody");
        let long = "é".repeat(600);
        assert_eq!(excerpt(&long).chars().count(), 501);
    }
}
