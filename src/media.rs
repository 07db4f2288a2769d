//! Images: checked by their content, decoded within limits, stripped of
//! metadata, stored in two sizes, served back.
//!
//! An upload must be a JPEG, PNG or WebP by its bytes (its name and
//! declared type are not trusted). Its dimensions are read from the header
//! before anything is decoded, so an image that claims more pixels than
//! `media_max_pixels` (a decompression bomb) is refused without allocating
//! them; the decoder runs with the same bounds. The image is turned upright
//! by its EXIF orientation and re-encoded: what is stored carries no EXIF,
//! XMP or other metadata (a phone photo's position does not leave with it).
//! The original bytes are not kept.
//!
//! Objects live in an `object_store`: a directory of the machine (one-node
//! mode) or an S3-compatible bucket (several nodes need one).

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::Semaphore;

use crate::config::Settings;

/// Longer side of the display size, in pixels.
pub const DISPLAY_SIDE: u32 = 1600;
/// Longer side of the thumbnail.
pub const THUMBNAIL_SIDE: u32 = 320;
const JPEG_QUALITY: u8 = 85;
/// Objects one purge deletes: more than an owner may have (two sizes of
/// at most 10 images, and uploads a crash left behind).
const PURGE_MAX: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Not a JPEG, PNG or WebP by its content (422).
    #[error("{0}")]
    Unsupported(String),
    /// More bytes or pixels than allowed (413).
    #[error("{0}")]
    TooLarge(String),
    /// Of a supported type but not decodable (422).
    #[error("{0}")]
    Unreadable(String),
    /// The media store failed (503).
    #[error("the media store failed: {0}")]
    Store(String),
    /// Every decoder is busy and the queue before them is full (429,
    /// `Retry-After`).
    #[error("too many images are being processed; try again shortly")]
    Busy,
}

/// The two sizes made of one upload.
#[derive(Debug, Clone)]
pub struct Processed {
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
    pub display: Vec<u8>,
    pub thumbnail: Vec<u8>,
}

/// What an upload may be.
#[derive(Debug, Clone, Copy)]
pub struct MediaLimits {
    pub max_bytes: usize,
    pub max_pixels: u64,
}

/// Checks and converts one upload (CPU-bound: run off the async threads).
pub fn process(bytes: &[u8], limits: MediaLimits) -> Result<Processed, MediaError> {
    if bytes.len() > limits.max_bytes {
        return Err(MediaError::TooLarge(format!(
            "an image may have at most {} bytes",
            limits.max_bytes
        )));
    }
    let format = image::guess_format(bytes).ok();
    if !matches!(
        format,
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)
    ) {
        return Err(MediaError::Unsupported(
            "only JPEG, PNG and WebP images are accepted (judged by content)".into(),
        ));
    }
    let reader = || ImageReader::with_format(Cursor::new(bytes), format.expect("checked above"));
    let unreadable =
        |e: image::ImageError| MediaError::Unreadable(format!("unreadable image: {e}"));
    let (w, h) = reader().into_dimensions().map_err(unreadable)?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > limits.max_pixels || w == 0 || h == 0 {
        return Err(MediaError::TooLarge(format!(
            "{w} × {h} px: an image may have at most {} pixels",
            limits.max_pixels
        )));
    }
    let mut bounds = Limits::default();
    bounds.max_image_width = Some(w);
    bounds.max_image_height = Some(h);
    // RGBA at 16 bits per channel, and the decoder's own working memory.
    bounds.max_alloc = Some(pixels.saturating_mul(8).saturating_add(64 << 20));
    let mut reader = reader();
    reader.limits(bounds);
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    use image::ImageDecoder as _;
    let orientation = decoder.orientation().map_err(unreadable)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    img.apply_orientation(orientation);
    let display = fit(&img, DISPLAY_SIDE);
    let thumbnail = fit(&display, THUMBNAIL_SIDE);
    let alpha = img.color().has_alpha();
    let encode = |i: &DynamicImage| encode(i, alpha);
    Ok(Processed {
        content_type: if alpha { "image/png" } else { "image/jpeg" },
        width: display.width(),
        height: display.height(),
        display: encode(&display)?,
        thumbnail: encode(&thumbnail)?,
    })
}

