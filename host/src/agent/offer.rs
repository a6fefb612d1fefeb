//! Which tools a request offers: every loaded tool, or with selection on
//! the ones relevant to the latest prompt and recent tool use plus the
//! sticky ones; built-ins always. After a hot swap the ranking and the
//! `list_tools` catalogue are rebuilt from the new tool set.

use super::Agent;
use super::select::{SelectionOptions, Selector};
use crate::llm::{Message, ToolDef};
use crate::registry::ToolHost;
use std::sync::Arc;

impl Agent {
    /// After a hot swap, rebuilds the ranking and the `list_tools`
    /// catalogue from the new tool set (the next request shows it).
    pub(super) fn refresh_tools(&mut self) {
        let generation = self.host.generation();
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        let catalogue = self.catalogue();
        let selector = selector_for(self.options.selection.as_ref(), &catalogue);
        self.builtins = Arc::new(self.builtins.with_catalogue(catalogue, selector.clone()));
        self.selector = selector;
    }

    /// Every tool, or with selection on, the ones relevant to the latest
    /// prompt and recent tool use, plus the sticky ones; built-ins always.
    pub(super) fn offered_tools(&self) -> Vec<ToolDef> {
        let Some(selector) = &self.selector else {
            return self.tool_defs();
        };
        let mut sticky = self.used.clone();
        sticky.extend(self.builtins.loaded());
        let selection = selector.select(&self.selection_query(), &sticky);
        let registry = self.host.registry();
        let builtins = self.builtins_offered();
        let total = registry.names().count() + builtins.len();
        let mut defs: Vec<ToolDef> = registry
            .tools()
            .filter(|(spec, _)| selection.names.contains(&spec.name))
            .map(|(spec, _)| tool_def(spec))
            .collect();
        defs.extend(builtins);
        tracing::info!(
            selected = defs.len(),
            total,
            schema_chars_sent = selection.schema_chars_sent,
            schema_chars_all = selection.schema_chars_all,
            cache_hit = selection.cache_hit,
            by_meaning = selector.by_meaning(),
            "tool selection"
        );
        defs
    }

    /// The latest prompt typed by the user and the names of the tools used
    /// in the last two replies.
    fn selection_query(&self) -> String {
        let messages = &self.conversation.messages;
        let prompt = messages
            .iter()
            .rev()
            .find(|m| {
                m.role == crate::llm::Role::User
                    && m.content.iter().any(|b| matches!(b, crate::llm::Block::Text { .. }))
            })
            .map(Message::text)
            .unwrap_or_default();
        let recent: Vec<&str> = messages
            .iter()
            .rev()
            .filter(|m| m.role == crate::llm::Role::Assistant)
            .take(2)
            .flat_map(|m| m.tool_uses().map(|(_, name, _)| name))
            .collect();
        format!("{prompt} {}", recent.join(" ").replace('_', " "))
    }
}

/// Every tool `host` has loaded, in the shape the model is given.
pub fn tool_defs(host: &ToolHost) -> Vec<ToolDef> {
    allowed_defs(host, None)
}

/// The loaded tools within `allowed` (`None`: all).
pub(super) fn allowed_defs(host: &ToolHost, allowed: Option<&std::collections::BTreeSet<String>>) -> Vec<ToolDef> {
    host.registry()
        .tools()
        .filter(|(spec, _)| super::delegate::permits(allowed, &spec.name))
        .map(|(spec, _)| tool_def(spec))
        .collect()
}

/// A loaded tool in the shape the model is given.
pub fn tool_def(spec: &crate::runtime::ToolSpec) -> ToolDef {
    ToolDef {
        name: spec.name.clone(),
        description: spec.description.clone(),
        input_schema: spec.input_schema.clone(),
    }
}

/// A selector over `catalogue` when selection is on and there are more
/// tools than its `min_tools`; `None` offers every tool.
pub(super) fn selector_for(options: Option<&SelectionOptions>, catalogue: &[ToolDef]) -> Option<Arc<Selector>> {
    options
        .filter(|o| catalogue.len() > o.min_tools)
        .map(|o| Arc::new(Selector::new(catalogue, o.clone())))
}
