//! `json_query`: selects values from a JSON document with a JSON pointer
//! (`/items/0/name`) or a dotted path (`items[0].name`, `items[*].name`).

use boram_tool_sdk::prelude::*;
use boram_tool_sdk::serde_json::Value;

/// Select values from a JSON document. The query is either a JSON pointer
/// (RFC 6901, starts with `/`, e.g. `/items/0/name`) or a dotted path
/// (`items[0].name`; `[*]` or `.*` selects every element). Give the document
/// inline as `document` or as a file `path`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// The query: a JSON pointer or a dotted path. Empty selects the whole document.
    query: String,
    /// The JSON document itself.
    document: Option<Value>,
    /// Or: absolute path of a JSON file inside the sandbox.
    path: Option<String>,
}

#[derive(Serialize)]
struct Output {
    /// Every value the query selected, in document order.
    matches: Vec<Value>,
    count: usize,
}

fn json_query(input: Input) -> Result<Output, ToolError> {
    let document = match (input.document, input.path) {
        (Some(doc), None) => doc,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).context(format!("cannot read {path}"))?;
            boram_tool_sdk::serde_json::from_str(&text).context(format!("{path} is not valid JSON"))?
        }
        _ => return Err(ToolError::invalid_input("give exactly one of `document` or `path`")),
    };
    let matches = if input.query.starts_with('/') || input.query.is_empty() {
        let found = document
            .pointer(&input.query)
            .ok_or_else(|| missing(&document, &input.query))?;
        vec![found.clone()]
    } else {
        select(&document, &parse_path(&input.query)?)
    };
    Ok(Output {
        count: matches.len(),
        matches,
    })
}

#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    All,
}

/// Parses `a.b[0].c`, `a[*].b`, `a.*` into steps.
fn parse_path(query: &str) -> Result<Vec<Step>, ToolError> {
    let mut steps = Vec::new();
    for part in query.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        match key {
            "" if rest.is_empty() => {
                return Err(ToolError::invalid_input(format!("empty segment in path `{query}`")));
            }
            "" => {}
            "*" => steps.push(Step::All),
            key => steps.push(Step::Key(key.to_string())),
        }
        while !rest.is_empty() {
            let end = rest
                .find(']')
                .ok_or_else(|| ToolError::invalid_input(format!("unclosed `[` in path `{query}`")))?;
            let inside = &rest[1..end];
            steps.push(match inside {
                "*" => Step::All,
                n => Step::Index(n.parse().map_err(|_| {
                    ToolError::invalid_input(format!(
                        "`[{n}]` in path `{query}` is not an index; use a number or `*`"
                    ))
                })?),
            });
            rest = &rest[end + 1..];
            if !rest.is_empty() && !rest.starts_with('[') {
                return Err(ToolError::invalid_input(format!(
                    "unexpected `{rest}` in path `{query}`"
                )));
            }
        }
    }
    Ok(steps)
}

/// Applies the steps to every current value; missing keys select nothing.
fn select(document: &Value, steps: &[Step]) -> Vec<Value> {
    let mut current = vec![document];
    for step in steps {
        current = current
            .into_iter()
            .flat_map(|v| -> Vec<&Value> {
                match (step, v) {
                    (Step::Key(k), Value::Object(map)) => map.get(k).into_iter().collect(),
                    (Step::Index(i), Value::Array(items)) => items.get(*i).into_iter().collect(),
                    (Step::All, Value::Array(items)) => items.iter().collect(),
                    (Step::All, Value::Object(map)) => map.values().collect(),
                    _ => Vec::new(),
                }
            })
            .collect();
    }
    current.into_iter().cloned().collect()
}

/// Explains a pointer that selects nothing: names the deepest prefix that
/// exists and the keys available there, so the caller can correct the query.
fn missing(document: &Value, pointer: &str) -> ToolError {
    let mut prefix = pointer.to_string();
    while let Some(cut) = prefix.rfind('/') {
        prefix.truncate(cut);
        if let Some(found) = document.pointer(&prefix) {
            let shown = if prefix.is_empty() { "the root" } else { prefix.as_str() };
            let available = match found {
                Value::Object(map) => format!("keys there: {}", map.keys().cloned().collect::<Vec<_>>().join(", ")),
                Value::Array(items) => format!("it is an array of {} items", items.len()),
                other => format!("it is a {}", kind(other)),
            };
            return ToolError::failed(format!("nothing at `{pointer}`; {shown} exists and {available}"));
        }
    }
    ToolError::failed(format!("nothing at `{pointer}`"))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

boram_tool_sdk::export_tools!("json_query" => json_query);
