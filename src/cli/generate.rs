//! `snapsong generate`: text prompt → song (WAV), with MusicGen; `--codes-out` writes the
//! audio codes, `--prompt-codes` continues codes in that format, `--greedy` decodes by
//! argmax (the parity tests use all three).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::ml::musicgen::CodesFile;
use crate::ml::{
    hub, musicgen, tiny, wav, DeviceChoice, DtypeChoice, GenerateOptions, Length, MusicGen,
    Progress, SamplingConfig,
};

#[derive(Args)]
pub struct GenerateArgs {
    /// Model directory (transformers layout) or Hugging Face repo id.
    #[arg(long, default_value = musicgen::DEFAULT_MODEL)]
    pub model: String,
    #[arg(long)]
    pub prompt: String,
    /// Length of the song in seconds, a continued prompt included (at most 180; past 30
    /// it is made in 30 s windows, each prompted with the last 12 s).
    #[arg(long, conflicts_with = "max_new_tokens")]
    pub duration: Option<f64>,
    /// Decoder steps after the prompt codes, exactly as transformers' max_new_tokens.
    #[arg(long)]
    pub max_new_tokens: Option<usize>,
    #[arg(long, default_value_t = 3.0)]
    pub guidance: f64,
    #[arg(long, default_value_t = 250)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    pub top_p: f64,
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Random seed (a random one is picked and printed when absent).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Argmax decoding instead of sampling.
    #[arg(long)]
    pub greedy: bool,
    /// Decoder precision: auto, f32, f16, bf16 or q8_0. auto: q8_0 (8-bit weights) on a
    /// CPU with AVX2 or better, else f32.
    #[arg(long, default_value = "auto")]
    pub dtype: DtypeChoice,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the audio codes as JSON: {"codes": [[…frames…] × codebooks]}.
    #[arg(long)]
    pub codes_out: Option<PathBuf>,
    /// Continue these codes (JSON as `--codes-out` writes): the song starts with them.
    #[arg(long)]
    pub prompt_codes: Option<PathBuf>,
}

pub fn run(a: GenerateArgs) -> Result<()> {
    // On a worker of rayon's pool, as the server makes songs: each product's parallel loop
    // then starts on this thread instead of handing off to the pool and waiting (measured:
    // a third of a q8_0 decoding step on 2 cores).
    rayon::scope(|_| generate(a))
}

fn generate(a: GenerateArgs) -> Result<()> {
    let device = a.device.open()?;
    let precision = a.dtype.resolve(&device);
    let length = match (a.duration, a.max_new_tokens) {
        (_, Some(n)) => Length::MaxNewTokens(n),
        (Some(s), None) => Length::Seconds(s),
        (None, None) => Length::Seconds(10.0),
    };
    let seed = a.seed.unwrap_or_else(rand::random);
    let opts = GenerateOptions {
        length,
        guidance_scale: a.guidance,
        sampling: SamplingConfig {
            greedy: a.greedy,
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            seed,
        },
        prompt_codes: match &a.prompt_codes {
            Some(path) => read_codes(path)?,
            None => Vec::new(),
        },
    };
    opts.sampling.validate()?;
    if a.prompt.trim().is_empty() {
        anyhow::bail!("the prompt is empty: describe the music you want");
    }

    let t0 = Instant::now();
    let files = hub::resolve(&a.model)?;
    if tiny::is_tiny(&files.config) {
        eprintln!(
            "note: {} is a tiny random-weight model: its output is noise",
            a.model
        );
    }
    let mut model = MusicGen::load(&files, precision, &device)?;
    let plan = model.plan(&opts.length, opts.prompt_codes.first().map_or(0, Vec::len))?;
    let steps = plan.steps;
    eprintln!(
        "loaded {} in {:.1}s; {steps} decoder steps in {} window(s), seed {seed}",
        a.model,
        t0.elapsed().as_secs_f64(),
        plan.windows.len()
    );

    let t1 = Instant::now();
    let mut report = |p: Progress, _: &[Vec<u32>]| {
        if p.step.is_multiple_of(10) || p.step == p.total {
            eprint!("\rgenerating {}/{}", p.step, p.total);
            let _ = std::io::stderr().flush();
        }
        Ok(())
    };
    let codes = model.generate_codes(&a.prompt, &opts, &mut report, &AtomicBool::new(false))?;
    let gen_s = t1.elapsed().as_secs_f64();
    eprintln!(
        "\rgenerated {steps} steps in {gen_s:.2}s ({:.1} ms/step)",
        gen_s * 1000.0 / steps as f64
    );

    let t2 = Instant::now();
    let samples = model.decode_whole_song(&codes)?;
    eprintln!(
        "decoded {} samples in {:.2}s",
        samples.len(),
        t2.elapsed().as_secs_f64()
    );
    wav::write_wav(&a.out, &samples, model.sample_rate())?;
    if let Some(path) = &a.codes_out {
        std::fs::write(path, serde_json::to_vec(&CodesFile { codes })?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}", a.out.display());
    Ok(())
}

fn read_codes(path: &std::path::Path) -> Result<Vec<Vec<u32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file: CodesFile = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{} is not a codes file ({{\"codes\": [[…] × codebooks]}})",
            path.display()
        )
    })?;
    Ok(file.codes)
}
