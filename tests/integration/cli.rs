//! The `snapsong` CLI contract (DESIGN.md), run as a real process.
#![cfg(feature = "ssr")]

use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_snapsong"))
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/musicgen")
        .join(name)
}

/// `snapsong generate` on the proj_4cb fixture as its reference was made: its prompt and
/// steps, greedy, guidance 3, f32 (parity is f32's promise; `auto` may pick 8-bit weights
/// on this CPU), writing the song to `wav` and its codes to `codes`.
fn generate_as_reference(codes: &std::path::Path, wav: &std::path::Path) -> Command {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("proj_4cb").join("reference.json")).unwrap(),
    )
    .unwrap();
    let mut cmd = bin();
    cmd.args(["generate", "--model"])
        .arg(fixture("proj_4cb"))
        .args(["--prompt", meta["prompt"].as_str().unwrap()])
        .args(["--max-new-tokens", &meta["max_new_tokens"].to_string()])
        .args(["--greedy", "--guidance", "3.0", "--dtype", "f32", "--out"])
        .arg(wav)
        .arg("--codes-out")
        .arg(codes);
    cmd
}

#[test]
fn greedy_generate_writes_transformers_codes_and_a_wav() {
    let out = tempfile::tempdir().unwrap();
    let wav = out.path().join("song.wav");
    let codes = out.path().join("codes.json");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("proj_4cb").join("reference.json")).unwrap(),
    )
    .unwrap();
    let status = generate_as_reference(&codes, &wav).status().unwrap();
    assert!(status.success());

    let r = candle_core::safetensors::load(
        fixture("proj_4cb").join("reference.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let want: Vec<Vec<i64>> = r["cfg3.codes"].to_vec2().unwrap();
    let got: serde_json::Value = serde_json::from_slice(&std::fs::read(&codes).unwrap()).unwrap();
    let got: Vec<Vec<i64>> = serde_json::from_value(got["codes"].clone()).unwrap();
    assert_eq!(got, want);

    let reader = hound::WavReader::open(&wav).unwrap();
    assert_eq!(reader.spec().sample_rate, 32_000);
    assert_eq!(
        reader.len() as u64,
        meta["runs"]["cfg3"]["samples"].as_u64().unwrap()
    );
}

#[test]
fn greedy_generate_continues_prompt_codes_as_transformers_does() {
    let out = tempfile::tempdir().unwrap();
    let r = candle_core::safetensors::load(
        fixture("proj_4cb").join("reference.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let prompt: Vec<Vec<i64>> = r["cont.prompt_codes"].to_vec2().unwrap();
    let want: Vec<Vec<i64>> = r["cont.codes"].to_vec2().unwrap();
    let (prompt_path, codes) = (
        out.path().join("prompt.json"),
        out.path().join("codes.json"),
    );
    std::fs::write(
        &prompt_path,
        serde_json::json!({ "codes": prompt }).to_string(),
    )
    .unwrap();
    let status = generate_as_reference(&codes, &out.path().join("song.wav"))
        .arg("--prompt-codes")
        .arg(&prompt_path)
        .status()
        .unwrap();
    assert!(status.success());
    let got: serde_json::Value = serde_json::from_slice(&std::fs::read(&codes).unwrap()).unwrap();
    let got: Vec<Vec<i64>> = serde_json::from_value(got["codes"].clone()).unwrap();
    assert_eq!(got, want);

    // Not a codes file: a clear message, no panic.
    std::fs::write(&prompt_path, "{\"codes\": \"many\"}").unwrap();
    let o = bin()
        .args(["generate", "--model"])
        .arg(fixture("proj_4cb"))
        .args(["--prompt", "piano", "--prompt-codes"])
        .arg(&prompt_path)
        .arg("--out")
        .arg(out.path().join("x.wav"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not a codes file"));
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let out = tempfile::tempdir().unwrap();
    let wav = out.path().join("x.wav");
    let cases: [(&[&str], &str); 4] = [
        (&["--dtype", "int3"], "unknown dtype"),
        (&["--duration", "0"], "duration must be"),
        (&["--duration", "181"], "duration must be"),
        (&["--device", "tpu"], "unknown device"),
    ];
    for (args, msg) in cases {
        let o = bin()
            .args(["generate", "--model"])
            .arg(fixture("proj_4cb"))
            .args(["--prompt", "piano", "--out"])
            .arg(&wav)
            .args(args)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
        assert!(!wav.exists(), "nothing written on error");
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn serve_refuses_cuda_at_start_on_a_cpu_build() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let o = bin()
        .args([
            "serve",
            "--device",
            "cuda",
            "--addr",
            "127.0.0.1:0",
            "--database-url",
        ])
        .arg(format!("sqlite:{}", db.display()))
        .arg("--media-dir")
        .arg(dir.path().join("media"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "a CPU build must not serve on cuda");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no CUDA support") && err.contains("scripts/setup-cuda --build"),
        "{err}"
    );
    assert!(!db.exists(), "refused before the database was touched");
}

#[test]
fn tiny_model_is_made_locally_and_generates() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("tiny");
    let st = bin()
        .args(["models", "make-tiny", "--out"])
        .arg(&model)
        .status()
        .unwrap();
    assert!(st.success());
    let wav = d.path().join("t.wav");
    let o = bin()
        .args(["generate", "--model"])
        .arg(&model)
        .args([
            "--prompt",
            "calm piano at night",
            "--duration",
            "1",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&wav)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("noise"));
    let reader = hound::WavReader::open(&wav).unwrap();
    assert_eq!(reader.len(), 32_000, "1 s at 32 kHz");
}

fn root(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn caption_and_compose_from_a_photo() {
    let out = tempfile::tempdir().unwrap();
    let tokens = out.path().join("tokens.json");
    let photo = root("tests/fixtures/photos/landscape.jpg");
    let o = bin()
        .args(["caption", "--model"])
        .arg(root("tests/fixtures/blip/same_width"))
        .arg(&photo)
        .args(["--max-new-tokens", "6", "--tokens-out"])
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tokens).unwrap()).unwrap();
    let caption = String::from_utf8(o.stdout).unwrap();
    assert_eq!(caption.trim(), json["caption"].as_str().unwrap());
    assert!(json["tokens"].as_array().unwrap().len() <= 6);

    let o = bin()
        .arg("compose")
        .arg(&photo)
        .arg("--caption-model")
        .arg(root("tests/fixtures/blip/same_width"))
        .arg("--clip-model")
        .arg(root("tests/fixtures/clip/tiny"))
        .args(["--genre", "jazz", "--bpm", "90", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let prompt = json["composed"]["prompt"].as_str().unwrap();
    assert!(prompt.starts_with("smooth jazz track, "), "{prompt}");
    assert!(prompt.contains(", 90 bpm"), "{prompt}");
    assert_eq!(json["hints"]["moods"].as_array().unwrap().len(), 14);
    assert!(
        json["hints"]["palette"]["colours"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
}

#[test]
fn compose_words_only_and_bad_input() {
    let o = bin()
        .args([
            "compose",
            "--mood",
            "calm",
            "--text",
            "a quiet lake at dawn",
            "--text-model",
            "none",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let prompt = String::from_utf8(o.stdout).unwrap();
    assert!(
        prompt.contains("calm and peaceful") && prompt.trim().ends_with("a quiet lake at dawn")
    );

    let o = bin()
        .args(["compose", "--genre", "polka-metal"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown genre"));

    let o = bin()
        .arg("caption")
        .arg(root("tests/fixtures/photos/text.jpg"))
        .args(["--model"])
        .arg(root("tests/fixtures/blip/same_width"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not an image"), "{err}");
}

#[test]
fn compose_reads_words_with_the_text_model() {
    let o = bin()
        .args([
            "compose",
            "--json",
            "--text",
            "a haunted house at night, no drums, 70 bpm",
        ])
        .arg("--text-model")
        .arg(root("target/test-models/all-minilm-l6-v2"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let parts = json["composed"]["parts"].as_array().unwrap();
    let part = |what: &str| {
        parts
            .iter()
            .find(|p| p["what"] == what)
            .unwrap_or_else(|| panic!("no {what} in {parts:?}"))
    };
    assert_eq!(part("mood")["value"], "mysterious");
    assert_eq!(part("mood")["source"], "words");
    // The genre follows from the mood the words gave.
    assert_eq!(part("genre")["value"], "cinematic");
    assert_eq!(part("tempo")["value"], "70 bpm");
    assert_eq!(
        part("without")["value"],
        "drums, brushed-drums, drum-machine"
    );
    let prompt = json["composed"]["prompt"].as_str().unwrap();
    assert!(prompt.ends_with(", a haunted house at night"), "{prompt}");
    // The text model's reading is part of the explanation.
    assert!(json["hints"]["words"]["moods"].is_array());

    let o = bin()
        .args(["compose", "--long-text", "--text-model", "none", "--text"])
        .arg("x".repeat(5001))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("longer than 5000"));
}
