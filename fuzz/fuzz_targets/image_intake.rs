//! Photo intake on arbitrary bytes: sniff, decode with limits, orient, then the palette and
//! a cover. Never a panic, never an image over the limits. (The share card and JPEG
//! encoding only ever see a decoded RGB image; they would cut the runs per second ~10×.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapsong::photo::palette::palette;
use snapsong::photo::{decode, square_cover, Limits};

fuzz_target!(|data: &[u8]| {
    // The server's limits, scaled down so each run stays fast; the checks are the same code.
    let limits = Limits {
        max_pixels: 4_000_000,
        max_side: 4096,
        max_alloc: 64 * 1024 * 1024,
        ..Limits::default()
    };
    let Ok(photo) = decode(data, &limits) else {
        return;
    };
    let (w, h) = photo.image.dimensions();
    assert!(w > 0 && h > 0, "an empty image was accepted");
    assert!(u64::from(w) * u64::from(h) <= limits.max_pixels);
    assert!(w <= limits.max_side && h <= limits.max_side);
    let p = palette(&photo.image, 5);
    assert!(p.brightness.is_finite() && p.saturation.is_finite() && p.warmth.is_finite());
    assert_eq!(square_cover(&photo.image, 64).dimensions(), (64, 64));
});
