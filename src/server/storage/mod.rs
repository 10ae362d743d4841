//! Media, in a local folder or an S3 bucket (`store`): `songs/{id}/` holds photo.jpg
//! (re-encoded, no EXIF), cover.jpg (square), share.jpg (1200×630), song.wav, song.mp3 and
//! codes.json (the audio codes, for extensions). Every object is written whole, so a
//! reader (or a crash) never sees half of one; the web nodes serve them (`http::media`).
//! While a song is made, `live/{id}/{n}` holds its audio so far, chunk by chunk, for web
//! nodes in other processes than its worker (removed soon after the song is done).
mod live;
pub mod store;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use image::RgbImage;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::api::types::{is_id, COVER_JPG, PHOTO_JPG, SHARE_JPG, SONG_CODES, SONG_MP3, SONG_WAV};
use crate::ml::mp3::mp3_bytes;
use crate::ml::musicgen::CodesFile;
use crate::photo::{share_thumbnail, square_cover, to_jpeg};
use crate::server::worker::pipeline::SongAudio;
pub use store::Location;

/// The folder (or key prefix) of every song's media.
const SONGS: &str = "songs";

/// What the start-up sweep leaves alone because it is this recent (ms): another node may
/// be writing it now (a photo is kept a moment before its song's row is).
const SWEEP_GRACE_MS: i64 = 10 * 60 * 1000;

/// A photo as it is kept: the upright, EXIF-free re-encode, the square cover and the
/// share card.
pub struct PhotoFiles {
    pub photo: Vec<u8>,
    pub cover: Vec<u8>,
    pub share: Vec<u8>,
}

impl PhotoFiles {
    /// Encode them (CPU work, tens of milliseconds: run it off the async threads).
    pub fn encode(image: &RgbImage) -> Result<Self> {
        Ok(Self {
            photo: to_jpeg(image, 90)?,
            cover: to_jpeg(&square_cover(image, 512), 85)?,
            share: to_jpeg(&share_thumbnail(image), 85)?,
        })
    }
}

/// What `Storage::list` finds: each song's files, name → last change (ms since 1970), by
/// song id.
pub type Listing = BTreeMap<String, BTreeMap<String, i64>>;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    location: Location,
}

