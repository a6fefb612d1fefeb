//! Agent profiles: a named system prompt, model, tool subset and limits.
//! Four ship built in (`general`, `research`, `ops`, `builder`);
//! `[profiles.NAME]` in the config replaces one or adds more. A profile
//! only narrows: its tools are a subset of what the policy already lets the
//! agent use, and its limits apply on top of the policy's.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// `[profiles.NAME]` in `config.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileToml {
    /// One line for the parent agent: when to delegate to this profile.
    pub description: Option<String>,
    /// Replaces the system prompt.
    pub system_prompt: Option<String>,
    /// Another model for this profile (default: the main one).
    pub model: Option<String>,
    /// The tools it may use (built-ins included); absent: all of them.
    pub tools: Option<Vec<String>>,
    pub max_rounds: Option<u32>,
    pub budget_usd: Option<f64>,
    pub time_limit_s: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub system_prompt: Option<String>,
    pub model: Option<String>,
    /// `None`: every tool the policy allows.
    pub tools: Option<BTreeSet<String>>,
    pub max_rounds: Option<u32>,
    pub budget_usd: Option<f64>,
    pub time_limit_s: Option<u64>,
}

/// The built-in profiles, before the config.
fn builtin() -> Vec<Profile> {
    let tools = |names: &[&str]| Some(names.iter().map(|s| s.to_string()).collect());
    vec![
        Profile {
            name: "general".into(),
            description: "General tasks with every tool the policy allows.".into(),
            system_prompt: None,
            model: None,
            tools: None,
            max_rounds: None,
            budget_usd: None,
            time_limit_s: None,
        },
        Profile {
            name: "research".into(),
            description: "Finds and reads sources (web pages, arXiv, files, memory) and reports what they say, \
                          with references."
                .into(),
            system_prompt: Some(
                "You are a research assistant. Find sources with your tools, read them, and answer with what they \
                 say and where it came from. Do not change any file."
                    .into(),
            ),
            model: None,
            tools: tools(&[
                "http_get",
                "arxiv_search",
                "read_file",
                "list_dir",
                "grep",
                "text_stats",
                "memory_search",
            ]),
            max_rounds: Some(10),
            budget_usd: Some(0.5),
            time_limit_s: Some(300),
        },
        Profile {
            name: "ops".into(),
            description: "Inspects files, logs and data in the workspace and reports on them; no writing.".into(),
            system_prompt: Some(
                "You are an operations assistant. Inspect files, logs and data with your tools and report precisely \
                 what you found. Do not change anything."
                    .into(),
            ),
            model: None,
            tools: tools(&[
                "read_file",
                "list_dir",
                "grep",
                "json_query",
                "text_stats",
                "github_pr_digest",
            ]),
            max_rounds: Some(8),
            budget_usd: Some(0.3),
            time_limit_s: Some(180),
        },
        Profile {
            name: "builder".into(),
            description: "Writes files and new tools (create_tool) to get a job done.".into(),
            system_prompt: Some(
                "You are a builder. Make the requested change with your tools: write files, or write a new tool with \
                 create_tool when none fits. Check your work before you answer."
                    .into(),
            ),
            model: None,
            tools: tools(&[
                "read_file",
                "list_dir",
                "write_file",
                "grep",
                "create_tool",
                "list_tools",
            ]),
            max_rounds: Some(12),
            budget_usd: Some(1.0),
            time_limit_s: Some(600),
        },
    ]
}

/// Built-in profiles overlaid with the config's.
#[derive(Debug, Clone)]
pub struct Profiles(BTreeMap<String, Profile>);

impl Default for Profiles {
    fn default() -> Self {
        Self::new(&BTreeMap::new())
    }
}

