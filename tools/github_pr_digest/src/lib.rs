//! `github_pr_digest`: summarises one GitHub pull request — metadata,
//! changed files and where its review stands — from three REST API calls.
//!
//! The tool never handles a token. The policy's `secrets` entry for
//! api.github.com makes the host add the `Authorization` header to these
//! requests; without one, public repositories still work within GitHub's
//! anonymous rate limit.

mod digest;

use boram_tool_sdk::http::{self, HttpError, Options, Request, Response};
use boram_tool_sdk::prelude::*;
use boram_tool_sdk::serde_json::Value;

const DEFAULT_API_BASE: &str = "https://api.github.com";
const DEFAULT_MAX_FILES: usize = 50;
/// One page of the files endpoint; listing more would need pagination.
const LIMIT_MAX_FILES: usize = 100;
/// A page of 100 files with patches can be several MiB.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Summarise a GitHub pull request: title, author, state, branches, size,
/// the changed files, who approved or requested changes, and the start of
/// the description. Use it to review or report on a pull request without
/// reading the whole diff.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// Repository as `owner/name`, e.g. `rust-lang/cargo`.
    repo: String,
    /// Pull request number.
    number: u64,
    /// API server (default `https://api.github.com`); a GitHub Enterprise
    /// server's is `https://HOST/api/v3`.
    api_base: Option<String>,
    /// Most changed files to list (default 50, at most 100).
    max_files: Option<usize>,
}

fn github_pr_digest(input: Input) -> Result<digest::Digest, ToolError> {
    check_repo(&input.repo)?;
    if input.number == 0 {
        return Err(ToolError::invalid_input(
            "number must be a pull request number, 1 or more",
        ));
    }
    let max_files = input.max_files.unwrap_or(DEFAULT_MAX_FILES);
    if !(1..=LIMIT_MAX_FILES).contains(&max_files) {
        return Err(ToolError::invalid_input(format!(
            "max_files must be between 1 and {LIMIT_MAX_FILES}, got {max_files}"
        )));
    }
    let api_base = input
        .api_base
        .as_deref()
        .unwrap_or(DEFAULT_API_BASE)
        .trim()
        .trim_end_matches('/');
    let target = Target {
        repo: &input.repo,
        number: input.number,
        api_base,
    };

    let pull_url = format!("{api_base}/repos/{}/pulls/{}", input.repo, input.number);
    progress(0, Some(3), "pull request");
    let pull = target.get_json(&pull_url)?;
    progress(1, Some(3), "changed files");
    let files = target.get_json(&format!("{pull_url}/files?per_page=100"))?;
    progress(2, Some(3), "reviews");
    let reviews = target.get_json(&format!("{pull_url}/reviews?per_page=100"))?;
    progress(3, Some(3), "done");
    digest::assemble(pull, files, reviews, max_files).map_err(ToolError::failed)
}

/// The pull request being asked about, for requests and their errors.
struct Target<'a> {
    repo: &'a str,
    number: u64,
    api_base: &'a str,
}

