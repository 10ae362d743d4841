//! The prompt composer on arbitrary hints and choices: never a panic; when it composes,
//! the prompt is non-empty, bounded, in tempo range, the same twice, and every choice wins.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapsong::photo::palette::{Palette, Swatch};
use snapsong::prompt::{compose, Choices, Hints, Source, MAX_BPM, MIN_BPM};
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
        choices.text = Some(input.text());
    }
    let mut hints = Hints::default();
    if flags & 16 != 0 {
        hints.caption = Some(input.text());
    }
    for _ in 0..(input.byte() % 4) {
        hints.moods.push((input.word(&moods), input.float()));
        hints.genres.push((input.word(&genres), input.float()));
    }
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
});
