//! The song decoder of a worker: one thread that owns MusicGen's decoding and steps every
//! song being made in one pass (`MusicGen::step`), so a step reads the weights once for
//! all of them. Songs join between steps as jobs submit them and leave when they are done,
//! cancelled, or their job stops listening; a song's codes are the same as alone.
//!
//! A job talks to it through `submit`: the prompt and options go in, and `Event`s come
//! back on the job's own channel. The job's thread does everything else (chunks decoded
//! for listening, progress written), so the decoder does not wait on those.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use rayon::ThreadPool;

use super::models::Models;
use crate::ml::musicgen::encodec::EncodecDecoder;
use crate::ml::{Cancelled, Decoding, GenerateOptions, MusicGen, Progress};
use crate::server::metrics::DECODER_BATCH_SONGS;

/// Longest wait for a song that is ahead of its pace before looking again.
const PACE_NAP: Duration = Duration::from_millis(50);

/// A song to make.
pub struct Request {
    pub prompt: String,
    pub opts: GenerateOptions,
    /// No faster than this × real time (0: no limit).
    pub pace: f64,
    pub cancel: Arc<AtomicBool>,
    /// The job's span (it names the song): what the decoder thread logs about this song
    /// is logged inside it, so every line of a song's job carries its id.
    pub span: tracing::Span,
}

/// What the decoder tells a job about its song.
pub enum Event {
    /// The song is in the batch: what its chunks are decoded with.
    Joined {
        codec: Arc<EncodecDecoder>,
        sample_rate: u32,
        frame_rate: f64,
    },
    /// A step was made: the progress, and the frames completed since the last event, by
    /// codebook.
    Step {
        progress: Progress,
        new_frames: Vec<Vec<u32>>,
    },
    /// The song's codes (the prompt codes first), or why there are none.
    Done(Result<Vec<Vec<u32>>>),
}

/// The handle jobs submit songs through; the decoder thread stops when every handle is
/// dropped and its songs are done.
#[derive(Clone)]
pub struct Batcher {
    requests: Sender<(Request, Sender<Event>)>,
}

impl Batcher {
    /// Start the decoder thread: at most `capacity` songs in a pass, products on `pool`.
    /// MusicGen is loaded (through `models`) when the first song comes.
    pub fn start(
        models: Arc<Mutex<Models>>,
        pool: Arc<ThreadPool>,
        capacity: usize,
    ) -> Result<Self> {
        let (requests, incoming) = mpsc::channel();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("song-decoder".into())
            .spawn(move || {
                let _span = span.enter();
                Decoder {
                    models,
                    pool,
                    capacity: capacity.max(1),
                    model: None,
                    songs: Vec::new(),
                }
                .run(incoming)
            })
            .map_err(|e| anyhow!("cannot start the song decoder thread: {e}"))?;
        Ok(Self { requests })
    }

    /// Submit a song; its events come on the returned channel, `Done` last.
    pub fn submit(&self, request: Request) -> Result<Receiver<Event>> {
        let (tx, rx) = mpsc::channel();
        self.requests
            .send((request, tx))
            .map_err(|_| anyhow!("the song decoder has stopped"))?;
        Ok(rx)
    }
}

/// A song in the batch.
struct Song {
    decoding: Decoding,
    request: Request,
    events: Sender<Event>,
    joined: Instant,
    /// Frames already sent to the job (the prompt codes count as sent).
    sent: usize,
    prompt_frames: usize,
    frame_rate: f64,
}

impl Song {
    /// How long this song must wait to keep its pace (zero when it may step now).
    fn ahead(&self) -> Duration {
        if self.request.pace <= 0.0 {
            return Duration::ZERO;
        }
        let made = self.decoding.song()[0].len() - self.prompt_frames;
        let due = Duration::from_secs_f64(made as f64 / self.frame_rate / self.request.pace);
        due.saturating_sub(self.joined.elapsed())
    }

    /// Send the job its progress and new frames; false when the job no longer listens.
    fn report(&mut self) -> bool {
        let song = self.decoding.song();
        let new_frames = song.iter().map(|row| row[self.sent..].to_vec()).collect();
        self.sent = song[0].len();
        let progress = self.decoding.progress();
        self.events
            .send(Event::Step {
                progress,
                new_frames,
            })
            .is_ok()
    }
}

struct Decoder {
    models: Arc<Mutex<Models>>,
    pool: Arc<ThreadPool>,
    capacity: usize,
    model: Option<Arc<Mutex<MusicGen>>>,
    songs: Vec<Song>,
}

