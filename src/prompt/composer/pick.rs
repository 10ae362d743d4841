//! Choosing the genre, the mood and the instruments, each down the same ladder: a choice,
//! then the person's words (named, then read by the text model), then the photo, then
//! what follows from the other parts, then a default. Anything the words rule out
//! ("not sad", "no drums") is skipped on every rung below a choice.

use super::types::{Choices, ComposeError, Hints, Part, Source, MAX_INSTRUMENTS};
use super::{palette_mood, part, quoted};
use crate::prompt::vocabulary::{self, Genre, Mood, GENRES, MOODS};
use crate::prompt::words::{Kind, Reading, Said};

/// The words' keyword, or the text model's best guess, as a rung. In a long text single
/// words are weak evidence beside the meaning of the whole, so there the model goes first.
fn from_words<'a, T>(
    choices: &Choices,
    named: Option<&Said>,
    sensed: &[(String, f32)],
    lookup: impl Fn(&str) -> Option<&'a T>,
    allowed: impl Fn(&str) -> bool,
) -> Option<(&'a T, String)> {
    let keyword = || {
        named
            .filter(|s| allowed(s.id))
            .and_then(|s| Some((lookup(s.id)?, quoted([s.words.as_str()]))))
    };
    let model = || {
        sensed
            .iter()
            .filter(|(id, _)| allowed(id))
            .find_map(|(id, score)| {
                Some((
                    lookup(id)?,
                    format!("the meaning of the words ({score:.2})"),
                ))
            })
    };
    match choices.long_text {
        false => keyword().or_else(model),
        true => model().or_else(keyword),
    }
}

