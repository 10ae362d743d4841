//! `snapsong caption`: photo → caption with BLIP, printed on stdout.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::ml::vision::blip;
use crate::ml::{hub, Captioner, DeviceChoice, DtypeChoice};
use crate::photo;

#[derive(Args)]
pub struct CaptionArgs {
    /// Model directory (transformers layout) or Hugging Face repo id.
    #[arg(long, default_value = blip::DEFAULT_MODEL)]
    pub model: String,
    /// The photo (JPEG, PNG, WebP or GIF).
    pub image: PathBuf,
    #[arg(long, default_value_t = 30)]
    pub max_new_tokens: usize,
    /// Also write {"caption": …, "tokens": […]} (tokens after [DEC], with [SEP]).
    #[arg(long)]
    pub tokens_out: Option<PathBuf>,
    /// auto, f32, f16, bf16 or q8_0. On a CPU, q8_0 (auto's choice with AVX2) puts every
    /// projection in 8 bits; f16/bf16 only the caption decoder's. On a GPU, everything.
    #[arg(long, default_value = "auto")]
    pub dtype: DtypeChoice,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

pub fn run(a: CaptionArgs) -> Result<()> {
    let device = a.device.open()?;
    let precision = a.dtype.resolve(&device);
    if a.max_new_tokens == 0 {
        anyhow::bail!("--max-new-tokens must be at least 1");
    }
    let bytes =
        std::fs::read(&a.image).with_context(|| format!("cannot read {}", a.image.display()))?;
    let photo = photo::decode(&bytes, &photo::Limits::default())
        .with_context(|| format!("{} was refused", a.image.display()))?;
    let files = hub::resolve(&a.model)?;
    let t = Instant::now();
    let model = Captioner::load(&files, precision, &device)?;
    eprintln!(
        "loaded {} in {:.1} s",
        files.source,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let caption = model.caption(&photo.image, a.max_new_tokens)?;
    eprintln!("captioned in {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
    if let Some(path) = &a.tokens_out {
        let json = serde_json::json!({ "caption": caption.text, "tokens": caption.tokens });
        std::fs::write(path, json.to_string())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("{}", caption.text);
    Ok(())
}
