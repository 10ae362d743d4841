//! PCM → WAV. Models give f32 samples that can exceed ±1 when the audio is loud; hard
//! clipping that would crackle, so a loud song is scaled down to fit instead.

use std::io::Cursor;
use std::path::Path;

use anyhow::{Context, Result};

/// Largest sample magnitude we let through, a little under full scale to leave headroom.
const CEILING: f32 = 0.99;

/// f32 samples → 16-bit PCM. NaN/inf become silence; if the peak exceeds `CEILING` the
/// whole signal is scaled by one gain (no per-sample clipping, so no distortion).
pub fn to_pcm16(samples: &[f32]) -> Vec<i16> {
    let peak = samples
        .iter()
        .filter(|s| s.is_finite())
        .fold(0f32, |m, s| m.max(s.abs()));
    let gain = if peak > CEILING { CEILING / peak } else { 1.0 };
    samples
        .iter()
        .map(|&s| {
            let s = if s.is_finite() { s * gain } else { 0.0 };
            (s.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16
        })
        .collect()
}

fn spec(sample_rate: u32, channels: u16) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// A mono 16-bit WAV file in memory (what the server stores and serves).
pub fn wav_bytes(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    let mut buf = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    {
        let mut w = hound::WavWriter::new(&mut buf, spec(sample_rate, 1))?;
        for s in to_pcm16(samples) {
            w.write_sample(s)?;
        }
        w.finalize()?;
    }
    Ok(buf.into_inner())
}

/// Write a mono 16-bit WAV file; written to a temporary name first so a crash never
/// leaves a half-written song under the real name.
pub fn write_wav(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    let bytes = wav_bytes(samples, sample_rate)?;
    let tmp = path.with_extension("wav.part");
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_audio_is_unchanged() {
        let pcm = to_pcm16(&[0.0, 0.5, -0.5]);
        assert_eq!(pcm, vec![0, 16384, -16384]);
    }

    #[test]
    fn loud_audio_is_scaled_not_clipped() {
        let pcm = to_pcm16(&[2.0, -1.0, 1.0]);
        // Peak maps to the ceiling and the ratios between samples survive.
        assert_eq!(pcm[0], (CEILING * i16::MAX as f32).round() as i16);
        assert_eq!(pcm[1], -(pcm[0] as f32 / 2.0).round() as i16);
        assert_eq!(pcm[1], -pcm[2]);
    }

    #[test]
    fn non_finite_samples_become_silence() {
        assert_eq!(to_pcm16(&[f32::NAN, f32::INFINITY, 0.25]), vec![0, 0, 8192]);
    }

    #[test]
    fn wav_round_trips_through_hound() {
        let bytes = wav_bytes(&[0.0, 0.25, -0.25, 0.5], 32_000).unwrap();
        let mut r = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        assert_eq!(r.spec().sample_rate, 32_000);
        assert_eq!(r.spec().channels, 1);
        let s: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(s, vec![0, 8192, -8192, 16384]);
    }
}
