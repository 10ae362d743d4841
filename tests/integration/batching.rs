//! Many songs in one decoder pass (`MusicGen::step` over several songs): a song's codes
//! must not depend on what else is in the batch. Songs of different lengths, guidance
//! (two rows or one), prompts, sampling and continuations, joining mid-batch and leaving
//! when they end, across window boundaries (a window's first pass runs alone), in f32 and
//! 8-bit: every song's codes equal the codes it gets decoded alone. And the worker makes
//! several songs at once (`--batch`), each whole.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::support::model_device;
use snapsong::ml::{hub, tiny, GenerateOptions, Length, MusicGen, Precision, SamplingConfig};

fn fixture(name: &str) -> PathBuf {
    crate::support::fixtures().join("musicgen").join(name)
}

fn load(path: &std::path::Path, precision: Precision) -> MusicGen {
    let files = hub::resolve(path.to_str().unwrap()).unwrap();
    MusicGen::load(&files, precision, &model_device()).unwrap()
}

/// A song to make: its prompt, options and the step of the batch it joins at.
struct Song {
    prompt: &'static str,
    opts: GenerateOptions,
    joins_at: usize,
}

fn song(prompt: &'static str, steps: usize, guidance: f64, greedy: bool, joins_at: usize) -> Song {
    Song {
        prompt,
        opts: GenerateOptions {
            length: Length::MaxNewTokens(steps),
            guidance_scale: guidance,
            sampling: SamplingConfig {
                greedy,
                seed: steps as u64 * 7 + joins_at as u64,
                ..SamplingConfig::default()
            },
            prompt_codes: Vec::new(),
        },
        joins_at,
    }
}

fn alone(m: &mut MusicGen, s: &Song) -> Vec<Vec<u32>> {
    m.generate_codes(
        s.prompt,
        &s.opts,
        &mut |_, _| Ok(()),
        &AtomicBool::new(false),
    )
    .unwrap()
}

/// Decode `songs` together: each joins at its step and leaves when done. Returns each
/// song's codes and the largest number of songs that shared a pass.
fn together(m: &mut MusicGen, songs: &[Song]) -> (Vec<Vec<Vec<u32>>>, usize) {
    let mut running: Vec<Option<snapsong::ml::Decoding>> = songs.iter().map(|_| None).collect();
    let mut done: Vec<Option<Vec<Vec<u32>>>> = songs.iter().map(|_| None).collect();
    let mut widest = 0;
    for step in 0.. {
        for (i, s) in songs.iter().enumerate() {
            if s.joins_at == step {
                running[i] = Some(m.start_decoding(s.prompt, &s.opts).unwrap());
            }
        }
        let mut batch: Vec<&mut snapsong::ml::Decoding> = running.iter_mut().flatten().collect();
        if batch.is_empty() && songs.iter().all(|s| s.joins_at < step) {
            break;
        }
        widest = widest.max(batch.len());
        if !batch.is_empty() {
            m.step(&mut batch).unwrap();
        }
        for (i, slot) in running.iter_mut().enumerate() {
            if slot.as_ref().is_some_and(|d| d.is_done()) {
                done[i] = slot.take().map(|d| d.into_song());
            }
        }
    }
    (done.into_iter().map(Option::unwrap).collect(), widest)
}

fn assert_same_alone_and_together(path: &std::path::Path, precision: Precision, songs: &[Song]) {
    let mut m = load(path, precision);
    let want: Vec<_> = songs.iter().map(|s| alone(&mut m, s)).collect();
    let (got, widest) = together(&mut m, songs);
    assert!(widest >= 3, "the songs never shared a pass");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{path:?} {precision:?}: song {i} differs in a batch");
    }
}

#[test]
fn greedy_songs_get_the_same_codes_alone_and_in_a_batch_of_four() {
    for name in ["proj_4cb", "noproj_oldnorm", "3cb_pth_causal"] {
        let songs = [
            song("warm lofi beat with piano", 40, 3.0, true, 0),
            song("fast techno", 25, 3.0, true, 0),
            song("calm strings, no drums", 33, 1.0, true, 0),
            song("a", 18, 5.5, true, 0),
        ];
        assert_same_alone_and_together(&fixture(name), Precision::F32, &songs);
    }
}

