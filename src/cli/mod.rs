//! The `snapsong` command line: `serve` the web app, run a `worker`, `generate` a song, `caption` a photo,
//! `compose` a prompt, make tiny `models`. Each subcommand's flags and work are in its own
//! file; `main.rs` only calls `run`.

pub mod caption;
pub mod compose;
pub mod generate;

use std::path::PathBuf;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::ml::tiny;
use crate::server::config::{LogFormat, WEB_ONLY};
use crate::server::{Role, ServeConfig};

#[derive(Parser)]
#[command(name = "snapsong", version, about = "Turn a photo into a song")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web app (pages, REST API, and a worker unless --no-worker) on SQLite or
    /// Postgres.
    Serve(ServeConfig),
    /// Make songs from the queue of a shared database and store (no web app; --addr
    /// serves /healthz and /metrics).
    Worker(ServeConfig),
    /// Text prompt → song (WAV), with MusicGen.
    Generate(generate::GenerateArgs),
    /// Photo → caption, with BLIP (printed on stdout).
    Caption(caption::CaptionArgs),
    /// Photo (or words only) + choices → the MusicGen prompt (printed on stdout).
    Compose(compose::ComposeArgs),
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

/// The command line's grammar: `worker --help` without the web node's flags.
fn command() -> clap::Command {
    Cli::command().mut_subcommand("worker", |worker| {
        WEB_ONLY
            .iter()
            .fold(worker, |w, id| w.mut_arg(*id, |a| a.hide(true)))
    })
}

/// Parse the command line and run it.
pub fn run() -> Result<()> {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Serve(cfg) => server(cfg, Role::Serve),
        Command::Worker(cfg) => server(cfg, Role::Worker),
        Command::Generate(a) => generate::run(a),
        Command::Caption(a) => caption::run(a),
        Command::Compose(a) => compose::run(a),
        Command::Models(ModelsCommand::MakeTiny { out, seed }) => {
            tiny::write_tiny_musicgen(&out, seed)?;
            eprintln!(
                "wrote a tiny random MusicGen (noise, for tests) to {}",
                out.display()
            );
            Ok(())
        }
    }
}

fn server(cfg: ServeConfig, role: Role) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match cfg.log_format {
        // Colour codes only where a person reads them: not in files or pipes.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => logs.json().with_span_list(false).init(),
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            match role {
                Role::Serve => crate::server::serve(cfg).await,
                Role::Worker => crate::server::work(cfg).await,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help(sub: &str) -> String {
        let mut cmd = command();
        cmd.build();
        match cmd.find_subcommand_mut(sub) {
            Some(c) => c.render_long_help().to_string(),
            None => panic!("no subcommand {sub}"),
        }
    }

    #[test]
    fn a_worker_is_shown_only_its_own_flags_and_still_accepts_the_web_ones() {
        let worker = help("worker");
        let serve = help("serve");
        for flag in [
            "--database-url",
            "--storage",
            "--lease-secs",
            "--name",
            "--batch",
        ] {
            assert!(worker.contains(flag), "worker --help lacks {flag}");
            assert!(serve.contains(flag), "serve --help lacks {flag}");
        }
        for flag in ["--public-url", "--max-queued", "--no-worker", "--site-root"] {
            assert!(!worker.contains(flag), "worker --help shows {flag}");
            assert!(serve.contains(flag), "serve --help lacks {flag}");
        }
        // One environment for every role: a worker given a web flag starts as usual.
        let parsed = command().try_get_matches_from([
            "snapsong",
            "worker",
            "--public-url",
            "https://example.org",
            "--name",
            "gpu-box-1",
        ]);
        let cli = Cli::from_arg_matches(&parsed.expect("parses")).expect("a command");
        match cli.command {
            Command::Worker(cfg) => assert_eq!(cfg.name.as_deref(), Some("gpu-box-1")),
            _ => panic!("not the worker"),
        }
    }

    #[test]
    fn a_worker_name_must_be_printable_and_short() {
        for bad in ["", "  ", "a\nb", &"x".repeat(101)] {
            let parsed = command().try_get_matches_from(["snapsong", "worker", "--name", bad]);
            assert!(parsed.is_err(), "{bad:?} was taken");
        }
    }
}
