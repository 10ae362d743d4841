//! Media on local disk: `MEDIA_DIR/songs/{id}/` holds photo.jpg (re-encoded, no EXIF),
//! cover.jpg (square), share.jpg (1200×630), song.wav, song.mp3 and codes.json (the audio
//! codes, for extensions). Every file is written to a
//! temporary name and renamed, so a reader (or a crash) never sees half a file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::RgbImage;

use crate::api::types::{is_id, COVER_JPG, PHOTO_JPG, SHARE_JPG, SONG_CODES, SONG_MP3, SONG_WAV};
use crate::ml::mp3::mp3_bytes;
use crate::ml::musicgen::CodesFile;
use crate::photo::{share_thumbnail, square_cover, to_jpeg};
use crate::server::worker::pipeline::SongAudio;

#[derive(Clone, Debug)]
pub struct Storage {
    root: PathBuf,
}

impl Storage {
    pub fn new(root: &Path) -> Result<Self> {
        let songs = root.join("songs");
        std::fs::create_dir_all(&songs)
            .with_context(|| format!("cannot create the media folder {}", songs.display()))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The folder the media routes serve.
    pub fn songs_dir(&self) -> PathBuf {
        self.root.join("songs")
    }

    pub fn song_dir(&self, id: &str) -> PathBuf {
        self.songs_dir().join(id)
    }

    pub fn photo_path(&self, id: &str) -> PathBuf {
        self.song_dir(id).join(PHOTO_JPG)
    }

    pub fn wav_path(&self, id: &str) -> PathBuf {
        self.song_dir(id).join(SONG_WAV)
    }

    /// Keep a photo: the upright, EXIF-free re-encode, the square cover and the share card.
    pub fn save_photo(&self, id: &str, image: &RgbImage) -> Result<()> {
        let dir = self.song_dir(id);
        std::fs::create_dir_all(&dir)?;
        write_atomic(&dir.join(PHOTO_JPG), &to_jpeg(image, 90)?)?;
        write_atomic(
            &dir.join(COVER_JPG),
            &to_jpeg(&square_cover(image, 512), 85)?,
        )?;
        write_atomic(&dir.join(SHARE_JPG), &to_jpeg(&share_thumbnail(image), 85)?)?;
        Ok(())
    }

    /// Share a photo with a new song ("another like this"): the same three files.
    pub fn copy_photo(&self, from: &str, to: &str) -> Result<()> {
        let (src, dst) = (self.song_dir(from), self.song_dir(to));
        std::fs::create_dir_all(&dst)?;
        for name in [PHOTO_JPG, COVER_JPG, SHARE_JPG] {
            let bytes = std::fs::read(src.join(name))
                .with_context(|| format!("the photo of song {from} is missing"))?;
            write_atomic(&dst.join(name), &bytes)?;
        }
        Ok(())
    }

    pub fn mp3_path(&self, id: &str) -> PathBuf {
        self.song_dir(id).join(SONG_MP3)
    }

    /// Keep a finished song: its codes, its MP3, then its WAV.
    pub fn save_song(&self, id: &str, audio: &SongAudio) -> Result<()> {
        let dir = self.song_dir(id);
        std::fs::create_dir_all(&dir)?;
        let codes = serde_json::to_vec(&CodesFile {
            codes: audio.codes.clone(),
        })?;
        write_atomic(&dir.join(SONG_CODES), &codes)?;
        write_atomic(&self.mp3_path(id), &audio.mp3)?;
        write_atomic(&self.wav_path(id), &audio.wav)
    }

    /// A finished song's audio codes (what an extension continues).
    pub fn read_codes(&self, id: &str) -> Result<Vec<Vec<u32>>> {
        let path = self.song_dir(id).join(SONG_CODES);
        let bytes =
            std::fs::read(&path).with_context(|| format!("the codes of song {id} are missing"))?;
        let file: CodesFile = serde_json::from_slice(&bytes)
            .with_context(|| format!("the codes of song {id} are damaged"))?;
        Ok(file.codes)
    }

    /// Whether a song's codes are kept (songs made before they were are not extensible).
    pub fn has_codes(&self, id: &str) -> bool {
        self.song_dir(id).join(SONG_CODES).is_file()
    }

    /// At start, before any request: remove song folders no row knows (a crash between
    /// keeping the photo and writing the row) and half-written `.part` files. Returns how
    /// many folders and files went.
    pub fn sweep(&self, known: &HashSet<String>) -> Result<(usize, usize)> {
        let (mut dirs, mut parts) = (0, 0);
        for entry in std::fs::read_dir(self.songs_dir())? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if !path.is_dir() || !is_id(name) {
                continue;
            }
            if !known.contains(name) {
                std::fs::remove_dir_all(&path)?;
                dirs += 1;
                continue;
            }
            for file in std::fs::read_dir(&path)? {
                let file = file?.path();
                if file.extension().is_some_and(|e| e == "part") {
                    std::fs::remove_file(&file)?;
                    parts += 1;
                }
            }
        }
        Ok((dirs, parts))
    }

    /// Finished songs (a WAV) without the MP3 that came later: made at start, in the
    /// background (`make_mp3`).
    pub fn missing_mp3(&self, known: &HashSet<String>) -> Vec<String> {
        let mut ids: Vec<String> = known
            .iter()
            .filter(|id| self.wav_path(id).is_file() && !self.mp3_path(id).is_file())
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Make a finished song's MP3 from its WAV.
    pub fn make_mp3(&self, id: &str) -> Result<()> {
        let reader = hound::WavReader::open(self.wav_path(id))
            .with_context(|| format!("the WAV of song {id} cannot be read"))?;
        let spec = reader.spec();
        if spec.channels != 1 || spec.bits_per_sample != 16 {
            anyhow::bail!("the WAV of song {id} is not 16-bit mono");
        }
        let samples = reader
            .into_samples::<i16>()
            .map(|s| s.map(|v| v as f32 / 32768.0))
            .collect::<std::result::Result<Vec<f32>, _>>()
            .with_context(|| format!("the WAV of song {id} is damaged"))?;
        write_atomic(&self.mp3_path(id), &mp3_bytes(&samples, spec.sample_rate)?)
    }

    /// Remove what a refused or failed upload left behind.
    pub fn remove(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.song_dir(id));
    }
}

/// Write to `NAME.part`, flush it to disk, then rename: after a crash or power cut a
/// file is either whole or absent (the sweep at start removes stray `.part` files).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("part");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn songs_from_before_mp3s_get_one_made_from_their_wav() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(dir.path()).unwrap();
        let (old, new) = ("a".repeat(16), "b".repeat(16));
        for id in [&old, &new] {
            std::fs::create_dir_all(storage.song_dir(id)).unwrap();
            let tone: Vec<f32> = (0..32_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
            crate::ml::wav::write_wav(&storage.wav_path(id), &tone, 32_000).unwrap();
        }
        std::fs::write(storage.mp3_path(&new), b"already there").unwrap();
        let known: HashSet<String> = [old.clone(), new.clone(), "c".repeat(16)].into();
        assert_eq!(storage.missing_mp3(&known), vec![old.clone()]);
        storage.make_mp3(&old).unwrap();
        let mp3 = std::fs::read(storage.mp3_path(&old)).unwrap();
        assert_eq!((mp3[0], mp3[1] & 0xE0), (0xFF, 0xE0));
        assert!(storage.missing_mp3(&known).is_empty());
        // A damaged WAV is an error, not a panic.
        std::fs::write(storage.wav_path(&old), b"RIFF....").unwrap();
        assert!(storage.make_mp3(&old).is_err());
    }
}
