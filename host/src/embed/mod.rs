//! Sentence embeddings on the CPU, for matching prompts to tools by meaning
//! rather than by shared words ("will I need an umbrella" → a weather tool).
//!
//! A model directory in the sentence-transformers layout — `config.json`
//! (BERT family), `model.safetensors`, `tokenizer.json` — is run with
//! candle's BERT; a text's vector is the mean of its token vectors
//! (attention-masked), scaled to length 1, so the dot product of two vectors
//! is their cosine similarity. That is how all-MiniLM-L6-v2, the model
//! `boram model fetch` installs, was trained to be used.
//!
//! Vectors are remembered by the SHA-256 of their text: the tool catalogue
//! is embedded once per process, and a hot swap only embeds the tools whose
//! description changed.

pub mod fetch;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

/// Longest input in tokens; all-MiniLM-L6-v2 was trained on up to 256
/// (a tool description longer than that is judged by its beginning).
const MAX_TOKENS: usize = 256;
/// Texts run through the model together.
const BATCH: usize = 16;

/// A loaded sentence-embedding model.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    dir: PathBuf,
    remembered: Mutex<HashMap<[u8; 32], Arc<[f32]>>>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

/// The paths of `dir`'s [`MODEL_FILES`], in that order: a quick check that
/// `dir` holds a model, before anything is read. The first missing file is
/// named in the error.
fn model_files(dir: &Path) -> anyhow::Result<[PathBuf; 3]> {
    let paths = MODEL_FILES.map(|name| dir.join(name));
    if let Some(missing) = paths.iter().position(|p| !p.is_file()) {
        anyhow::bail!(
            "{} is not a sentence-embedding model: {} is missing (run `boram model fetch`)",
            dir.display(),
            MODEL_FILES[missing]
        );
    }
    Ok(paths)
}

impl Embedder {
    /// Loads the model in `dir`; each missing or unreadable file is named.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let [config_path, weights_path, tokenizer_path] = model_files(dir)?;
        let config: Config = serde_json::from_slice(&std::fs::read(&config_path)?)
            .with_context(|| format!("{} is not a BERT model configuration", config_path.display()))?;
        let weights =
            std::fs::read(&weights_path).with_context(|| format!("cannot read {}", weights_path.display()))?;
        let vars = candle_nn::VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .with_context(|| format!("{} is not a safetensors file", weights_path.display()))?;
        let model = BertModel::load(vars, &config)
            .with_context(|| format!("{} does not hold the weights of a BERT model", weights_path.display()))?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| anyhow::anyhow!("cannot read the tokenizer {}: {e}", tokenizer_path.display()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| anyhow::anyhow!("tokenizer {}: {e}", tokenizer_path.display()))?;
        Ok(Self {
            model,
            tokenizer,
            dir: dir.to_path_buf(),
            remembered: Mutex::default(),
        })
    }

    /// The model directory (for logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One unit-length vector per text, in order. Texts embedded before
    /// are answered from memory.
    pub fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Arc<[f32]>>> {
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| Sha256::digest(t.as_bytes()).into()).collect();
        let mut out: Vec<Option<Arc<[f32]>>> = {
            let remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            keys.iter().map(|k| remembered.get(k).cloned()).collect()
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        for chunk in missing.chunks(BATCH) {
            let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            let vectors = self.run(&batch)?;
            let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
            for (&i, vector) in chunk.iter().zip(vectors) {
                let vector: Arc<[f32]> = vector.into();
                remembered.insert(keys[i], vector.clone());
                out[i] = Some(vector);
            }
        }
        Ok(out
            .into_iter()
            .map(|v| v.unwrap_or_else(|| Arc::from(Vec::new())))
            .collect())
    }

    /// The model over one batch: token vectors, mean-pooled, normalised.
    fn run(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let flat = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings.iter().flat_map(|e| f(e).iter().copied()).collect()
        };
        let device = &self.model.device;
        let ids = Tensor::from_vec(flat(&|e| e.get_ids()), (rows, width), device)?;
        let types = Tensor::from_vec(flat(&|e| e.get_type_ids()), (rows, width), device)?;
        let mask = Tensor::from_vec(flat(&|e| e.get_attention_mask()), (rows, width), device)?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}

/// Cosine similarity of two unit-length vectors.
pub fn similarity(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The model directory `boram model fetch` fills by default.
pub fn default_model_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("models").join(fetch::MODEL_NAME)
}

/// The model in `dir`, loaded once per process however many agents ask
/// (`boram serve` builds one agent per run).
pub fn shared(dir: &Path) -> anyhow::Result<Arc<Embedder>> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<Embedder>>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(embedder) = loaded.get(dir) {
        return Ok(embedder.clone());
    }
    let embedder = Arc::new(Embedder::load(dir)?);
    loaded.insert(dir.to_path_buf(), embedder.clone());
    Ok(embedder)
}
