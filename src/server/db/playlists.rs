//! Playlists in the database: ordered song lists that only their owner may change. Edits
//! refuse with an `AppError` (no such playlist or song, not the owner, a wrong order).

use std::collections::HashMap;

use anyhow::Result;
use sqlx::{AnyConnection, FromRow};

use super::songs::SONGS_OF;
use super::{now_ms, Db, SongRow};
use crate::server::error::AppError;

#[derive(Debug, Clone, FromRow)]
pub struct PlaylistRow {
    pub id: String,
    pub slug: String,
    pub owner_hash: String,
    pub title: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// What `library_of` reads.
pub struct Library {
    pub songs: Vec<SongRow>,
    pub playlists: Vec<(PlaylistRow, Vec<SongRow>)>,
}

/// A song in one of an owner's playlists.
#[derive(FromRow)]
struct Entry {
    playlist_id: String,
    #[sqlx(flatten)]
    song: SongRow,
}

const NOT_A_PERMUTATION: &str = "the new order must list exactly the playlist's songs";

const PLAYLIST_BY_SLUG: &str = "SELECT * FROM playlists WHERE slug = $1";
/// A playlist's songs (by its id) in their order.
const PLAYLIST_SONGS: &str = "SELECT s.* FROM playlist_songs p JOIN songs s ON s.id = p.song_id \
     WHERE p.playlist_id = $1 ORDER BY p.position, s.created_ms";

impl Db {
    pub async fn create_playlist(
        &self,
        id: &str,
        slug: &str,
        owner: &str,
        title: &str,
    ) -> Result<()> {
        let now = now_ms();
        self.execute(
            sqlx::query(
                "INSERT INTO playlists (id, slug, owner_hash, title, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(slug)
            .bind(owner)
            .bind(title)
            .bind(now)
            .bind(now),
        )
        .await?;
        Ok(())
    }

    pub async fn playlist_by_slug(&self, slug: &str) -> Result<Option<PlaylistRow>> {
        self.fetch_optional(sqlx::query_as(PLAYLIST_BY_SLUG).bind(slug))
            .await
    }

    /// A playlist and its songs in order, read on one connection: a page view then waits
    /// for the pool once, not twice (under load that wait is most of a page's time, and
    /// the playlist page had the longest tail).
    pub async fn playlist_with_songs(
        &self,
        slug: &str,
    ) -> Result<Option<(PlaylistRow, Vec<SongRow>)>> {
        self.with(async |conn| {
            let row: Option<PlaylistRow> = sqlx::query_as(PLAYLIST_BY_SLUG)
                .bind(slug)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let songs = sqlx::query_as(PLAYLIST_SONGS)
                .bind(&row.id)
                .fetch_all(&mut *conn)
                .await?;
            Ok(Some((row, songs)))
        })
        .await
    }

    /// An owner's songs, newest first, and playlists, last changed first, each with its
    /// songs in order: three queries on one connection, however many playlists there are.
    pub async fn library_of(&self, owner: &str) -> Result<Library> {
        self.with(async |conn| {
            let songs = sqlx::query_as(SONGS_OF)
                .bind(owner)
                .fetch_all(&mut *conn)
                .await?;
            let rows: Vec<PlaylistRow> = sqlx::query_as(
                "SELECT * FROM playlists WHERE owner_hash = $1 \
                 ORDER BY updated_ms DESC LIMIT 200",
            )
            .bind(owner)
            .fetch_all(&mut *conn)
            .await?;
            let entries: Vec<Entry> = sqlx::query_as(
                "SELECT p.playlist_id, s.* FROM playlist_songs p \
                 JOIN songs s ON s.id = p.song_id \
                 JOIN playlists l ON l.id = p.playlist_id \
                 WHERE l.owner_hash = $1 ORDER BY p.position, s.created_ms",
            )
            .bind(owner)
            .fetch_all(&mut *conn)
            .await?;
            let mut playlists: Vec<(PlaylistRow, Vec<SongRow>)> =
                rows.into_iter().map(|p| (p, Vec::new())).collect();
            let at: HashMap<String, usize> = playlists
                .iter()
                .enumerate()
                .map(|(i, (p, _))| (p.id.clone(), i))
                .collect();
            for e in entries {
                // A playlist past the 200 shown is not listed, nor are its songs.
                if let Some(&i) = at.get(&e.playlist_id) {
                    playlists[i].1.push(e.song);
                }
            }
            Ok(Library { songs, playlists })
        })
        .await
    }

    pub async fn playlist_songs(&self, playlist_id: &str) -> Result<Vec<SongRow>> {
        self.fetch_all(sqlx::query_as(PLAYLIST_SONGS).bind(playlist_id))
            .await
    }

    /// The playlist, if it exists and `owner` owns it.
    async fn owned(&self, slug: &str, owner: &str) -> Result<PlaylistRow, AppError> {
        match self.playlist_by_slug(slug).await? {
            None => Err(AppError::not_found("playlist")),
            Some(p) if p.owner_hash != owner => Err(AppError::forbidden(
                "only the playlist's owner can change it",
            )),
            Some(p) => Ok(p),
        }
    }

    async fn song(&self, slug: &str) -> Result<SongRow, AppError> {
        self.song_by_slug(slug)
            .await?
            .ok_or_else(|| AppError::not_found("song"))
    }

    pub async fn rename_playlist(
        &self,
        slug: &str,
        owner: &str,
        title: &str,
    ) -> Result<(), AppError> {
        let p = self.owned(slug, owner).await?;
        self.execute(
            sqlx::query("UPDATE playlists SET title = $1, updated_ms = $2 WHERE id = $3")
                .bind(title)
                .bind(now_ms())
                .bind(&p.id),
        )
        .await?;
        Ok(())
    }

    /// Append a song (by its slug) at the end; adding it twice is a no-op.
    pub async fn add_to_playlist(
        &self,
        slug: &str,
        owner: &str,
        song_slug: &str,
    ) -> Result<(), AppError> {
        let p = self.owned(slug, owner).await?;
        let song = self.song(song_slug).await?;
        self.write(async |tx| {
            let (next,): (i64,) = sqlx::query_as(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM playlist_songs \
                 WHERE playlist_id = $1",
            )
            .bind(&p.id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO playlist_songs (playlist_id, song_id, position) \
                 VALUES ($1, $2, $3) ON CONFLICT (playlist_id, song_id) DO NOTHING",
            )
            .bind(&p.id)
            .bind(&song.id)
            .bind(next)
            .execute(&mut *tx)
            .await?;
            touch(tx, &p.id).await
        })
        .await?;
        Ok(())
    }

    pub async fn remove_from_playlist(
        &self,
        slug: &str,
        owner: &str,
        song_slug: &str,
    ) -> Result<(), AppError> {
        let p = self.owned(slug, owner).await?;
        let song = self.song(song_slug).await?;
        self.write(async |tx| {
            sqlx::query("DELETE FROM playlist_songs WHERE playlist_id = $1 AND song_id = $2")
                .bind(&p.id)
                .bind(&song.id)
                .execute(&mut *tx)
                .await?;
            touch(tx, &p.id).await
        })
        .await?;
        Ok(())
    }

    /// Set the order: `song_slugs` must be a permutation of the playlist's songs.
    pub async fn reorder_playlist(
        &self,
        slug: &str,
        owner: &str,
        song_slugs: &[String],
    ) -> Result<(), AppError> {
        let p = self.owned(slug, owner).await?;
        let songs = self.playlist_songs(&p.id).await?;
        let mut have: Vec<&str> = songs.iter().map(|s| s.slug.as_str()).collect();
        let mut want: Vec<&str> = song_slugs.iter().map(String::as_str).collect();
        have.sort_unstable();
        want.sort_unstable();
        if have != want {
            return Err(AppError::bad_request(NOT_A_PERMUTATION));
        }
        let mut ids = Vec::with_capacity(song_slugs.len());
        for song_slug in song_slugs {
            let Some(song) = songs.iter().find(|s| &s.slug == song_slug) else {
                return Err(AppError::bad_request(NOT_A_PERMUTATION));
            };
            ids.push(&song.id);
        }
        self.write(async |tx| {
            for (position, id) in ids.iter().enumerate() {
                sqlx::query(
                    "UPDATE playlist_songs SET position = $1 \
                     WHERE playlist_id = $2 AND song_id = $3",
                )
                .bind(position as i64)
                .bind(&p.id)
                .bind(*id)
                .execute(&mut *tx)
                .await?;
            }
            touch(tx, &p.id).await
        })
        .await?;
        Ok(())
    }
}

/// Mark a playlist changed, in the transaction that changes it.
async fn touch(tx: &mut AnyConnection, playlist_id: &str) -> Result<()> {
    sqlx::query("UPDATE playlists SET updated_ms = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(playlist_id)
        .execute(tx)
        .await?;
    Ok(())
}
