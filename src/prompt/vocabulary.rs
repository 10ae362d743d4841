//! The curated words Snapsong thinks in: moods, genres and instruments, each with the text
//! CLIP scores a photo against and the phrase MusicGen gets in its prompt.

pub struct Mood {
    pub id: &'static str,
    /// What CLIP compares the photo with.
    pub clip: &'static str,
    /// What goes into the MusicGen prompt.
    pub phrase: &'static str,
    /// 0 (still) – 1 (intense): pushes the automatic tempo.
    pub energy: f32,
    /// The genre that suits this mood when neither a choice nor the photo names one.
    pub genre: &'static str,
}

pub struct Genre {
    pub id: &'static str,
    pub clip: &'static str,
    pub phrase: &'static str,
    /// Typical tempo range (BPM).
    pub bpm: (u32, u32),
    /// Instrument ids that define the genre's sound.
    pub instruments: &'static [&'static str],
    /// The mood it suits when nothing else names one.
    pub mood: &'static str,
}

pub struct Instrument {
    pub id: &'static str,
    pub phrase: &'static str,
}

pub const MOODS: &[Mood] = &[
    Mood {
        id: "happy",
        clip: "a happy, joyful photo",
        phrase: "happy and joyful",
        energy: 0.7,
        genre: "pop",
    },
    Mood {
        id: "calm",
        clip: "a calm, peaceful photo",
        phrase: "calm and peaceful",
        energy: 0.15,
        genre: "ambient",
    },
    Mood {
        id: "melancholic",
        clip: "a sad, melancholic photo",
        phrase: "melancholic and bittersweet",
        energy: 0.25,
        genre: "piano",
    },
    Mood {
        id: "energetic",
        clip: "an energetic, exciting photo",
        phrase: "energetic and driving",
        energy: 0.95,
        genre: "edm",
    },
    Mood {
        id: "romantic",
        clip: "a romantic, tender photo",
        phrase: "romantic and tender",
        energy: 0.35,
        genre: "rnb",
    },
    Mood {
        id: "mysterious",
        clip: "a dark, mysterious photo",
        phrase: "dark and mysterious",
        energy: 0.4,
        genre: "cinematic",
    },
    Mood {
        id: "epic",
        clip: "an epic, majestic photo",
        phrase: "epic and majestic",
        energy: 0.8,
        genre: "orchestral",
    },
    Mood {
        id: "nostalgic",
        clip: "a nostalgic, vintage photo",
        phrase: "nostalgic and warm",
        energy: 0.35,
        genre: "lofi",
    },
    Mood {
        id: "dreamy",
        clip: "a dreamy, hazy photo",
        phrase: "dreamy and floating",
        energy: 0.25,
        genre: "ambient",
    },
    Mood {
        id: "playful",
        clip: "a playful, funny photo",
        phrase: "playful and bouncy",
        energy: 0.65,
        genre: "funk",
    },
    Mood {
        id: "tense",
        clip: "a tense, dramatic photo",
        phrase: "tense and dramatic",
        energy: 0.75,
        genre: "cinematic",
    },
    Mood {
        id: "hopeful",
        clip: "a hopeful, uplifting photo",
        phrase: "hopeful and uplifting",
        energy: 0.55,
        genre: "folk",
    },
    Mood {
        id: "cozy",
        clip: "a cozy, warm indoor photo",
        phrase: "cozy and intimate",
        energy: 0.3,
        genre: "jazz",
    },
    Mood {
        id: "adventurous",
        clip: "an adventurous outdoor photo",
        phrase: "adventurous and bold",
        energy: 0.7,
        genre: "rock",
    },
];

