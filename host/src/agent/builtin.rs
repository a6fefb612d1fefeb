//! Tools the host itself provides to the model: `memory_save` and
//! `memory_search` (the long-term memory; governed by the policy like any
//! tool), `list_tools` (the catalogue of tools left out by selection;
//! naming one loads it for the next request) and `create_tool` (the model
//! writes a tool; see [`crate::authoring::factory`]). They run in the host,
//! not in a sandbox: they touch only the memory database, the tool list
//! and, for `create_tool`, the created crates and the tools directory.

use super::delegate::{DELEGATE, Delegator};
use super::events::EventSink;
use super::select::Selector;
use crate::authoring::factory::{CreateError, CreateRequest, ToolFactory};
use crate::llm::ToolDef;
use crate::memory::{MemoryError, Notes};
use crate::policy::{Approval, ToolPolicy};
use crate::registry::ToolHost;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

pub const MEMORY_SAVE: &str = "memory_save";
pub const MEMORY_SEARCH: &str = "memory_search";
pub const LIST_TOOLS: &str = "list_tools";
pub const CREATE_TOOL: &str = "create_tool";

/// Every built-in's name: no sandboxed tool may take one.
pub const BUILTIN_NAMES: &[&str] = &[MEMORY_SAVE, MEMORY_SEARCH, LIST_TOOLS, CREATE_TOOL, DELEGATE];

/// The approval that applies to built-in `name`: the policy's, except that
/// `create_tool` asks first unless its own `[tools.create_tool]` table says
/// otherwise (a `[defaults]` of "allow" must not let the model build and
/// load code unasked).
pub fn approval_for(name: &str, policy: &ToolPolicy) -> Approval {
    if name == CREATE_TOOL && !policy.approval_from_tool && policy.approval == Approval::Allow {
        return Approval::Prompt;
    }
    policy.approval
}

/// How a built-in call went wrong.
pub enum BuiltinError {
    /// The model can fix its input.
    InvalidInput(String),
    Failed(String),
}

impl BuiltinError {
    /// The outcome word, as for a sandboxed call (`invalid_input`, `failed`).
    pub fn outcome(&self) -> &'static str {
        match self {
            BuiltinError::InvalidInput(_) => "invalid_input",
            BuiltinError::Failed(_) => "failed",
        }
    }

    /// What the caller is told: the outcome and the reason.
    pub fn message(&self) -> String {
        match self {
            BuiltinError::InvalidInput(m) | BuiltinError::Failed(m) => format!("{}: {m}", self.outcome()),
        }
    }
}

pub struct Builtins {
    memory: Option<Arc<Notes>>,
    /// Every sandboxed tool, for `list_tools`.
    catalogue: Vec<ToolDef>,
    selector: Option<Arc<Selector>>,
    /// Tools the model asked for through `list_tools` or created.
    loaded: Mutex<BTreeSet<String>>,
    factory: Option<Arc<ToolFactory>>,
    delegator: Option<Arc<Delegator>>,
}

impl Builtins {
    pub fn new(memory: Option<Arc<Notes>>, catalogue: Vec<ToolDef>, selector: Option<Arc<Selector>>) -> Self {
        Self {
            memory,
            catalogue,
            selector,
            loaded: Mutex::default(),
            factory: None,
            delegator: None,
        }
    }

    /// These built-ins plus `delegate`, starting sub-agents with `delegator`.
    pub fn with_delegator(mut self, delegator: Option<Arc<Delegator>>) -> Self {
        self.delegator = delegator;
        self
    }

    pub fn memory(&self) -> Option<Arc<Notes>> {
        self.memory.clone()
    }

    pub fn factory(&self) -> Option<Arc<ToolFactory>> {
        self.factory.clone()
    }

    /// These built-ins plus `create_tool`, building with `factory`.
    pub fn with_factory(mut self, factory: Option<Arc<ToolFactory>>) -> Self {
        self.factory = factory;
        self
    }

    /// The same built-ins over a new tool catalogue (after a hot swap),
    /// keeping what the model loaded.
    pub fn with_catalogue(&self, catalogue: Vec<ToolDef>, selector: Option<Arc<Selector>>) -> Self {
        Self {
            memory: self.memory.clone(),
            catalogue,
            selector,
            loaded: Mutex::new(self.loaded()),
            factory: self.factory.clone(),
            delegator: self.delegator.clone(),
        }
    }

    pub fn is_builtin(&self, name: &str) -> bool {
        (self.memory.is_some() && (name == MEMORY_SAVE || name == MEMORY_SEARCH))
            || (self.selector.is_some() && name == LIST_TOOLS)
            || (self.factory.is_some() && name == CREATE_TOOL)
            || (self.delegator.is_some() && name == DELEGATE)
    }

