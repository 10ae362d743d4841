//! Which vector instructions the CPU kernels use, chosen at run time: one binary runs its
//! fastest path on an AVX-512 server, an AVX2 laptop or anything else.
//!
//! `SNAPSONG_KERNEL=avx512|avx2|portable` caps the choice (never above what the CPU has),
//! so benchmarks can report an AVX2 machine's path on an AVX-512 one and tests can run
//! every path the CPU has.

use std::fmt;
use std::sync::OnceLock;

/// The environment variable that caps the kernel path.
pub const KERNEL_ENV: &str = "SNAPSONG_KERNEL";

/// A kernel path, in increasing order of what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust the compiler vectorises for the build target.
    Portable,
    /// AVX2 + FMA + F16C (x86-64 since 2013; most AMD servers before Zen 4, most laptops).
    Avx2,
    /// AVX-512 F/BW/VL on top of AVX2 (Intel servers since Skylake-SP, AMD Zen 4).
    Avx512,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portable" | "scalar" | "none" => Some(Isa::Portable),
            "avx2" => Some(Isa::Avx2),
            "avx512" | "avx-512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    /// Every path this CPU can run, the portable one first: what kernel tests cover.
    pub fn available() -> Vec<Isa> {
        let best = detect();
        [Isa::Portable, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter(|i| *i <= best)
            .collect()
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The best path the CPU supports. Read once: kernels assert it on every call, some
/// hundreds of thousands of times a decode (six feature tests each cost more than a
/// short row's work).
pub fn detect() -> Isa {
    static BEST: OnceLock<Isa> = OnceLock::new();
    *BEST.get_or_init(probe)
}

/// What `detect` reads from the CPU.
fn probe() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        let avx512 = avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl");
        if avx512 {
            return Isa::Avx512;
        }
        if avx2 {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// Whether the CPU has integer dot products (`vpdpwssd`, `vpdpbusd`) on 256-bit vectors:
/// AVX-512 VNNI with VL. (std caches the answer.)
pub fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    return is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The path the kernels use: the best the CPU has, capped by `SNAPSONG_KERNEL`. Read once.
pub fn active() -> Isa {
    static ACTIVE: OnceLock<Isa> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let best = detect();
        match std::env::var(KERNEL_ENV) {
            Ok(v) => match Isa::parse(&v) {
                Some(cap) => cap.min(best),
                None => {
                    tracing::warn!(
                        "{KERNEL_ENV}={v:?} is not avx512, avx2 or portable; using {best}"
                    );
                    best
                }
            },
            Err(_) => best,
        }
    })
}

/// What the kernels run on, for logs and benchmarks: "avx512 + vnni", "avx2", …
pub fn describe() -> String {
    match active() {
        Isa::Avx512 if has_vnni() => "avx512 + vnni".to_string(),
        isa => isa.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_paths_are_ordered() {
        for isa in [Isa::Portable, Isa::Avx2, Isa::Avx512] {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
        }
        assert_eq!(Isa::parse("sse9"), None);
        let all = Isa::available();
        assert_eq!(all[0], Isa::Portable);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert!(active() <= detect());
    }
}
