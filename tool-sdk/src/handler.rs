//! Glue between a typed tool function and the untyped `describe`/`call`
//! exports: builds the spec from the input type's JSON Schema, decodes the
//! input JSON, encodes the output JSON. Used by [`crate::export_tools!`].

use crate::ToolError;
use crate::bindings::{ToolError as WitToolError, ToolSpec};
use schemars::{JsonSchema, Schema};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Builds the spec of tool `name` from its handler's input type.
///
/// The input type's doc comment becomes the description; the remaining
/// schema (fields, their docs and types) becomes the input schema.
pub fn describe_handler<I, O, F>(name: &str, _handler: F) -> ToolSpec
where
    I: JsonSchema,
    F: Fn(I) -> Result<O, ToolError>,
{
    let mut schema = schemars::schema_for!(I);
    let description = take_string(&mut schema, "description").unwrap_or_default();
    take_string(&mut schema, "title");
    let mut schema = schema.to_value();
    crate::portable::make_portable(&mut schema);
    ToolSpec {
        name: name.to_string(),
        description,
        input_schema: serde_json::to_string(&schema).unwrap_or_else(|_| "{}".to_string()),
    }
}

/// Decodes `input`, runs the handler and encodes its output.
pub fn call_handler<I, O, F>(name: &str, handler: F, input: &str) -> Result<String, WitToolError>
where
    I: JsonSchema + DeserializeOwned,
    O: Serialize,
    F: Fn(I) -> Result<O, ToolError>,
{
    let decoded: I = serde_json::from_str(input).map_err(|e| {
        let expected = expected_fields(&schemars::schema_for!(I));
        WitToolError::InvalidInput(format!("input for `{name}` is not valid: {e}; {expected}"))
    })?;
    let output = handler(decoded)?;
    serde_json::to_string(&output)
        .map_err(|e| WitToolError::Failed(format!("could not encode the output of `{name}`: {e}")))
}

/// The error for a call naming a tool this component does not provide.
pub fn unknown_tool(name: &str, known: &[&str]) -> WitToolError {
    WitToolError::InvalidInput(format!(
        "this component has no tool `{name}`; it provides: {}",
        known.join(", ")
    ))
}

fn take_string(schema: &mut Schema, key: &str) -> Option<String> {
    match schema.remove(key)? {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    }
}

/// Summarises the schema's top-level fields, e.g.
/// `expected a JSON object with fields: path (string, required), limit (integer)`.
fn expected_fields(schema: &Schema) -> String {
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return "expected a JSON object".to_string();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let fields: Vec<String> = props
        .iter()
        .map(|(field, spec)| {
            let ty = type_name(spec);
            if required.contains(&field.as_str()) {
                format!("{field} ({ty}, required)")
            } else {
                format!("{field} ({ty})")
            }
        })
        .collect();
    if fields.is_empty() {
        "expected an empty JSON object {}".to_string()
    } else {
        format!("expected a JSON object with fields: {}", fields.join(", "))
    }
}

fn type_name(spec: &serde_json::Value) -> String {
    match spec.get("type") {
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(serde_json::Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str())
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ if spec.get("enum").is_some() => "one of the listed values".to_string(),
        _ => "value".to_string(),
    }
}
