//! Photo intake, shared by the CLI and the server: find the real format from the bytes,
//! decode within limits (a decompression bomb is refused from its header, never decoded),
//! apply the EXIF orientation, and make the derived images that are kept (re-encoded, so
//! no EXIF or GPS data survives).

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

/// What intake accepts. The defaults suit phone photos (48 MP sensors) with a margin.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_pixels: u64,
    pub max_side: u32,
    /// Upper bound on what the decoder may allocate.
    pub max_alloc: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            max_pixels: 50_000_000,
            max_side: 16_384,
            max_alloc: 512 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    WebP,
    Gif,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
            Format::WebP => "WebP",
            Format::Gif => "GIF",
        }
    }

    fn image_format(self) -> image::ImageFormat {
        match self {
            Format::Jpeg => image::ImageFormat::Jpeg,
            Format::Png => image::ImageFormat::Png,
            Format::WebP => image::ImageFormat::WebP,
            Format::Gif => image::ImageFormat::Gif,
        }
    }
}

/// Every way a photo can be refused; each message is meant for the person who sent it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhotoError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("{0} images are not supported; please send a JPEG, PNG, WebP or GIF")]
    Unsupported(&'static str),
    #[error("this is not an image (it looks like {0}); please send a JPEG, PNG, WebP or GIF")]
    NotAnImage(&'static str),
    #[error("the image is {width}×{height} pixels; the limit is {max_pixels} pixels and {max_side} per side")]
    TooManyPixels {
        width: u32,
        height: u32,
        max_pixels: u64,
        max_side: u32,
    },
    #[error("decoding this image would need more memory than allowed")]
    OverLimits,
    #[error("the {format} file is damaged or incomplete ({detail})")]
    Corrupt {
        format: &'static str,
        detail: String,
    },
}

/// The format the bytes really are, whatever the file name says.
pub fn sniff(bytes: &[u8]) -> Result<Format, PhotoError> {
    if bytes.is_empty() {
        return Err(PhotoError::Empty);
    }
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return Ok(Format::Jpeg);
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Ok(Format::Gif);
    }
    if bytes.len() >= 12 && starts(b"RIFF") && &bytes[8..12] == b"WEBP" {
        return Ok(Format::WebP);
    }
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return Err(match &bytes[8..12] {
            b"avif" | b"avis" => PhotoError::Unsupported("AVIF"),
            b"heic" | b"heix" | b"hevc" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
                PhotoError::Unsupported("HEIC")
            }
            _ => PhotoError::NotAnImage("a video or MP4 container"),
        });
    }
    if starts(b"BM") {
        return Err(PhotoError::Unsupported("BMP"));
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return Err(PhotoError::Unsupported("TIFF"));
    }
    if starts(b"%PDF") {
        return Err(PhotoError::NotAnImage("a PDF document"));
    }
    let text = bytes
        .iter()
        .take(512)
        .skip_while(|b| b.is_ascii_whitespace());
    let head: Vec<u8> = text.take(256).map(|b| b.to_ascii_lowercase()).collect();
    if head.starts_with(b"<") {
        let svg = head.windows(4).any(|w| w == b"<svg");
        return Err(if svg {
            PhotoError::Unsupported("SVG")
        } else {
            PhotoError::NotAnImage("HTML or XML")
        });
    }
    if std::str::from_utf8(&bytes[..bytes.len().min(512)]).is_ok() {
        return Err(PhotoError::NotAnImage("text"));
    }
    Err(PhotoError::NotAnImage("an unknown binary format"))
}

/// A decoded photo, upright, in 8-bit RGB.
pub struct Photo {
    pub format: Format,
    pub image: RgbImage,
}