    /// Tools loaded through `list_tools` so far.
    pub fn loaded(&self) -> BTreeSet<String> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The definitions of the built-ins available here.
    pub fn defs(&self) -> Vec<ToolDef> {
        let mut defs = Vec::new();
        if self.memory.is_some() {
            defs.push(ToolDef {
                name: MEMORY_SAVE.into(),
                description: "Save a note to long-term memory, kept across sessions: facts about the user or \
                    project, preferences, decisions, what worked. Keep each note short and self-contained."
                    .into(),
                input_schema: json!({"type": "object", "additionalProperties": false, "required": ["text"],
                    "properties": {
                        "text": {"type": "string", "description": "The note, at most 4000 characters."},
                        "tags": {"type": "array", "items": {"type": "string"},
                                 "description": "Up to 10 short tags (letters, digits, - and _), e.g. [\"prefs\"]."}}}),
            });
            defs.push(ToolDef {
                name: MEMORY_SEARCH.into(),
                description: "Search long-term memory for notes saved in this or earlier sessions; best match first."
                    .into(),
                input_schema: json!({"type": "object", "additionalProperties": false, "required": ["query"],
                    "properties": {
                        "query": {"type": "string", "description": "Words to look for."},
                        "limit": {"type": "integer", "minimum": 1, "maximum": 20,
                                  "description": "Most notes returned (default 5)."}}}),
            });
        }
        if self.selector.is_some() {
            defs.push(ToolDef {
                name: LIST_TOOLS.into(),
                description: "List tools that exist but were not offered to you in this request. Give `query` to \
                    find ones for a task; name tools in `load` to have them offered from your next request on."
                    .into(),
                input_schema: json!({"type": "object", "additionalProperties": false,
                    "properties": {
                        "query": {"type": "string", "description": "What you need a tool for."},
                        "load": {"type": "array", "items": {"type": "string"},
                                 "description": "Names of tools to offer from the next request on."}}}),
            });
        }
        if self.factory.is_some() {
            defs.push(ToolDef {
                name: CREATE_TOOL.into(),
                description: "Write a new tool in Rust when no existing tool can do the job (check list_tools \
                    first). The host builds it for WebAssembly and loads it: you can call it from your next \
                    request. If it does not compile, you get the compiler errors; fix and call create_tool again \
                    with the same name. A new tool has no filesystem, network, environment or secrets unless the \
                    operator's policy grants them: write pure computations over the input. The source is the \
                    whole src/lib.rs:\n\
                    use boram_tool_sdk::prelude::*;\n\
                    /// What the tool does (this doc comment is its description).\n\
                    #[derive(Deserialize, JsonSchema)]\n\
                    struct Input { /// what the field means\n text: String }\n\
                    #[derive(Serialize)]\n\
                    struct Output { result: String }\n\
                    fn NAME(input: Input) -> Result<Output, ToolError> { Ok(Output { result: input.text }) }\n\
                    boram_tool_sdk::export_tools!(\"NAME\" => NAME);\n\
                    Errors: ToolError::invalid_input(msg) for bad input, ToolError::failed(msg) otherwise. \
                    Only the SDK, serde and schemars are available as crates."
                    .into(),
                input_schema: json!({"type": "object", "additionalProperties": false,
                    "required": ["name", "description", "source"],
                    "properties": {
                        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$",
                                 "description": "The tool's name, snake_case, e.g. \"roman_numerals\"."},
                        "description": {"type": "string",
                                        "description": "One or two sentences: what the tool does and when to use it."},
                        "source": {"type": "string",
                                   "description": "The complete src/lib.rs, written against boram_tool_sdk."}}}),
            });
        }
        if let Some(delegator) = &self.delegator {
            let profiles: Vec<&str> = delegator.profiles.names().collect();
            defs.push(ToolDef {
                name: DELEGATE.into(),
                description: delegator.description(),
                input_schema: json!({"type": "object", "additionalProperties": false,
                    "required": ["profile", "task"],
                    "properties": {
                        "profile": {"type": "string", "enum": profiles, "description": "Which specialised agent."},
                        "task": {"type": "string",
                                 "description": "The whole sub-task, with every detail it needs."}}}),
            });
        }
        defs
    }

    /// Runs built-in `name`; `Ok` is the JSON result for the model.
    pub async fn call(
        &self,
        host: &ToolHost,
        name: &str,
        input: &Value,
        events: &EventSink,
    ) -> Result<String, BuiltinError> {
        match name {
            DELEGATE => self.delegate(input, events).await,
            MEMORY_SAVE => self.memory_save(input).await,
            MEMORY_SEARCH => self.memory_search(input).await,
            LIST_TOOLS => self.list_tools(input),
            CREATE_TOOL => self.create_tool(host, input).await,
            other => Err(BuiltinError::Failed(format!("`{other}` is not a built-in tool"))),
        }
    }

    fn store(&self) -> Result<&Notes, BuiltinError> {
        self.memory
            .as_deref()
            .ok_or_else(|| BuiltinError::Failed("memory is not available in this session".into()))
    }

    async fn memory_save(&self, input: &Value) -> Result<String, BuiltinError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Save {
            text: String,
            #[serde(default)]
            tags: Vec<String>,
        }
        let save: Save = parse(input, "{\"text\": string, \"tags\"?: [string]}")?;
        let id = self.store()?.save(&save.text, &save.tags).await.map_err(memory_error)?;
        Ok(json!({"saved": id}).to_string())
    }

    async fn memory_search(&self, input: &Value) -> Result<String, BuiltinError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Search {
            query: String,
            limit: Option<usize>,
        }
        let search: Search = parse(input, "{\"query\": string, \"limit\"?: 1..20}")?;
        let limit = search.limit.unwrap_or(5);
        if !(1..=20).contains(&limit) {
            return Err(BuiltinError::InvalidInput(format!(
                "`limit` must be 1 to 20, got {limit}"
            )));
        }
        let found = self.store()?.search(&search.query, limit).await.map_err(memory_error)?;
        Ok(json!({ "notes": found }).to_string())
    }

    fn list_tools(&self, input: &Value) -> Result<String, BuiltinError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct List {
            query: Option<String>,
            #[serde(default)]
            load: Vec<String>,
        }
        let list: List = parse(input, "{\"query\"?: string, \"load\"?: [string]}")?;
        let unknown: Vec<&String> = list
            .load
            .iter()
            .filter(|n| !self.catalogue.iter().any(|t| &t.name == *n))
            .collect();
        if !unknown.is_empty() {
            return Err(BuiltinError::InvalidInput(format!(
                "no tool named {}; call list_tools without `load` to see the names",
                unknown.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            )));
        }
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(list.load.iter().cloned());
        let order: Vec<&ToolDef> = match (&list.query, &self.selector) {
            (Some(query), Some(selector)) => selector
                .rank(query)
                .into_iter()
                .filter(|(_, score)| *score > 0.0)
                .filter_map(|(name, _)| self.catalogue.iter().find(|t| t.name == name))
                .collect(),
            _ => self.catalogue.iter().collect(),
        };
        let tools: Vec<Value> = order
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description}))
            .collect();
        Ok(json!({"tools": tools, "loaded_for_next_request": list.load}).to_string())
    }
}