impl Decoder {
    fn run(mut self, incoming: Receiver<(Request, Sender<Event>)>) {
        loop {
            // Idle: wait for a song (or for every handle to go, then stop).
            if self.songs.is_empty() {
                match incoming.recv() {
                    Ok((request, events)) => self.join(request, events),
                    Err(_) => return,
                }
            }
            while self.songs.len() < self.capacity {
                match incoming.try_recv() {
                    Ok((request, events)) => self.join(request, events),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            self.drop_cancelled();
            let wait = self.songs.iter().map(Song::ahead).min();
            match wait {
                None => continue,
                Some(wait) if !wait.is_zero() => {
                    std::thread::sleep(wait.min(PACE_NAP));
                    continue;
                }
                Some(_) => self.step(),
            }
        }
    }

    /// MusicGen, loaded on first use (a failure is the song's, and the next song tries again).
    fn model(&mut self) -> Result<Arc<Mutex<MusicGen>>> {
        if let Some(m) = &self.model {
            return Ok(m.clone());
        }
        let mut guard = self
            .models
            .lock()
            .map_err(|_| anyhow!("the models were poisoned by an earlier crash"))?;
        let models: &mut Models = &mut guard;
        let m = self.pool.install(|| models.musicgen())?;
        self.model = Some(m.clone());
        Ok(m)
    }

    /// Start a song (T5 over its prompt, its windows planned) and add it to the batch.
    fn join(&mut self, request: Request, events: Sender<Event>) {
        let started = self.model().and_then(|m| {
            let mut guard = lock(&m)?;
            let model: &mut MusicGen = &mut guard;
            let decoding = self
                .pool
                .install(|| model.start_decoding(&request.prompt, &request.opts))?;
            Ok((
                decoding,
                model.codec(),
                model.sample_rate(),
                model.frame_rate(),
            ))
        });
        match started {
            Ok((decoding, codec, sample_rate, frame_rate)) => {
                let prompt_frames = decoding.song()[0].len();
                let joined = Event::Joined {
                    codec,
                    sample_rate,
                    frame_rate,
                };
                if events.send(joined).is_ok() {
                    self.songs.push(Song {
                        decoding,
                        request,
                        events,
                        joined: Instant::now(),
                        sent: prompt_frames,
                        prompt_frames,
                        frame_rate,
                    });
                }
            }
            Err(e) => {
                let _ = events.send(Event::Done(Err(e)));
            }
        }
    }

    fn drop_cancelled(&mut self) {
        self.songs.retain(|s| {
            let cancelled = s.request.cancel.load(Ordering::Relaxed);
            if cancelled {
                let _ = s.events.send(Event::Done(Err(Cancelled.into())));
            }
            !cancelled
        });
    }

    /// One pass over every song that is not ahead of its pace; then each gets its news,
    /// and the finished ones (and those whose job stopped listening) leave.
    fn step(&mut self) {
        let ready: Vec<bool> = self.songs.iter().map(|s| s.ahead().is_zero()).collect();
        let passed = self.model().and_then(|m| {
            let guard = lock(&m)?;
            let model: &MusicGen = &guard;
            let mut batch: Vec<&mut Decoding> = (self.songs.iter_mut().zip(&ready))
                .filter(|(_, ready)| **ready)
                .map(|(s, _)| &mut s.decoding)
                .collect();
            self.pool.install(|| model.step(&mut batch))
        });
        let songs = std::mem::take(&mut self.songs);
        let stepped = ready.iter().filter(|r| **r).count();
        metrics::gauge!(DECODER_BATCH_SONGS).set(stepped as f64);
        for (mut s, ready) in songs.into_iter().zip(ready) {
            match &passed {
                // The pass may have moved its songs part way: they cannot go on.
                Err(e) if ready => {
                    s.request.span.in_scope(|| {
                        tracing::error!(songs = stepped, "a decoder pass failed: {e:#}")
                    });
                    let _ = s.events.send(Event::Done(Err(anyhow!("{e:#}"))));
                }
                _ if ready && !s.report() => {}
                _ if s.decoding.is_done() => {
                    let _ = s.events.send(Event::Done(Ok(s.decoding.into_song())));
                }
                _ => self.songs.push(s),
            }
        }
        if self.songs.is_empty() {
            metrics::gauge!(DECODER_BATCH_SONGS).set(0.0);
        }
    }
}

fn lock(m: &Mutex<MusicGen>) -> Result<std::sync::MutexGuard<'_, MusicGen>> {
    m.lock()
        .map_err(|_| anyhow!("MusicGen was poisoned by an earlier crash"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::hub::ModelChoice;
    use crate::ml::{tiny, Length, Precision, SamplingConfig};
    use crate::server::worker::models::ModelConfig;

    fn models(dir: &std::path::Path) -> Arc<Mutex<Models>> {
        let set = tiny::ensure_tiny_set(dir).expect("tiny models");
        let cfg = ModelConfig {
            musicgen: set.musicgen.to_string_lossy().into_owned(),
            caption: ModelChoice::Off,
            clip: ModelChoice::Off,
            text: ModelChoice::Off,
            precision: Precision::F32,
        };
        Arc::new(Mutex::new(Models::new(cfg, candle_core::Device::Cpu)))
    }

    fn request(prompt: &str, seconds: f64, seed: u64) -> Request {
        Request {
            prompt: prompt.into(),
            opts: GenerateOptions {
                length: Length::Seconds(seconds),
                sampling: SamplingConfig {
                    seed,
                    ..SamplingConfig::default()
                },
                ..GenerateOptions::default()
            },
            // Paced, so that songs are still being made when the test acts on them.
            pace: 8.0,
            cancel: Arc::new(AtomicBool::new(false)),
            span: tracing::Span::none(),
        }
    }

    /// Read events until `Done` (or `steps` steps): the codes, or None if cut short.
    fn follow(events: &Receiver<Event>, steps: usize) -> Option<Result<Vec<Vec<u32>>>> {
        let mut seen = 0;
        while seen < steps {
            match events.recv().expect("the decoder answers") {
                Event::Joined { .. } => {}
                Event::Step { .. } => seen += 1,
                Event::Done(r) => return Some(r),
            }
        }
        None
    }

    #[test]
    fn songs_made_together_are_the_songs_made_alone_and_one_leaving_fails_no_other() {
        let dir = tempfile::tempdir().expect("temp dir");
        let models = models(dir.path());
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .expect("pool"),
        );
        let songs = [
            ("warm lofi beat", 3.0, 1),
            ("fast techno", 2.0, 2),
            ("calm strings", 2.5, 3),
            ("jazz trio", 1.5, 4),
        ];
        let alone: Vec<Vec<Vec<u32>>> = {
            let m = models.lock().expect("models").musicgen().expect("MusicGen");
            let mut m = m.lock().expect("MusicGen");
            songs
                .iter()
                .map(|&(p, s, seed)| {
                    let r = request(p, s, seed);
                    let never = AtomicBool::new(false);
                    m.generate_codes(p, &r.opts, &mut |_, _| Ok(()), &never)
                        .expect("alone")
                })
                .collect()
        };
        let decoder = Batcher::start(models, pool, 4).expect("decoder");
        let submit = |i: usize| {
            let (p, s, seed) = songs[i];
            let r = request(p, s, seed);
            let cancel = r.cancel.clone();
            (decoder.submit(r).expect("submitted"), cancel)
        };
        let (a, _) = submit(0);
        let (b, _) = submit(1);
        let (c, c_cancel) = submit(2);
        let bad = decoder
            .submit(request("too short", 0.0, 5))
            .expect("submitted");
        // A song that cannot start fails alone, before it joins.
        match follow(&bad, usize::MAX) {
            Some(Err(e)) => assert!(format!("{e:#}").contains("duration"), "{e:#}"),
            _ => panic!("a song of 0 s was made"),
        }
        // The fourth joins while the others are being made.
        assert!(follow(&a, 10).is_none(), "A ended too early for the test");
        let (d, _) = submit(3);
        // B's job goes away, C's is cancelled, both mid-song.
        assert!(follow(&b, 5).is_none(), "B ended too early for the test");
        drop(b);
        assert!(follow(&c, 5).is_none(), "C ended too early for the test");
        c_cancel.store(true, Ordering::SeqCst);
        match follow(&c, usize::MAX) {
            Some(Err(e)) => assert!(e.downcast_ref::<Cancelled>().is_some(), "{e:#}"),
            _ => panic!("a cancelled song was finished"),
        }
        for (events, want) in [(&a, &alone[0]), (&d, &alone[3])] {
            match follow(events, usize::MAX) {
                Some(Ok(codes)) => assert_eq!(&codes, want, "a song differs from alone"),
                _ => panic!("a song was not finished"),
            }
        }
    }
}