impl Storage {
    pub fn open(location: Location) -> Result<Self> {
        Ok(Self {
            store: location.open()?,
            location,
        })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The object store itself (the media routes read from it with ranges).
    pub fn store(&self) -> &dyn ObjectStore {
        &*self.store
    }

    /// The key of a song's file.
    pub fn key(id: &str, file: &str) -> Path {
        Path::from(format!("{SONGS}/{id}/{file}"))
    }

    async fn put(&self, id: &str, file: &str, bytes: impl Into<Bytes>) -> Result<()> {
        store::put(self.store(), &Self::key(id, file), bytes.into()).await
    }

    async fn get(&self, id: &str, file: &str) -> Result<Option<Bytes>> {
        store::get(self.store(), &Self::key(id, file)).await
    }

    /// Keep a photo's files (`PhotoFiles::encode`).
    pub async fn save_photo(&self, id: &str, files: PhotoFiles) -> Result<()> {
        self.put(id, PHOTO_JPG, files.photo).await?;
        self.put(id, COVER_JPG, files.cover).await?;
        self.put(id, SHARE_JPG, files.share).await
    }

    /// Share a photo with a new song ("another like this"): the same three files.
    pub async fn copy_photo(&self, from: &str, to: &str) -> Result<()> {
        for name in [PHOTO_JPG, COVER_JPG, SHARE_JPG] {
            let bytes = self
                .get(from, name)
                .await?
                .with_context(|| format!("the photo of song {from} is missing"))?;
            self.put(to, name, bytes).await?;
        }
        Ok(())
    }

    /// A song's photo, as kept.
    pub async fn read_photo(&self, id: &str) -> Result<Bytes> {
        self.get(id, PHOTO_JPG)
            .await?
            .with_context(|| format!("the photo of song {id} is missing"))
    }

    /// Keep a finished song: its codes, its MP3, then its WAV (the song's files are all
    /// there once the WAV is).
    pub async fn save_song(&self, id: &str, audio: &SongAudio) -> Result<()> {
        let codes = serde_json::to_vec(&CodesFile {
            codes: audio.codes.clone(),
        })?;
        self.put(id, SONG_CODES, codes).await?;
        self.put(id, SONG_MP3, audio.mp3.clone()).await?;
        self.put(id, SONG_WAV, audio.wav.clone()).await
    }

    /// A finished song's audio codes (what an extension continues).
    pub async fn read_codes(&self, id: &str) -> Result<Vec<Vec<u32>>> {
        let bytes = self
            .get(id, SONG_CODES)
            .await?
            .with_context(|| format!("the codes of song {id} are missing"))?;
        let file: CodesFile = serde_json::from_slice(&bytes)
            .with_context(|| format!("the codes of song {id} are damaged"))?;
        Ok(file.codes)
    }

    /// Whether a song's codes are kept (songs made before they were are not extensible).
    pub async fn has_codes(&self, id: &str) -> Result<bool> {
        store::exists(self.store(), &Self::key(id, SONG_CODES)).await
    }

    /// Every song's files: name → last change (ms since 1970), by song id.
    pub async fn list(&self) -> Result<Listing> {
        let mut songs = Listing::new();
        let mut objects = self.store.list(Some(&Path::from(SONGS)));
        while let Some(meta) = objects
            .try_next()
            .await
            .with_context(|| format!("cannot list the media in {}", self.location))?
        {
            let mut parts = meta.location.parts();
            let (Some(_), Some(id), Some(file), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            songs.entry(id.as_ref().to_string()).or_default().insert(
                file.as_ref().to_string(),
                meta.last_modified.timestamp_millis(),
            );
        }
        Ok(songs)
    }

    /// At start: remove the media of songs no row knows (a crash between keeping the photo
    /// and writing the row) and half-written files, once they are `SWEEP_GRACE_MS` old, so
    /// that what another node is writing now is left alone. Returns how many songs' media
    /// and how many stray files went.
    pub async fn sweep(&self, known: &HashSet<String>, listed: &Listing) -> Result<(usize, usize)> {
        let old = crate::server::db::now_ms() - SWEEP_GRACE_MS;
        let mut songs = 0;
        for (id, files) in listed {
            if !is_id(id) || known.contains(id) || files.values().any(|&t| t > old) {
                continue;
            }
            for file in files.keys() {
                self.delete(id, file).await?;
            }
            songs += 1;
        }
        let mut strays = self.sweep_live().await?;
        strays += match &self.location {
            Location::Folder(dir) => sweep_staging(&dir.join(SONGS), old)?,
            // S3 shows only completed objects; a multipart upload left by a crash is the
            // bucket's lifecycle rule to abort (see README).
            Location::S3 { .. } => 0,
        };
        Ok((songs, strays))
    }

    pub(crate) async fn delete(&self, id: &str, file: &str) -> Result<()> {
        self.delete_key(&Self::key(id, file)).await
    }

    pub(crate) async fn delete_key(&self, key: &Path) -> Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {key}")),
        }
    }