pub const GENRES: &[Genre] = &[
    Genre {
        id: "pop",
        clip: "a photo that sounds like pop music",
        phrase: "catchy pop",
        bpm: (100, 128),
        instruments: &["synth", "drums", "bass"],
        mood: "happy",
    },
    Genre {
        id: "rock",
        clip: "a photo that sounds like rock music",
        phrase: "rock",
        bpm: (110, 150),
        instruments: &["electric-guitar", "drums", "bass"],
        mood: "energetic",
    },
    Genre {
        id: "edm",
        clip: "a photo of a party with electronic dance music",
        phrase: "electronic dance",
        bpm: (120, 132),
        instruments: &["synth", "drum-machine", "bass"],
        mood: "energetic",
    },
    Genre {
        id: "hiphop",
        clip: "a photo of a city street with hip hop music",
        phrase: "hip hop",
        bpm: (80, 100),
        instruments: &["drum-machine", "bass", "samples"],
        mood: "energetic",
    },
    Genre {
        id: "lofi",
        clip: "a cozy photo that sounds like lofi beats",
        phrase: "lofi hip hop",
        bpm: (70, 90),
        instruments: &["piano", "drum-machine", "vinyl"],
        mood: "calm",
    },
    Genre {
        id: "jazz",
        clip: "a photo that sounds like jazz",
        phrase: "smooth jazz",
        bpm: (80, 140),
        instruments: &["piano", "upright-bass", "brushed-drums", "saxophone"],
        mood: "cozy",
    },
    Genre {
        id: "classical",
        clip: "a photo that sounds like classical music",
        phrase: "classical",
        bpm: (60, 120),
        instruments: &["strings", "piano"],
        mood: "calm",
    },
    Genre {
        id: "orchestral",
        clip: "an epic landscape that sounds like an orchestral film score",
        phrase: "epic orchestral",
        bpm: (70, 110),
        instruments: &["strings", "brass", "timpani"],
        mood: "epic",
    },
    Genre {
        id: "cinematic",
        clip: "a dramatic photo like a movie scene",
        phrase: "cinematic",
        bpm: (60, 100),
        instruments: &["strings", "synth-pads", "percussion"],
        mood: "tense",
    },
    Genre {
        id: "ambient",
        clip: "a quiet photo that sounds like ambient music",
        phrase: "ambient",
        bpm: (60, 80),
        instruments: &["synth-pads", "piano"],
        mood: "calm",
    },
    Genre {
        id: "folk",
        clip: "a countryside photo that sounds like folk music",
        phrase: "acoustic folk",
        bpm: (80, 120),
        instruments: &["acoustic-guitar", "violin", "harmonica"],
        mood: "hopeful",
    },
    Genre {
        id: "country",
        clip: "a photo of the countryside with country music",
        phrase: "country",
        bpm: (90, 130),
        instruments: &["acoustic-guitar", "banjo", "fiddle"],
        mood: "happy",
    },
    Genre {
        id: "rnb",
        clip: "a romantic evening photo with r&b music",
        phrase: "smooth r&b",
        bpm: (65, 95),
        instruments: &["electric-piano", "bass", "drums"],
        mood: "romantic",
    },
    Genre {
        id: "funk",
        clip: "a colourful photo that sounds like funk",
        phrase: "funk",
        bpm: (95, 120),
        instruments: &["electric-guitar", "bass", "drums", "brass"],
        mood: "playful",
    },
    Genre {
        id: "reggae",
        clip: "a tropical beach photo with reggae music",
        phrase: "reggae",
        bpm: (70, 90),
        instruments: &["organ", "bass", "electric-guitar"],
        mood: "happy",
    },
    Genre {
        id: "synthwave",
        clip: "a neon night city photo with synthwave music",
        phrase: "80s synthwave",
        bpm: (90, 118),
        instruments: &["synth", "drum-machine", "bass"],
        mood: "nostalgic",
    },
    Genre {
        id: "piano",
        clip: "a quiet, emotional photo with solo piano music",
        phrase: "solo piano",
        bpm: (60, 90),
        instruments: &["piano"],
        mood: "melancholic",
    },
    Genre {
        id: "latin",
        clip: "a sunny festive photo with latin music",
        phrase: "latin",
        bpm: (90, 130),
        instruments: &["acoustic-guitar", "percussion", "brass"],
        mood: "happy",
    },
];

