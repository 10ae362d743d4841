//! Photo → the pixel tensor a vision model expects, as transformers' image processors make
//! it: `BlipImageProcessor` (resize to a fixed square, no crop) and `CLIPImageProcessor`
//! (resize the short side, centre crop). Both resize with bicubic filtering, rescale by
//! 1/255 and normalise with OpenAI's CLIP mean and std.

use candle_core::{Device, Tensor};
use image::imageops::FilterType;
use image::RgbImage;

pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Channel-first (3, h, w) values, normalised.
fn normalised_chw(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (px[c] as f32 / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
        }
    }
    out
}

/// `BlipImageProcessor`: bicubic resize straight to `height`×`width` (aspect not kept).
pub fn blip_pixels(img: &RgbImage, height: u32, width: u32) -> Vec<f32> {
    // Catmull-Rom is the bicubic kernel PIL uses (a = −0.5), widened when downscaling.
    let resized = image::imageops::resize(img, width, height, FilterType::CatmullRom);
    normalised_chw(&resized)
}

/// `CLIPImageProcessor`: bicubic resize so the short side is `short_side` (the long side
/// truncated as transformers computes it), then a centre crop of `crop`×`crop`.
pub fn clip_pixels(img: &RgbImage, short_side: u32, crop: u32) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let (nw, nh) = if w <= h {
        (short_side, (short_side as u64 * h as u64 / w as u64) as u32)
    } else {
        ((short_side as u64 * w as u64 / h as u64) as u32, short_side)
    };
    let resized = image::imageops::resize(img, nw, nh, FilterType::CatmullRom);
    let (cw, ch) = (crop.min(nw), crop.min(nh));
    let cropped =
        image::imageops::crop_imm(&resized, (nw - cw) / 2, (nh - ch) / 2, cw, ch).to_image();
    normalised_chw(&cropped)
}

/// Values from [`blip_pixels`] or [`clip_pixels`] as a (1, 3, h, w) tensor.
pub fn to_tensor(
    chw: Vec<f32>,
    height: usize,
    width: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    Tensor::from_vec(chw, (1, 3, height, width), device)
}
