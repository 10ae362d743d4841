//! CPU kernels the layers run on: matrix products over weights kept in their storage
//! precision (`host_matmul`), a packed-weight f32 GEMM (`packed_gemm`), fused attention
//! over a projection's output (`cpu_attention`) and activations over all cores.
//! CPU only: on a GPU the layers use candle's own ops.
pub mod activations;
pub mod cpu_attention;
pub mod host_matmul;
pub mod packed_gemm;
