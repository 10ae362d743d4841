//! The composer's rules, one test per rule.
#[test]
fn odd_palettes_and_captions_never_break_the_prompt() {
    let mut hints = super::Hints {
        caption: Some(format!("ARAFED {}", "İ".repeat(12))),
        palette: Some(super::Palette {
            colours: vec![],
            brightness: f32::NAN,
            saturation: f32::INFINITY,
            warmth: f32::NAN,
        }),
        ..Default::default()
    };
    let c = super::compose(&hints, &super::Choices::default()).expect("composes");
    assert!(
        (super::MIN_BPM..=super::MAX_BPM).contains(&c.bpm),
        "{}",
        c.bpm
    );
    assert!(c.prompt.ends_with(&"İ".repeat(12)), "{}", c.prompt);
    hints.caption = Some("There is a dog".into());
    let c = super::compose(&hints, &super::Choices::default()).expect("composes");
    assert!(c.prompt.ends_with("Inspired by a dog"), "{}", c.prompt);
}

use super::*;
use crate::photo::palette::{Palette, Swatch};
use crate::prompt::words::Sense;

fn photo_hints() -> Hints {
    Hints {
        caption: Some("arafed dog running on a beach at sunset".into()),
        moods: vec![("happy".into(), 0.6), ("calm".into(), 0.2)],
        genres: vec![("reggae".into(), 0.5), ("pop".into(), 0.3)],
        palette: Some(Palette {
            colours: vec![Swatch {
                hex: "#f08c14".into(),
                share: 1.0,
            }],
            brightness: 0.7,
            saturation: 0.8,
            warmth: 0.9,
        }),
        words: Sense::default(),
    }
}

fn source(c: &Composed, what: &str) -> Source {
    c.parts
        .iter()
        .find(|p| p.what == what)
        .map(|p| p.source)
        .expect("part")
}

#[test]
fn hints_fill_what_the_person_left_open() {
    let c = compose(&photo_hints(), &Choices::default()).expect("compose");
    assert!(
        c.prompt
            .starts_with("reggae track, happy and joyful, with organ, bass and electric guitar, "),
        "{}",
        c.prompt
    );
    assert!(
        c.prompt
            .ends_with(". Inspired by dog running on a beach at sunset"),
        "{}",
        c.prompt
    );
    assert_eq!(source(&c, "genre"), Source::Photo);
    assert_eq!(source(&c, "mood"), Source::Photo);
    assert_eq!(source(&c, "tempo"), Source::Palette);
    assert_eq!(source(&c, "scene"), Source::Caption);
    assert!((70..=90).contains(&c.bpm));
}

#[test]
fn choices_override_hints() {
    let choices = Choices {
        genre: Some("Jazz".into()),
        mood: Some("melancholic".into()),
        bpm: Some(72),
        instruments: vec!["saxophone".into(), "piano".into(), "piano".into()],
        text: Some("  rainy   evening\n in Paris ".into()),
        long_text: false,
    };
    let c = compose(&photo_hints(), &choices).expect("compose");
    assert_eq!(
        c.prompt,
        "smooth jazz track, melancholic and bittersweet, with saxophone and piano, 72 bpm, \
         rainy evening in Paris. Inspired by dog running on a beach at sunset"
    );
    for what in ["genre", "mood", "instruments", "tempo"] {
        assert_eq!(source(&c, what), Source::Choice, "{what}");
    }
    assert_eq!(source(&c, "text"), Source::Words);
}

#[test]
fn auto_tempo_follows_mood_and_palette() {
    let calm = compose(
        &Hints::default(),
        &Choices {
            mood: Some("calm".into()),
            genre: Some("pop".into()),
            ..Default::default()
        },
    )
    .expect("calm");
    let wild = compose(
        &Hints::default(),
        &Choices {
            mood: Some("energetic".into()),
            genre: Some("pop".into()),
            ..Default::default()
        },
    )
    .expect("wild");
    assert!(calm.bpm < wild.bpm, "{} vs {}", calm.bpm, wild.bpm);
    let mut dark = photo_hints();
    dark.moods.clear();
    dark.palette = Some(Palette {
        colours: vec![],
        brightness: 0.1,
        saturation: 0.05,
        warmth: 0.0,
    });
    let d = compose(&dark, &Choices::default()).expect("dark");
    assert_eq!(d.parts[1].value, "mysterious");
    assert_eq!(source(&d, "mood"), Source::Palette);
}

#[test]
fn words_only_and_defaults_are_stable() {
    let a = compose(&Hints::default(), &Choices::default()).expect("defaults");
    let b = compose(&Hints::default(), &Choices::default()).expect("again");
    assert_eq!(a, b);
    assert_eq!(source(&a, "mood"), Source::Default);
    assert!(!a.prompt.is_empty());
    let words = Choices {
        text: Some("a road trip at dawn".into()),
        ..Default::default()
    };
    let w = compose(&Hints::default(), &words).expect("words");
    assert!(w.prompt.ends_with(", a road trip at dawn"), "{}", w.prompt);
}

