//! Finding model files: a local directory in the transformers layout, or a Hugging Face
//! hub repo id (read from the HF cache, downloaded once with a progress bar if missing).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;

/// A model that can be left out (the caption or CLIP step): a hub repo id or a local
/// directory, or `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelChoice {
    Off,
    Use(String),
}

impl std::str::FromStr for ModelChoice {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(match s.trim() {
            "none" => Self::Off,
            spec => Self::Use(spec.to_string()),
        })
    }
}

impl std::fmt::Display for ModelChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("none"),
            Self::Use(spec) => f.write_str(spec),
        }
    }
}

impl ModelChoice {
    /// The model's files, or None when it is turned off.
    pub fn resolve(&self) -> Result<Option<ModelFiles>> {
        match self {
            Self::Off => Ok(None),
            Self::Use(spec) => resolve(spec).map(Some),
        }
    }
}

/// The files of one model, wherever they came from.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// What the user asked for (a directory or a repo id), for error messages.
    pub source: String,
    pub config: PathBuf,
    pub weights: Weights,
    pub tokenizer: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub enum Weights {
    Safetensors(Vec<PathBuf>),
    Pytorch(PathBuf),
}

impl ModelFiles {
    /// Read `config.json` as `T`, with the file named in any error.
    pub fn read_config<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        let text = std::fs::read_to_string(&self.config)
            .with_context(|| format!("reading {}", self.config.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid config for this model",
                self.config.display()
            )
        })
    }

    /// The model's `tokenizer.json`, loaded, with the model named in any error.
    pub fn tokenizer(&self) -> Result<tokenizers::Tokenizer> {
        let path = self
            .tokenizer
            .as_deref()
            .with_context(|| format!("model {} has no tokenizer.json", self.source))?;
        tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow::anyhow!("cannot read the tokenizer of {}: {e}", self.source))
    }

    /// The error context for weights that do not fit the config (names the model).
    pub fn mismatch(&self) -> String {
        format!(
            "the weights of {} do not match its config.json",
            self.source
        )
    }

    /// A VarBuilder over the weights, converting to `dtype` as tensors are read.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
        match &self.weights {
            Weights::Safetensors(paths) => {
                for p in paths {
                    check_safetensors_header(p)?;
                }
                // SAFETY: the files are memory-mapped read-only; like every mmap, this
                // assumes nobody truncates them while the model is loading.
                unsafe { VarBuilder::from_mmaped_safetensors(paths, dtype, device) }
                    .with_context(|| format!("cannot read the weights of {}", self.source))
            }
            Weights::Pytorch(p) => VarBuilder::from_pth(p, dtype, device)
                .with_context(|| format!("cannot read the weights in {}", p.display())),
        }
    }
}

/// Parse the safetensors header ourselves so a truncated or foreign file gives an error
/// that names it, instead of failing somewhere inside the mmap loader.
fn check_safetensors_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = f.metadata()?.len();
    let mut len = [0u8; 8];
    let corrupt = || {
        format!(
            "{} is not a valid safetensors file (corrupt or truncated)",
            path.display()
        )
    };
    f.read_exact(&mut len).with_context(corrupt)?;
    let header_len = u64::from_le_bytes(len);
    if header_len == 0 || header_len > 100_000_000 || 8 + header_len > size {
        bail!(corrupt());
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).with_context(corrupt)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).with_context(corrupt)?;
    let data_len = size - 8 - header_len;
    for (name, info) in &header {
        if name == "__metadata__" {
            continue;
        }
        let end = info
            .get("data_offsets")
            .and_then(|o| o.get(1))
            .and_then(|e| e.as_u64())
            .with_context(corrupt)?;
        if end > data_len {
            bail!(
                "{} is truncated: tensor {name} runs past the end of the file",
                path.display()
            );
        }
    }
    Ok(())
}

/// Resolve `spec` (a directory, or a hub repo id such as `facebook/musicgen-small`).
pub fn resolve(spec: &str) -> Result<ModelFiles> {
    let path = Path::new(spec);
    if path.is_dir() {
        return from_dir(spec, path);
    }
    if path.exists() {
        bail!("{spec} is a file; expected a model directory or a hub repo id");
    }
    if looks_like_path(spec) {
        bail!("model directory {spec} does not exist");
    }
    from_hub(spec)
}

fn looks_like_path(spec: &str) -> bool {
    spec.starts_with(['.', '/', '~']) || spec.contains('\\') || spec.split('/').count() > 2
}

