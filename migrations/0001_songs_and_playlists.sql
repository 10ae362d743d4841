-- One schema for SQLite (default) and Postgres: TEXT, BIGINT and DOUBLE PRECISION only,
-- times as Unix milliseconds, flags as 0/1.

CREATE TABLE songs (
    id TEXT PRIMARY KEY,                 -- 128-bit random hex: the API id and media folder
    slug TEXT NOT NULL UNIQUE,           -- the share link
    owner_hash TEXT NOT NULL,            -- sha256 of the owner's cookie token
    status TEXT NOT NULL,                -- queued | running | ready | failed
    stage TEXT NOT NULL,
    step BIGINT NOT NULL DEFAULT 0,
    total BIGINT NOT NULL DEFAULT 0,
    progress DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    options TEXT NOT NULL,               -- the person's choices (JSON)
    seed BIGINT NOT NULL,
    has_photo BIGINT NOT NULL,
    title TEXT NOT NULL,
    caption TEXT,
    prompt TEXT,
    parts TEXT,                          -- "how it was made" (JSON)
    palette TEXT,                        -- hex colours (JSON)
    noise BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    created_ms BIGINT NOT NULL,
    started_ms BIGINT,
    finished_ms BIGINT,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX songs_by_status ON songs (status, created_ms);
CREATE INDEX songs_by_owner ON songs (owner_hash, created_ms);

CREATE TABLE playlists (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    owner_hash TEXT NOT NULL,
    title TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX playlists_by_owner ON playlists (owner_hash, updated_ms);

CREATE TABLE playlist_songs (
    playlist_id TEXT NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    song_id TEXT NOT NULL REFERENCES songs (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    PRIMARY KEY (playlist_id, song_id)
);
