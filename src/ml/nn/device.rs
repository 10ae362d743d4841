//! Where and in what precision the models run: typed as soon as they are read (a flag, an
//! environment variable), so a wrong value stops the program at start, not at the first job.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use candle_core::{DType, Device};

use crate::ml::kernels::isa::{self, Isa};

/// The device asked for: `cpu`, `cuda` or `cuda:N`. Parsing checks the words; `open`
/// checks that this build and machine can run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            _ => match s.strip_prefix("cuda:") {
                Some(n) => n
                    .parse()
                    .map(Self::Cuda)
                    .map_err(|_| anyhow::anyhow!("bad CUDA device {s:?}: expected cuda or cuda:N")),
                None => bail!("unknown device {s:?}: expected cpu or cuda"),
            },
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceChoice {
    /// The candle device; CUDA needs the `cuda` cargo feature and a GPU.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => {
                if !candle_core::utils::cuda_is_available() {
                    bail!(
                        "device {self} asked for, but this build has no CUDA support (make \
                         the CUDA build with `scripts/setup-cuda --build`: \
                         target/cuda/release/snapsong)"
                    );
                }
                Device::new_cuda(ordinal).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot open GPU {ordinal}: {e} (is the NVIDIA driver installed and \
                         the GPU visible? nvidia-smi -L lists them)"
                    )
                })
            }
        }
    }
}

/// `cpu` or `cuda` (`cuda:N` for another GPU), opened.
pub fn parse_device(s: &str) -> Result<Device> {
    s.parse::<DeviceChoice>()?.open()
}

/// How the MusicGen decoder LM holds its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
    BF16,
    /// 8-bit block-quantized weights, f32 activations: the fast choice on a CPU.
    Q8_0,
}

impl Precision {
    /// The precision a checkpoint loaded in `dtype` keeps.
    pub fn of_dtype(dtype: DType) -> Self {
        match dtype {
            DType::F16 => Precision::F16,
            DType::BF16 => Precision::BF16,
            _ => Precision::F32,
        }
    }

    /// What the projections of a model bound by arithmetic (a vision transformer: hundreds
    /// of rows per product) keep. On a CPU, 8-bit weights when asked for (the integer GEMM,
    /// activations f32 and 16-bit inside the product), else f32: there is no fast CPU
    /// product for f16/bf16 with many rows. On a GPU, the dtype the checkpoint was loaded
    /// in (`loaded`).
    pub fn for_gemm(self, device: &Device, loaded: DType) -> Self {
        match (device.is_cpu(), self) {
            (true, Precision::Q8_0) => Precision::Q8_0,
            (true, _) => Precision::F32,
            (false, _) => Self::of_dtype(loaded),
        }
    }

    /// The dtype activations (and unquantized weights) use.
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 | Precision::Q8_0 => DType::F32,
            Precision::F16 => DType::F16,
            Precision::BF16 => DType::BF16,
        }
    }
}

/// `f32`, `f16`, `bf16` or `q8_0`.
pub fn parse_precision(s: &str) -> Result<Precision> {
    match s.trim().to_ascii_lowercase().as_str() {
        "q8_0" | "q8" => Ok(Precision::Q8_0),
        other => match parse_dtype(other) {
            Ok(DType::F16) => Ok(Precision::F16),
            Ok(DType::BF16) => Ok(Precision::BF16),
            Ok(_) => Ok(Precision::F32),
            Err(_) => bail!("unknown dtype {other:?}: expected f32, f16, bf16 or q8_0"),
        },
    }
}

impl FromStr for Precision {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        parse_precision(s)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::BF16 => "bf16",
            Precision::Q8_0 => "q8_0",
        })
    }
}

/// `--dtype`: a precision, or `auto` for the fastest one that stays close to f32 on the
/// device (resolved once the device is open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtypeChoice {
    #[default]
    Auto,
    Exact(Precision),
}

impl DtypeChoice {
    /// On a CPU with AVX2 or better, 8-bit weights: the decoder reads a quarter of the
    /// bytes and its logits keep a cosine of 0.9999 with f32 (scripts/bench/musicgen);
    /// BLIP and CLIP run their products as integer multiply-adds, 1.4–1.6× f32's rate,
    /// and fed the same tokens BLIP's picks differ from f32's only at exact ties
    /// (scripts/bench/vision). Without vector units, f32. On a GPU f32 too: there a step
    /// is bound by kernel launches, not by reading weights, and bf16 measured slower than
    /// f32 on an H100 (12.8 against 10.8 ms a step for musicgen-small, scripts/bench/gpu)
    /// while moving the logits (cosine 0.9995).
    pub fn resolve(self, device: &Device) -> Precision {
        match self {
            Self::Exact(p) => p,
            Self::Auto if device.is_cpu() && isa::active() >= Isa::Avx2 => Precision::Q8_0,
            Self::Auto => Precision::F32,
        }
    }
}

impl FromStr for DtypeChoice {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            other => parse_precision(other).map(Self::Exact).map_err(|_| {
                anyhow::anyhow!("unknown dtype {other:?}: expected auto, f32, f16, bf16 or q8_0")
            }),
        }
    }
}

impl fmt::Display for DtypeChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Exact(p) => p.fmt(f),
        }
    }
}

/// `f32`, `f16` or `bf16`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(DType::F32),
        "f16" | "float16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => bail!("unknown dtype {other:?}: expected f32, f16 or bf16"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_parse_and_unknown_is_refused() {
        assert_eq!(parse_dtype("F16").unwrap(), DType::F16);
        assert_eq!(parse_dtype("bf16").unwrap(), DType::BF16);
        let e = parse_dtype("int3").unwrap_err().to_string();
        assert!(e.contains("unknown dtype"), "{e}");
        assert_eq!(parse_precision("q8_0").unwrap(), Precision::Q8_0);
        assert_eq!(parse_precision("bf16").unwrap().dtype(), DType::BF16);
        assert!(parse_precision("int3")
            .unwrap_err()
            .to_string()
            .contains("unknown dtype"));
    }

    #[test]
    fn auto_resolves_by_device_and_exact_is_kept() {
        let auto: DtypeChoice = "AUTO".parse().unwrap();
        let want = match isa::active() >= Isa::Avx2 {
            true => Precision::Q8_0,
            false => Precision::F32,
        };
        assert_eq!(auto.resolve(&Device::Cpu), want);
        let bf16: DtypeChoice = "bf16".parse().unwrap();
        assert_eq!(bf16.resolve(&Device::Cpu), Precision::BF16);
        assert_eq!(bf16.to_string(), "bf16");
        let e = "int4".parse::<DtypeChoice>().unwrap_err().to_string();
        assert!(e.contains("expected auto"), "{e}");
    }

    #[test]
    fn gemm_models_keep_f32_or_8_bit_on_a_cpu() {
        let cpu = Device::Cpu;
        assert_eq!(Precision::Q8_0.for_gemm(&cpu, DType::F32), Precision::Q8_0);
        for p in [Precision::F32, Precision::F16, Precision::BF16] {
            assert_eq!(p.for_gemm(&cpu, p.dtype()), Precision::F32, "{p}");
        }
        assert_eq!(Precision::of_dtype(DType::BF16), Precision::BF16);
        assert_eq!(Precision::of_dtype(DType::F64), Precision::F32);
    }

    #[test]
    fn devices_parse() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device("tpu")
            .unwrap_err()
            .to_string()
            .contains("unknown device"));
        if !candle_core::utils::cuda_is_available() {
            let e = parse_device("cuda").unwrap_err().to_string();
            assert!(e.contains("no CUDA support"), "{e}");
        }
    }
}
