//! What a song's options mean before any model runs: the composer's choices, and the
//! title a list shows. Used when a song is created (`songs`) and when it is made (`worker`).

use crate::api::types::SongOptions;
use crate::prompt::Choices;

/// The person's choices as the composer takes them.
pub fn choices(o: &SongOptions) -> Choices {
    Choices {
        genre: o.genre.clone(),
        mood: o.mood.clone(),
        bpm: o.bpm,
        instruments: o.instruments.clone(),
        text: o.text.clone(),
        long_text: o.long_text,
    }
}

/// A title people can read in a list: their words, else the caption, else the style.
pub fn title_for(options: &SongOptions, caption: Option<&str>, prompt: &str) -> String {
    let source = options
        .text
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .or(caption.filter(|c| !c.trim().is_empty()))
        .unwrap_or(prompt);
    let words: Vec<&str> = source.split_whitespace().collect();
    let mut title = String::new();
    for w in words {
        if title.chars().count() + w.chars().count() + 1 > 60 {
            break;
        }
        if !title.is_empty() {
            title.push(' ');
        }
        title.push_str(w);
    }
    let title = title.trim_end_matches([',', '.', ';', ':']).to_string();
    let mut chars = title.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Untitled song".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_prefer_words_then_caption() {
        let mut o = SongOptions::default();
        assert_eq!(
            title_for(&o, Some("a dog on a beach"), "lofi"),
            "A dog on a beach"
        );
        o.text = Some("  rainy   tuesday ".into());
        assert_eq!(title_for(&o, Some("a dog"), "lofi"), "Rainy tuesday");
        let long = "word ".repeat(40);
        assert!(
            title_for(&SongOptions::default(), None, &long)
                .chars()
                .count()
                <= 60
        );
        assert_eq!(
            title_for(&SongOptions::default(), None, ""),
            "Untitled song"
        );
    }
}