pub const INSTRUMENTS: &[Instrument] = &[
    Instrument {
        id: "piano",
        phrase: "piano",
    },
    Instrument {
        id: "electric-piano",
        phrase: "electric piano",
    },
    Instrument {
        id: "acoustic-guitar",
        phrase: "acoustic guitar",
    },
    Instrument {
        id: "electric-guitar",
        phrase: "electric guitar",
    },
    Instrument {
        id: "bass",
        phrase: "bass",
    },
    Instrument {
        id: "upright-bass",
        phrase: "upright bass",
    },
    Instrument {
        id: "drums",
        phrase: "drums",
    },
    Instrument {
        id: "brushed-drums",
        phrase: "brushed drums",
    },
    Instrument {
        id: "drum-machine",
        phrase: "drum machine",
    },
    Instrument {
        id: "percussion",
        phrase: "percussion",
    },
    Instrument {
        id: "strings",
        phrase: "strings",
    },
    Instrument {
        id: "violin",
        phrase: "violin",
    },
    Instrument {
        id: "fiddle",
        phrase: "fiddle",
    },
    Instrument {
        id: "cello",
        phrase: "cello",
    },
    Instrument {
        id: "brass",
        phrase: "brass section",
    },
    Instrument {
        id: "saxophone",
        phrase: "saxophone",
    },
    Instrument {
        id: "flute",
        phrase: "flute",
    },
    Instrument {
        id: "harp",
        phrase: "harp",
    },
    Instrument {
        id: "synth",
        phrase: "synthesizers",
    },
    Instrument {
        id: "synth-pads",
        phrase: "warm synth pads",
    },
    Instrument {
        id: "organ",
        phrase: "organ",
    },
    Instrument {
        id: "banjo",
        phrase: "banjo",
    },
    Instrument {
        id: "harmonica",
        phrase: "harmonica",
    },
    Instrument {
        id: "timpani",
        phrase: "timpani",
    },
    Instrument {
        id: "samples",
        phrase: "chopped samples",
    },
    Instrument {
        id: "vinyl",
        phrase: "vinyl crackle",
    },
];

fn norm(s: &str) -> String {
    s.trim().to_lowercase().replace([' ', '_'], "-")
}

pub fn mood(id: &str) -> Option<&'static Mood> {
    let id = norm(id);
    MOODS.iter().find(|m| m.id == id)
}

pub fn genre(id: &str) -> Option<&'static Genre> {
    let id = norm(id);
    let id = match id.as_str() {
        "hip-hop" => "hiphop".to_string(),
        "r&b" | "r-and-b" => "rnb".to_string(),
        "lo-fi" => "lofi".to_string(),
        _ => id,
    };
    GENRES.iter().find(|g| g.id == id)
}

pub fn instrument(id: &str) -> Option<&'static Instrument> {
    let id = norm(id);
    INSTRUMENTS.iter().find(|i| i.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_big_enough_and_consistent() {
        assert!(MOODS.len() >= 12 && GENRES.len() >= 15 && INSTRUMENTS.len() >= 20);
        for m in MOODS {
            assert!(
                genre(m.genre).is_some(),
                "mood {} names genre {}",
                m.id,
                m.genre
            );
            assert!((0.0..=1.0).contains(&m.energy));
        }
        for g in GENRES {
            assert!(g.bpm.0 < g.bpm.1);
            assert!(
                mood(g.mood).is_some(),
                "genre {} names mood {}",
                g.id,
                g.mood
            );
            for i in g.instruments {
                assert!(
                    instrument(i).is_some(),
                    "genre {} names instrument {i}",
                    g.id
                );
            }
        }
        assert_eq!(genre("Hip Hop").map(|g| g.id), Some("hiphop"));
        assert_eq!(
            instrument("Electric_Guitar").map(|i| i.id),
            Some("electric-guitar")
        );
        assert!(mood("grumpy").is_none());
    }
}