#[test]
fn prompts_stay_short_and_bad_choices_are_refused() {
    let long = Choices {
        text: Some("loud ".repeat(5000)),
        ..Default::default()
    };
    let mut hints = photo_hints();
    hints.caption = Some("a very long caption ".repeat(500));
    let c = compose(&hints, &long).expect("long");
    assert!(
        c.prompt.chars().count() <= 2 * MAX_TEXT_CHARS + 200,
        "{}",
        c.prompt.len()
    );
    let bad = |c: Choices| compose(&Hints::default(), &c).err();
    assert_eq!(
        bad(Choices {
            genre: Some("polka-metal".into()),
            ..Default::default()
        }),
        Some(ComposeError::UnknownGenre("polka-metal".into()))
    );
    assert_eq!(
        bad(Choices {
            mood: Some("<script>".into()),
            ..Default::default()
        }),
        Some(ComposeError::UnknownMood("<script>".into()))
    );
    assert_eq!(
        bad(Choices {
            bpm: Some(5000),
            ..Default::default()
        }),
        Some(ComposeError::BadBpm(5000))
    );
    assert_eq!(
        bad(Choices {
            instruments: vec!["kazoo".into()],
            ..Default::default()
        }),
        Some(ComposeError::UnknownInstrument("kazoo".into()))
    );
    let many = Choices {
        instruments: vec!["piano".into(); 7],
        ..Default::default()
    };
    assert_eq!(bad(many), Some(ComposeError::TooManyInstruments));
    let ctrl = Choices {
        text: Some("\u{0}\u{7}hi\u{1b}[31m there".into()),
        ..Default::default()
    };
    assert!(compose(&Hints::default(), &ctrl)
        .expect("ctrl")
        .prompt
        .ends_with(", hi[31m there"));
}

#[test]
fn source_words_are_their_json_form() {
    for source in [
        Source::Choice,
        Source::Photo,
        Source::Palette,
        Source::Caption,
        Source::Derived,
        Source::Default,
    ] {
        let json = serde_json::to_value(source).expect("a source serializes");
        assert_eq!(json.as_str(), Some(source.as_str()));
    }
}

fn words(text: &str) -> Choices {
    Choices {
        text: Some(text.into()),
        ..Default::default()
    }
}

fn find<'a>(c: &'a Composed, what: &str) -> &'a Part {
    c.parts.iter().find(|p| p.what == what).expect("part")
}

#[test]
fn a_choice_beats_words_and_words_beat_the_photo() {
    // The photo says happy reggae; the words say lonely saxophone.
    let c = compose(&photo_hints(), &words("lonely saxophone")).expect("words");
    assert_eq!(find(&c, "mood").value, "melancholic");
    assert_eq!(source(&c, "mood"), Source::Words);
    assert_eq!(find(&c, "mood").because.as_deref(), Some("“lonely”"));
    // No genre word: the saxophone's home genre, from the words, beats the photo's.
    assert_eq!(find(&c, "genre").value, "jazz");
    assert_eq!(source(&c, "genre"), Source::Words);
    assert!(find(&c, "instruments").value.starts_with("saxophone"));
    assert_eq!(source(&c, "instruments"), Source::Words);
    // A choice beats the words.
    let mut chosen = words("lonely saxophone");
    chosen.mood = Some("happy".into());
    let c = compose(&photo_hints(), &chosen).expect("chosen");
    assert_eq!(find(&c, "mood").value, "happy");
    assert_eq!(source(&c, "mood"), Source::Choice);
    // Words that say nothing about the mood leave it to the photo.
    let c = compose(&photo_hints(), &words("a walk by the sea")).expect("plain");
    assert_eq!(source(&c, "mood"), Source::Photo);
    assert_eq!(source(&c, "genre"), Source::Photo);
}

#[test]
fn the_text_models_reading_counts_as_words_below_keywords() {
    let mut hints = photo_hints();
    hints.words = Sense {
        moods: vec![("mysterious".into(), 0.41)],
        genres: vec![("cinematic".into(), 0.38)],
        ..Default::default()
    };
    let c = compose(&hints, &words("a haunted house at night")).expect("sense");
    assert_eq!(find(&c, "genre").value, "cinematic");
    assert_eq!(source(&c, "genre"), Source::Words);
    assert_eq!(
        find(&c, "genre").because.as_deref(),
        Some("the meaning of the words (0.38)")
    );
    // "haunted" is a keyword: it wins over the model in a short line.
    assert_eq!(find(&c, "mood").because.as_deref(), Some("“haunted”"));
    // A keyword the model disagrees with still wins in a line.
    let c = compose(&hints, &words("happy")).expect("keyword");
    assert_eq!(find(&c, "mood").value, "happy");
}

