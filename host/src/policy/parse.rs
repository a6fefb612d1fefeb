//! Turns policy text into a [`Policy`]: TOML decoding (unknown keys and bad
//! values become located errors with a "did you mean" hint), then semantic
//! checks (ranges, paths, names) with the line of each offending value.

use super::error::{Diagnostic, PolicyError};
use super::model::*;
use super::schema::*;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Largest accepted `timeout_ms`: 10 minutes.
const MAX_TIMEOUT_MS: i64 = 600_000;
/// Largest accepted `memory_mb`: 4 GiB, all a 32-bit wasm memory can hold.
const MAX_MEMORY_MB: i64 = 4096;
/// Largest accepted `max_output_kb`: 64 MiB.
const MAX_OUTPUT_KB: i64 = 65_536;

impl Policy {
    /// Reads and validates the policy file at `path`. Relative paths inside
    /// it are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        Self::parse(&text, &path.display().to_string(), &base)
    }

    /// Validates policy `text`; `file` names it in errors and `base_dir` anchors relative paths.
    pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<Self, PolicyError> {
        let raw: PolicyToml = toml::from_str(text).map_err(|e| decode_error(&e, text, file))?;
        let mut policy = Checker { text, file, base_dir }.policy(raw)?;
        policy.source = Some(PathBuf::from(file));
        Ok(policy)
    }
}

/// Rewrites a TOML/serde error into a located message in our words.
fn decode_error(e: &toml::de::Error, text: &str, file: &str) -> PolicyError {
    let span = e.span().unwrap_or(0..0);
    let raw = e.message().trim();
    let line = line_at(text, span.start);
    let on_header = line.trim_start().starts_with('[');
    let table = enclosing_table(
        text,
        if on_header {
            line_start(text, span.start)
        } else {
            span.start
        },
    );
    let message = if let Some((unknown, expected)) = parse_expected(raw, "unknown field `") {
        if on_header {
            let bracketed: Vec<String> = expected.iter().map(|k| format!("[{k}]")).collect();
            format!(
                "unknown table `[{unknown}]`{}",
                hint(&format!("[{unknown}]"), &bracketed)
            )
        } else {
            format!("unknown key `{unknown}` in {table}{}", hint(&unknown, &expected))
        }
    } else if let Some((unknown, expected)) = parse_expected(raw, "unknown variant `") {
        format!("unknown value `{unknown}` in {table}{}", hint(&unknown, &expected))
    } else if raw == "missing field `version`" {
        let d = Diagnostic::at(file, text, 0..0, "missing `version` at the top of the file".to_string());
        return d.with_help("add `version = 1` as the first line").into();
    } else if let Some(field) = raw.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
        format!("missing key `{field}` in {table}")
    } else if let Some((found, expected)) = raw
        .strip_prefix("invalid type: ")
        .and_then(|r| r.split_once(", expected "))
    {
        let key = line.split_once('=').map_or("value", |(k, _)| k.trim());
        format!(
            "wrong type for `{key}` in {table}: expected {}, found {found}",
            type_words(expected)
        )
    } else if table.ends_with(']') {
        format!("{raw} (in {table})")
    } else {
        raw.to_string()
    };
    Diagnostic::at(file, text, span, message).into()
}

fn line_start(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].rfind('\n').map_or(0, |i| i + 1)
}

fn line_at(text: &str, offset: usize) -> &str {
    let start = line_start(text, offset);
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    &text[start..end]
}

/// serde's type names in words.
fn type_words(expected: &str) -> &str {
    match expected {
        "i64" | "u64" | "u32" | "i32" => "an integer",
        "f64" | "f32" => "a number",
        "a string" => "a string",
        other => other,
    }
}

/// Splits serde's "unknown field `x`, expected one of `a`, `b`" into `x` and `[a, b]`.
fn parse_expected(message: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix(prefix)?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest.split('`').skip(1).step_by(2).map(str::to_string).collect();
    Some((unknown.to_string(), expected))
}

/// ` (did you mean `net`?)` when a known name is close, else the list of known names.
fn hint(unknown: &str, expected: &[String]) -> String {
    match crate::suggest::did_you_mean(unknown, expected.iter().map(String::as_str)) {
        Some(hint) => hint,
        None if expected.is_empty() => String::new(),
        None => format!("; expected one of: {}", expected.join(", ")),
    }
}

/// `[tools.read_file]` for an offset inside that table, or `the top level`.
fn enclosing_table(text: &str, offset: usize) -> String {
    text[..offset.min(text.len())]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.split('#').next().unwrap_or(l).trim().to_string())
        .unwrap_or_else(|| "the top level".to_string())
}

