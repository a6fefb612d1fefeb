//! Checks a tool's input before the call (issue 14): the host used to pass
//! any text to the component, so duplicate keys (which a JSON parser in the
//! guest may read differently from the host's audit log) and fields the
//! schema does not declare reached raw components. Now the input must be
//! one JSON object with no key repeated at any depth, valid against the
//! input schema the tool declared in `describe`.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// The declared schema of one tool, compiled once per loaded component.
pub struct InputCheck {
    validator: Option<jsonschema::Validator>,
    /// `path (string, required), offset (integer)`: said with every
    /// refusal, so the model can fix its call in one go.
    expected: String,
}

impl InputCheck {
    /// A check against `schema`; a schema the validator cannot compile is
    /// logged and only the JSON-level checks apply.
    pub fn new(tool: &str, schema: &serde_json::Value) -> Self {
        let validator = jsonschema::validator_for(schema)
            .inspect_err(
                |e| tracing::warn!(tool, error = %e, "input schema does not compile; input checked as JSON only"),
            )
            .ok();
        Self {
            validator,
            expected: expected_fields(schema),
        }
    }

    /// `Err` with what is wrong with `input`, in words for the model.
    pub fn check(&self, input: &str) -> Result<(), String> {
        reject_duplicate_keys(input)?;
        let value: serde_json::Value =
            serde_json::from_str(input).map_err(|e| format!("the input is not JSON: {e}"))?;
        if !value.is_object() {
            return Err("the input must be a JSON object".to_string());
        }
        let Some(validator) = &self.validator else {
            return Ok(());
        };
        let problems: Vec<String> = validator
            .iter_errors(&value)
            .take(5)
            .map(|e| {
                let at = e.instance_path.to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        let mut message = format!("the input does not match the tool's schema: {}", problems.join("; "));
        if !self.expected.is_empty() {
            message.push_str(&format!("; expected fields: {}", self.expected));
        }
        Err(message)
    }
}

/// The top-level properties of `schema` with their types, required ones marked.
fn expected_fields(schema: &serde_json::Value) -> String {
    let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) else {
        return String::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    properties
        .iter()
        .map(|(name, property)| {
            let kind = match property.get("type") {
                Some(serde_json::Value::String(t)) => t.clone(),
                Some(serde_json::Value::Array(ts)) => {
                    ts.iter().filter_map(|t| t.as_str()).collect::<Vec<_>>().join(" or ")
                }
                _ => "any".to_string(),
            };
            let required = if required.contains(&name.as_str()) {
                ", required"
            } else {
                ""
            };
            format!("{name} ({kind}{required})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `Err` naming the first key that appears twice in one object.
fn reject_duplicate_keys(input: &str) -> Result<(), String> {
    let mut deserializer = serde_json::Deserializer::from_str(input);
    deserializer
        .deserialize_any(NoDuplicates)
        .map_err(|e| format!("the input is not acceptable JSON: {e}"))
}

/// Walks any JSON value, failing on a key repeated within one object.
struct NoDuplicates;

impl<'de> Visitor<'de> for NoDuplicates {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            map.next_value_seed(Nested)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Nested)?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// The same walk for a nested value.
struct Nested;

impl<'de> de::DeserializeSeed<'de> for Nested {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(NoDuplicates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check() -> InputCheck {
        InputCheck::new(
            "t",
            &json!({"type": "object", "properties": {"path": {"type": "string"}},
                    "required": ["path"], "additionalProperties": false}),
        )
    }

    #[test]
    fn duplicate_keys_at_any_depth_are_refused_issue_14() {
        let err = check()
            .check(r#"{"path": "/a", "path": "/etc/passwd"}"#)
            .expect_err("must be refused");
        assert!(err.contains("duplicate key `path`"), "{err}");
        let nested = InputCheck::new("t", &json!({"type": "object"}));
        let err = nested
            .check(r#"{"a": [{"b": 1, "b": 2}]}"#)
            .expect_err("must be refused");
        assert!(err.contains("duplicate key `b`"), "{err}");
    }

    #[test]
    fn extra_fields_missing_fields_and_wrong_types_are_refused() {
        assert!(check().check(r#"{"path": "/a"}"#).is_ok());
        let extra = check()
            .check(r#"{"path": "/a", "mode": "x"}"#)
            .expect_err("must be refused");
        assert!(extra.contains("'mode' was unexpected"), "{extra}");
        assert!(extra.ends_with("; expected fields: path (string, required)"), "{extra}");
        assert!(check().check(r#"{}"#).expect_err("must be refused").contains("path"));
        assert!(
            check()
                .check(r#"{"path": 3}"#)
                .expect_err("must be refused")
                .contains("/path")
        );
        assert!(check().check(r#"[1]"#).expect_err("must be refused").contains("object"));
    }
}
