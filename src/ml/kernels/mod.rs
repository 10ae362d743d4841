//! CPU kernels the layers run on: matrix products over weights kept in their storage
//! precision (`host_matmul`), a packed-weight f32 GEMM (`packed_gemm`) and its 16-bit
//! integer twin (`packed_i16`), fused attention over a projection's output
//! (`cpu_attention`), one decoding step's attention over a KV cache (`decode_attention`),
//! 8-bit products (`q8`), activations over all cores, an LSTM step (`lstm_cell`) and rows
//! summed with fixed coefficients (`row_combinations`: Winograd's transforms). The vector
//! instructions are chosen at run time (`isa`). CPU only: on a GPU the layers use
//! candle's own ops.
pub mod activations;
pub mod cpu_attention;
pub mod decode_attention;
pub mod host_matmul;
pub mod isa;
pub mod keep_awake;
#[cfg(target_arch = "x86_64")]
mod lanes;
pub mod lstm_cell;
pub mod packed_gemm;
pub mod packed_i16;
pub mod q8;
pub mod row_combinations;
mod tiled;
