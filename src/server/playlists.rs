//! Playlists in the database: ordered song lists that only their owner may change.

use anyhow::Result;
use sqlx::FromRow;

use super::db::{now_ms, Db, SongRow};

#[derive(Debug, Clone, FromRow)]
pub struct PlaylistRow {
    pub id: String,
    pub slug: String,
    pub owner_hash: String,
    pub title: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Why a playlist edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no such playlist")]
    NoPlaylist,
    #[error("no such song")]
    NoSong,
    #[error("only the playlist's owner can change it")]
    NotOwner,
    #[error("the new order must list exactly the playlist's songs")]
    BadOrder,
    /// The database failed: logged, not shown.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for EditError {
    fn from(e: sqlx::Error) -> Self {
        EditError::Internal(e.into())
    }
}

impl Db {
    pub async fn create_playlist(
        &self,
        id: &str,
        slug: &str,
        owner: &str,
        title: &str,
    ) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO playlists (id, slug, owner_hash, title, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(slug)
        .bind(owner)
        .bind(title)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn playlist_by_slug(&self, slug: &str) -> Result<Option<PlaylistRow>> {
        Ok(sqlx::query_as("SELECT * FROM playlists WHERE slug = $1")
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn playlists_of(&self, owner: &str) -> Result<Vec<PlaylistRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM playlists WHERE owner_hash = $1 ORDER BY updated_ms DESC LIMIT 200",
        )
        .bind(owner)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn playlist_songs(&self, playlist_id: &str) -> Result<Vec<SongRow>> {
        Ok(sqlx::query_as(
            "SELECT s.* FROM playlist_songs p JOIN songs s ON s.id = p.song_id \
             WHERE p.playlist_id = $1 ORDER BY p.position, s.created_ms",
        )
        .bind(playlist_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The playlist, if it exists and `owner` owns it.
    async fn owned(&self, slug: &str, owner: &str) -> Result<PlaylistRow, EditError> {
        match self.playlist_by_slug(slug).await? {
            None => Err(EditError::NoPlaylist),
            Some(p) if p.owner_hash != owner => Err(EditError::NotOwner),
            Some(p) => Ok(p),
        }
    }

    async fn song(&self, slug: &str) -> Result<SongRow, EditError> {
        self.song_by_slug(slug).await?.ok_or(EditError::NoSong)
    }

    async fn touch(&self, playlist_id: &str) -> Result<(), EditError> {
        sqlx::query("UPDATE playlists SET updated_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(playlist_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn rename_playlist(
        &self,
        slug: &str,
        owner: &str,
        title: &str,
    ) -> Result<(), EditError> {
        let p = self.owned(slug, owner).await?;
        sqlx::query("UPDATE playlists SET title = $1, updated_ms = $2 WHERE id = $3")
            .bind(title)
            .bind(now_ms())
            .bind(&p.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Append a song (by its slug) at the end; adding it twice is a no-op.
    pub async fn add_to_playlist(
        &self,
        slug: &str,
        owner: &str,
        song_slug: &str,
    ) -> Result<(), EditError> {
        let p = self.owned(slug, owner).await?;
        let song = self.song(song_slug).await?;
        let mut tx = self.pool.begin().await?;
        let (next,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(position), -1) + 1 FROM playlist_songs WHERE playlist_id = $1",
        )
        .bind(&p.id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO playlist_songs (playlist_id, song_id, position) VALUES ($1, $2, $3) \
             ON CONFLICT (playlist_id, song_id) DO NOTHING",
        )
        .bind(&p.id)
        .bind(&song.id)
        .bind(next)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.touch(&p.id).await?;
        Ok(())
    }

    pub async fn remove_from_playlist(
        &self,
        slug: &str,
        owner: &str,
        song_slug: &str,
    ) -> Result<(), EditError> {
        let p = self.owned(slug, owner).await?;
        let song = self.song(song_slug).await?;
        sqlx::query("DELETE FROM playlist_songs WHERE playlist_id = $1 AND song_id = $2")
            .bind(&p.id)
            .bind(&song.id)
            .execute(&self.pool)
            .await?;
        self.touch(&p.id).await?;
        Ok(())
    }

    /// Set the order: `song_slugs` must be a permutation of the playlist's songs.
    pub async fn reorder_playlist(
        &self,
        slug: &str,
        owner: &str,
        song_slugs: &[String],
    ) -> Result<(), EditError> {
        let p = self.owned(slug, owner).await?;
        let songs = self.playlist_songs(&p.id).await?;
        let mut have: Vec<&str> = songs.iter().map(|s| s.slug.as_str()).collect();
        let mut want: Vec<&str> = song_slugs.iter().map(String::as_str).collect();
        have.sort_unstable();
        want.sort_unstable();
        if have != want {
            return Err(EditError::BadOrder);
        }
        let mut tx = self.pool.begin().await?;
        for (position, song_slug) in song_slugs.iter().enumerate() {
            let Some(song) = songs.iter().find(|s| &s.slug == song_slug) else {
                return Err(EditError::BadOrder);
            };
            sqlx::query(
                "UPDATE playlist_songs SET position = $1 WHERE playlist_id = $2 AND song_id = $3",
            )
            .bind(position as i64)
            .bind(&p.id)
            .bind(&song.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.touch(&p.id).await?;
        Ok(())
    }
}