/// `img` scaled down to fit `side` × `side` (never up).
fn fit(img: &DynamicImage, side: u32) -> DynamicImage {
    if img.width() <= side && img.height() <= side {
        img.clone()
    } else {
        img.resize(side, side, image::imageops::FilterType::Lanczos3)
    }
}

/// PNG for an image with transparency, JPEG otherwise; no metadata.
fn encode(img: &DynamicImage, alpha: bool) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::new();
    let failed = |e: image::ImageError| MediaError::Unreadable(format!("cannot encode: {e}"));
    if alpha {
        img.to_rgba8()
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .map_err(failed)?;
    } else {
        JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
            .encode_image(&DynamicImage::ImageRgb8(img.to_rgb8()))
            .map_err(failed)?;
    }
    Ok(out)
}

/// A stored size of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Display,
    Thumbnail,
}

impl Size {
    fn name(self) -> &'static str {
        match self {
            Size::Display => "display",
            Size::Thumbnail => "thumbnail",
        }
    }
}

/// Where images are kept, and the bound on decoding them.
#[derive(Clone)]
pub struct MediaStore {
    objects: Arc<dyn ObjectStore>,
    pub limits: MediaLimits,
    /// Decodes at once, one per core (each may take up to `max_pixels` ×
    /// 8 bytes and 64 MiB more: `process`'s allocation limit).
    decoding: Arc<Semaphore>,
    /// Uploads waiting for a decoder, at most `max_waiting`: past that an
    /// upload is answered 429 at once, before its bytes are held longer.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    max_waiting: usize,
}

/// An upload's place in the queue before the decoders (given back on drop).
struct Waiting(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaStore({})", self.objects)
    }
}

impl MediaStore {
    /// The store the settings name: `disk` (under `media_dir`, default
    /// `data_dir/media`) or `s3` (`media_s3_*`).
    pub fn open(s: &Settings) -> anyhow::Result<MediaStore> {
        let objects: Arc<dyn ObjectStore> = match s.media_store.as_str() {
            "s3" => {
                let bucket = s
                    .media_s3_bucket
                    .as_deref()
                    .ok_or_else(|| anyhow::anyhow!("media_store = s3 needs media_s3_bucket"))?;
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(&s.media_s3_region);
                if let Some(e) = &s.media_s3_endpoint {
                    b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                }
                if let (Some(k), Some(secret)) =
                    (&s.media_s3_access_key_id, &s.media_s3_secret_access_key)
                {
                    b = b.with_access_key_id(k).with_secret_access_key(secret);
                }
                Arc::new(b.build()?)
            }
            _ => {
                let dir = s
                    .media_dir
                    .clone()
                    .unwrap_or_else(|| s.data_dir.join("media"));
                std::fs::create_dir_all(&dir)?;
                Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir)?)
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(MediaStore {
            objects,
            limits: MediaLimits {
                max_bytes: s.media_max_bytes,
                max_pixels: s.media_max_pixels,
            },
            decoding: Arc::new(Semaphore::new(cores)),
            waiting: Arc::default(),
            max_waiting: s.media_decode_queue,
        })
    }

    /// A place in the queue before the decoders, or `Busy` when it is full.
    fn queue(&self) -> Result<Waiting, MediaError> {
        use std::sync::atomic::Ordering;
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        let place = Waiting(self.waiting.clone());
        match ahead < self.max_waiting {
            true => Ok(place),
            false => Err(MediaError::Busy),
        }
    }

    /// Image `{owner}.{n}` is kept as `{owner}/{n}/{size}`: everything of
    /// an owner (a product, course or review) is under one prefix, so
    /// deleting the owner finds even an upload a crash left unlisted.
    /// `None` for an id of another shape.
    fn path(id: &str, size: Size) -> Option<ObjectPath> {
        let (owner, n) = id.split_once('.')?;
        let ok = |s: &str| uuid::Uuid::try_parse(s).is_ok();
        (ok(owner) && ok(n)).then(|| ObjectPath::from(format!("{owner}/{n}/{}", size.name())))
    }

    /// A new image id of `owner`.
    pub fn new_id(owner: &str) -> String {
        format!("{owner}.{}", uuid::Uuid::now_v7())
    }

