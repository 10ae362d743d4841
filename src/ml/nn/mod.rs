//! Layers every model shares: `Linear` in each precision, and where models run
//! (`device`: CPU or CUDA, f32/f16/bf16/q8_0), encoder self-`attention`.
pub mod attention;
pub mod device;
pub mod linear;
