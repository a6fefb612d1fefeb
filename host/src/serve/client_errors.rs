//! What a client reads: every error body is JSON (`{"error": "…"}`), also
//! where axum's extractors answer in plain text (the 413 of an oversized
//! body), and no JSON body names a file of the server (the policy's
//! absolute path, the data or tools directory): each is replaced by what
//! it is.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use std::sync::Arc;

/// Largest JSON body rewritten (tool outputs are capped far below).
const MAX_REWRITTEN: usize = 32 << 20;

/// Server paths and the words that replace them, longest first.
#[derive(Debug, Clone, Default)]
pub struct HiddenPaths(Vec<(String, String)>);

impl HiddenPaths {
    pub fn new(paths: impl IntoIterator<Item = (std::path::PathBuf, &'static str)>) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (path, name) in paths {
            // Only absolute forms: a relative `tools` would also match the word.
            let mut forms = Vec::new();
            if path.is_absolute() {
                forms.push(path.display().to_string());
            }
            if let Ok(canonical) = path.canonicalize() {
                forms.push(canonical.display().to_string());
            }
            for form in forms {
                if form.len() > 1 && !pairs.iter().any(|(p, _)| *p == form) {
                    pairs.push((form, name.to_string()));
                }
            }
        }
        pairs.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        Self(pairs)
    }

    pub fn hide(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (path, name) in &self.0 {
            out = out.replace(path.as_str(), name);
        }
        out
    }
}

/// The middleware: see the module documentation.
pub async fn client_errors(State(hidden): State<Arc<HiddenPaths>>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let is_error = status.is_client_error() || status.is_server_error();
    if !is_json && !is_error {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REWRITTEN).await else {
        return Response::from_parts(parts, Body::from(r#"{"error":"the response was too large to send"}"#));
    };
    let text = String::from_utf8_lossy(&bytes);
    let text = if is_json {
        text.into_owned()
    } else {
        json!({"error": plain_error(status, &text)}).to_string()
    };
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(hidden.hide(&text)))
}

/// Words for an error axum wrote as plain text.
fn plain_error(status: StatusCode, text: &str) -> String {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than this service accepts ([serve] body_limit_kb)".to_string()
        }
        _ if text.trim().is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
        _ => text.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths_are_replaced_longest_first() {
        let hidden = HiddenPaths::new([
            ("/srv/boram".into(), "the data directory"),
            ("/srv/boram/policy.toml".into(), "the service's policy"),
        ]);
        assert_eq!(
            hidden.hide("denied by /srv/boram/policy.toml:8; see /srv/boram/audit.jsonl"),
            "denied by the service's policy:8; see the data directory/audit.jsonl"
        );
    }
}
