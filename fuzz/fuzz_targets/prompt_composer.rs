//! The prompt composer on arbitrary hints, choices and words (short lines and long texts,
//! with negations, tempos and synonyms mixed into the bytes, and any text-model reading):
//! never a panic; when it composes, the prompt is non-empty, bounded, in tempo range, the
//! same twice, every choice wins, and nothing the words ruled out is in the instruments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapsong::photo::palette::{Palette, Swatch};
use snapsong::prompt::words;
use snapsong::prompt::{compose, words_for_model, Choices, Hints, Source, MAX_BPM, MIN_BPM};
use snapsong::prompt::vocabulary::{GENRES, INSTRUMENTS, MOODS};

/// Reads fields off the front of the fuzzer's bytes.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn float(&mut self) -> f32 {
        let bytes = [self.byte(), self.byte(), self.byte(), self.byte()];
        f32::from_le_bytes(bytes)
    }
    /// A vocabulary id (most of the time) or free bytes as text (unknown words).
    fn word(&mut self, ids: &[&str]) -> String {
        let i = self.byte() as usize;
        match ids.get(i) {
            Some(id) => id.to_string(),
            None => self.text(),
        }
    }
    /// Words the reader knows (negations, tempos, synonyms, breaks) mixed with free text:
    /// each byte below 0x80 picks one, others start raw text.
    fn words(&mut self) -> String {
        const SEEDS: &[&str] = &[
            "no", "not", "without", "don't", "or", "and", "drums", "sax", "keys", "808s",
            "guitar", "house", "music", "deep", "r&b", "lo-fi", "slow", "fast", "75", "bpm",
            "400bpm", "beats", "per", "minute", "sad", "vocals", "instrumental", ",", ".",
            "\n", "!", "İ", "—", "’", "-", "'", "synths", "strings", "jazz", "metal",
        ];
        let mut out = String::new();
        for _ in 0..(self.byte() % 64) {
            let b = self.byte();
            match SEEDS.get(b as usize) {
                Some(w) => out.push_str(w),
                None if b >= 0x80 => out.push_str(&self.text()),
                None => out.push(char::from(b)),
            }
            out.push(' ');
        }
        out
    }

    /// Text up to the next 0xFF byte, lossily UTF-8.
    fn text(&mut self) -> String {
        let end = self
            .0
            .iter()
            .position(|b| *b == 0xFF)
            .unwrap_or(self.0.len());
        let s = String::from_utf8_lossy(&self.0[..end]).into_owned();
        self.0 = self.0.get(end + 1..).unwrap_or(&[]);
        s
    }
}

fuzz_target!(|data: &[u8]| {
    let genres: Vec<&str> = GENRES.iter().map(|g| g.id).collect();
    let moods: Vec<&str> = MOODS.iter().map(|m| m.id).collect();
    let instruments: Vec<&str> = INSTRUMENTS.iter().map(|i| i.id).collect();
    let mut input = Input(data);
    let flags = input.byte();
    let mut choices = Choices::default();
    if flags & 1 != 0 {
        choices.genre = Some(input.word(&genres));
    }
    if flags & 2 != 0 {
        choices.mood = Some(input.word(&moods));
    }
    if flags & 4 != 0 {
        choices.bpm = Some(u32::from(input.byte()) * 2);
    }
    for _ in 0..(input.byte() % 9) {
        choices.instruments.push(input.word(&instruments));
    }
    if flags & 8 != 0 {
        choices.text = Some(match flags & 128 {
            0 => input.text(),
            _ => input.words(),
        });
    }
    choices.long_text = flags & 64 != 0;
    let mut hints = Hints::default();
    if flags & 16 != 0 {
        hints.caption = Some(input.text());
    }
    for _ in 0..(input.byte() % 4) {
        hints.moods.push((input.word(&moods), input.float()));
        hints.genres.push((input.word(&genres), input.float()));
    }
    // Whatever the text model could say, sensible or not.
    for _ in 0..(input.byte() % 3) {
        hints.words.moods.push((input.word(&moods), input.float()));
        hints.words.genres.push((input.word(&genres), input.float()));
        hints.words.picked.push((input.text(), input.float()));
    }
    hints.words.sentences = usize::from(input.byte());
    if flags & 32 != 0 {
        // Any floats at all: a palette is stored as JSON and read back.
        hints.palette = Some(Palette {
            colours: vec![Swatch {
                hex: input.text(),
                share: input.float(),
            }],
            brightness: input.float(),
            saturation: input.float(),
            warmth: input.float(),
        });
    }

    let model_text = words_for_model(&choices);
    let reading = words::read(&model_text);
    // The scene is the text with pieces cut out; clauses are rejoined with ", ".
    let separators = model_text.matches([',', ';']).count();
    assert!(reading.scene.len() <= model_text.len() + separators);

    let Ok(c) = compose(&hints, &choices) else {
        return;
    };
    assert!(!c.prompt.trim().is_empty());
    assert!(
        c.prompt.chars().count() <= 1200,
        "{} chars",
        c.prompt.chars().count()
    );
    assert!((MIN_BPM..=MAX_BPM).contains(&c.bpm), "bpm {}", c.bpm);
    assert_eq!(
        compose(&hints, &choices).ok(),
        Some(c.clone()),
        "not deterministic"
    );
    let source_of = |what: &str| c.parts.iter().find(|p| p.what == what).map(|p| p.source);
    if choices.genre.is_some() {
        assert_eq!(source_of("genre"), Some(Source::Choice));
    }
    if choices.mood.is_some() {
        assert_eq!(source_of("mood"), Some(Source::Choice));
    }
    if let Some(b) = choices.bpm {
        assert_eq!(c.bpm, b);
    }
    // What the words ruled out is not played unless the person picked it.
    if let (Some(without), Some(instruments)) = (
        c.parts.iter().find(|p| p.what == "without"),
        c.parts.iter().find(|p| p.what == "instruments"),
    ) {
        if instruments.source != Source::Choice {
            for id in without.value.split(", ") {
                assert!(
                    !instruments.value.split(", ").any(|i| i == id),
                    "{id} ruled out but in {}",
                    instruments.value
                );
            }
        }
    }
});
