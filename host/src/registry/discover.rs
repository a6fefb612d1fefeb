//! Finding and loading the tool components of a directory.

use crate::runtime::{LoadedComponent, Runtime, ToolSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A component that could not be loaded, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadProblem {
    pub path: PathBuf,
    pub error: String,
}

/// Every loaded tool by name, and the components that provide them.
/// Cloning is cheap (components are shared): a hot swap builds a new
/// registry from the old one and swaps it in whole.
#[derive(Clone)]
pub struct Registry {
    runtime: Arc<Runtime>,
    components: Vec<Arc<LoadedComponent>>,
    tools: BTreeMap<String, Arc<LoadedComponent>>,
    /// Files that did not load.
    problems: Vec<LoadProblem>,
    /// Tool names more than one file claims (recomputed with the names).
    contested: Vec<LoadProblem>,
}

impl Registry {
    /// An empty registry on `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self {
            runtime,
            components: Vec::new(),
            tools: BTreeMap::new(),
            problems: Vec::new(),
            contested: Vec::new(),
        }
    }

    /// Loads every `*.wasm` directly inside `dir`, in name order.
    pub async fn load_dir(runtime: Arc<Runtime>, dir: &Path) -> std::io::Result<Self> {
        Ok(Self::load_dir_deferring(runtime, dir, |_| false).await?.0)
    }

    /// [`Self::load_dir`] leaving out the files `defer` picks (e.g. big
    /// components the compile cache does not hold): returned, absolute,
    /// for the caller to load later (see [`super::background`]).
    pub async fn load_dir_deferring(
        runtime: Arc<Runtime>,
        dir: &Path,
        defer: impl Fn(&Path) -> bool,
    ) -> std::io::Result<(Self, Vec<PathBuf>)> {
        use futures::StreamExt as _;
        // Absolute paths, as the watcher reports them: a component swapped
        // in later is recognised as the same file (with a relative tools
        // directory it was refused as "a second component").
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let dir = dir.as_path();
        let (deferred, now): (Vec<PathBuf>, Vec<PathBuf>) = wasm_files(dir)?.into_iter().partition(|p| defer(p));
        // Components compile in parallel, one per core: a start waits for
        // the slowest, not for their sum.
        let parallel = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let loads: Vec<_> = futures::stream::iter(now)
            .map(|path| {
                let runtime = runtime.clone();
                async move {
                    let loaded = runtime.load(&path).await;
                    (path, loaded)
                }
            })
            .buffered(parallel)
            .collect()
            .await;
        let mut registry = Self::new(runtime);
        for (path, loaded) in loads {
            match loaded {
                Ok(component) => registry.components.push(Arc::new(component)),
                Err(e) => registry.problem(&path, &e),
            }
        }
        registry.components.sort_by(|a, b| a.path.cmp(&b.path));
        registry.assign_names();
        Ok((registry, deferred))
    }

    fn problem(&mut self, path: &Path, e: &crate::runtime::Error) {
        tracing::warn!(path = %path.display(), error = %e, "tool component not loaded");
        self.problems.push(LoadProblem {
            path: path.to_path_buf(),
            error: e.to_string(),
        });
    }

    /// Loads one component; a failure is recorded in [`Self::problems`].
    /// Returns whether it loaded.
    pub async fn load_file(&mut self, path: &Path) -> bool {
        match self.runtime.load(path).await {
            Ok(component) => {
                self.add(Arc::new(component));
                true
            }
            Err(e) => {
                self.problem(path, &e);
                false
            }
        }
    }

    fn add(&mut self, component: Arc<LoadedComponent>) {
        self.components.push(component);
        self.components.sort_by(|a, b| a.path.cmp(&b.path));
        self.assign_names();
    }

    /// Gives each tool name to the one component that claims it. A name two
    /// files claim goes to neither (issue 14): otherwise a `.wasm` that
    /// sorts first could take over `read_file` and run with its grants.
    fn assign_names(&mut self) {
        let mut claims: BTreeMap<&str, Vec<&Arc<LoadedComponent>>> = BTreeMap::new();
        for component in &self.components {
            for spec in &component.specs {
                claims.entry(spec.name.as_str()).or_default().push(component);
            }
        }
        let mut tools = BTreeMap::new();
        let mut contested = Vec::new();
        for (name, claimants) in claims {
            match claimants.as_slice() {
                [only] => {
                    tools.insert(name.to_string(), Arc::clone(only));
                }
                many => {
                    let files: Vec<String> = many.iter().map(|c| c.path.display().to_string()).collect();
                    for claimant in many {
                        contested.push(LoadProblem {
                            path: claimant.path.clone(),
                            error: format!(
                                "tool `{name}` is claimed by {}; neither serves it until one is removed",
                                files.join(" and ")
                            ),
                        });
                    }
                }
            }
        }
        self.tools = tools;
        self.contested = contested;
    }

    /// This registry with `component` in place of whatever came from the
    /// same file before; refused when it claims a tool another file serves
    /// (that one keeps it).
    pub fn with_component(&self, component: Arc<LoadedComponent>) -> Result<Registry, String> {
        for spec in &component.specs {
            if let Some(owner) = self.tools.get(&spec.name)
                && owner.path != component.path
            {
                return Err(format!(
                    "tool `{}` is already served by {}; a second component may not claim it",
                    spec.name,
                    owner.path.display()
                ));
            }
        }
        let mut components: Vec<Arc<LoadedComponent>> = self
            .components
            .iter()
            .filter(|c| c.path != component.path)
            .cloned()
            .collect();
        components.push(component);
        Ok(self.rebuilt(components))
    }

    /// This registry without the component loaded from `path`.
    pub fn without_file(&self, path: &Path) -> Registry {
        let components = self.components.iter().filter(|c| c.path != path).cloned().collect();
        self.rebuilt(components)
    }

    /// The component loaded from `path`, if any.
    pub fn component_at(&self, path: &Path) -> Option<&Arc<LoadedComponent>> {
        self.components.iter().find(|c| c.path == path)
    }

    /// A registry of `components`, with the load problems of files that are gone dropped.
    fn rebuilt(&self, mut components: Vec<Arc<LoadedComponent>>) -> Registry {
        components.sort_by(|a, b| a.path.cmp(&b.path));
        let mut registry = Registry::new(self.runtime.clone());
        registry.problems = self
            .problems
            .iter()
            .filter(|p| !components.iter().any(|c| c.path == p.path))
            .cloned()
            .collect();
        registry.components = components;
        registry.assign_names();
        registry
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Every tool with its spec and component, by name.
    pub fn tools(&self) -> impl Iterator<Item = (&ToolSpec, &Arc<LoadedComponent>)> {
        self.tools.iter().filter_map(|(name, c)| c.spec(name).map(|s| (s, c)))
    }

    pub fn get(&self, name: &str) -> Option<(&ToolSpec, &Arc<LoadedComponent>)> {
        let component = self.tools.get(name)?;
        component.spec(name).map(|s| (s, component))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    pub fn components(&self) -> &[Arc<LoadedComponent>] {
        &self.components
    }

    /// Components that did not load, and tool names two files claim.
    pub fn problems(&self) -> Vec<LoadProblem> {
        self.problems.iter().chain(&self.contested).cloned().collect()
    }
}

/// The tool names of the components in `tools_dir`, from the names the
/// compile cache in `cache_dir` remembers, without loading anything (for
/// `policy check`); and the files it has no names for (never loaded here).
pub fn indexed_names(tools_dir: &Path, cache_dir: &Path) -> std::io::Result<(Vec<String>, Vec<PathBuf>)> {
    use sha2::Digest as _;
    let mut names = Vec::new();
    let mut unknown = Vec::new();
    for path in wasm_files(tools_dir)? {
        let sha256 = std::fs::read(&path).map(|bytes| hex::encode(sha2::Sha256::digest(&bytes)))?;
        match crate::runtime::remembered_names(cache_dir, &sha256) {
            Some(found) => names.extend(found),
            None => unknown.push(path),
        }
    }
    names.sort();
    names.dedup();
    Ok((names, unknown))
}

/// `*.wasm` files directly inside `dir`, sorted.
fn wasm_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot read tools directory {}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}
