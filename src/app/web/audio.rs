//! The Web Audio engine behind the player (hydrate build): an AudioContext → gain →
//! analyser → speakers graph, a decoded AudioBuffer played from any offset, waveform peaks
//! computed once, and the two canvases drawn each animation frame.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AnalyserNode, AudioBuffer, AudioBufferSourceNode, AudioContext, CanvasRenderingContext2d,
    GainNode, HtmlCanvasElement,
};

pub struct Engine {
    ctx: AudioContext,
    gain: GainNode,
    analyser: AnalyserNode,
    buffer: Option<AudioBuffer>,
    source: Option<AudioBufferSourceNode>,
    /// Context time at which offset 0 of the current source would have played.
    started_at: f64,
    /// Position while paused.
    offset: f64,
    playing: bool,
    pub looping: bool,
    /// Set when playback reached the end on its own (read once by the frame loop).
    ended: bool,
}

impl Engine {
    /// Created suspended until the first tap starts it (the mobile rule).
    pub fn new() -> Result<Self, JsValue> {
        let ctx = AudioContext::new()?;
        let gain = ctx.create_gain()?;
        let analyser = ctx.create_analyser()?;
        analyser.set_fft_size(256);
        analyser.set_smoothing_time_constant(0.8);
        gain.connect_with_audio_node(&analyser)?;
        analyser.connect_with_audio_node(&ctx.destination())?;
        Ok(Self {
            ctx,
            gain,
            analyser,
            buffer: None,
            source: None,
            started_at: 0.0,
            offset: 0.0,
            playing: false,
            looping: false,
            ended: false,
        })
    }

    pub fn context(&self) -> AudioContext {
        self.ctx.clone()
    }

    pub fn set_buffer(&mut self, buffer: AudioBuffer) {
        self.buffer = Some(buffer);
    }

    pub fn loaded(&self) -> bool {
        self.buffer.is_some()
    }

    pub fn duration(&self) -> f64 {
        self.buffer.as_ref().map(|b| b.duration()).unwrap_or(0.0)
    }

    pub fn playing(&self) -> bool {
        self.playing
    }

    pub fn position(&self) -> f64 {
        let t = if self.playing {
            self.ctx.current_time() - self.started_at
        } else {
            self.offset
        };
        t.clamp(0.0, self.duration())
    }

    pub fn play(&mut self) {
        let Some(buffer) = self.buffer.clone() else {
            return;
        };
        let _ = self.ctx.resume();
        self.stop_source();
        if self.offset >= buffer.duration() - 0.01 {
            self.offset = 0.0;
        }
        let Ok(src) = self.ctx.create_buffer_source() else {
            return;
        };
        src.set_buffer(Some(&buffer));
        if src.connect_with_audio_node(&self.gain).is_err() {
            return;
        }
        if src
            .start_with_when_and_grain_offset(0.0, self.offset)
            .is_err()
        {
            return;
        }
        self.started_at = self.ctx.current_time() - self.offset;
        self.source = Some(src);
        self.playing = true;
        self.ended = false;
    }

    pub fn pause(&mut self) {
        if self.playing {
            self.offset = self.position();
            self.stop_source();
            self.playing = false;
        }
    }

    pub fn toggle(&mut self) {
        if self.playing {
            self.pause()
        } else {
            self.play()
        }
    }

    pub fn seek(&mut self, t: f64) {
        let t = t.clamp(0.0, self.duration());
        if self.playing {
            self.offset = t;
            self.play();
        } else {
            self.offset = t;
        }
    }

    pub fn skip(&mut self, by: f64) {
        self.seek(self.position() + by);
    }

    pub fn set_volume(&self, v: f64) {
        self.gain.gain().set_value(v.clamp(0.0, 1.0) as f32);
    }

    fn stop_source(&mut self) {
        if let Some(src) = self.source.take() {
            #[allow(deprecated)]
            let _ = src.stop();
            let _ = src.disconnect();
        }
    }

    /// Called every frame: notices the end of the song (loops or stops there).
    /// Returns true once when a non-looping song has ended.
    pub fn tick(&mut self) -> bool {
        if self.playing && self.ctx.current_time() - self.started_at >= self.duration() {
            if self.looping {
                self.offset = 0.0;
                self.play();
            } else {
                self.stop_source();
                self.playing = false;
                self.offset = 0.0;
                self.ended = true;
            }
        }
        std::mem::take(&mut self.ended)
    }

