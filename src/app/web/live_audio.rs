//! Listening while a song is made (hydrate build): fetch each chunk of 16-bit PCM as the
//! event stream announces it, turn it into an AudioBuffer, and schedule the buffers back
//! to back on the AudioContext's clock, so they play without a gap. If generation falls
//! behind, playback waits ("buffering") and resumes on the next chunk; each such wait is
//! counted as a stall.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AudioBuffer, AudioBufferSourceNode, AudioContext, AudioContextState, GainNode};

use crate::api::live::{live_chunk_path, START_SAMPLE_HEADER};

/// The live stream, handed from the making card to the player when the song is ready.
#[derive(Clone, Copy)]
pub struct LiveHandoff(
    pub leptos::prelude::StoredValue<Option<Rc<RefCell<LiveStream>>>, leptos::prelude::LocalStorage>,
);

/// Seconds between scheduling and the first sound: room for the audio thread.
const LEAD_S: f64 = 0.1;

pub struct LiveStream {
    ctx: AudioContext,
    gain: GainNode,
    id: String,
    /// The next chunk to fetch; a fetch is under way while `fetching`.
    next: u32,
    fetching: bool,
    /// Fetched chunks: song time of the first sample (s), and the audio.
    buffers: Vec<(f64, AudioBuffer)>,
    /// Buffers handed to the context so far.
    scheduled: usize,
    /// Context time at which song time 0 plays; set when playback starts.
    origin: Option<f64>,
    /// Song time where the scheduled audio ends.
    scheduled_to: f64,
    sources: Vec<AudioBufferSourceNode>,
    /// Times playback ran out of audio and had to wait.
    pub stalls: u32,
}

impl LiveStream {
    pub fn new(id: &str) -> Result<Self, JsValue> {
        let ctx = AudioContext::new()?;
        let gain = ctx.create_gain()?;
        gain.connect_with_audio_node(&ctx.destination())?;
        Ok(Self {
            ctx,
            gain,
            id: id.to_string(),
            next: 0,
            fetching: false,
            buffers: Vec::new(),
            scheduled: 0,
            origin: None,
            scheduled_to: 0.0,
            sources: Vec::new(),
            stalls: 0,
        })
    }

    /// Join at the live edge: skip to the newest chunk (a reload or a second device).
    pub fn join_at(&mut self, chunk: u32) {
        if self.next == 0 && self.buffers.is_empty() {
            self.next = chunk;
        }
    }

    pub fn started(&self) -> bool {
        self.origin.is_some()
    }

    /// Started, but the scheduled audio has run out.
    pub fn buffering(&self) -> bool {
        match self.origin {
            Some(o) => self.ctx.current_time() - o >= self.scheduled_to - 0.005,
            None => false,
        }
    }

    /// Song time now: where playback is, or where it would start.
    pub fn position(&self) -> f64 {
        match self.origin {
            Some(o) => (self.ctx.current_time() - o).clamp(0.0, self.scheduled_to),
            None => self.buffers.first().map_or(0.0, |b| b.0),
        }
    }

    /// Seconds of audio fetched ahead of the position.
    pub fn ahead(&self) -> f64 {
        let end = self.buffers.last().map_or(0.0, |(s, b)| s + b.duration());
        end - self.position()
    }

    /// Start playing from the first fetched chunk (call from a tap, or when it is safe).
    pub fn start(&mut self) {
        let _ = self.ctx.resume();
        if self.origin.is_none() {
            if let Some((first, _)) = self.buffers.first() {
                self.origin = Some(self.ctx.current_time() + LEAD_S - first);
                self.scheduled_to = *first;
                self.schedule();
            }
        }
    }

    pub fn pause(&self) {
        let _ = self.ctx.suspend();
    }

    pub fn resume(&self) {
        let _ = self.ctx.resume();
    }

    pub fn suspended(&self) -> bool {
        self.ctx.state() == AudioContextState::Suspended
    }

    /// Stop and let go of the audio device.
    pub fn close(&mut self) {
        for s in self.sources.drain(..) {
            let node: &web_sys::AudioScheduledSourceNode = s.as_ref();
            let _ = node.stop();
        }
        let _ = self.ctx.close();
    }

    /// Hand every fetched, unscheduled buffer to the context, back to back. If playback
    /// already ran out, the timeline moves on from now (a stall).
    fn schedule(&mut self) {
        let Some(mut origin) = self.origin else {
            return;
        };
        while self.scheduled < self.buffers.len() {
            let (start, buffer) = &self.buffers[self.scheduled];
            let mut when = origin + start;
            let now = self.ctx.current_time();
            if when < now + 0.01 {
                self.stalls += 1;
                origin = now + LEAD_S - start;
                when = now + LEAD_S;
            }
            let Ok(src) = self.ctx.create_buffer_source() else {
                return;
            };
            src.set_buffer(Some(buffer));
            if src.connect_with_audio_node(&self.gain).is_err()
                || src.start_with_when(when).is_err()
            {
                return;
            }
            self.scheduled_to = start + buffer.duration();
            self.sources.push(src);
            self.scheduled += 1;
        }
        self.origin = Some(origin);
        // Finished sources can go (keep the last few, which may still be playing).
        let keep = self.sources.len().saturating_sub(4);
        self.sources.drain(..keep);
    }
}

/// Fetch every announced chunk not fetched yet, in order, scheduling each as it comes.
/// `chunks` is how many the server has.
pub fn catch_up(stream: &Rc<RefCell<LiveStream>>, chunks: u32) {
    {
        let mut s = stream.borrow_mut();
        if s.fetching || s.next >= chunks {
            return;
        }
        s.fetching = true;
    }
    let stream = stream.clone();
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            let (index, url, ctx) = {
                let s = stream.borrow();
                (s.next, live_chunk_path(&s.id, s.next), s.ctx.clone())
            };
            if index >= chunks {
                break;
            }
            match fetch_chunk(&ctx, &url).await {
                Ok((start, buffer)) => {
                    let mut s = stream.borrow_mut();
                    s.buffers.push((start, buffer));
                    s.next += 1;
                    s.schedule();
                }
                // Gone (the song finished and its chunks were dropped) or a network
                // hiccup: the next announcement tries again.
                Err(_) => break,
            }
        }
        stream.borrow_mut().fetching = false;
    });
}

/// One chunk: its start in the song (s) and its samples as an AudioBuffer.
async fn fetch_chunk(ctx: &AudioContext, url: &str) -> Result<(f64, AudioBuffer), JsValue> {
    let window = web_sys::window().ok_or("no window")?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await?
        .dyn_into()?;
    if !resp.ok() {
        return Err(JsValue::from_str("chunk not available"));
    }
    let start: f64 = resp
        .headers()
        .get(START_SAMPLE_HEADER)?
        .and_then(|h| h.parse().ok())
        .ok_or("chunk without its place in the song")?;
    let rate: f32 = resp
        .headers()
        .get("content-type")?
        .and_then(|t| {
            let r = t.split(';').find_map(|p| p.trim().strip_prefix("rate="))?;
            r.parse().ok()
        })
        .ok_or("chunk without its sample rate")?;
    let bytes: js_sys::ArrayBuffer = JsFuture::from(resp.array_buffer()?).await?.dyn_into()?;
    let pcm = js_sys::Int16Array::new(&bytes).to_vec();
    let samples: Vec<f32> = pcm.iter().map(|s| *s as f32 / 32768.0).collect();
    let buffer = ctx.create_buffer(1, samples.len().max(1) as u32, rate)?;
    buffer.copy_to_channel(&samples, 0)?;
    Ok((start / rate as f64, buffer))
}
