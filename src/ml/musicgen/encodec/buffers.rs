//! The signal buffers a decode passes from layer to layer, kept for the next layer and the
//! next decode.
//!
//! Why: each layer writes a new signal, up to 123 MB for 15 s of audio (the last stage:
//! 480 000 frames of 64 channels). jemalloc hands the freed ones to the next decode's
//! small signals, so the big ones came fresh from the system on every decode and the
//! kernel faulted in and zeroed their pages on first touch (2 % of a decode, perf, 2-core
//! AMD EPYC). A decode holds two signals at a time, a layer's input and its output, so
//! two buffers, grown to the largest layer, serve every layer of every decode.

use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

/// Buffers a decoder keeps: a layer's input and its output.
const KEPT: usize = 2;

/// Largest buffer kept, in floats (128 MB: the last stage of a 15 s decode at 32 kHz and
/// 64 channels). A longer whole-song decode allocates its own, so an idle worker does not
/// hold gigabytes after a three-minute song.
const KEPT_MAX_FLOATS: usize = 1 << 25;

pub struct Buffers {
    /// Free buffers, smallest first.
    free: Mutex<Vec<Vec<f32>>>,
    /// How many of the largest are kept.
    kept: usize,
}

impl Default for Buffers {
    fn default() -> Self {
        Self::keeping(KEPT)
    }
}

impl Buffers {
    /// A pool that keeps the `kept` largest buffers given back.
    pub fn keeping(kept: usize) -> Self {
        Self {
            free: Mutex::default(),
            kept,
        }
    }

    /// The largest free buffer (empty when none is): for `sized`.
    pub fn take(&self) -> Vec<f32> {
        // A panic elsewhere while the lock was held leaves a list of whole buffers.
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        free.pop().unwrap_or_default()
    }

    /// A buffer no longer needed, kept if it is among the `kept` largest.
    pub fn give(&self, buf: Vec<f32>) {
        if buf.capacity() == 0 || buf.capacity() > KEPT_MAX_FLOATS {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        let at = free.partition_point(|b| b.capacity() <= buf.capacity());
        free.insert(at, buf);
        if free.len() > self.kept {
            free.remove(0);
        }
    }
}

/// `buf` made `len` floats long, for a layer that writes every one of them: what it held
/// stays (its pages are mapped already; zeroing them would be another pass over memory).
/// Unit tests fill it with NaN instead, so a layer that leaves an element out fails them.
pub fn sized(mut buf: Vec<f32>, len: usize) -> Vec<f32> {
    if cfg!(test) {
        buf.clear();
        buf.resize(len, f32::NAN);
    } else if buf.capacity() < len {
        // Growing would copy the old contents first, for nothing.
        buf = vec![0f32; len];
    } else if buf.len() >= len {
        buf.truncate(len);
    } else {
        // The new part must hold something before it can be handed out: zeros, written
        // by every thread. One thread alone zeroed up to 61 MB per layer while the other
        // waited: 15 s decodes took 4-8 % longer (alternated runs, 2-core AMD EPYC).
        let grow = len - buf.len();
        buf.par_extend(rayon::iter::repeat_n(0f32, grow));
    }
    buf
}

/// What Winograd's products keep from one chunk to the next: the transformed inputs,
/// the partial products that are combined into the output, and the zero-extended
/// window and rows of a chunk's last, partial group.
#[derive(Default)]
pub struct WinogradScratch {
    pub inputs: Vec<f32>,
    pub products: Vec<f32>,
    pub window: Vec<f32>,
    pub rows: Vec<f32>,
}

/// The first `len` floats of a task's scratch buffer, grown if it is shorter, for a
/// caller that writes all of them before it reads any (NaN in unit tests, as `sized`).
pub fn reused(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if cfg!(test) {
        buf.clear();
        buf.resize(len, f32::NAN);
    } else if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_largest_buffers_for_the_next_layer() {
        let buffers = Buffers::default();
        assert!(buffers.take().is_empty());
        for len in [10, 30, 20] {
            buffers.give(Vec::with_capacity(len));
        }
        // The two largest, largest first; the smallest was let go.
        assert!(buffers.take().capacity() >= 30);
        assert!(buffers.take().capacity() >= 20);
        assert_eq!(buffers.take().capacity(), 0);
        // Too large to keep.
        buffers.give(Vec::with_capacity(KEPT_MAX_FLOATS + 1));
        assert_eq!(buffers.take().capacity(), 0);
    }

    #[test]
    fn sized_buffers_have_the_asked_length() {
        let buf = sized(vec![1.0; 100], 40);
        assert_eq!(buf.len(), 40);
        let buf = sized(buf, 70);
        assert_eq!(buf.len(), 70);
        assert!(
            buf.iter().all(|v| v.is_nan()),
            "tests see every element unwritten"
        );
    }
}
