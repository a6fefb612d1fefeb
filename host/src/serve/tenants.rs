//! The users of one service. Each [`Tenant`] has its own [`ToolHost`] —
//! the shared compiled tools, under the policy with `${workspace}` replaced
//! by that user's directory — and its own data directory for sessions,
//! memory, usage and audit. So one user's tools see only that user's
//! files, and one user's runs, sessions and results are never served to
//! another: a per-user sandbox at the cost of a component instance per call.

use crate::audit::AuditLog;
use crate::config::serve::UserToml;
use crate::policy::{Policy, TrustedPaths};
use crate::registry::{CallObserver, Registry, ToolHost, check_grants};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `${workspace}` in the policy becomes for each user.
pub use crate::policy::workspace::WORKSPACE_VAR;

pub struct Tenant {
    pub name: String,
    /// SHA-256 of the bearer token; `None` only for the open local user.
    token_sha256: Option<[u8; 32]>,
    pub host: Arc<ToolHost>,
    pub data_dir: PathBuf,
    pub workspace: Option<PathBuf>,
}

/// A user as configured, token resolved.
#[derive(Clone)]
pub struct UserSpec {
    pub name: String,
    pub token_sha256: Option<[u8; 32]>,
    pub workspace: Option<PathBuf>,
}

impl UserSpec {
    /// Resolves `[[serve.users]]`: the token's hash from the file or the
    /// environment (`env` looks variables up).
    pub fn from_config(user: &UserToml, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let name_ok = !user.name.is_empty()
            && user
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(format!(
                "[[serve.users]] name `{}`: use letters, digits, `-` and `_`",
                user.name
            ));
        }
        let token_sha256 =
            match (&user.token_sha256, &user.token_env) {
                (Some(hex_hash), None) => {
                    let bytes = hex::decode(hex_hash.trim()).ok().filter(|b| b.len() == 32).ok_or_else(|| {
                    format!(
                        "[[serve.users]] `{}`: token_sha256 must be 64 hex digits (printf %s TOKEN | sha256sum)",
                        user.name
                    )
                })?;
                    let mut hash = [0; 32];
                    hash.copy_from_slice(&bytes);
                    hash
                }
                (None, Some(var)) => {
                    let token = env(var).filter(|t| !t.is_empty()).ok_or_else(|| {
                        format!(
                            "[[serve.users]] `{}`: the environment variable {var} (token_env) is not set",
                            user.name
                        )
                    })?;
                    hash_token(&token)
                }
                _ => {
                    return Err(format!(
                        "[[serve.users]] `{}`: give exactly one of token_sha256 and token_env",
                        user.name
                    ));
                }
            };
        Ok(Self {
            name: user.name.clone(),
            token_sha256: Some(token_sha256),
            workspace: Some(user.workspace.clone()),
        })
    }
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// How every user's audit log is written.
#[derive(Debug, Clone, Default)]
pub struct AuditSettings {
    /// A call whose intent line cannot be written does not run.
    pub required: bool,
    /// Cluster mode: each line is copied into the shared store too.
    pub copy_to: Option<crate::store::postgres::logs::SharedLog>,
}

impl Tenant {
    /// Builds the user's tool host: `policy_text` with `${workspace}`
    /// replaced (the workspace is created if missing), over `registry`.
    pub fn build(
        spec: &UserSpec,
        registry: &Registry,
        policy: Option<(&Path, &str)>,
        data_root: &Path,
        trusted: &TrustedPaths,
        observer: CallObserver,
        audit: &AuditSettings,
    ) -> Result<Self, String> {
        let data_dir = crate::config::user_data_dir(data_root, &spec.name);
        std::fs::create_dir_all(&data_dir).map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        let policy = match policy {
            Some((path, text)) => policy_for(path, text, spec.workspace.as_deref())?,
            None => Policy::deny_all(),
        };
        let warnings = check_grants(&policy, trusted).map_err(|e| format!("user `{}`: {e}", spec.name))?;
        for warning in warnings {
            tracing::warn!(user = %spec.name, "{warning}");
        }
        let audit = AuditLog::open(&data_dir)
            .map_err(|e| format!("cannot open the audit log: {e}"))?
            .required(audit.required)
            .copied_to(
                audit
                    .copy_to
                    .as_ref()
                    .map(|log| log.copy_as(crate::store::postgres::logs::LogKind::Audit, &spec.name)),
            );
        let host = ToolHost::new(registry.clone(), policy, Some(audit))
            .with_observer(observer)
            .with_trusted(trusted.clone());
        Ok(Self {
            name: spec.name.clone(),
            token_sha256: spec.token_sha256,
            host: Arc::new(host),
            data_dir,
            workspace: spec.workspace.clone(),
        })
    }

    /// What [`Tenant::build`] checks (the user's policy and its grants),
    /// changing nothing: `boram serve --check`. A missing workspace is a
    /// problem here (with the command that creates it), not created.
    pub fn check(spec: &UserSpec, policy: Option<(&Path, &str)>, trusted: &TrustedPaths) -> Result<(), String> {
        if let Some(workspace) = &spec.workspace
            && !workspace.is_dir()
        {
            return Err(format!(
                "user `{}`: the workspace {} does not exist; create it: mkdir -p {}",
                spec.name,
                workspace.display(),
                workspace.display()
            ));
        }
        let policy = match policy {
            Some((path, text)) => policy_for(path, text, spec.workspace.as_deref())?,
            None => Policy::deny_all(),
        };
        check_grants(&policy, trusted)
            .map(|_| ())
            .map_err(|e| format!("user `{}`: {e}", spec.name))
    }

    pub fn accepts(&self, token: &str) -> bool {
        self.token_sha256.is_some_and(|h| h == hash_token(token))
    }

    pub fn is_open(&self) -> bool {
        self.token_sha256.is_none()
    }
}

/// The policy at `path` (its text `text`) for a user whose workspace is
/// `workspace`: `${workspace}` replaced before parsing, so errors still
/// point at the file's lines.
pub use crate::policy::workspace::parse_with_workspace as policy_for;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_need_exactly_one_token_source() {
        let user = |sha: Option<&str>, env: Option<&str>| UserToml {
            name: "alice".into(),
            token_sha256: sha.map(str::to_string),
            token_env: env.map(str::to_string),
            workspace: "/tmp/w".into(),
        };
        let env = |name: &str| (name == "T").then(|| "secret".to_string());
        let from_env = UserSpec::from_config(&user(None, Some("T")), &env).expect("env token");
        assert_eq!(from_env.token_sha256, Some(hash_token("secret")));
        let hex = hex::encode(hash_token("secret"));
        let from_hash = UserSpec::from_config(&user(Some(&hex), None), &env).expect("hash");
        assert_eq!(from_hash.token_sha256, from_env.token_sha256);
        assert!(UserSpec::from_config(&user(None, Some("UNSET")), &env).is_err());
        assert!(UserSpec::from_config(&user(Some("abc"), None), &env).is_err());
        assert!(UserSpec::from_config(&user(None, None), &env).is_err());
        let mut bad = user(None, Some("T"));
        bad.name = "../x".into();
        assert!(UserSpec::from_config(&bad, &env).is_err());
    }
}