/// Semantic checks over the decoded file; every error points at its value.
struct Checker<'a> {
    text: &'a str,
    file: &'a str,
    base_dir: &'a Path,
}

type Checked<T> = Result<T, Diagnostic>;

impl Checker<'_> {
    fn error(&self, span: std::ops::Range<usize>, message: String) -> Diagnostic {
        Diagnostic::at(self.file, self.text, span, message)
    }

    fn line_of(&self, span: &std::ops::Range<usize>) -> usize {
        self.text[..span.start.min(self.text.len())].matches('\n').count() + 1
    }

    fn policy(&self, raw: PolicyToml) -> Checked<Policy> {
        if *raw.version.get_ref() != 1 {
            return Err(self
                .error(
                    raw.version.span(),
                    format!("unsupported policy version {}", raw.version.get_ref()),
                )
                .with_help("this build understands `version = 1`"));
        }
        let default_approval = raw.defaults.approval.map_or(DEFAULT_APPROVAL, approval);
        let default_limits = self.limits(&Limits::default(), raw.defaults.keys())?;
        let agent = self.agent(&raw.agent)?;
        let mut policy = Policy {
            source: None,
            default_approval,
            default_limits,
            agent,
            tools: BTreeMap::new(),
        };
        for (name, tool) in raw.tools {
            let resolved = self.tool(&policy, &name, tool)?;
            policy.tools.insert(name.into_inner(), resolved);
        }
        if let Some(problem) = super::grants::nesting_problem(&policy.tools) {
            return Err(self
                .error(self.line_span(problem.line), problem.message)
                .with_help(problem.help));
        }
        Ok(policy)
    }

    /// The span of the first character of 1-based `line`.
    fn line_span(&self, line: usize) -> std::ops::Range<usize> {
        let start = match line {
            0 | 1 => 0,
            n => self.text.match_indices('\n').nth(n - 2).map_or(0, |(i, _)| i + 1),
        };
        let indent = self.text[start..].len() - self.text[start..].trim_start_matches([' ', '\t']).len();
        start + indent..start + indent + 1
    }

    fn limits(&self, base: &Limits, keys: LimitKeys<'_>) -> Checked<Limits> {
        let timeout = self.ranged(keys.timeout_ms, "timeout_ms", 1, MAX_TIMEOUT_MS)?;
        let memory = self.ranged(keys.memory_mb, "memory_mb", 1, MAX_MEMORY_MB)?;
        let output = self.ranged(keys.max_output_kb, "max_output_kb", 1, MAX_OUTPUT_KB)?;
        let requests = self.ranged(keys.http_requests, "http_requests", 1, 10_000)?;
        let request_kb = self.ranged(keys.http_request_kb, "http_request_kb", 1, 1 << 20)?;
        let response_kb = self.ranged(keys.http_response_kb, "http_response_kb", 1, 1 << 20)?;
        let header_kb = self.ranged(keys.http_header_kb, "http_header_kb", 1, 1024)?;
        let http_timeout = self.ranged(keys.http_timeout_ms, "http_timeout_ms", 1, MAX_TIMEOUT_MS)?;
        let concurrency = self.ranged(keys.concurrency, "concurrency", 1, 128)?;
        let h = base.http;
        Ok(Limits {
            timeout: timeout.map_or(base.timeout, Duration::from_millis),
            memory_bytes: memory.map_or(base.memory_bytes, |mb| mb << 20),
            max_output_bytes: output.map_or(base.max_output_bytes, |kb| kb << 10),
            concurrency: concurrency.map_or(base.concurrency, |n| n as u32),
            http: HttpLimits {
                requests: requests.unwrap_or(h.requests),
                request_body_bytes: request_kb.map_or(h.request_body_bytes, |kb| kb << 10),
                response_body_bytes: response_kb.map_or(h.response_body_bytes, |kb| kb << 10),
                header_bytes: header_kb.map_or(h.header_bytes, |kb| kb << 10),
                timeout: http_timeout.map_or(h.timeout, Duration::from_millis),
            },
        })
    }

    fn ranged(&self, value: &Option<Spanned<i64>>, key: &str, min: i64, max: i64) -> Checked<Option<u64>> {
        let Some(v) = value else { return Ok(None) };
        let n = *v.get_ref();
        if n < min || n > max {
            return Err(self.error(v.span(), format!("`{key}` must be between {min} and {max}, got {n}")));
        }
        Ok(u64::try_from(n).ok())
    }

    fn agent(&self, raw: &AgentToml) -> Checked<AgentLimits> {
        let d = AgentLimits::default();
        let rounds = self.ranged(&raw.max_rounds, "max_rounds", 1, 1000)?;
        let same = self.ranged(&raw.same_call_limit, "same_call_limit", 1, 1000)?;
        let time_limit = self.ranged(&raw.time_limit_s, "time_limit_s", 1, 7 * 24 * 3600)?;
        let budget = match &raw.budget_usd {
            Some(b) if !(*b.get_ref() >= 0.0 && b.get_ref().is_finite()) => {
                return Err(self.error(b.span(), format!("`budget_usd` must be 0 or more, got {}", b.get_ref())));
            }
            Some(b) => *b.get_ref(),
            None => d.budget_usd,
        };
        Ok(AgentLimits {
            max_rounds: rounds.map_or(d.max_rounds, |n| n as u32),
            same_call_limit: same.map_or(d.same_call_limit, |n| n as u32),
            budget_usd: budget,
            budget_set: raw.budget_usd.is_some(),
            time_limit: time_limit.map_or(d.time_limit, std::time::Duration::from_secs),
        })
    }

    fn tool(&self, policy: &Policy, name: &Spanned<String>, raw: ToolToml) -> Checked<ToolPolicy> {
        if !is_tool_name(name.get_ref()) {
            return Err(self
                .error(name.span(), format!("`{}` is not a valid tool name", name.get_ref()))
                .with_help("tool names are lowercase letters, digits and `_`, starting with a letter"));
        }
        let limits = self.limits(&policy.default_limits, raw.keys())?;
        let fs = self.fs_grants(&raw.fs)?;
        let env = self.env_grants(&raw.env, &raw.force_env)?;
        let net = raw.net.iter().map(|r| self.net_rule(r)).collect::<Checked<Vec<_>>>()?;
        let secrets = raw
            .secrets
            .iter()
            .map(|s| self.secret(s, &net))
            .collect::<Checked<Vec<_>>>()?;
        Ok(ToolPolicy {
            approval: raw.approval.map_or(policy.default_approval, approval),
            approval_from_tool: raw.approval.is_some(),
            limits,
            fs,
            env,
            net,
            secrets,
            line: Some(self.line_of(&name.span())),
        })
    }

    fn fs_grants(&self, raw: &[Spanned<FsToml>]) -> Checked<Vec<FsGrant>> {
        let mut grants: Vec<FsGrant> = Vec::new();
        for entry in raw {
            let span = entry.span();
            let fs = entry.get_ref();
            let guest = normalize_guest(&fs.guest).ok_or_else(|| {
                self.error(
                    span.clone(),
                    format!("guest path `{}` must be absolute, without `..`", fs.guest),
                )
                .with_help("write it as the tool will see it, e.g. guest = \"/workspace\"")
            })?;
            if grants.iter().any(|g| g.guest == guest) {
                return Err(self.error(span, format!("guest path `{guest}` is granted twice")));
            }
            let joined: PathBuf = self
                .base_dir
                .join(&fs.host)
                .components()
                .filter(|c| !matches!(c, Component::CurDir))
                .collect();
            let host = joined.canonicalize().map_err(|e| {
                self.error(
                    span.clone(),
                    format!("host directory `{}` ({}): {e}", fs.host, joined.display()),
                )
                .with_help("create the directory or fix the path; relative paths start at the policy file's folder")
            })?;
            if !host.is_dir() {
                return Err(self.error(span, format!("host path `{}` is not a directory", host.display())));
            }
            if let Some(why) = super::grants::forbidden_dir(&host) {
                return Err(self
                    .error(
                        span,
                        format!("host directory `{}` may not be granted: {why}", host.display()),
                    )
                    .with_help("grant the project directory the tool needs instead"));
            }
            let access = match fs.access {
                AccessToml::ReadOnly => Access::ReadOnly,
                AccessToml::ReadWrite => Access::ReadWrite,
            };
            grants.push(FsGrant {
                host,
                guest,
                access,
                line: self.line_of(&span),
            });
        }
        Ok(grants)
    }

    fn env_grants(&self, raw: &[Spanned<String>], forced: &[Spanned<String>]) -> Checked<Vec<EnvGrant>> {
        if let Some(stray) = forced.iter().find(|f| !raw.iter().any(|k| k.get_ref() == f.get_ref())) {
            return Err(self
                .error(
                    stray.span(),
                    format!("`{}` is in `force_env` but not in `env`", stray.get_ref()),
                )
                .with_help("`force_env` only confirms a host credential that `env` lists"));
        }
        let mut grants: Vec<EnvGrant> = Vec::new();
        for key in raw {
            let valid = key
                .get_ref()
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            if key.get_ref().is_empty() || !valid {
                return Err(self.error(
                    key.span(),
                    format!("`{}` is not an environment variable name", key.get_ref()),
                ));
            }
            if grants.iter().any(|g| &g.key == key.get_ref()) {
                return Err(self.error(
                    key.span(),
                    format!("environment key `{}` is listed twice", key.get_ref()),
                ));
            }
            if super::grants::is_host_secret_key(key.get_ref()) && !forced.iter().any(|f| f.get_ref() == key.get_ref())
            {
                return Err(self
                    .error(
                        key.span(),
                        format!(
                            "`{}` is the host's own credential; a tool does not get it",
                            key.get_ref()
                        ),
                    )
                    .with_help(format!(
                        "if this tool really must see it, also list it in `force_env = [\"{}\"]`",
                        key.get_ref()
                    )));
            }
            grants.push(EnvGrant {
                key: key.get_ref().clone(),
                line: self.line_of(&key.span()),
            });
        }
        Ok(grants)
    }

    fn net_rule(&self, raw: &Spanned<String>) -> Checked<NetRule> {
        let text = raw.get_ref();
        let bad = |why: &str| {
            self.error(raw.span(), format!("`{text}` is not a valid net rule: {why}"))
                .with_help(
                    "write scheme://host[:port], e.g. \"https://api.github.com\" or \"https://*.example.com:8443\"",
                )
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("missing scheme"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("expected only a host and port, no path, query or user"));
        }
        let (host, port) = split_host_port(rest).map_err(bad)?;
        let name = host.strip_prefix("*.").unwrap_or(host);
        let host_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
        if !host_ok {
            return Err(bad("the host has characters a host name cannot have"));
        }
        Ok(NetRule {
            scheme: scheme.to_string(),
            host: host.to_ascii_lowercase(),
            port,
            line: self.line_of(&raw.span()),
        })
    }

    fn secret(&self, raw: &Spanned<SecretToml>, net: &[NetRule]) -> Checked<SecretRule> {
        let s = raw.get_ref();
        if !net.iter().any(|r| r.host == s.host.to_ascii_lowercase()) {
            return Err(self
                .error(
                    raw.span(),
                    format!("secret for host `{}` but no `net` rule allows that host", s.host),
                )
                .with_help("add the host to this tool's `net` list, or remove the secret"));
        }
        let mut rest = s.value.as_str();
        while let Some(start) = rest.find("${") {
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| self.error(raw.span(), "unclosed `${` in secret value".to_string()))?;
            let reference = &rest[start + 2..start + end];
            if reference.strip_prefix("env:").is_none_or(|k| k.is_empty()) {
                return Err(self
                    .error(
                        raw.span(),
                        format!("`${{{reference}}}` in secret value is not a known reference"),
                    )
                    .with_help("use ${env:NAME} to take the value from the host environment"));
            }
            rest = &rest[start + end + 1..];
        }
        Ok(SecretRule {
            host: s.host.to_ascii_lowercase(),
            header: s.header.clone(),
            value_template: s.value.clone(),
            line: self.line_of(&raw.span()),
        })
    }
}