    /// Checks and converts `bytes` (at most one decode per core at once;
    /// `media_decode_queue` others wait their turn, and more are `Busy`).
    pub async fn process(&self, bytes: Bytes) -> Result<Processed, MediaError> {
        let _permit = match self.decoding.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                let _place = self.queue()?;
                self.decoding
                    .acquire()
                    .await
                    .map_err(|_| MediaError::Store("shutting down".into()))?
            }
        };
        let limits = self.limits;
        tokio::task::spawn_blocking(move || process(&bytes, limits))
            .await
            .map_err(|e| MediaError::Store(e.to_string()))?
    }

    /// Stores both sizes of image `id`.
    pub async fn put(&self, id: &str, p: &Processed) -> Result<(), MediaError> {
        for (size, bytes) in [(Size::Display, &p.display), (Size::Thumbnail, &p.thumbnail)] {
            let path = Self::path(id, size).ok_or_else(|| MediaError::Store("bad id".into()))?;
            self.objects
                .put(&path, PutPayload::from(bytes.clone()))
                .await
                .map_err(|e| MediaError::Store(e.to_string()))?;
        }
        Ok(())
    }

    /// The stored bytes of a size of image `id`, if there are any.
    pub async fn get(&self, id: &str, size: Size) -> Result<Option<Bytes>, MediaError> {
        let Some(path) = Self::path(id, size) else {
            return Ok(None);
        };
        match self.objects.get(&path).await {
            Ok(r) => Ok(Some(
                r.bytes()
                    .await
                    .map_err(|e| MediaError::Store(e.to_string()))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(MediaError::Store(e.to_string())),
        }
    }

    /// Deletes both sizes of image `id` (deleting what is gone is fine).
    pub async fn delete(&self, id: &str) -> Result<(), MediaError> {
        for size in [Size::Display, Size::Thumbnail] {
            if let Some(path) = Self::path(id, size) {
                self.remove(&path).await?;
            }
        }
        Ok(())
    }

    async fn remove(&self, path: &ObjectPath) -> Result<(), MediaError> {
        match self.objects.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(MediaError::Store(e.to_string())),
        }
    }

    /// Deletes every image of `owner` (at most `PURGE_MAX` objects a call).
    pub async fn purge(&self, owner: &str) -> Result<(), MediaError> {
        use futures_util::StreamExt as _;
        if uuid::Uuid::try_parse(owner).is_err() {
            return Ok(());
        }
        let prefix = ObjectPath::from(owner);
        let found: Vec<_> = self
            .objects
            .list(Some(&prefix))
            .take(PURGE_MAX)
            .collect()
            .await;
        for meta in found {
            match meta {
                Ok(m) => self.remove(&m.location).await?,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(MediaError::Store(e.to_string())),
            }
        }
        Ok(())
    }
}

/// The content type of stored image bytes (what this module wrote).
pub fn content_type(bytes: &[u8]) -> &'static str {
    match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => "image/png",
        _ => "image/jpeg",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_the_queue_before_the_decoders_an_upload_is_told_to_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            data_dir: dir.path().to_owned(),
            media_decode_queue: 2,
            ..Settings::default()
        };
        let store = MediaStore::open(&settings).unwrap();
        // Every decoder busy, two uploads waiting: the next is refused at
        // once, and a place given back lets one more wait.
        let busy = store
            .decoding
            .clone()
            .try_acquire_many_owned(store.decoding.available_permits() as u32)
            .unwrap();
        let first = store.queue().unwrap();
        let _second = store.queue().unwrap();
        assert!(matches!(store.queue(), Err(MediaError::Busy)));
        assert!(matches!(
            store.process(Bytes::from_static(b"\x89PNG")).await,
            Err(MediaError::Busy)
        ));
        drop(first);
        let _third = store.queue().unwrap();
        assert!(matches!(store.queue(), Err(MediaError::Busy)));
        // With a decoder free, nothing waits: the image is judged at once.
        drop(busy);
        assert!(matches!(
            store.process(Bytes::from_static(b"not an image")).await,
            Err(MediaError::Unsupported(_))
        ));
    }
}
