//! The models, with no knowledge of HTTP or the database (ssr only). The data path:
//!
//! ```text
//! photo (crate::photo) ──► vision::preprocess ──► vision::blip   ──► caption ─┐
//!                                             └─► vision::clip   ──► moods,  ─┼─► vision::hints
//!                          crate::photo::palette ──────────────────► colours ─┘        │
//!                                                                                      ▼
//! the person's words ──► text (MiniLM sentence embeddings: moods, genres, key sentences) ─┐
//!                                                                                      ▼
//! prompt text ◄─────────── crate::prompt (words reader + composer + vocabulary) ◄─ hints + choices
//!      │
//!      ▼
//! musicgen::t5 ──► musicgen::decoder (+ sampling, delay pattern, guidance: musicgen::generate)
//!      ──► audio codes ──► musicgen::encodec ──► waveform ──► musicgen::wav
//! ```
//!
//! Underneath: `weights` finds and loads checkpoints (hub cache, local dirs, tiny random
//! sets), `nn` holds the layers shared by every model (`Linear` in each precision, device
//! choice), `kernels` the CPU kernels they run on.
//!
//! Errors: networks (`load(vb)`, `forward`) return `candle_core::Result`, as in
//! candle-transformers; everything that reads files, configs or options returns
//! `anyhow::Result` with context. See `server::error` for the whole policy.
pub mod kernels;
pub mod musicgen;
pub mod nn;
pub mod text;
pub mod vision;
pub mod weights;

pub use musicgen::decoding::Decoding;
pub use musicgen::generate::{Cancelled, GenerateOptions, Length, Progress};
pub use musicgen::sampling::SamplingConfig;
pub use musicgen::{mp3, wav, MusicGen};
pub use nn::device::{DeviceChoice, DtypeChoice, Precision};
pub use text::sense::WordReader;
pub use vision::blip::Captioner;
pub use vision::clip::ClipScorer;
pub use vision::hints::photo_hints;
pub use weights::{hub, tiny};
