//! Photo intake on committed fixtures (scripts/parity/make_photo_fixtures.py): accepted
//! formats, hostile input refused clearly, orientation applied, metadata dropped, and the
//! BLIP/CLIP preprocessing against transformers' processors.
#![cfg(feature = "ssr")]

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use snapsong::ml::vision::preprocess::{blip_pixels, clip_pixels};
use snapsong::photo::{self, Format, Limits, PhotoError};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/photos")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn decode(name: &str) -> Result<photo::Photo, PhotoError> {
    photo::decode(&fixture(name), &Limits::default())
}

#[test]
fn every_accepted_format_decodes_to_rgb() {
    for (name, format, size) in [
        ("landscape.jpg", Format::Jpeg, (320, 200)),
        ("portrait.png", Format::Png, (150, 260)),
        ("square.webp", Format::WebP, (240, 240)),
        ("animated.gif", Format::Gif, (48, 32)),
        ("cmyk.jpg", Format::Jpeg, (64, 48)),
        ("grey.png", Format::Png, (64, 48)),
        ("alpha.png", Format::Png, (64, 48)),
        ("sixteen.png", Format::Png, (64, 48)),
    ] {
        let p = decode(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.format, format, "{name}");
        assert_eq!(p.image.dimensions(), size, "{name}");
    }
    // Grey stays grey in RGB; 16-bit values are scaled, not truncated to their low byte.
    let grey = decode("grey.png").expect("grey");
    let sixteen = decode("sixteen.png").expect("16-bit");
    for (a, b) in grey.image.pixels().zip(sixteen.image.pixels()) {
        assert_eq!(a[0], a[1]);
        assert_eq!(a[0], b[0]);
    }
}

#[test]
fn exif_orientation_is_applied_and_metadata_dropped() {
    let bytes = fixture("rotated_exif.jpg");
    assert!(
        bytes.windows(4).any(|w| w == b"Exif"),
        "fixture carries EXIF"
    );
    let p = decode("rotated_exif.jpg").expect("decode");
    assert_eq!(
        p.image.dimensions(),
        (80, 120),
        "stored 120×80, orientation 6"
    );
    let kept = photo::to_jpeg(&photo::square_cover(&p.image, 64), 85).expect("encode");
    assert!(
        !kept.windows(4).any(|w| w == b"Exif"),
        "re-encoded file has no EXIF"
    );
    let thumb = photo::share_thumbnail(&p.image);
    assert_eq!(thumb.dimensions(), (1200, 630));
}

#[test]
fn hostile_input_is_refused_clearly() {
    let limits = Limits::default();
    assert_eq!(photo::decode(&[], &limits).err(), Some(PhotoError::Empty));
    assert!(matches!(
        decode("text.jpg"),
        Err(PhotoError::NotAnImage("text"))
    ));
    match decode("truncated.jpg") {
        Err(PhotoError::Corrupt { format: "JPEG", .. }) => {}
        other => panic!("truncated JPEG: {:?}", other.err()),
    }
    match decode("bomb.png") {
        Err(
            e @ PhotoError::TooManyPixels {
                width: 50000,
                height: 50000,
                ..
            },
        ) => {
            assert!(e.to_string().contains("50000×50000"), "{e}");
        }
        other => panic!("PNG bomb: {:?}", other.err()),
    }
    let small = Limits {
        max_bytes: 1000,
        ..Limits::default()
    };
    assert!(matches!(
        photo::decode(&fixture("landscape.jpg"), &small),
        Err(PhotoError::TooLarge { max: 1000, .. })
    ));
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
    assert_eq!(
        photo::decode(svg, &limits).err(),
        Some(PhotoError::Unsupported("SVG"))
    );
    let mut garbage = fixture("landscape.jpg");
    garbage.truncate(3);
    assert!(photo::decode(&garbage, &limits).is_err());
}

/// Mean |Δ| between our pixels and transformers' (PIL) processor output.
fn mean_abs_diff(ours: &[f32], theirs: &Tensor) -> f32 {
    let theirs: Vec<f32> = theirs.flatten_all().expect("flat").to_vec1().expect("vec");
    assert_eq!(ours.len(), theirs.len(), "pixel count");
    ours.iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / ours.len() as f32
}

#[test]
fn preprocessing_matches_transformers_processors() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/photos/preprocess.safetensors");
    let refs = candle_core::safetensors::load(path, &Device::Cpu).expect("references");
    for name in ["landscape.jpg", "portrait.png", "square.webp"] {
        let key = name.rsplit_once('.').expect("ext").0;
        let img = decode(name).expect("decode").image;
        let blip = mean_abs_diff(&blip_pixels(&img, 64, 64), &refs[&format!("blip.{key}")]);
        let clip = mean_abs_diff(&clip_pixels(&img, 48, 48), &refs[&format!("clip.{key}")]);
        assert!(blip <= 0.01, "{name}: BLIP mean |Δ| {blip}");
        assert!(clip <= 0.01, "{name}: CLIP mean |Δ| {clip}");
    }
}