    pub fn frequencies(&self, out: &mut Vec<u8>) {
        out.resize(self.analyser.frequency_bin_count() as usize, 0);
        self.analyser.get_byte_frequency_data(out);
    }
}

/// Fetch and decode a song.
pub async fn load(ctx: &AudioContext, url: &str) -> Result<AudioBuffer, JsValue> {
    let window = web_sys::window().ok_or("no window")?;
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await?
        .dyn_into()?;
    if !resp.ok() {
        return Err(JsValue::from_str(&format!(
            "the song could not be fetched ({})",
            resp.status()
        )));
    }
    let bytes: js_sys::ArrayBuffer = JsFuture::from(resp.array_buffer()?).await?.dyn_into()?;
    let decoded = JsFuture::from(ctx.decode_audio_data(&bytes)?).await?;
    decoded.dyn_into()
}

/// Peak absolute amplitude in each of `bins` slices of the first channel, scaled so the
/// loudest is 1.
pub fn peaks(buffer: &AudioBuffer, bins: usize) -> Vec<f32> {
    let data = buffer.get_channel_data(0).unwrap_or_default();
    let per = (data.len() / bins.max(1)).max(1);
    let mut out: Vec<f32> = data
        .chunks(per)
        .take(bins)
        .map(|c| c.iter().fold(0f32, |m, v| m.max(v.abs())))
        .collect();
    let top = out.iter().copied().fold(1e-6f32, f32::max);
    out.iter_mut().for_each(|v| *v /= top);
    out
}

fn context_2d(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    // Match the backing store to the displayed size (sharp on high-DPI screens).
    let ratio = web_sys::window()
        .map(|w| w.device_pixel_ratio())
        .unwrap_or(1.0);
    let w = (canvas.client_width() as f64 * ratio) as u32;
    let h = (canvas.client_height() as f64 * ratio) as u32;
    if w > 0 && (canvas.width() != w || canvas.height() != h) {
        canvas.set_width(w);
        canvas.set_height(h);
    }
    canvas.get_context("2d").ok()??.dyn_into().ok()
}

/// Waveform bars, the played part in the first palette colour.
pub fn draw_waveform(canvas: &HtmlCanvasElement, peaks: &[f32], played: f64, colours: &[String]) {
    let Some(g) = context_2d(canvas) else { return };
    let (w, h) = (canvas.width() as f64, canvas.height() as f64);
    g.clear_rect(0.0, 0.0, w, h);
    if peaks.is_empty() {
        return;
    }
    let bar = w / peaks.len() as f64;
    let on = colours
        .first()
        .map(String::as_str)
        .unwrap_or(crate::api::types::ACCENT);
    for (i, p) in peaks.iter().enumerate() {
        let x = i as f64 * bar;
        let bh = (*p as f64 * h * 0.9).max(2.0);
        let done = (x + bar / 2.0) / w <= played;
        g.set_fill_style_str(if done { on } else { "rgba(128,128,128,0.45)" });
        g.fill_rect(x + bar * 0.15, (h - bh) / 2.0, bar * 0.7, bh);
    }
}

/// Frequency bars over the cover, cycling through the palette.
pub fn draw_visualizer(canvas: &HtmlCanvasElement, freqs: &[u8], colours: &[String]) {
    let Some(g) = context_2d(canvas) else { return };
    let (w, h) = (canvas.width() as f64, canvas.height() as f64);
    g.clear_rect(0.0, 0.0, w, h);
    let n = freqs.len().min(64);
    if n == 0 {
        return;
    }
    let bar = w / n as f64;
    for (i, f) in freqs.iter().take(n).enumerate() {
        let bh = *f as f64 / 255.0 * h * 0.8;
        let c = colours
            .get(i % colours.len().max(1))
            .map(String::as_str)
            .unwrap_or(crate::api::types::ACCENT);
        g.set_fill_style_str(c);
        g.set_global_alpha(0.85);
        g.fill_rect(i as f64 * bar + 1.0, h - bh, bar - 2.0, bh);
    }
    g.set_global_alpha(1.0);
}