    /// Finished songs (a WAV) without the MP3 that came later: made at start, in the
    /// background (`make_mp3`).
    pub fn missing_mp3(known: &HashSet<String>, listed: &Listing) -> Vec<String> {
        listed
            .iter()
            .filter(|(id, files)| {
                known.contains(*id) && files.contains_key(SONG_WAV) && !files.contains_key(SONG_MP3)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Make a finished song's MP3 from its WAV.
    pub async fn make_mp3(&self, id: &str) -> Result<()> {
        let wav = self
            .get(id, SONG_WAV)
            .await?
            .with_context(|| format!("the WAV of song {id} is missing"))?;
        let mp3 = tokio::task::spawn_blocking(move || wav_to_mp3(&wav)).await??;
        self.put(id, SONG_MP3, mp3)
            .await
            .with_context(|| format!("song {id}"))
    }

    /// Remove what a refused or failed upload left behind.
    pub async fn remove(&self, id: &str) {
        for name in [
            PHOTO_JPG, COVER_JPG, SHARE_JPG, SONG_CODES, SONG_MP3, SONG_WAV,
        ] {
            if let Err(e) = self.delete(id, name).await {
                tracing::warn!("{e:#}");
            }
        }
    }
}

fn wav_to_mp3(wav: &[u8]) -> Result<Vec<u8>> {
    let reader = hound::WavReader::new(std::io::Cursor::new(wav)).context("not a WAV")?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.bits_per_sample != 16 {
        anyhow::bail!("the WAV is not 16-bit mono");
    }
    let samples = reader
        .into_samples::<i16>()
        .map(|s| s.map(|v| v as f32 / 32768.0))
        .collect::<std::result::Result<Vec<f32>, _>>()
        .context("the WAV is damaged")?;
    mp3_bytes(&samples, spec.sample_rate)
}

/// Local disk: files a write left half-done when its process died, older than `old`
/// (ms): the local store's temporary `NAME#N` files, and the `NAME.part` files of
/// versions before it. The store never lists or serves them.
fn sweep_staging(songs: &std::path::Path, old: i64) -> Result<usize> {
    let mut removed = 0;
    let Ok(dirs) = std::fs::read_dir(songs) else {
        return Ok(0);
    };
    for dir in dirs {
        let dir = dir?.path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir)? {
            let file = file?;
            let name = file.file_name().to_string_lossy().into_owned();
            let staging = name.ends_with(".part")
                || name
                    .rsplit_once('#')
                    .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            let changed = file
                .metadata()?
                .modified()?
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            if staging && changed < old {
                std::fs::remove_file(file.path())?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn age(path: &std::path::Path, secs: u64) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[tokio::test]
    async fn songs_from_before_mp3s_get_one_made_from_their_wav() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(Location::Folder(dir.path().into())).unwrap();
        let (old, new) = ("a".repeat(16), "b".repeat(16));
        let tone: Vec<f32> = (0..32_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let wav = crate::ml::wav::wav_bytes(&tone, 32_000).unwrap();
        for id in [&old, &new] {
            storage.put(id, SONG_WAV, wav.clone()).await.unwrap();
        }
        storage
            .put(&new, SONG_MP3, &b"already there"[..])
            .await
            .unwrap();
        let known: HashSet<String> = [old.clone(), new.clone(), "c".repeat(16)].into();
        let listed = storage.list().await.unwrap();
        assert_eq!(Storage::missing_mp3(&known, &listed), vec![old.clone()]);
        storage.make_mp3(&old).await.unwrap();
        let mp3 = storage.get(&old, SONG_MP3).await.unwrap().unwrap();
        assert_eq!((mp3[0], mp3[1] & 0xE0), (0xFF, 0xE0));
        let listed = storage.list().await.unwrap();
        assert!(Storage::missing_mp3(&known, &listed).is_empty());
        // A damaged WAV is an error, not a panic.
        storage.put(&old, SONG_WAV, &b"RIFF...."[..]).await.unwrap();
        assert!(storage.make_mp3(&old).await.is_err());
    }

    #[tokio::test]
    async fn the_sweep_removes_old_leftovers_and_leaves_what_is_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(Location::Folder(dir.path().into())).unwrap();
        let (known, orphan, fresh) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));
        for id in [&known, &orphan, &fresh] {
            storage.put(id, PHOTO_JPG, &b"jpeg"[..]).await.unwrap();
        }
        let song_dir = |id: &str| dir.path().join(SONGS).join(id);
        age(&song_dir(&orphan).join(PHOTO_JPG), 3600);
        // A half-written WAV (the store's temporary name), an old one and one being written.
        std::fs::write(song_dir(&known).join("song.wav#3"), b"half").unwrap();
        age(&song_dir(&known).join("song.wav#3"), 3600);
        std::fs::write(song_dir(&known).join("song.wav#4"), b"writing").unwrap();
        let ids: HashSet<String> = [known.clone()].into();
        let listed = storage.list().await.unwrap();
        assert_eq!(storage.sweep(&ids, &listed).await.unwrap(), (1, 1));
        let left = storage.list().await.unwrap();
        assert!(left.contains_key(&known) && left.contains_key(&fresh));
        assert!(!left.contains_key(&orphan));
        assert!(song_dir(&known).join("song.wav#4").exists());
        assert!(!song_dir(&known).join("song.wav#3").exists());
    }
}
