//! Finding the lexicon's phrases in a text: words with their places, the longest phrase
//! first at each place, which finds a negation covers ("no drums or bass"), and an
//! explicit tempo ("75 bpm"). Works on any input: nothing here can fail.

use std::ops::Range;
use std::sync::OnceLock;

use super::lexicon::{Target, CARRIERS, NEGATORS, PHRASES};

/// A word, lower-cased, with its bytes in the text; or a break (punctuation that ends
/// a clause, so a negation stops there).
enum Piece {
    Word { lower: String, span: Range<usize> },
    Break,
}

fn pieces(text: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let flush = |out: &mut Vec<Piece>, s: usize, e: usize| {
        let word = text[s..e].trim_matches(['-', '\'']);
        if !word.is_empty() {
            let off = s + text[s..e].find(word).unwrap_or(0);
            out.push(Piece::Word {
                lower: word.to_lowercase(),
                span: off..off + word.len(),
            });
        }
    };
    for (i, c) in text.char_indices() {
        let in_word = c.is_alphanumeric() || matches!(c, '&' | '\'' | '-' | '’');
        match (in_word, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                flush(&mut out, s, i);
                start = None;
            }
            _ => {}
        }
        if !in_word
            && matches!(
                c,
                ',' | '.' | ';' | ':' | '!' | '?' | '(' | ')' | '\n' | '—'
            )
        {
            out.push(Piece::Break);
        }
    }
    if let Some(s) = start {
        flush(&mut out, s, text.len());
    }
    out
}

/// A lexicon phrase found in the text.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub targets: &'static [Target],
    /// The words as the person wrote them.
    pub words: String,
    pub negated: bool,
}

/// "75 bpm" as written, and its number.
#[derive(Debug, Clone, PartialEq)]
pub struct Bpm {
    pub value: u32,
    pub words: String,
}

#[derive(Debug, Default)]
pub struct Scan {
    pub found: Vec<Found>,
    pub bpm: Option<Bpm>,
    /// Bytes that must not reach the prompt: negated phrases and the tempo.
    pub removed: Vec<Range<usize>>,
}

/// `word` is `form` or its plural.
fn same(word: &str, form: &str) -> bool {
    word == form
        || word.strip_suffix('s') == Some(form)
        || word.strip_suffix("es") == Some(form)
        || (word.replace('’', "'") == form)
}

/// The lexicon's phrases split into words, longest first (made once).
fn by_length() -> &'static [(Vec<&'static str>, &'static [Target])] {
    static SORTED: OnceLock<Vec<(Vec<&'static str>, &'static [Target])>> = OnceLock::new();
    SORTED.get_or_init(|| {
        let mut phrases: Vec<_> = PHRASES
            .iter()
            .map(|(p, t)| (p.split(' ').collect::<Vec<_>>(), *t))
            .collect();
        phrases.sort_by_key(|(words, _)| std::cmp::Reverse(words.len()));
        phrases
    })
}

pub fn scan(text: &str) -> Scan {
    let pieces = pieces(text);
    let phrases = by_length();

    let word_at = |i: usize| match pieces.get(i) {
        Some(Piece::Word { lower, span }) => Some((lower.as_str(), span.clone())),
        _ => None,
    };
    let mut out = Scan::default();
    // The start of the negation in force, and where its last negated phrase ended.
    let mut negation: Option<(usize, Option<usize>)> = None;
    let end_negation = |negation: &mut Option<(usize, Option<usize>)>, removed: &mut Vec<_>| {
        if let Some((start, Some(end))) = negation.take() {
            removed.push(start..end);
        }
    };
    let mut i = 0;
    while i < pieces.len() {
        let Some((word, span)) = word_at(i) else {
            end_negation(&mut negation, &mut out.removed);
            i += 1;
            continue;
        };
        if let Some(bpm) = tempo_at(&pieces, i, text) {
            out.removed.push(bpm.1.clone());
            out.bpm.get_or_insert(bpm.0);
            i += bpm.2;
            continue;
        }
        let matched = phrases.iter().find(|(words, _)| {
            words
                .iter()
                .enumerate()
                .all(|(k, form)| word_at(i + k).is_some_and(|(w, _)| same(w, form)))
        });
        if let Some((words, targets)) = matched {
            let end = word_at(i + words.len() - 1).map_or(span.end, |(_, s)| s.end);
            let negated = negation.is_some();
            if let Some((_, last)) = negation.as_mut() {
                *last = Some(end);
            }
            out.found.push(Found {
                targets,
                words: text[span.start..end].to_string(),
                negated,
            });
            i += words.len();
            continue;
        }
        if NEGATORS.contains(&word) {
            end_negation(&mut negation, &mut out.removed);
            negation = Some((span.start, None));
        } else if !CARRIERS.contains(&word) {
            end_negation(&mut negation, &mut out.removed);
        }
        i += 1;
    }
    end_negation(&mut negation, &mut out.removed);
    out
}