/// Decode `bytes` within `limits`. Alpha is dropped and grey expanded to RGB (as PIL's
/// `convert("RGB")`, which is what the models were given in transformers); 16-bit
/// channels are scaled to 8 bits; a GIF gives its first frame.
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Photo, PhotoError> {
    if bytes.len() > limits.max_bytes {
        return Err(PhotoError::TooLarge {
            size: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let format = sniff(bytes)?;
    if format == Format::Jpeg && !jpeg_is_complete(bytes) {
        // The JPEG decoder fills a cut-off scan with grey; refuse it instead.
        return Err(corrupt(
            format,
            "the file is cut off before the end of the image",
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    // Sides are checked below from the header, for a clearer message; the allocation
    // bound stays with the decoder as a second line of defence.
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(|e| refusal(e, format))?;
    // The header is enough to refuse a bomb: check before a single pixel is decoded.
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > limits.max_pixels
        || width > limits.max_side
        || height > limits.max_side
    {
        return Err(PhotoError::TooManyPixels {
            width,
            height,
            max_pixels: limits.max_pixels,
            max_side: limits.max_side,
        });
    }
    if width == 0 || height == 0 {
        return Err(corrupt(format, "it has no pixels"));
    }
    let orientation = decoder.orientation().map_err(|e| refusal(e, format))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| refusal(e, format))?;
    image.apply_orientation(orientation);
    Ok(Photo {
        format,
        image: image.to_rgb8(),
    })
}

/// Whether a JPEG's image data reaches its end-of-image marker. Segments before the first
/// scan are skipped by their lengths (an EXIF thumbnail has its own end marker); inside
/// entropy-coded data 0xFF is always stuffed, so the next FF D9 is the real end.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xDA {
            return bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
        if marker == 0xD9 {
            return false; // ended before any image data
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        i += 2 + len;
    }
    false
}

/// Map a decoder error: a limit hit is its own refusal, anything else is damage.
fn refusal(e: image::ImageError, format: Format) -> PhotoError {
    match e {
        image::ImageError::Limits(_) => PhotoError::OverLimits,
        other => corrupt(format, other),
    }
}

fn corrupt(format: Format, detail: impl ToString) -> PhotoError {
    PhotoError::Corrupt {
        format: format.name(),
        detail: detail.to_string(),
    }
}

/// Scale to cover `width`×`height` and crop the centre (no letterboxing).
pub fn cover(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let scale = (width as f64 / w as f64).max(height as f64 / h as f64);
    let sw = ((w as f64 * scale).round() as u32).max(width);
    let sh = ((h as f64 * scale).round() as u32).max(height);
    let scaled = image::imageops::resize(image, sw, sh, FilterType::CatmullRom);
    image::imageops::crop_imm(&scaled, (sw - width) / 2, (sh - height) / 2, width, height)
        .to_image()
}

/// The 1200×630 image for link previews (Open Graph / Twitter cards).
pub fn share_thumbnail(image: &RgbImage) -> RgbImage {
    cover(image, 1200, 630)
}

/// A square cover for the player and the lock screen.
pub fn square_cover(image: &RgbImage, side: u32) -> RgbImage {
    cover(image, side, side)
}

/// Re-encode as JPEG. Only pixels are written: no EXIF, GPS or other metadata.
pub fn to_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    image.write_with_encoder(encoder)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_sniffed_from_bytes() {
        assert_eq!(sniff(b""), Err(PhotoError::Empty));
        assert_eq!(
            sniff(b"  <?xml version='1.0'?><svg/>"),
            Err(PhotoError::Unsupported("SVG"))
        );
        assert_eq!(
            sniff(b"<!doctype html><html>"),
            Err(PhotoError::NotAnImage("HTML or XML"))
        );
        assert_eq!(
            sniff(b"hello, this is a .jpg"),
            Err(PhotoError::NotAnImage("text"))
        );
        assert_eq!(
            sniff(b"\0\0\0\x18ftypheic\0\0"),
            Err(PhotoError::Unsupported("HEIC"))
        );
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Ok(Format::WebP));
    }

    #[test]
    fn cover_fills_the_frame() {
        let img = RgbImage::from_fn(300, 100, |x, _| image::Rgb([x as u8, 0, 0]));
        let c = cover(&img, 120, 63);
        assert_eq!(c.dimensions(), (120, 63));
        let s = square_cover(&img, 50);
        assert_eq!(s.dimensions(), (50, 50));
        let jpeg = to_jpeg(&s, 85).expect("encode");
        assert_eq!(sniff(&jpeg), Ok(Format::Jpeg));
    }
}
