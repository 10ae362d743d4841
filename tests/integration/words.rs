//! The person's words with the real all-MiniLM-L6-v2 (unpacked by `scripts/setup --tests`
//! from PyPI): the BERT encoder against transformers (same token ids, embeddings within
//! 1e-4), and the labelled phrase set (tests/fixtures/words/labelled.json) through the
//! whole reading: keywords, the text model and the composer.
#![cfg(feature = "ssr")]

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use serde::Deserialize;
use snapsong::ml::hub;
use snapsong::ml::text::TextEncoder;
use snapsong::ml::WordReader;
use snapsong::prompt::{compose, words_for_model, Choices, Hints};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The real model's files; a clear message when setup has not fetched them.
pub fn minilm() -> hub::ModelFiles {
    let dir = root().join("target/test-models/all-minilm-l6-v2");
    assert!(
        dir.join("model.safetensors").exists(),
        "{} is missing: run scripts/setup --tests",
        dir.display()
    );
    hub::resolve(dir.to_str().expect("utf-8 path")).expect("resolve MiniLM")
}

#[derive(Deserialize)]
struct Reference {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

#[test]
fn minilm_embeddings_match_transformers() {
    let encoder = TextEncoder::load(&minilm(), &Device::Cpu).expect("load");
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("tests/fixtures/minilm/reference.json")).expect("fixture"),
    )
    .expect("parse");
    let refs: Vec<Reference> = serde_json::from_value(json["texts"].clone()).expect("texts");
    let mut worst = 0f32;
    for r in &refs {
        assert_eq!(
            encoder.token_ids(&r.text).expect("ids"),
            r.ids,
            "{:?}",
            r.text
        );
        let got = encoder.embed(&r.text).expect("embed");
        assert_eq!(got.len(), r.embedding.len());
        for (g, w) in got.iter().zip(&r.embedding) {
            worst = worst.max((g - w).abs());
        }
    }
    println!(
        "MiniLM vs transformers: worst |Δ| {worst:.2e} over {} texts",
        refs.len()
    );
    assert!(worst <= 1e-4, "worst |Δ| {worst}");
}

#[derive(Deserialize)]
struct PhotoHints {
    caption: String,
    moods: Vec<(String, f32)>,
    genres: Vec<(String, f32)>,
}

#[derive(Deserialize)]
struct Labelled {
    text: String,
    #[serde(default)]
    long: bool,
    photo: Option<PhotoHints>,
    genres: Vec<String>,
    moods: Vec<String>,
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    without: Vec<String>,
    bpm: (u32, u32),
}

/// What is wrong with the composed song, if anything.
fn misses(l: &Labelled, parts: &[snapsong::prompt::Part], bpm: u32) -> Vec<String> {
    let value = |what: &str| {
        parts
            .iter()
            .find(|p| p.what == what)
            .map(|p| p.value.clone())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    let ok = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
    if !ok(&l.genres, &value("genre")) {
        out.push(format!("genre {}", value("genre")));
    }
    if !ok(&l.moods, &value("mood")) {
        out.push(format!("mood {}", value("mood")));
    }
    let instruments = value("instruments");
    let named: Vec<&str> = instruments.split(", ").collect();
    for i in &l.include {
        if !named.contains(&i.as_str()) {
            out.push(format!("no {i} in [{instruments}]"));
        }
    }
    for i in &l.exclude {
        if named.contains(&i.as_str()) {
            out.push(format!("{i} in [{instruments}]"));
        }
    }
    for w in &l.without {
        if !value("without").contains(w.as_str()) {
            out.push(format!("{w} not ruled out"));
        }
    }
    if !(l.bpm.0..=l.bpm.1).contains(&bpm) {
        out.push(format!("{bpm} bpm"));
    }
    out
}

/// Phrases of a set read fully right: with the text model, and with keywords alone; and
/// the text model's time per phrase (ms).
fn agreement(reader: &WordReader, file: &str) -> (usize, usize, usize, Vec<f64>) {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join(file)).expect("fixture")).expect("parse");
    let set: Vec<Labelled> = serde_json::from_value(json["phrases"].clone()).expect("phrases");
    let (mut right, mut keywords_only_right) = (0, 0);
    let mut reading_ms = Vec::new();
    for l in &set {
        let choices = Choices {
            text: Some(l.text.clone()),
            long_text: l.long,
            ..Default::default()
        };
        let mut hints = match &l.photo {
            Some(p) => Hints {
                caption: Some(p.caption.clone()),
                moods: p.moods.clone(),
                genres: p.genres.clone(),
                ..Default::default()
            },
            None => Hints::default(),
        };
        let plain = compose(&hints, &choices).expect("compose without the model");
        if misses(l, &plain.parts, plain.bpm).is_empty() {
            keywords_only_right += 1;
        }
        let t = Instant::now();
        hints.words = reader
            .sense(&words_for_model(&choices), l.long)
            .expect("sense");
        reading_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let c = compose(&hints, &choices).expect("compose");
        let wrong = misses(l, &c.parts, c.bpm);
        if wrong.is_empty() {
            right += 1;
        }
        let short: String = l.text.chars().take(60).collect();
        println!(
            "{} {short:<60} → {}",
            if wrong.is_empty() { "ok  " } else { "MISS" },
            match wrong.is_empty() {
                true => c.prompt.chars().take(90).collect::<String>(),
                false => wrong.join("; "),
            }
        );
        if std::env::var_os("SNAPSONG_WORDS_DEBUG").is_some() && !l.long {
            // For tuning: the model's best mood and genre, its lead, and whether it is
            // acceptable.
            let (moods, genres) = reader.scores(&words_for_model(&choices)).expect("scores");
            let top = |mut v: Vec<(String, f32)>, ok: &[String]| {
                v.sort_by(|a, b| b.1.total_cmp(&a.1));
                let good = ok.iter().any(|x| x == "*" || *x == v[0].0);
                format!("{} {:.3} +{:.3} {}", v[0].0, v[0].1, v[0].1 - v[1].1, good)
            };
            println!(
                "DBG mood {} | genre {}",
                top(moods, &l.moods),
                top(genres, &l.genres)
            );
        }
    }
    (right, keywords_only_right, set.len(), reading_ms)
}

/// The share of phrases fully right (genre, mood, instruments, exclusions and tempo all
/// acceptable) must reach 85 % on the labelled set; the held-out set, never used for
/// tuning, is reported beside it. Every phrase's result is printed.
#[test]
fn labelled_phrases_read_right() {
    let t = Instant::now();
    let reader = WordReader::load(&minilm(), &Device::Cpu).expect("load");
    println!(
        "text model loaded (with the vocabulary's meanings) in {:?}",
        t.elapsed()
    );
    let (right, keywords, n, mut ms) = agreement(&reader, "tests/fixtures/words/labelled.json");
    assert!(n >= 40, "{n} phrases");
    let (held_right, held_keywords, held_n, held_ms) =
        agreement(&reader, "tests/fixtures/words/held_out.json");
    ms.extend(held_ms);
    ms.sort_by(f64::total_cmp);
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b as f64;
    println!(
        "agreement: labelled {right}/{n} = {:.0} % (keywords alone {keywords}/{n}); held out \
         {held_right}/{held_n} = {:.0} % (keywords alone {held_keywords}/{held_n}); text model \
         per song: median {:.1} ms, slowest {:.1} ms",
        pct(right, n),
        pct(held_right, held_n),
        ms[ms.len() / 2],
        ms[ms.len() - 1],
    );
    assert!(
        pct(right, n) >= 85.0,
        "only {right} of {n} phrases read right"
    );
}