/// `example.com:8443` → (`example.com`, 8443); `[::1]:80` → (`[::1]`, 80); no port → `None`.
fn split_host_port(rest: &str) -> Result<(&str, Option<u16>), &'static str> {
    let (host, port) = if rest.starts_with('[') {
        let close = rest.find(']').ok_or("an IPv6 address is missing its closing `]`")?;
        let (host, after) = rest.split_at(close + 1);
        match after {
            "" => return Ok((host, None)),
            _ => (
                host,
                after
                    .strip_prefix(':')
                    .ok_or("expected `:port` after the IPv6 address")?,
            ),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, port),
            None => return Ok((rest, None)),
        }
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| "the port is not a number from 0 to 65535")?;
    Ok((host, Some(port)))
}

fn approval(raw: ApprovalToml) -> Approval {
    match raw {
        ApprovalToml::Allow => Approval::Allow,
        ApprovalToml::Prompt => Approval::Prompt,
        ApprovalToml::Deny => Approval::Deny,
    }
}

/// `[a-z][a-z0-9_]{0,63}`: the tool names the model can call.
pub fn is_tool_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// `/workspace/` → `/workspace`; `None` for relative paths or ones using `..`.
fn normalize_guest(path: &str) -> Option<String> {
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return None;
    }
    let parts: Vec<_> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    Some(format!("/{}", parts.join("/")))
}