impl Builtins {
    async fn delegate(&self, input: &Value, events: &EventSink) -> Result<String, BuiltinError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Delegate {
            profile: String,
            task: String,
        }
        let delegator = self
            .delegator
            .as_ref()
            .ok_or_else(|| BuiltinError::Failed("delegation is not available here".into()))?;
        let request: Delegate = parse(input, "{\"profile\": string, \"task\": string}")?;
        if request.task.trim().is_empty() {
            return Err(BuiltinError::InvalidInput("`task` is empty".into()));
        }
        if delegator.profiles.get(&request.profile).is_none() {
            return Err(BuiltinError::InvalidInput(
                delegator.profiles.require(&request.profile).err().unwrap_or_default(),
            ));
        }
        let done = Box::pin(delegator.run(&request.profile, &request.task, events))
            .await
            .map_err(BuiltinError::Failed)?;
        let result = json!({
            "profile": done.profile,
            "answer": done.answer,
            "stop": done.stop,
            "rounds": done.rounds,
            "cost_usd": done.cost_usd,
            "session": done.session,
        });
        if done.stop == "answered" {
            Ok(result.to_string())
        } else {
            Err(BuiltinError::Failed(format!(
                "the sub-agent stopped without an answer: {result}"
            )))
        }
    }

    async fn create_tool(&self, host: &ToolHost, input: &Value) -> Result<String, BuiltinError> {
        let factory = self
            .factory
            .as_ref()
            .ok_or_else(|| BuiltinError::Failed("create_tool is not available in this session".into()))?;
        let request: CreateRequest = parse(input, "{\"name\": string, \"description\": string, \"source\": string}")?;
        match factory.create(host, request, BUILTIN_NAMES).await {
            Ok(created) => {
                // Offer it from the next request on, whatever selection ranks.
                self.loaded
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(created.name.clone());
                Ok(json!({
                    "created": created.name,
                    "sha256": created.sha256,
                    "build_seconds": (created.build_time.as_secs_f64() * 10.0).round() / 10.0,
                    "compiler_warnings": created.warnings,
                    "grants": created.grants,
                    "next": format!("`{}` is loaded: call it from your next request", created.name),
                })
                .to_string())
            }
            Err(CreateError::Invalid(m)) => Err(BuiltinError::InvalidInput(m)),
            Err(CreateError::Compile(errors)) => Err(BuiltinError::Failed(format!(
                "the source does not compile; fix these errors and call create_tool again:\n{errors}"
            ))),
            Err(CreateError::Failed(m)) => Err(BuiltinError::Failed(m)),
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(input: &Value, shape: &str) -> Result<T, BuiltinError> {
    serde_json::from_value(input.clone()).map_err(|e| BuiltinError::InvalidInput(format!("{e}; expected {shape}")))
}

fn memory_error(e: MemoryError) -> BuiltinError {
    match e {
        MemoryError::Invalid(m) => BuiltinError::InvalidInput(m),
        other => BuiltinError::Failed(other.to_string()),
    }
}
