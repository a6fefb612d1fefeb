//! What a call costs: a price table per model in US dollars per million
//! tokens, built in for well-known models and overridable (or extended for
//! local models) with `[prices."MODEL"]` in the config file.

use super::types::Usage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Uncached input tokens.
    pub input: f64,
    pub output: f64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read: f64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_write: f64,
}

impl Price {
    pub fn cost(&self, usage: &Usage) -> f64 {
        (usage.input_tokens as f64 * self.input
            + usage.output_tokens as f64 * self.output
            + usage.cache_read_tokens as f64 * self.cache_read
            + usage.cache_write_tokens as f64 * self.cache_write)
            / 1_000_000.0
    }
}

/// Built-in prices (list prices when this table was written; override in
/// config when they change). Matched by longest prefix, so dated model
/// names (`claude-sonnet-4-5-20250929`) find their family.
const BUILT_IN: &[(&str, Price)] = &[
    ("claude-opus-4", p(15.0, 75.0, 1.5, 18.75)),
    ("claude-opus-4-5", p(5.0, 25.0, 0.5, 6.25)),
    ("claude-sonnet-4", p(3.0, 15.0, 0.3, 3.75)),
    ("claude-3-7-sonnet", p(3.0, 15.0, 0.3, 3.75)),
    ("claude-haiku-4", p(1.0, 5.0, 0.1, 1.25)),
    ("claude-3-5-haiku", p(0.8, 4.0, 0.08, 1.0)),
    ("gpt-4o", p(2.5, 10.0, 1.25, 0.0)),
    ("gpt-4o-mini", p(0.15, 0.6, 0.075, 0.0)),
    ("gpt-4.1", p(2.0, 8.0, 0.5, 0.0)),
    ("gpt-4.1-mini", p(0.4, 1.6, 0.1, 0.0)),
    ("gpt-5", p(1.25, 10.0, 0.125, 0.0)),
    ("gpt-5-mini", p(0.25, 2.0, 0.025, 0.0)),
];

const fn p(input: f64, output: f64, cache_read: f64, cache_write: f64) -> Price {
    Price {
        input,
        output,
        cache_read,
        cache_write,
    }
}

/// Built-in prices plus the config's overrides.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    overrides: BTreeMap<String, Price>,
}

impl PriceTable {
    pub fn new(overrides: BTreeMap<String, Price>) -> Self {
        Self { overrides }
    }

    /// The price of `model`: an exact override, else the longest matching
    /// prefix among overrides and built-ins. `None` for an unknown model.
    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some(price) = self.overrides.get(model) {
            return Some(*price);
        }
        self.overrides
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .chain(BUILT_IN.iter().map(|(k, v)| (*k, *v)))
            .filter(|(prefix, _)| model.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, price)| price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins_and_overrides_beat_built_ins() {
        let table = PriceTable::default();
        assert_eq!(table.price("gpt-4o-mini-2024-07-18").map(|p| p.input), Some(0.15));
        assert_eq!(table.price("gpt-4o-2024-08-06").map(|p| p.input), Some(2.5));
        assert_eq!(table.price("llama3.2"), None);
        let table = PriceTable::new([("gpt-4o".to_string(), p(1.0, 1.0, 0.0, 0.0))].into());
        assert_eq!(table.price("gpt-4o").map(|p| p.input), Some(1.0));
    }

    #[test]
    fn cost_counts_every_kind_of_token() {
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_tokens: 2_000_000,
            cache_write_tokens: 0,
        };
        let cost = p(3.0, 15.0, 0.3, 3.75).cost(&usage);
        assert!((cost - (3.0 + 1.5 + 0.6)).abs() < 1e-9, "{cost}");
    }
}
