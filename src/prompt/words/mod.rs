//! Reading the person's words: what they name (genres, moods, instruments with their
//! synonyms, a tempo), what they rule out ("no drums", "without vocals"), and the scene
//! that is left for the prompt. The text model's view of the same words (`Sense`) is
//! made in `crate::ml::text` and only carried here, so this stays pure and fuzzable.
mod lexicon;
mod scan;
pub mod sentences;

use serde::{Deserialize, Serialize};

use lexicon::Target;

/// Something the words asked for, and the words that asked.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    pub id: &'static str,
    pub words: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TempoWords {
    /// "75 bpm" (the number as written; the composer checks its range).
    Bpm(u32, String),
    Slow(String),
    Fast(String),
}

/// What a kind of exclusion is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Genre,
    Mood,
    Instrument,
    Vocals,
}

/// The words, read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub genres: Vec<Said>,
    pub moods: Vec<Said>,
    /// Named instruments in order, once each; "guitar" with no kind is `guitar`.
    pub instruments: Vec<Said>,
    /// "guitar" with no kind: acoustic or electric is the genre's call.
    pub guitar: Option<String>,
    pub tempo: Option<TempoWords>,
    /// Ruled out: ids with their kind ("vocals" for singing).
    pub without: Vec<(Kind, Said)>,
    /// The words with the negations and the tempo taken out, tidied.
    pub scene: String,
}

impl Reading {
    pub fn excludes(&self, kind: Kind, id: &str) -> bool {
        self.without.iter().any(|(k, s)| *k == kind && s.id == id)
    }

    /// The genre the words name most (the first named on a tie).
    pub fn genre(&self) -> Option<&Said> {
        most_named(&self.genres)
    }

    pub fn mood(&self) -> Option<&Said> {
        most_named(&self.moods)
    }
}

fn most_named(list: &[Said]) -> Option<&Said> {
    let count = |id: &str| list.iter().filter(|s| s.id == id).count();
    // max_by_key keeps the last maximum: walk backwards so the first named wins a tie.
    list.iter().rev().max_by_key(|s| count(s.id))
}

/// Read `text`. Any text is fine: unknown words are simply part of the scene.
pub fn read(text: &str) -> Reading {
    let scan = scan::scan(text);
    let mut r = Reading::default();
    for found in &scan.found {
        for target in found.targets {
            let said = |id: &'static str| Said {
                id,
                words: found.words.clone(),
            };
            match (*target, found.negated) {
                (Target::Genre(id), false) => r.genres.push(said(id)),
                (Target::Mood(id), false) => r.moods.push(said(id)),
                (Target::Instrument(id), false) => {
                    if !r.instruments.iter().any(|s| s.id == id) {
                        r.instruments.push(said(id));
                    }
                }
                (Target::Guitar, false) => {
                    r.guitar.get_or_insert(found.words.clone());
                }
                (Target::Slow, false) => {
                    r.tempo.get_or_insert(TempoWords::Slow(found.words.clone()));
                }
                (Target::Fast, false) => {
                    r.tempo.get_or_insert(TempoWords::Fast(found.words.clone()));
                }
                (Target::Instrumental, _) | (Target::Vocals, true) => {
                    r.without.push((Kind::Vocals, said("vocals")))
                }
                (Target::Genre(id), true) => r.without.push((Kind::Genre, said(id))),
                (Target::Mood(id), true) => r.without.push((Kind::Mood, said(id))),
                (Target::Instrument(id), true) => {
                    for id in lexicon::family(id) {
                        r.without.push((Kind::Instrument, said(id)));
                    }
                }
                (Target::Guitar, true) => {
                    for id in ["acoustic-guitar", "electric-guitar"] {
                        r.without.push((Kind::Instrument, said(id)));
                    }
                }
                // Singing asked for, a negated tempo word: nothing to do.
                (Target::Vocals, false) | (Target::Slow | Target::Fast, true) => {}
            }
        }
    }
    // An explicit number beats "slow" or "fast".
    if let Some(bpm) = scan.bpm {
        r.tempo = Some(TempoWords::Bpm(bpm.value, bpm.words));
    }
    r.instruments.retain(|s| {
        !r.without
            .iter()
            .any(|(k, w)| *k == Kind::Instrument && w.id == s.id)
    });
    r.scene = tidy(&cut(text, &scan.removed));
    r
}