#[test]
fn songs_joining_and_leaving_mid_batch_get_their_own_codes_in_f32_and_8_bit() {
    let root = tempfile::tempdir().unwrap();
    tiny::write_tiny_musicgen(root.path(), 3).unwrap();
    for (path, precision) in [
        (fixture("noproj_oldnorm"), Precision::Q8_0),
        (root.path().to_path_buf(), Precision::Q8_0),
        (root.path().to_path_buf(), Precision::F32),
    ] {
        let songs = [
            song("warm lofi beat with piano", 30, 3.0, false, 0),
            song("fast techno", 12, 3.0, true, 4),
            song("calm strings", 40, 1.0, false, 5),
            song("jazz trio", 20, 3.0, false, 9),
            song("choir", 8, 3.0, true, 26),
        ];
        assert_same_alone_and_together(&path, precision, &songs);
    }
}

#[test]
fn continuations_and_songs_of_several_windows_share_passes() {
    // 256 positions: windows of 252 frames; 600 frames cross three boundaries, each a
    // first pass over 101 frames of context that runs on its own. At q8_0 the CPU's
    // 8-bit attention cache takes those first passes widened to f32.
    let path = fixture("proj_4cb");
    for precision in [Precision::F32, Precision::Q8_0] {
        let mut m = load(&path, precision);
        let k = m.num_codebooks();
        let earlier = alone(&mut m, &song("slow piano", 40, 3.0, true, 0));
        let mut continued = song("slow piano, later", 30, 3.0, true, 2);
        continued.opts.prompt_codes = earlier;
        let songs = [
            song("warm lofi beat with piano", 600 + k - 1, 3.0, true, 0),
            continued,
            song("fast techno", 300, 3.0, false, 200),
            song("calm strings", 90, 1.0, true, 240),
        ];
        assert_same_alone_and_together(&path, precision, &songs);
    }
}

/// The worker (`--batch 3`) makes three songs at the same moment, each to its whole
/// length and with its own files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_makes_several_songs_at_once_each_whole() {
    use crate::support::{get_json, post_song, send, start_with, wait_done};
    use axum::http::{Request, StatusCode};
    use std::time::{Duration, Instant};

    let s = start_with(
        &[
            "--songs-burst",
            "100",
            "--max-queued-per-client",
            "100",
            "--batch",
            "3",
            // Paced, so that the three are still being made when the test looks.
            "--pace",
            "3",
        ],
        true,
    )
    .await;
    let mut ids = Vec::new();
    for seed in 0..3 {
        let options = format!(r#"{{"genre":"jazz","duration":6,"seed":{seed}}}"#);
        let (status, made) = post_song(&s.app, &[("options", None, options.as_bytes())]).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{made}");
        ids.push(made["id"].as_str().expect("id").to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "the three songs never ran at once"
        );
        let mut running = 0;
        for id in &ids {
            let (_, song) = get_json(&s.app, &format!("/api/songs/{id}")).await;
            running += usize::from(song["status"] == "running");
        }
        if running == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &ids {
        let done = wait_done(&s.app, id).await;
        assert_eq!(done["status"], "ready", "{done}");
        let req = Request::get(format!("/media/{id}/song.wav"))
            .body(axum::body::Body::empty())
            .expect("request");
        let (status, wav) = send(&s.app, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            wav.len(),
            44 + 6 * 32_000 * 2,
            "a 6 s song, 16-bit mono at 32 kHz"
        );
    }
}

/// The GPU's way of keeping caches (every song's in one pool, read and written a whole
/// pass at a time), run on the CPU: the same greedy codes as each song's own caches, alone
/// and in a batch with songs joining, leaving and crossing window boundaries.
#[test]
fn pooled_attention_caches_give_each_song_its_own_codes() {
    let path = fixture("proj_4cb");
    let k = load(&path, Precision::F32).num_codebooks();
    let songs = [
        song("warm lofi beat with piano", 300 + k - 1, 3.0, true, 0),
        song("fast techno", 25, 3.0, true, 3),
        song("calm strings, no drums", 60, 1.0, true, 5),
        song("a", 18, 5.5, true, 40),
        song("choir", 30, 3.0, true, 250),
    ];
    let mut own = load(&path, Precision::F32);
    let want: Vec<_> = songs.iter().map(|s| alone(&mut own, s)).collect();
    let mut pooled = load(&path, Precision::F32);
    pooled.pool_attention_caches().unwrap();
    let (got, widest) = together(&mut pooled, &songs);
    assert!(widest >= 3, "the songs never shared a pass");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            g, w,
            "song {i}: pooled caches in a batch differ from its own"
        );
    }
    for (i, (s, w)) in songs.iter().zip(&want).enumerate() {
        assert_eq!(
            &alone(&mut pooled, s),
            w,
            "song {i}: pooled caches alone differ"
        );
    }
}
