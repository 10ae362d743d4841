//! MP3, the compressed copy of a finished song that phones and share cards play: every
//! current browser decodes it (`<audio>` and Web Audio alike), unlike Ogg/Opus on older
//! iPhones. LAME (through `mp3lame-encoder`, built from source) is the maintained reference
//! encoder. Constant bit rate, so browsers can seek it exactly.

use anyhow::{anyhow, Result};
use mp3lame_encoder::{Bitrate, Builder, FlushNoGap, MonoPcm, Quality};

use super::wav::to_pcm16;

/// 128 kbit/s mono: transparent for MusicGen's 32 kHz output, 1/4 of the WAV's size.
pub const MP3_KBPS: u32 = 128;

fn err(what: &'static str) -> impl Fn(mp3lame_encoder::BuildError) -> anyhow::Error {
    move |e| anyhow!("MP3 encoder: {what}: {e:?}")
}

/// Mono samples → an MP3 file's bytes, at the WAV's level (`wav::to_pcm16`: a loud song is
/// scaled down, never clipped).
pub fn mp3_bytes(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    let mut encoder = Builder::new()
        .ok_or_else(|| anyhow!("MP3 encoder: LAME could not start"))?
        .with_num_channels(1)
        .map_err(err("channels"))?
        .with_sample_rate(sample_rate)
        .map_err(err("sample rate"))?
        .with_brate(Bitrate::Kbps128)
        .map_err(err("bit rate"))?
        .with_quality(Quality::Good)
        .map_err(err("quality"))?
        .build()
        .map_err(err("settings"))?;
    let pcm = to_pcm16(samples);
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(pcm.len()));
    encoder
        .encode_to_vec(MonoPcm(pcm.as_slice()), &mut out)
        .map_err(|e| anyhow!("MP3 encoder: {e:?}"))?;
    encoder
        .flush_to_vec::<FlushNoGap>(&mut out)
        .map_err(|e| anyhow!("MP3 encoder: {e:?}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_of_tone_is_a_constant_bit_rate_mp3_of_the_right_size() {
        let rate = 32_000;
        let tone: Vec<f32> = (0..rate)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.5)
            .collect();
        let mp3 = mp3_bytes(&tone, rate).unwrap();
        // MPEG frame sync on the first byte pair; about 16 kB for one second at 128 kbit/s.
        assert_eq!(
            (mp3[0], mp3[1] & 0xE0),
            (0xFF, 0xE0),
            "starts with a frame header"
        );
        let expected = MP3_KBPS as usize * 1000 / 8;
        assert!(
            mp3.len() > expected * 9 / 10 && mp3.len() < expected * 12 / 10,
            "{} bytes",
            mp3.len()
        );
    }

    #[test]
    fn silence_and_out_of_range_samples_encode() {
        assert!(!mp3_bytes(&vec![0.0; 5000], 32_000).unwrap().is_empty());
        assert!(!mp3_bytes(&vec![3.0; 5000], 32_000).unwrap().is_empty());
    }
}
