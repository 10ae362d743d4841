//! Models, with no knowledge of HTTP. Text → codes → waveform lives in `t5`, `musicgen`,
//! `encodec`, tied together by `generate`; photo → caption in `photo` (intake),
//! `vision_input` (pixels), `blip` + `blip_text`, `clip`, `palette`; photo hints + choices →
//! prompt in `prompt` (words from `vocabulary`); weights are found by `hub`.
//! Intake, palette and prompt build alone (feature `intake`) so they can be fuzzed.
#[cfg(feature = "ssr")]
pub mod activations;
#[cfg(feature = "ssr")]
pub mod blip;
#[cfg(feature = "ssr")]
pub mod blip_text;
#[cfg(feature = "ssr")]
pub mod clip;
#[cfg(feature = "ssr")]
pub mod clip_model;
#[cfg(feature = "ssr")]
pub mod cpu_attention;
#[cfg(feature = "ssr")]
pub mod device;
#[cfg(feature = "ssr")]
pub mod encodec;
#[cfg(feature = "ssr")]
pub mod generate;
#[cfg(feature = "ssr")]
pub mod hints;
#[cfg(feature = "ssr")]
pub mod host_matmul;
#[cfg(feature = "ssr")]
pub mod hub;
#[cfg(feature = "ssr")]
pub mod linear;
#[cfg(feature = "ssr")]
pub mod musicgen;
#[cfg(feature = "ssr")]
pub mod packed_gemm;
pub mod palette;
pub mod photo;
pub mod prompt;
#[cfg(feature = "ssr")]
pub mod sampling;
#[cfg(feature = "ssr")]
pub mod t5;
#[cfg(feature = "ssr")]
pub mod tiny;
#[cfg(feature = "ssr")]
pub mod vision_input;
pub use crate::vocabulary;
#[cfg(feature = "ssr")]
pub mod wav;
