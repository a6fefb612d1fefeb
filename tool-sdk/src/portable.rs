//! Input schemas every client reads the same way.
//!
//! schemars writes what JSON Schema allows but many clients and checkers
//! do not take: `"type": ["string", "null"]` for an `Option` field, and
//! formats of its own for Rust's number types (`uint32`, `int64`,
//! `double`, …). MCP clients (the Inspector's `--strict` check among them)
//! and model providers' tool validators reject or warn about both. So the
//! spec's schema is rewritten: a nullable type becomes
//! `anyOf: [{…the type…}, {"type": "null"}]` (a model may still send
//! `null` for an optional field, which serde accepts), and a `format` that
//! is not one of JSON Schema's own is dropped (the range stays:
//! `minimum: 0` for an unsigned number). A field of any JSON value
//! (`serde_json::Value`), which schemars writes as a schema with no
//! validation keyword at all, says so: `anyOf` of the six JSON types (the
//! Inspector's `--strict` check warns that an empty schema constrains
//! nothing, and some validators read it as a mistake).

use serde_json::{Map, Value};

/// The formats JSON Schema (2020-12) defines.
const STANDARD_FORMATS: [&str; 19] = [
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Keywords about the value itself, kept beside the `anyOf` rather than moved into it.
const ANNOTATIONS: [&str; 7] = [
    "description",
    "title",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Rewrites `schema` and every schema inside it.
pub fn make_portable(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for value in map.values_mut() {
                make_portable(value);
            }
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !STANDARD_FORMATS.contains(&f))
            {
                map.remove("format");
            }
            split_nullable(map);
            for position in SUBSCHEMA_MAPS {
                if let Some(Value::Object(subschemas)) = map.get_mut(position) {
                    subschemas.values_mut().for_each(say_any_value);
                }
            }
            for position in SUBSCHEMAS {
                if let Some(subschema) = map.get_mut(position) {
                    say_any_value(subschema);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(make_portable),
        _ => {}
    }
}

/// Keywords whose value is a map of name → schema.
const SUBSCHEMA_MAPS: [&str; 3] = ["properties", "$defs", "patternProperties"];
/// Keywords whose value is one schema.
const SUBSCHEMAS: [&str; 2] = ["items", "additionalProperties"];

/// A schema in a schema position that constrains nothing (only
/// annotations) → any of the JSON types, its annotations kept.
fn say_any_value(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if !map.keys().all(|k| ANNOTATIONS.contains(&k.as_str()) || k == "$comment") {
        return;
    }
    let kinds = ["object", "array", "string", "number", "boolean", "null"]
        .map(|kind| Value::Object(Map::from_iter([("type".to_string(), Value::String(kind.into()))])));
    map.insert("anyOf".into(), Value::Array(kinds.to_vec()));
}

/// `"type": [T…, "null"]` → `anyOf: [{"type": T…, and the other keywords}, {"type": "null"}]`.
fn split_nullable(map: &mut Map<String, Value>) {
    let Some(Value::Array(types)) = map.get("type") else {
        return;
    };
    let mut kinds: Vec<Value> = types.iter().filter(|t| t.as_str() != Some("null")).cloned().collect();
    let nullable = kinds.len() < types.len();
    let mut inner = Map::new();
    match kinds.len() {
        0 => {
            map.insert("type".into(), Value::String("null".into()));
            return;
        }
        1 => {
            inner.insert("type".into(), kinds.remove(0));
        }
        _ => {
            inner.insert("type".into(), Value::Array(kinds));
        }
    }
    map.remove("type");
    if !nullable {
        map.insert("type".into(), inner.remove("type").unwrap_or(Value::Null));
        return;
    }
    let keys: Vec<String> = map
        .keys()
        .filter(|k| !ANNOTATIONS.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in keys {
        if let Some(value) = map.remove(&key) {
            inner.insert(key, value);
        }
    }
    let mut null = Map::new();
    null.insert("type".into(), Value::String("null".into()));
    map.insert(
        "anyOf".into(),
        Value::Array(vec![Value::Object(inner), Value::Object(null)]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_of_any_value_says_so_and_keeps_its_description() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "document": {"description": "The JSON document itself."},
                "query": {"type": "string"},
                "anything": {}
            },
            "additionalProperties": false
        });
        make_portable(&mut schema);
        let any = json!([
            {"type": "object"}, {"type": "array"}, {"type": "string"},
            {"type": "number"}, {"type": "boolean"}, {"type": "null"}
        ]);
        assert_eq!(
            schema["properties"]["document"],
            json!({"description": "The JSON document itself.", "anyOf": any})
        );
        assert_eq!(schema["properties"]["anything"], json!({"anyOf": any}));
        assert_eq!(schema["properties"]["query"], json!({"type": "string"}));
        assert_eq!(schema["additionalProperties"], json!(false), "a boolean schema is left alone");
    }
}
