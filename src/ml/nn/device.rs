//! Where and in what precision the models run: typed as soon as they are read (a flag, an
//! environment variable), so a wrong value stops the program at start, not at the first job.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use candle_core::{DType, Device};

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
                        "device {self} asked for, but this build has no CUDA support (rebuild \
                         with `cargo build --release --features cuda`)"
                    );
                }
                Ok(Device::new_cuda(ordinal)?)
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