/// "75 bpm", "75bpm" or "75 beats per minute" at piece `i`: the tempo, its bytes and
/// how many pieces it takes.
fn tempo_at(pieces: &[Piece], i: usize, text: &str) -> Option<(Bpm, Range<usize>, usize)> {
    let word = |k: usize| match pieces.get(i + k) {
        Some(Piece::Word { lower, span }) => Some((lower.as_str(), span.clone())),
        _ => None,
    };
    let (first, span) = word(0)?;
    let number = |s: &str| {
        (s.len() <= 3 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let (value, end, taken) = if let Some(v) = first.strip_suffix("bpm").and_then(number) {
        (v, span.end, 1)
    } else {
        let v = number(first)?;
        match (word(1), word(2), word(3)) {
            (Some(("bpm", s)), _, _) => (v, s.end, 2),
            (Some(("beats", _)), Some(("per", _)), Some(("minute", s))) => (v, s.end, 4),
            _ => return None,
        }
    };
    let bpm = Bpm {
        value,
        words: text[span.start..end].to_string(),
    };
    Some((bpm, span.start..end, taken))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &Scan, negated: bool) -> Vec<Target> {
        s.found
            .iter()
            .filter(|f| f.negated == negated)
            .flat_map(|f| f.targets.iter().copied())
            .collect()
    }

    #[test]
    fn longest_phrase_wins_and_plurals_match() {
        let s = scan("Deep house with 808s, an upright bass and synths");
        assert_eq!(
            ids(&s, false),
            vec![
                Target::Genre("edm"),
                Target::Instrument("drum-machine"),
                Target::Instrument("upright-bass"),
                Target::Instrument("synth"),
            ]
        );
        // A building is not a genre.
        assert!(ids(&scan("a haunted house"), false)
            .iter()
            .all(|t| !matches!(t, Target::Genre(_))));
    }

    #[test]
    fn negation_reaches_over_lists_and_stops_at_a_comma() {
        let text = "without drums or bass, only strings and piano";
        let s = scan(text);
        assert_eq!(
            ids(&s, true),
            vec![Target::Instrument("drums"), Target::Instrument("bass")]
        );
        assert_eq!(
            ids(&s, false),
            vec![Target::Instrument("strings"), Target::Instrument("piano")]
        );
        assert_eq!(s.removed, vec![0..21]);
        assert_eq!(&text[s.removed[0].clone()], "without drums or bass");
        // "not" before a word the lexicon does not know negates nothing.
        assert!(scan("not bad at all").removed.is_empty());
    }

    #[test]
    fn tempo_is_read_in_three_spellings() {
        for (text, bpm) in [
            ("lofi, 75 bpm", 75),
            ("at 128BPM please", 128),
            ("90 beats per minute", 90),
        ] {
            let s = scan(text);
            assert_eq!(s.bpm.as_ref().map(|b| b.value), Some(bpm), "{text}");
            assert_eq!(s.removed.len(), 1);
        }
        assert!(scan("at 3am in the 80s").bpm.is_none());
    }
}