fn from_dir(spec: &str, dir: &Path) -> Result<ModelFiles> {
    let config = dir.join("config.json");
    if !config.is_file() {
        bail!(
            "{} has no config.json: not a model directory in the transformers layout",
            dir.display()
        );
    }
    let weights = if dir.join("model.safetensors").is_file() {
        Weights::Safetensors(vec![dir.join("model.safetensors")])
    } else if dir.join("model.safetensors.index.json").is_file() {
        Weights::Safetensors(sharded(&dir.join("model.safetensors.index.json"))?)
    } else if dir.join("pytorch_model.bin").is_file() {
        Weights::Pytorch(dir.join("pytorch_model.bin"))
    } else {
        bail!(
            "{} has no weights (model.safetensors, model.safetensors.index.json or pytorch_model.bin)",
            dir.display()
        );
    };
    let tok = dir.join("tokenizer.json");
    Ok(ModelFiles {
        source: spec.to_string(),
        config,
        weights,
        tokenizer: tok.is_file().then_some(tok),
    })
}

/// The shard files named by a `model.safetensors.index.json`.
fn sharded(index: &Path) -> Result<Vec<PathBuf>> {
    let text =
        std::fs::read_to_string(index).with_context(|| format!("reading {}", index.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", index.display()))?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .with_context(|| format!("{} has no weight_map", index.display()))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = map
        .values()
        .filter_map(|v| v.as_str())
        .map(|f| dir.join(f))
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// From the hub cache (`HF_HOME`), downloading what is missing unless `HF_HUB_OFFLINE=1`.
fn from_hub(repo_id: &str) -> Result<ModelFiles> {
    use hf_hub::{api::sync::ApiBuilder, Cache, Repo};
    let cache = Cache::from_env();
    let cached = cache.repo(Repo::model(repo_id.to_string()));
    let offline = std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1" || v == "true");
    let api = if offline {
        None
    } else {
        Some(
            ApiBuilder::from_cache(cache.clone())
                .with_progress(true)
                .build()
                .context("cannot start the Hugging Face hub client")?
                .model(repo_id.to_string()),
        )
    };
    let get = |file: &str| -> Result<Option<PathBuf>> {
        if let Some(p) = cached.get(file) {
            return Ok(Some(p));
        }
        let Some(api) = &api else { return Ok(None) };
        match api.get(file) {
            Ok(p) => Ok(Some(p)),
            // A 404 just means the repo uses another layout; anything else is a real failure.
            Err(hf_hub::api::sync::ApiError::RequestError(e)) if is_not_found(&e) => Ok(None),
            Err(e) => Err(anyhow::anyhow!(
                "could not download {file} of {repo_id} from the Hugging Face hub ({e}); \
                 check the network, or pass a local model directory"
            )),
        }
    };
    let Some(config) = get("config.json")? else {
        if offline {
            bail!("model {repo_id} is not in the Hugging Face cache and HF_HUB_OFFLINE is set");
        }
        bail!("{repo_id} has no config.json on the Hugging Face hub (is the repo id right?)");
    };
    let weights = if let Some(p) = get("model.safetensors")? {
        Weights::Safetensors(vec![p])
    } else if let Some(index) = get("model.safetensors.index.json")? {
        let names = sharded(&index)?;
        let mut files = Vec::new();
        for n in names {
            let name = n
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            files.push(get(&name)?.with_context(|| format!("{repo_id} is missing shard {name}"))?);
        }
        Weights::Safetensors(files)
    } else if let Some(p) = get("pytorch_model.bin")? {
        Weights::Pytorch(p)
    } else {
        bail!("{repo_id}: no weights found (model.safetensors or pytorch_model.bin)");
    };
    Ok(ModelFiles {
        source: repo_id.to_string(),
        config,
        weights,
        tokenizer: get("tokenizer.json")?,
    })
}

fn is_not_found(e: &ureq::Error) -> bool {
    matches!(e, ureq::Error::Status(404, _))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_is_a_clear_error() {
        let e = resolve("./no/such/model").unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn directory_without_config_or_weights() {
        let d = tempfile::tempdir().unwrap();
        let e = resolve(d.path().to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("no config.json"), "{e}");
        std::fs::write(d.path().join("config.json"), "{}").unwrap();
        let e = resolve(d.path().to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains("has no weights"), "{e}");
    }

    #[test]
    fn truncated_safetensors_is_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), "{}").unwrap();
        let w = d.path().join("model.safetensors");
        let header = br#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 8]); // 8 of the 16 promised bytes
        std::fs::write(&w, &bytes).unwrap();
        let files = resolve(d.path().to_str().unwrap()).unwrap();
        let e = format!(
            "{:#}",
            files.var_builder(DType::F32, &Device::Cpu).err().unwrap()
        );
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(&w, b"this is not a model").unwrap();
        let e = format!(
            "{:#}",
            files.var_builder(DType::F32, &Device::Cpu).err().unwrap()
        );
        assert!(e.contains("not a valid safetensors"), "{e}");
    }

    #[test]
    fn offline_without_cache_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        // SAFETY: tests in this module do not read these variables concurrently.
        unsafe {
            std::env::set_var("HF_HOME", d.path());
            std::env::set_var("HF_HUB_OFFLINE", "1");
        }
        let e = resolve("someone/some-model").unwrap_err().to_string();
        assert!(e.contains("not in the Hugging Face cache"), "{e}");
    }
}