#[test]
fn negations_rule_out_and_never_reach_the_prompt() {
    let c = compose(
        &Hints::default(),
        &words("jazz trio in a smoky club, no drums"),
    )
    .expect("jazz");
    assert_eq!(find(&c, "genre").value, "jazz");
    let inst = &find(&c, "instruments").value;
    assert!(!inst.contains("drums"), "{inst}");
    // "no drums" means no kit of any kind.
    assert_eq!(
        find(&c, "without").value,
        "drums, brushed-drums, drum-machine"
    );
    assert_eq!(find(&c, "without").because.as_deref(), Some("“drums”"));
    assert_eq!(source(&c, "without"), Source::Words);
    assert!(!c.prompt.contains("no drums"), "{}", c.prompt);
    assert!(!c.prompt.contains("drums"), "{}", c.prompt);
    // "not sad" keeps the mood off melancholic even when the photo says so.
    let mut sad = photo_hints();
    sad.moods = vec![("melancholic".into(), 0.9), ("calm".into(), 0.1)];
    let c = compose(&sad, &words("not sad")).expect("not sad");
    assert_eq!(find(&c, "mood").value, "calm");
    assert_eq!(source(&c, "mood"), Source::Photo);
    // Every instrument of the genre ruled out: the prompt names none.
    let c = compose(&Hints::default(), &words("solo piano, no piano")).expect("none left");
    assert!(!c.prompt.contains("with"), "{}", c.prompt);
}

#[test]
fn tempo_from_words_number_then_slow_or_fast() {
    let bpm = |text: &str| compose(&Hints::default(), &words(text)).expect("tempo");
    let c = bpm("lofi, 75 bpm");
    assert_eq!((c.bpm, source(&c, "tempo")), (75, Source::Words));
    assert_eq!(find(&c, "tempo").because.as_deref(), Some("“75 bpm”"));
    assert_eq!(c.prompt.matches("75 bpm").count(), 1, "{}", c.prompt);
    assert_eq!(bpm("rock at 400 bpm").bpm, MAX_BPM);
    let slow = bpm("slow rock");
    let fast = bpm("fast rock");
    assert!(
        slow.bpm < 110 && fast.bpm > 150,
        "{} {}",
        slow.bpm,
        fast.bpm
    );
    // A chosen tempo still wins.
    let mut chosen = words("slow rock, 75 bpm");
    chosen.bpm = Some(140);
    assert_eq!(
        compose(&Hints::default(), &chosen).expect("chosen").bpm,
        140
    );
}

#[test]
fn a_plain_guitar_is_the_genres_kind() {
    let inst = |text: &str| {
        let c = compose(&Hints::default(), &words(text)).expect("guitar");
        find(&c, "instruments").value.clone()
    };
    assert!(inst("rock with guitar").starts_with("electric-guitar"));
    assert!(inst("folk with guitar").starts_with("acoustic-guitar"));
}

#[test]
fn a_long_text_puts_one_short_sentence_in_the_prompt() {
    let story = "We packed the car before dawn. The road wound up into the mountains for \
                 hours. At the top the whole valley opened below us. ";
    let text = format!("{story}{}", "Then we drove home. ".repeat(200));
    let long = Choices {
        text: Some(text),
        long_text: true,
        ..Default::default()
    };
    // Without a text model: the first sentence.
    let c = compose(&Hints::default(), &long).expect("lead");
    assert!(
        c.prompt.ends_with(", We packed the car before dawn"),
        "{}",
        c.prompt
    );
    assert!(find(&c, "text").because.as_deref() == Some("the first sentence (no text model)"));
    // With one: the sentence it found closest to the whole, and what it picked.
    let hints = Hints {
        words: Sense {
            picked: vec![
                (
                    "The road wound up into the mountains for hours.".into(),
                    0.71,
                ),
                ("At the top the whole valley opened below us.".into(), 0.64),
            ],
            sentences: 203,
            moods: vec![("adventurous".into(), 0.45)],
            ..Default::default()
        },
        ..Default::default()
    };
    let c = compose(&hints, &long).expect("picked");
    assert!(
        c.prompt
            .ends_with(", The road wound up into the mountains for hours"),
        "{}",
        c.prompt
    );
    assert_eq!(find(&c, "mood").value, "adventurous");
    assert!(find(&c, "picked")
        .because
        .as_deref()
        .is_some_and(|b| b.contains("203")));
    assert!(c.prompt.chars().count() < 400, "{}", c.prompt);
}
