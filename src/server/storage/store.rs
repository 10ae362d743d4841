//! The object store under the media: a local folder or an S3 bucket (any S3 server), one
//! `object_store` trait for both. Objects are written whole (local disk: a temporary file
//! renamed; S3: one PUT, or a multipart upload completed at the end for big ones), so a
//! reader never sees half an object.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

/// Objects bigger than this go up in parts of this size (S3 takes parts of 5 MiB and up).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// Where the media are, as `--storage` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Folder(std::path::PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// `DIR`, `file://DIR` or `s3://BUCKET[/PREFIX]`.
    pub fn parse(spec: &str) -> Result<Self> {
        if let Some(rest) = spec.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c);
            if bucket.len() < 3 || !bucket.chars().all(valid) {
                bail!("--storage s3://BUCKET[/PREFIX]: {bucket:?} is not a bucket name");
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        if spec.contains("://") && !spec.starts_with("file://") {
            bail!("--storage takes a folder, file://FOLDER or s3://BUCKET[/PREFIX], not {spec}");
        }
        let dir = spec.strip_prefix("file://").unwrap_or(spec);
        if dir.is_empty() {
            bail!("--storage needs a folder");
        }
        Ok(Self::Folder(dir.into()))
    }

    /// The store, made ready (a local folder is created).
    pub fn open(&self) -> Result<Arc<dyn ObjectStore>> {
        match self {
            Self::Folder(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create the media folder {}", dir.display()))?;
                Ok(Arc::new(
                    LocalFileSystem::new_with_prefix(dir).with_context(|| {
                        format!("cannot open the media folder {}", dir.display())
                    })?,
                ))
            }
            Self::S3 { bucket, prefix } => {
                let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(env("AWS_REGION").unwrap_or_else(|| "us-east-1".into()));
                if let Some(endpoint) = env("AWS_ENDPOINT_URL") {
                    // A local S3 server speaks plain HTTP; anything else must be HTTPS.
                    b = b
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_endpoint(endpoint);
                }
                let s3 = b
                    .build()
                    .with_context(|| format!("cannot use the bucket {bucket}"))?;
                Ok(match prefix.as_str() {
                    "" => Arc::new(s3),
                    p => Arc::new(PrefixStore::new(s3, p)),
                })
            }
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Folder(dir) => write!(f, "{}", dir.display()),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Write one object whole: one PUT, or parts for a big one.
pub async fn put(store: &dyn ObjectStore, key: &Path, bytes: Bytes) -> Result<()> {
    if bytes.len() <= PART_BYTES {
        store
            .put(key, PutPayload::from_bytes(bytes))
            .await
            .with_context(|| format!("cannot write {key}"))?;
        return Ok(());
    }
    let upload = store
        .put_multipart(key)
        .await
        .with_context(|| format!("cannot start writing {key}"))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    writer.put(bytes);
    // On an error the parts are aborted (not left in the bucket).
    writer
        .finish()
        .await
        .with_context(|| format!("cannot write {key}"))?;
    Ok(())
}

/// An object's bytes; None if there is no such object.
pub async fn get(store: &dyn ObjectStore, key: &Path) -> Result<Option<Bytes>> {
    match store.get(key).await {
        Ok(got) => Ok(Some(
            got.bytes()
                .await
                .with_context(|| format!("cannot read {key}"))?,
        )),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {key}")),
    }
}

pub async fn exists(store: &dyn ObjectStore, key: &Path) -> Result<bool> {
    match store.head(key).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot look for {key}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_locations_are_read_strictly() {
        assert_eq!(
            Location::parse("s3://songs/prod/eu").unwrap(),
            Location::S3 {
                bucket: "songs".into(),
                prefix: "prod/eu".into()
            }
        );
        assert_eq!(
            Location::parse("s3://songs").unwrap().to_string(),
            "s3://songs"
        );
        assert_eq!(
            Location::parse("file:///srv/media").unwrap(),
            Location::Folder("/srv/media".into())
        );
        assert_eq!(
            Location::parse("media").unwrap(),
            Location::Folder("media".into())
        );
        for bad in ["s3://", "s3://A_B", "gs://x", "file://"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
    }
}
