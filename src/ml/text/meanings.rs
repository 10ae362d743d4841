//! What each mood and genre means, in plain sentences the text model compares the
//! person's words with. Several per entry, because one abstract line ("sad music") is
//! far from how people describe a scene ("missing someone"). Written from what the words
//! mean, not from any test phrase.

pub const MOOD_MEANINGS: &[(&str, &[&str])] = &[
    (
        "happy",
        &[
            "happy, joyful, cheerful music",
            "a bright sunny day full of smiles and laughter",
            "celebrating with friends and feeling great",
        ],
    ),
    (
        "calm",
        &[
            "calm, peaceful, relaxing music",
            "a quiet still moment, slow breathing and serenity",
            "resting in silence by still water",
        ],
    ),
    (
        "melancholic",
        &[
            "sad, melancholic, bittersweet music",
            "loneliness, loss and missing someone",
            "grief and a heavy heart",
        ],
    ),
    (
        "energetic",
        &[
            "energetic, driving, intense music",
            "adrenaline, pushing hard and moving fast",
            "a crowd jumping, loud and full of energy",
        ],
    ),
    (
        "romantic",
        &[
            "romantic, tender love music",
            "two people in love dancing slowly together",
            "an intimate evening with a partner",
        ],
    ),
    (
        "mysterious",
        &[
            "dark, mysterious, eerie music",
            "shadows, secrets and the unknown at night",
            "a creepy place where something is hidden",
        ],
    ),
    (
        "epic",
        &[
            "epic, majestic, heroic music",
            "a triumphant victory, a grand heroic moment",
            "vast landscapes and armies, larger than life",
        ],
    ),
    (
        "nostalgic",
        &[
            "nostalgic, warm, vintage music",
            "old memories of childhood and the past",
            "remembering how things used to be long ago",
        ],
    ),
    (
        "dreamy",
        &[
            "dreamy, floating, ethereal music",
            "drifting through clouds in a hazy dream",
            "stars, outer space and weightless wonder",
        ],
    ),
    (
        "playful",
        &[
            "playful, bouncy, funny music",
            "goofy antics, jokes and mischief",
            "a comic scene that makes you laugh",
        ],
    ),
    (
        "tense",
        &[
            "tense, dramatic, suspenseful music",
            "danger and pressure, something bad is about to happen",
            "fear and a race against time",
        ],
    ),
    (
        "hopeful",
        &[
            "hopeful, uplifting, inspiring music",
            "a new beginning, things getting better",
            "light after dark times, optimism",
        ],
    ),
    (
        "cozy",
        &[
            "cozy, intimate, warm music",
            "comfort at home with a blanket and a hot drink",
            "a snug evening indoors while it is cold outside",
        ],
    ),
    (
        "adventurous",
        &[
            "adventurous, bold music",
            "exploring wild places on a journey into the unknown",
            "setting off to travel and discover",
        ],
    ),
];

/// Genres by their style and where they are heard, with few instrument names: the
/// words' instruments are read as keywords, and instrument names here would pull any
/// phrase that mentions drums or brass towards whichever genre lists them.
pub const GENRE_MEANINGS: &[(&str, &[&str])] = &[
    (
        "pop",
        &["a catchy pop song", "a radio pop hit with a big chorus"],
    ),
    (
        "rock",
        &["loud rock music", "a rock band playing hard on stage"],
    ),
    (
        "edm",
        &[
            "electronic dance music",
            "a DJ playing techno in a club all night",
        ],
    ),
    ("hiphop", &["a hip hop beat with rap", "urban street beats"]),
    (
        "lofi",
        &["lofi hip hop beats to relax to", "mellow lo-fi music"],
    ),
    (
        "jazz",
        &[
            "jazz music",
            "a jazz club late at night, swing and improvisation",
        ],
    ),
    (
        "classical",
        &[
            "classical music",
            "a chamber music recital in a concert hall",
        ],
    ),
    (
        "orchestral",
        &[
            "an epic orchestral film score",
            "a full symphony orchestra, grand and heroic",
        ],
    ),
    (
        "cinematic",
        &[
            "a cinematic movie soundtrack",
            "dramatic music for a scene in a film",
        ],
    ),
    (
        "ambient",
        &[
            "an ambient soundscape",
            "slow atmospheric background music, drones and textures",
        ],
    ),
    (
        "folk",
        &[
            "an acoustic folk song",
            "simple songs about the countryside and home",
        ],
    ),
    (
        "country",
        &["country music", "a ranch in the American west with cowboys"],
    ),
    (
        "rnb",
        &["smooth r&b and soul music", "a sensual slow groove"],
    ),
    (
        "funk",
        &["a funk groove", "a disco dance floor with a funky rhythm"],
    ),
    (
        "reggae",
        &["reggae music", "a laid-back island groove in the Caribbean"],
    ),
    (
        "synthwave",
        &["80s synthwave", "neon lights and retro arcade nights"],
    ),
    (
        "piano",
        &[
            "a solo piano piece",
            "a single piano playing softly and emotionally",
        ],
    ),
    (
        "latin",
        &["latin music", "salsa and samba rhythms at a fiesta"],
    ),
];