/// `text` without the byte ranges in `removed`.
fn cut(text: &str, removed: &[std::ops::Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut ranges = removed.to_vec();
    ranges.sort_by_key(|r| r.start);
    for r in ranges {
        if r.start >= at {
            out.push_str(&text[at..r.start]);
            at = r.end;
        }
    }
    out.push_str(&text[at.min(text.len())..]);
    out
}

/// Words that dangle at a clause's edge once a negation is cut out ("with synths and").
const DANGLING: &[&str] = &["and", "or", "with", "but", "nor", "at", "in"];

/// Collapse spaces, drop empty clauses and the connectors left hanging at their edges.
fn tidy(text: &str) -> String {
    let mut clauses = Vec::new();
    for clause in text.split([',', ';']) {
        let mut words: Vec<&str> = clause.split_whitespace().collect();
        while words
            .last()
            .is_some_and(|w| DANGLING.contains(&w.to_lowercase().as_str()))
        {
            words.pop();
        }
        while words
            .first()
            .is_some_and(|w| ["and", "or", "but", "nor"].contains(&w.to_lowercase().as_str()))
        {
            words.remove(0);
        }
        if !words.is_empty() {
            clauses.push(words.join(" "));
        }
    }
    clauses.join(", ")
}

/// What the text model made of the words (empty when there is none): the moods and
/// genres it is sure of, best first, with their cosine against the vocabulary's
/// descriptions, and for a long text the sentences it picked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sense {
    pub moods: Vec<(String, f32)>,
    pub genres: Vec<(String, f32)>,
    /// Long texts: the picked sentences in text order, each with how close it is to the
    /// meaning of the whole (cosine).
    pub picked: Vec<(String, f32)>,
    /// How many sentences the text has.
    pub sentences: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_negation_and_tempo() {
        let r = read("upbeat 80s workout with sax, keys and 808s and no vocals");
        assert_eq!(r.genre().map(|s| s.id), Some("synthwave"));
        assert_eq!(r.mood().map(|s| s.id), Some("energetic"));
        let named: Vec<_> = r
            .instruments
            .iter()
            .map(|s| (s.id, s.words.as_str()))
            .collect();
        assert_eq!(
            named,
            vec![
                ("saxophone", "sax"),
                ("piano", "keys"),
                ("drum-machine", "808s")
            ]
        );
        assert_eq!(r.tempo, Some(TempoWords::Fast("upbeat".into())));
        assert!(r.excludes(Kind::Vocals, "vocals"));
        assert_eq!(r.scene, "upbeat 80s workout with sax, keys and 808s");
    }

    #[test]
    fn an_explicit_bpm_beats_tempo_words_and_leaves_the_scene() {
        let r = read("slow lofi beats to study to, 75 bpm");
        assert_eq!(r.tempo, Some(TempoWords::Bpm(75, "75 bpm".into())));
        assert_eq!(r.scene, "slow lofi beats to study to");
    }

    #[test]
    fn negated_moods_and_instruments_are_ruled_out_not_named() {
        let r = read("not sad, just calm and peaceful ambient; no drums");
        assert_eq!(r.mood().map(|s| s.id), Some("calm"));
        assert!(r.excludes(Kind::Mood, "melancholic"));
        assert!(r.excludes(Kind::Instrument, "drums"));
        assert!(r.instruments.is_empty());
        assert_eq!(r.scene, "just calm and peaceful ambient");
        let g = read("no guitar");
        assert!(g.excludes(Kind::Instrument, "electric-guitar"));
        assert!(g.excludes(Kind::Instrument, "acoustic-guitar"));
        assert_eq!(g.scene, "");
    }

    #[test]
    fn the_most_named_genre_wins_then_the_first() {
        assert_eq!(read("jazz, rock, rock").genre().map(|s| s.id), Some("rock"));
        assert_eq!(read("jazz and rock").genre().map(|s| s.id), Some("jazz"));
    }
}
