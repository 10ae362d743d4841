//! Bad input to MusicGen loading and generation: each a clear error, never a panic.
#![cfg(feature = "ssr")]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use snapsong::ml::hub;
use snapsong::ml::Precision;
use snapsong::ml::{Cancelled, GenerateOptions, Length, MusicGen};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/musicgen/proj_4cb")
}

/// A copy of the fixture model that a test may break.
fn copy_fixture() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture().join(f), d.path().join(f)).unwrap();
    }
    d
}

fn try_load(dir: &Path) -> anyhow::Result<MusicGen> {
    let files = hub::resolve(dir.to_str().unwrap())?;
    MusicGen::load(&files, Precision::F32, &Device::Cpu)
}

fn err(r: anyhow::Result<impl Sized>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(p, v.to_string()).unwrap();
}

#[test]
fn missing_weights() {
    let d = copy_fixture();
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    assert!(err(try_load(d.path())).contains("has no weights"));
}

#[test]
fn corrupt_weights() {
    let d = copy_fixture();
    let w = d.path().join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(try_load(d.path()));
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn config_that_does_not_match_the_weights() {
    let d = copy_fixture();
    edit_config(d.path(), |v| v["decoder"]["ffn_dim"] = 100.into());
    let e = err(try_load(d.path()));
    assert!(e.contains("do not match its config.json"), "{e}");
}

#[test]
fn broken_config_json() {
    let d = copy_fixture();
    std::fs::write(d.path().join("config.json"), "{ not json").unwrap();
    let e = err(try_load(d.path()));
    assert!(e.contains("not a valid config"), "{e}");
}

#[test]
fn missing_tokenizer() {
    let d = copy_fixture();
    std::fs::remove_file(d.path().join("tokenizer.json")).unwrap();
    let e = err(try_load(d.path()));
    assert!(e.contains("no tokenizer.json"), "{e}");
}

#[test]
fn stereo_models_are_refused_clearly() {
    let d = copy_fixture();
    edit_config(d.path(), |v| {
        v["decoder"]["audio_channels"] = 2.into();
        v["decoder"]["num_codebooks"] = 8.into();
    });
    let e = err(try_load(d.path()));
    assert!(
        e.contains("stereo") && e.contains("not supported yet"),
        "{e}"
    );
}

fn opts(length: Length) -> GenerateOptions {
    GenerateOptions {
        length,
        ..GenerateOptions::default()
    }
}

#[test]
fn bad_prompts_and_lengths() {
    let mut m = try_load(&fixture()).unwrap();
    let run = |m: &mut MusicGen, prompt: &str, o: GenerateOptions| {
        m.generate_codes(prompt, &o, &mut |_, _| Ok(()), &AtomicBool::new(false))
    };
    assert!(err(run(&mut m, "   ", opts(Length::MaxNewTokens(10)))).contains("prompt is empty"));
    assert!(err(run(&mut m, "piano", opts(Length::Seconds(0.0)))).contains("duration must be"));
    assert!(err(run(&mut m, "piano", opts(Length::Seconds(181.0)))).contains("duration must be"));
    assert!(err(run(&mut m, "piano", opts(Length::Seconds(f64::NAN)))).contains("duration must be"));
    assert!(err(run(&mut m, "piano", opts(Length::MaxNewTokens(2)))).contains("at least 6"));
    let long = "piano ".repeat(400);
    assert!(err(run(&mut m, &long, opts(Length::MaxNewTokens(10)))).contains("prompt is too long"));
}

#[test]
fn cancellation_stops_generation() {
    let mut m = try_load(&fixture()).unwrap();
    let cancel = AtomicBool::new(false);
    let mut steps = 0;
    let r = m.generate_codes(
        "piano",
        &opts(Length::MaxNewTokens(20)),
        &mut |p, _| {
            steps = p.step;
            if p.step == 5 {
                cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        },
        &cancel,
    );
    let e = r.unwrap_err();
    assert!(e.downcast_ref::<Cancelled>().is_some(), "{e:#}");
    assert_eq!(steps, 5);
}

#[test]
fn sampling_is_seeded_and_respects_length() {
    let mut m = try_load(&fixture()).unwrap();
    let mut o = opts(Length::MaxNewTokens(12));
    o.sampling.seed = 7;
    let run = |m: &mut MusicGen, o: &GenerateOptions| {
        m.generate_codes("piano", o, &mut |_, _| Ok(()), &AtomicBool::new(false))
            .unwrap()
    };
    let a = run(&mut m, &o);
    assert_eq!(a, run(&mut m, &o), "same seed, same song");
    assert_eq!(a.len(), 4);
    assert!(a.iter().all(|c| c.len() == 12 - 3), "N − (K − 1) frames");
    o.sampling.seed = 8;
    assert_ne!(a, run(&mut m, &o), "another seed, another song");
}