impl Target<'_> {
    fn get_json(&self, url: &str) -> Result<Value, ToolError> {
        // No Authorization header: the host adds it from the policy.
        let request = Request::get(url)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header("User-Agent", "boram-github-pr-digest");
        let options = Options {
            max_body_bytes: MAX_BODY_BYTES,
            ..Options::default()
        };
        let response = http::send(&request, &options).map_err(|e| match e {
            HttpError::InvalidUrl(m) => ToolError::invalid_input(format!("api_base: {m}")),
            other => other.into(),
        })?;
        if !response.is_success() {
            return Err(self.status_error(&response));
        }
        if response.truncated {
            return Err(ToolError::failed(format!(
                "GitHub's answer for {url} is larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        Ok(response.json()?)
    }

    fn status_error(&self, response: &Response) -> ToolError {
        let Self { repo, number, .. } = self;
        // GitHub explains errors in a JSON `message`.
        let message = response
            .json::<Value>()
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        // "403: API rate limit exceeded", or just "403" without a message.
        let status = match message.is_empty() {
            true => response.status.to_string(),
            false => format!("{}: {message}", response.status),
        };
        let rate_limited = response.status == 429 || response.header("x-ratelimit-remaining") == Some("0");
        match response.status {
            404 => ToolError::failed(format!("no pull request {repo}#{number} (or the token cannot see it)")),
            401 | 403 | 429 if rate_limited => ToolError::failed(format!(
                "GitHub's rate limit is used up ({status}); anonymous requests get 60 an hour, so {}, \
                 or try again later",
                self.secret_hint()
            )),
            401 | 403 => ToolError::failed(format!(
                "GitHub refused access to {repo}#{number} ({status}); {}, and that the token may read {repo}",
                self.secret_hint()
            )),
            _ => ToolError::failed(format!("GitHub could not answer {} ({status})", response.url)),
        }
    }

    /// Where the token comes from: the policy, never the tool.
    fn secret_hint(&self) -> String {
        let host = self
            .api_base
            .split("://")
            .nth(1)
            .unwrap_or(self.api_base)
            .split('/')
            .next()
            .unwrap_or_default();
        let public = if host == "api.github.com" {
            String::new()
        } else {
            " (api.github.com for github.com)".to_string()
        };
        format!(
            "check that the policy has a secret for {host}{public} such as \
             `secrets = [{{ host = \"api.github.com\", header = \"Authorization\", value = \"Bearer ${{env:GITHUB_TOKEN}}\" }}]`, \
             that its variable is set where boram runs"
        )
    }
}

/// GitHub's rules: owner 1-39 of `A-Z a-z 0-9 -`; name 1-100 of those
/// plus `_` and `.`, but not `.` or `..`.
fn check_repo(repo: &str) -> Result<(), ToolError> {
    let bad = || {
        ToolError::invalid_input(format!(
            "repo must be `owner/name`, e.g. `rust-lang/cargo`; got `{repo}`"
        ))
    };
    let (owner, name) = repo.split_once('/').ok_or_else(bad)?;
    let owner_ok = (1..=39).contains(&owner.len()) && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let name_ok = (1..=100).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != "..";
    if owner_ok && name_ok { Ok(()) } else { Err(bad()) }
}

boram_tool_sdk::export_tools!("github_pr_digest" => github_pr_digest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_are_checked() {
        for good in ["rust-lang/cargo", "a/b", "acme-widgets/widget.sync_2"] {
            assert!(check_repo(good).is_ok(), "{good}");
        }
        for bad in [
            "cargo",
            "rust-lang/cargo/pulls",
            "/x",
            "x/",
            "a b/c",
            "a/..",
            "a/c?x=1",
            "https://github.com/a/b",
        ] {
            let e = check_repo(bad).unwrap_err();
            assert!(e.to_string().contains("repo must be `owner/name`"), "{bad}: {e}");
        }
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
            url: "https://api.github.com/repos/a/b/pulls/7".into(),
            truncated: false,
        }
    }

    #[test]
    fn status_errors_explain_what_to_do() {
        let target = Target {
            repo: "a/b",
            number: 7,
            api_base: DEFAULT_API_BASE,
        };
        let text = |r: Response| target.status_error(&r).to_string();
        assert_eq!(
            text(response(404, &[], r#"{"message":"Not Found"}"#)),
            "failed: no pull request a/b#7 (or the token cannot see it)"
        );
        let denied = text(response(401, &[], r#"{"message":"Bad credentials"}"#));
        assert!(
            denied.contains("(401: Bad credentials)") && denied.contains("secret for api.github.com"),
            "{denied}"
        );
        let limited = text(response(
            403,
            &[("x-ratelimit-remaining", "0")],
            r#"{"message":"API rate limit exceeded"}"#,
        ));
        assert!(
            limited.contains("rate limit is used up") && limited.contains("api.github.com"),
            "{limited}"
        );
        assert_eq!(
            text(response(502, &[], "oops")),
            "failed: GitHub could not answer https://api.github.com/repos/a/b/pulls/7 (502)"
        );
        assert!(text(response(500, &[], r#"{"message":"Server Error"}"#)).ends_with("pulls/7 (500: Server Error)"));

        let local = Target {
            repo: "a/b",
            number: 7,
            api_base: "http://127.0.0.1:8080",
        };
        let hint = local.status_error(&response(403, &[], "{}")).to_string();
        assert!(
            hint.contains("secret for 127.0.0.1:8080 (api.github.com for github.com)"),
            "{hint}"
        );
    }
}
