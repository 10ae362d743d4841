//! A photo's colours: dominant colours by k-means in Oklab (a perceptual space, so clusters
//! are colours people would name apart), plus brightness, saturation and warmth. These
//! drive tempo/energy hints for the prompt and the player's visualizer colours.

use image::RgbImage;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Swatch {
    /// "#rrggbb"
    pub hex: String,
    /// Share of the photo's pixels, 0–1.
    pub share: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Palette {
    /// Most common first.
    pub colours: Vec<Swatch>,
    /// Mean Oklab lightness, 0 (black) – 1 (white).
    pub brightness: f32,
    /// Mean Oklab chroma scaled to about 0–1.
    pub saturation: f32,
    /// −1 (cool, blue) … +1 (warm, orange/red), chroma-weighted.
    pub warmth: f32,
}

fn srgb_to_linear(c: u8) -> f32 {
    let c = c as f32 / 255.0;
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb(c: f32) -> u8 {
    let c = c.clamp(0.0, 1.0);
    let s = if c <= 0.003_130_8 {
        c * 12.92
    } else {
        1.055 * c.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0).round() as u8
}

/// sRGB → Oklab (Björn Ottosson's matrices).
fn oklab(rgb: [u8; 3]) -> [f32; 3] {
    let [r, g, b] = rgb.map(srgb_to_linear);
    let l = 0.412_221_46 * r + 0.536_332_55 * g + 0.051_445_995 * b;
    let m = 0.211_903_5 * r + 0.680_699_5 * g + 0.107_396_96 * b;
    let s = 0.088_302_46 * r + 0.281_718_85 * g + 0.629_978_7 * b;
    let (l, m, s) = (l.cbrt(), m.cbrt(), s.cbrt());
    [
        0.210_454_26 * l + 0.793_617_8 * m - 0.004_072_047 * s,
        1.977_998_5 * l - 2.428_592_2 * m + 0.450_593_7 * s,
        0.025_904_037 * l + 0.782_771_77 * m - 0.808_675_77 * s,
    ]
}

fn oklab_to_rgb([l, a, b]: [f32; 3]) -> [u8; 3] {
    let l_ = l + 0.396_337_78 * a + 0.215_803_76 * b;
    let m_ = l - 0.105_561_346 * a - 0.063_854_17 * b;
    let s_ = l - 0.089_484_18 * a - 1.291_485_5 * b;
    let (l3, m3, s3) = (l_.powi(3), m_.powi(3), s_.powi(3));
    [
        4.076_741_7 * l3 - 3.307_711_6 * m3 + 0.230_969_94 * s3,
        -1.268_438 * l3 + 2.609_757_4 * m3 - 0.341_319_38 * s3,
        -0.004_196_086_3 * l3 - 0.703_418_6 * m3 + 1.707_614_7 * s3,
    ]
    .map(linear_to_srgb)
}

fn dist2(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// Dominant colours and tone of a photo. Deterministic: the photo is sampled on a fixed
/// grid and k-means starts from a farthest-point seeding, so the same photo always gives
/// the same palette.
pub fn palette(img: &RgbImage, k: usize) -> Palette {
    let (w, h) = img.dimensions();
    // ~10k samples are plenty for colour statistics and keep this a few milliseconds.
    let step = ((w as u64 * h as u64 / 10_000) as f64).sqrt().max(1.0) as u32;
    let mut points = Vec::new();
    for y in (0..h).step_by(step as usize) {
        for x in (0..w).step_by(step as usize) {
            points.push(oklab(img.get_pixel(x, y).0));
        }
    }
    let n = points.len().max(1) as f32;
    let brightness = points.iter().map(|p| p[0]).sum::<f32>() / n;
    let chroma = |p: &[f32; 3]| (p[1] * p[1] + p[2] * p[2]).sqrt();
    let saturation = (points.iter().map(chroma).sum::<f32>() / n / 0.2).min(1.0);
    // Warm hues have positive a (red) and b (yellow); cool ones negative b (blue).
    let total_chroma: f32 = points.iter().map(chroma).sum::<f32>().max(1e-6);
    let warmth = points
        .iter()
        .map(|p| (0.5 * p[1] + p[2]) / (0.5 * p[1].abs() + p[2].abs()).max(1e-6) * chroma(p))
        .sum::<f32>()
        / total_chroma;

    let k = k.clamp(1, points.len().max(1));
    let mut centres = vec![points.first().copied().unwrap_or([0.0; 3])];
    while centres.len() < k {
        let far = points
            .iter()
            .max_by(|a, b| {
                let da = centres.iter().map(|c| dist2(a, c)).fold(f32::MAX, f32::min);
                let db = centres.iter().map(|c| dist2(b, c)).fold(f32::MAX, f32::min);
                da.total_cmp(&db)
            })
            .copied()
            .unwrap_or([0.0; 3]);
        centres.push(far);
    }
    let mut counts = vec![0usize; k];
    for _ in 0..12 {
        let mut sums = vec![[0f32; 3]; k];
        counts = vec![0; k];
        for p in &points {
            let (best, _) = centres
                .iter()
                .enumerate()
                .map(|(i, c)| (i, dist2(p, c)))
                .fold((0, f32::MAX), |m, x| if x.1 < m.1 { x } else { m });
            counts[best] += 1;
            for d in 0..3 {
                sums[best][d] += p[d];
            }
        }
        for i in 0..k {
            if counts[i] > 0 {
                centres[i] = sums[i].map(|s| s / counts[i] as f32);
            }
        }
    }
    let mut colours: Vec<Swatch> = centres
        .iter()
        .zip(&counts)
        .filter(|(_, &c)| c > 0)
        .map(|(c, &count)| {
            let [r, g, b] = oklab_to_rgb(*c);
            Swatch {
                hex: format!("#{r:02x}{g:02x}{b:02x}"),
                share: count as f32 / n,
            }
        })
        .collect();
    colours.sort_by(|a, b| b.share.total_cmp(&a.share).then(a.hex.cmp(&b.hex)));
    Palette {
        colours,
        brightness,
        saturation,
        warmth: warmth.clamp(-1.0, 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oklab_round_trips() {
        for rgb in [
            [0, 0, 0],
            [255, 255, 255],
            [200, 30, 40],
            [10, 120, 250],
            [90, 200, 90],
        ] {
            let back = oklab_to_rgb(oklab(rgb));
            for c in 0..3 {
                assert!(
                    (back[c] as i32 - rgb[c] as i32).abs() <= 1,
                    "{rgb:?} → {back:?}"
                );
            }
        }
    }

    #[test]
    fn two_colour_photo_gives_those_colours_and_tone() {
        // Left 3/4 deep blue, right 1/4 orange.
        let img = RgbImage::from_fn(200, 100, |x, _| {
            image::Rgb(if x < 150 {
                [20, 40, 160]
            } else {
                [240, 140, 20]
            })
        });
        let p = palette(&img, 4);
        assert_eq!(p.colours[0].hex, "#1428a0");
        assert!((p.colours[0].share - 0.75).abs() < 0.02);
        assert!(p.colours.iter().any(|s| s.hex == "#f08c14"));
        assert!(p.warmth < 0.0, "mostly blue is cool: {}", p.warmth);
        assert_eq!(palette(&img, 4), p, "deterministic");

        let warm = RgbImage::from_pixel(50, 50, image::Rgb([250, 150, 40]));
        let wp = palette(&warm, 3);
        assert!(wp.warmth > 0.5 && wp.saturation > 0.5 && wp.brightness > 0.6);
        let dark = RgbImage::from_pixel(50, 50, image::Rgb([15, 15, 18]));
        let dp = palette(&dark, 3);
        assert!(dp.brightness < 0.25 && dp.saturation < 0.1);
        assert_eq!(dp.colours.len(), 1, "one colour, one swatch");
    }
}