/// A chosen mood, with its line in the panel.
pub type Chosen<T> = (&'static T, Part);

fn mood_part(m: &'static Mood, source: Source, because: Option<String>) -> Chosen<Mood> {
    (m, part("mood", m.id, source, because))
}

/// The mood from the upper rungs: a choice, then the words.
pub fn mood_from_person(
    hints: &Hints,
    choices: &Choices,
    reading: &Reading,
) -> Result<Option<Chosen<Mood>>, ComposeError> {
    if let Some(m) = &choices.mood {
        let found = vocabulary::mood(m).ok_or_else(|| ComposeError::UnknownMood(m.clone()))?;
        return Ok(Some(mood_part(found, Source::Choice, None)));
    }
    let allowed = |id: &str| !reading.excludes(Kind::Mood, id);
    Ok(from_words(
        choices,
        reading.mood(),
        &hints.words.moods,
        vocabulary::mood,
        allowed,
    )
    .map(|(m, because)| mood_part(m, Source::Words, Some(because))))
}

/// The mood from the photo: CLIP's, else the colours'.
pub fn mood_from_photo(hints: &Hints, reading: &Reading) -> Option<Chosen<Mood>> {
    let allowed = |id: &str| !reading.excludes(Kind::Mood, id);
    if let Some(m) = hints
        .moods
        .iter()
        .filter(|(id, _)| allowed(id))
        .find_map(|(id, _)| vocabulary::mood(id))
    {
        return Some(mood_part(m, Source::Photo, None));
    }
    hints
        .palette
        .as_ref()
        .and_then(|p| vocabulary::mood(palette_mood(p)))
        .filter(|m| allowed(m.id))
        .map(|m| mood_part(m, Source::Palette, None))
}

/// The mood a genre suits, when nothing above named one: "derived" (or "default" when
/// the genre itself is the default).
pub fn mood_of_genre(genre: &Genre, genre_source: Source, reading: &Reading) -> Chosen<Mood> {
    let allowed = |id: &str| !reading.excludes(Kind::Mood, id);
    match vocabulary::mood(genre.mood).filter(|m| allowed(m.id)) {
        Some(m) if genre_source != Source::Default => {
            mood_part(m, Source::Derived, Some(format!("suits {}", genre.id)))
        }
        _ => {
            let m = MOODS.iter().find(|m| allowed(m.id)).unwrap_or(&MOODS[0]);
            mood_part(m, Source::Default, None)
        }
    }
}

/// The genre; `mood` (if one is known by now) gives the "derived" rung.
pub fn choose_genre(
    hints: &Hints,
    choices: &Choices,
    reading: &Reading,
    mood: Option<&Mood>,
) -> Result<Chosen<Genre>, ComposeError> {
    let genre = |g: &'static Genre, source, because| (g, part("genre", g.id, source, because));
    if let Some(g) = &choices.genre {
        let found = vocabulary::genre(g).ok_or_else(|| ComposeError::UnknownGenre(g.clone()))?;
        return Ok(genre(found, Source::Choice, None));
    }
    let allowed = |id: &str| !reading.excludes(Kind::Genre, id);
    if let Some((g, because)) = from_words(
        choices,
        reading.genre(),
        &hints.words.genres,
        vocabulary::genre,
        allowed,
    ) {
        return Ok(genre(g, Source::Words, Some(because)));
    }
    if let Some((g, said)) = home_of(&reading.instruments).filter(|(g, _)| allowed(g.id)) {
        let because = format!("{} is at home in {}", quoted([said.as_str()]), g.id);
        return Ok(genre(g, Source::Words, Some(because)));
    }
    if let Some(g) = hints
        .genres
        .iter()
        .filter(|(id, _)| allowed(id))
        .find_map(|(id, _)| vocabulary::genre(id))
    {
        return Ok(genre(g, Source::Photo, None));
    }
    if let Some(g) = mood
        .and_then(|m| vocabulary::genre(m.genre))
        .filter(|g| allowed(g.id))
    {
        return Ok(genre(g, Source::Derived, None));
    }
    let fallback = GENRES.iter().find(|g| allowed(g.id)).unwrap_or(&GENRES[0]);
    Ok(genre(fallback, Source::Default, None))
}

/// The one genre whose sound uses the most of the named instruments ("sax" → jazz), when
/// exactly one does; with the words that named them. Only instruments that mark a style
/// count (in at most two genres' sounds): drums or a bass say nothing about the genre.
fn home_of(named: &[Said]) -> Option<(&'static Genre, String)> {
    let marks = |id: &str| {
        GENRES
            .iter()
            .filter(|g| g.instruments.contains(&id))
            .count()
            <= 2
    };
    let named: Vec<&Said> = named.iter().filter(|s| marks(s.id)).collect();
    let uses = |g: &Genre| {
        named
            .iter()
            .filter(|s| g.instruments.contains(&s.id))
            .count()
    };
    let best = GENRES.iter().map(uses).max().filter(|&n| n > 0)?;
    let mut top = GENRES.iter().filter(|g| uses(g) == best);
    let g = top.next()?;
    if top.next().is_some() {
        return None;
    }
    let words: Vec<&str> = named
        .iter()
        .filter(|s| g.instruments.contains(&s.id))
        .map(|s| s.words.as_str())
        .collect();
    Some((g, words.join("”, “")))
}

/// How many instruments a prompt names when the person picked none.
const SOUND_SIZE: usize = 3;

pub fn choose_instruments(
    choices: &Choices,
    reading: &Reading,
    genre: &Genre,
) -> Result<(Vec<&'static str>, Part), ComposeError> {
    let done = |list: Vec<&'static str>, source, because| {
        let value = list.join(", ");
        (list, part("instruments", value, source, because))
    };
    if choices.instruments.len() > MAX_INSTRUMENTS {
        return Err(ComposeError::TooManyInstruments);
    }
    if !choices.instruments.is_empty() {
        let mut list = Vec::new();
        for name in &choices.instruments {
            let i = vocabulary::instrument(name)
                .ok_or_else(|| ComposeError::UnknownInstrument(name.clone()))?;
            if !list.contains(&i.id) {
                list.push(i.id);
            }
        }
        return Ok(done(list, Source::Choice, None));
    }
    let allowed = |id: &str| !reading.excludes(Kind::Instrument, id);
    let mut named: Vec<(&'static str, &str)> = reading
        .instruments
        .iter()
        .map(|s| (s.id, s.words.as_str()))
        .collect();
    if let Some(words) = &reading.guitar {
        // The kind of guitar the genre plays; acoustic when it plays none.
        let kind = match genre.instruments.contains(&"electric-guitar") {
            true => "electric-guitar",
            false => "acoustic-guitar",
        };
        if allowed(kind) && !named.iter().any(|(id, _)| *id == kind) {
            named.push((kind, words));
        }
    }
    named.truncate(MAX_INSTRUMENTS);
    let mut list: Vec<&'static str> = named.iter().map(|(id, _)| *id).collect();
    // The genre fills the sound out to three.
    for id in genre.instruments.iter().copied().filter(|id| allowed(id)) {
        if list.len() >= SOUND_SIZE.max(named.len()) {
            break;
        }
        if !list.contains(&id) {
            list.push(id);
        }
    }
    if named.is_empty() {
        let because = (!reading.without.is_empty())
            .then(|| quoted(reading.without.iter().map(|(_, s)| s.words.as_str())));
        return Ok(done(list, Source::Derived, because));
    }
    let because = quoted(named.iter().map(|(_, w)| *w));
    Ok(done(list, Source::Words, Some(because)))
}
