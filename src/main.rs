//! The `snapsong` command line: generate songs, caption photos, compose prompts, and
//! manage models.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use snapsong::ml::{
    blip::Captioner,
    clip::ClipScorer,
    device::{parse_device, parse_precision, Precision},
    generate::{GenerateOptions, Length, MusicGen},
    hints, hub, photo, prompt,
    sampling::SamplingConfig,
    tiny, wav,
};

#[derive(Parser)]
#[command(name = "snapsong", version, about = "Turn a photo into a song")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web app (pages, REST API, worker) on SQLite or Postgres.
    Serve(snapsong::server::config::ServeConfig),
    /// Text prompt → song (WAV), with MusicGen.
    Generate(GenerateArgs),
    /// Photo → caption, with BLIP (printed on stdout).
    Caption(CaptionArgs),
    /// Photo (or words only) + choices → the MusicGen prompt (printed on stdout).
    Compose(ComposeArgs),
    /// Manage models.
    #[command(subcommand)]
    Models(ModelsCommand),
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Write a tiny random-weight MusicGen (its songs are noise) for demos and tests.
    MakeTiny {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Args)]
struct GenerateArgs {
    /// Model directory (transformers layout) or Hugging Face repo id.
    #[arg(long, default_value = "facebook/musicgen-small")]
    model: String,
    #[arg(long)]
    prompt: String,
    /// Length of the song in seconds (at most 30).
    #[arg(long, conflicts_with = "max_new_tokens")]
    duration: Option<f64>,
    /// Decoder steps, exactly as transformers' max_new_tokens.
    #[arg(long)]
    max_new_tokens: Option<usize>,
    #[arg(long, default_value_t = 3.0)]
    guidance: f64,
    #[arg(long, default_value_t = 250)]
    top_k: usize,
    #[arg(long, default_value_t = 0.0)]
    top_p: f64,
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Random seed (a random one is picked and printed when absent).
    #[arg(long)]
    seed: Option<u64>,
    /// Argmax decoding instead of sampling.
    #[arg(long)]
    greedy: bool,
    /// Decoder precision: f32, f16, bf16, or q8_0 (8-bit weights; fastest on a CPU).
    #[arg(long, default_value = "f32")]
    dtype: String,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long)]
    out: PathBuf,
    /// Also write the audio codes as JSON: {"codes": [[…frames…] × codebooks]}.
    #[arg(long)]
    codes_out: Option<PathBuf>,
}

#[derive(Args)]
struct CaptionArgs {
    /// Model directory (transformers layout) or Hugging Face repo id.
    #[arg(long, default_value = "Salesforce/blip-image-captioning-large")]
    model: String,
    /// The photo (JPEG, PNG, WebP or GIF).
    image: PathBuf,
    #[arg(long, default_value_t = 30)]
    max_new_tokens: usize,
    /// Also write {"caption": …, "tokens": […]} (tokens after [DEC], with [SEP]).
    #[arg(long)]
    tokens_out: Option<PathBuf>,
    /// f32, f16 or bf16 (the caption decoder's weights on a CPU; everything on a GPU).
    #[arg(long, default_value = "f32")]
    dtype: String,
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args)]
struct ComposeArgs {
    /// The photo; leave out for words-only mode.
    image: Option<PathBuf>,
    #[arg(long)]
    genre: Option<String>,
    #[arg(long)]
    mood: Option<String>,
    /// Tempo in BPM (40–220); automatic when absent.
    #[arg(long)]
    bpm: Option<u32>,
    /// Comma-separated instrument ids, e.g. piano,strings.
    #[arg(long, value_delimiter = ',')]
    instruments: Vec<String>,
    /// A free-text line added to the prompt.
    #[arg(long)]
    text: Option<String>,
    /// BLIP model (directory or repo id); "none" skips the caption.
    #[arg(long, default_value = "Salesforce/blip-image-captioning-large")]
    caption_model: String,
    /// CLIP model (directory or repo id); "none" skips mood/genre scoring.
    #[arg(long, default_value = "openai/clip-vit-base-patch32")]
    clip_model: String,
    /// Print the whole explanation (hints, parts and their sources) as JSON.
    #[arg(long)]
    json: bool,
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Pages allocate many small short-lived strings on every tokio thread; mimalloc's
/// per-thread heaps cut the allocator's share of CPU under load (glibc malloc was ~20 %).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(cfg) => serve(cfg),
        Command::Generate(a) => generate(a),
        Command::Caption(a) => caption(a),
        Command::Compose(a) => compose(a),
        Command::Models(ModelsCommand::MakeTiny { out, seed }) => {
            tiny::write_tiny_musicgen(&out, seed).map(|()| {
                eprintln!(
                    "wrote a tiny random MusicGen (noise, for tests) to {}",
                    out.display()
                )
            })
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn caption(a: CaptionArgs) -> Result<()> {
    let precision = parse_precision(&a.dtype)?;
    let device = parse_device(&a.device)?;
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

fn serve(cfg: snapsong::server::config::ServeConfig) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(snapsong::server::serve(cfg))
}

fn compose(a: ComposeArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let choices = prompt::Choices {
        genre: a.genre,
        mood: a.mood,
        bpm: a.bpm,
        instruments: a.instruments,
        text: a.text,
    };
    let hints = match &a.image {
        None => prompt::Hints::default(),
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let photo = photo::decode(&bytes, &photo::Limits::default())
                .with_context(|| format!("{} was refused", path.display()))?;
            let captioner = match a.caption_model.as_str() {
                "none" => None,
                m => Some(Captioner::load(&hub::resolve(m)?, Precision::F32, &device)?),
            };
            let clip = match a.clip_model.as_str() {
                "none" => None,
                m => Some(ClipScorer::load(&hub::resolve(m)?, &device)?),
            };
            hints::photo_hints(&photo.image, captioner.as_ref(), clip.as_ref())?
        }
    };
    let composed = prompt::compose(&hints, &choices)?;
    if a.json {
        let json = serde_json::json!({ "hints": hints, "choices": choices, "composed": composed });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("{}", composed.prompt);
    }
    Ok(())
}

fn generate(a: GenerateArgs) -> Result<()> {
    let precision = parse_precision(&a.dtype)?;
    let device = parse_device(&a.device)?;
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
    let steps = model.max_new_tokens(&opts.length)?;
    eprintln!(
        "loaded {} in {:.1}s; {steps} decoder steps, seed {seed}",
        a.model,
        t0.elapsed().as_secs_f64()
    );

    let t1 = Instant::now();
    let mut report = |p: snapsong::ml::generate::Progress| {
        if p.step.is_multiple_of(10) || p.step == p.total {
            eprint!("\rgenerating {}/{}", p.step, p.total);
            let _ = std::io::stderr().flush();
        }
    };
    let codes = model.generate_codes(&a.prompt, &opts, &mut report, &AtomicBool::new(false))?;
    let gen_s = t1.elapsed().as_secs_f64();
    eprintln!(
        "\rgenerated {steps} steps in {gen_s:.2}s ({:.1} ms/step)",
        gen_s * 1000.0 / steps as f64
    );

    let t2 = Instant::now();
    let samples = model.decode(&codes)?;
    eprintln!(
        "decoded {} samples in {:.2}s",
        samples.len(),
        t2.elapsed().as_secs_f64()
    );
    wav::write_wav(&a.out, &samples, model.sample_rate())?;
    if let Some(path) = &a.codes_out {
        let json = serde_json::json!({ "codes": codes });
        std::fs::write(path, serde_json::to_vec(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}", a.out.display());
    Ok(())
}