impl Profiles {
    pub fn new(config: &BTreeMap<String, ProfileToml>) -> Self {
        let mut map: BTreeMap<String, Profile> = builtin().into_iter().map(|p| (p.name.clone(), p)).collect();
        for (name, t) in config {
            let base = map.get(name).cloned();
            let profile = Profile {
                name: name.clone(),
                description: t
                    .description
                    .clone()
                    .or_else(|| base.as_ref().map(|b| b.description.clone()))
                    .unwrap_or_else(|| format!("profile `{name}`")),
                system_prompt: t
                    .system_prompt
                    .clone()
                    .or_else(|| base.as_ref().and_then(|b| b.system_prompt.clone())),
                model: t.model.clone().or_else(|| base.as_ref().and_then(|b| b.model.clone())),
                tools: match &t.tools {
                    Some(list) => Some(list.iter().cloned().collect()),
                    None => base.as_ref().and_then(|b| b.tools.clone()),
                },
                max_rounds: t.max_rounds.or_else(|| base.as_ref().and_then(|b| b.max_rounds)),
                budget_usd: t.budget_usd.or_else(|| base.as_ref().and_then(|b| b.budget_usd)),
                time_limit_s: t.time_limit_s.or_else(|| base.as_ref().and_then(|b| b.time_limit_s)),
            };
            map.insert(name.clone(), profile);
        }
        Self(map)
    }

    pub fn get(&self, name: &str) -> Option<&Profile> {
        self.0.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn all(&self) -> impl Iterator<Item = &Profile> {
        self.0.values()
    }

    /// `name` or an error that lists the profiles.
    pub fn require(&self, name: &str) -> Result<&Profile, String> {
        self.get(name).ok_or_else(|| {
            format!(
                "no profile `{name}`; profiles: {}",
                self.names().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

impl Profile {
    /// The tools this profile allows within `parent` (the parent's allowed
    /// set, `None` meaning everything): never more than the parent has.
    pub fn narrow(&self, parent: Option<&BTreeSet<String>>) -> Option<BTreeSet<String>> {
        match (&self.tools, parent) {
            (None, None) => None,
            (Some(own), None) => Some(own.clone()),
            (None, Some(parent)) => Some(parent.clone()),
            (Some(own), Some(parent)) => Some(own.intersection(parent).cloned().collect()),
        }
    }

    /// `limits` narrowed by this profile's own.
    pub fn limits(&self, mut limits: crate::policy::AgentLimits) -> crate::policy::AgentLimits {
        if let Some(rounds) = self.max_rounds {
            limits.max_rounds = limits.max_rounds.min(rounds);
        }
        if let Some(budget) = self.budget_usd {
            limits.budget_usd = limits.budget_usd.min(budget);
            limits.budget_set = true;
        }
        if let Some(seconds) = self.time_limit_s {
            limits.time_limit = limits.time_limit.min(std::time::Duration::from_secs(seconds));
        }
        limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_overrides_and_adds_profiles() {
        let mut config = BTreeMap::new();
        config.insert(
            "research".to_string(),
            ProfileToml {
                max_rounds: Some(3),
                ..Default::default()
            },
        );
        config.insert(
            "translator".to_string(),
            ProfileToml {
                tools: Some(vec!["read_file".into()]),
                ..Default::default()
            },
        );
        let profiles = Profiles::new(&config);
        let research = profiles.get("research").expect("research");
        assert_eq!(research.max_rounds, Some(3));
        assert!(research.tools.as_ref().is_some_and(|t| t.contains("arxiv_search")));
        assert_eq!(
            profiles.names().collect::<Vec<_>>(),
            ["builder", "general", "ops", "research", "translator"]
        );
        assert!(profiles.require("nope").expect_err("unknown").contains("research"));
    }

    #[test]
    fn a_profile_never_widens_its_parent() {
        let research = Profiles::default().get("research").cloned().expect("research");
        let parent: BTreeSet<String> = ["read_file".to_string(), "write_file".to_string()].into();
        assert_eq!(research.narrow(Some(&parent)), Some(["read_file".to_string()].into()));
        let general = Profiles::default().get("general").cloned().expect("general");
        assert_eq!(general.narrow(Some(&parent)), Some(parent.clone()));
        let limits = research.limits(crate::policy::AgentLimits::default());
        assert_eq!(
            limits.max_rounds,
            10.min(crate::policy::AgentLimits::default().max_rounds)
        );
    }
}
