//! Images over real HTTP: real JPEG/PNG/WebP files made here, refusals by
//! content, size and claimed dimensions (a decompression bomb), EXIF gone
//! and orientation applied, both sizes served with caching headers, order
//! and primary image, deletion with the product; the same against an
//! S3-compatible server (moto, installed by `scripts/test`).

use std::io::Cursor;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const BOUNDARY: &str = "surge-test-7f3a9c";

/// A multipart form whose `file` part holds `bytes` under `filename`.
fn form(bytes: &[u8], filename: &str, kind: &str) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {kind}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub(crate) async fn upload(
    app: &TestApp,
    token: &str,
    path: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(form(bytes, "photo.jpg", "image/jpeg"))
        .send()
        .await
        .expect("upload sent");
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The bytes and content type at `url` (a path on the app), with status.
async fn fetch(
    app: &TestApp,
    url: &str,
) -> (StatusCode, String, Vec<u8>, reqwest::header::HeaderMap) {
    let resp = app
        .client
        .get(format!("{}{url}", app.base))
        .send()
        .await
        .expect("get sent");
    let status = resp.status();
    let headers = resp.headers().clone();
    let kind = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, resp.bytes().await.unwrap().to_vec(), headers)
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// A `w` × `h` photo-like JPEG (a gradient).
pub(crate) fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    encode(&DynamicImage::ImageRgb8(img), ImageFormat::Jpeg)
}

/// `jpeg` with an EXIF block: orientation 6 (turn 90° clockwise to show)
/// and a description that must not survive.
fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
    let plain = jpeg(w, h);
    let secret = b"SECRET-GPS-52.37N\0";
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&2u16.to_be_bytes());
    // Orientation: SHORT, 1, value 6.
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]);
    // ImageDescription: ASCII, its length, at offset 38.
    tiff.extend_from_slice(&[0x01, 0x0e, 0, 2]);
    tiff.extend_from_slice(&(secret.len() as u32).to_be_bytes());
    tiff.extend_from_slice(&38u32.to_be_bytes());
    tiff.extend_from_slice(&0u32.to_be_bytes());
    tiff.extend_from_slice(secret);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

/// A tiny PNG whose header claims `w` × `h` (a decompression bomb's shape:
/// the decoder would allocate for the claim).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = encode(
        &DynamicImage::ImageRgb8(RgbImage::new(1, 1)),
        ImageFormat::Png,
    );
    // IHDR's data starts at 16: width, height; its CRC covers 12..29.
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Files under the disk media store of the app.
fn stored_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn small(s: &mut surge::config::Settings) {
    s.media_max_bytes = 200_000;
}

#[tokio::test]
async fn images_are_checked_by_content_converted_served_ordered_and_deleted_with_the_product() {
    let app = spawn_app_with(small).await;
    let media_dir = app.data_dir().join("media");
    let (m, _, product) = shop_with_product(&app, 10_000, 5).await;
    let path = format!("/api/v1/products/{product}/media");

    // Refused by content, size and claimed dimensions: nothing stored.
    let (status, body) = upload(&app, &m.access, &path, b"just some text, renamed photo.jpg").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "unsupported_image");
    let (status, body) = upload(&app, &m.access, &path, &png_claiming(60_000, 60_000)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(error_code(&body), "image_too_large");
    // Over media_max_bytes inside the form's allowance, and beyond it.
    let mut big = jpeg(16, 16);
    big.resize(210_000, 0);
    let (status, body) = upload(&app, &m.access, &path, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    big.resize(400_000, 0);
    let (status, body) = upload(&app, &m.access, &path, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, _) = upload(&app, &m.access, &path, &jpeg_with_exif(30, 20)[..100]).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a cut JPEG is unreadable"
    );
    // Someone else's product.
    let other = app.user("merchant").await;
    let (status, _) = upload(&app, &other.access, &path, &jpeg(40, 40)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        stored_files(&media_dir).is_empty(),
        "{:?}",
        stored_files(&media_dir)
    );
    let (_, p) = app.get(&format!("/api/v1/products/{product}"), None).await;
    assert_eq!(p["media"], json!([]));

    // A rotated phone photo: upright, no EXIF, two sizes.
    let (status, first) = upload(&app, &m.access, &path, &jpeg_with_exif(2000, 1000)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        (first["width"].as_u64(), first["height"].as_u64()),
        (Some(800), Some(1600))
    );
    let (status, kind, display, headers) = fetch(&app, first["url"].as_str().unwrap()).await;
    assert_eq!((status, kind.as_str()), (StatusCode::OK, "image/jpeg"));
    assert!(!contains(&display, b"Exif") && !contains(&display, b"SECRET-GPS"));
    let shown = image::load_from_memory(&display).unwrap();
    assert_eq!((shown.width(), shown.height()), (800, 1600));
    assert_eq!(headers["cache-control"], "public, max-age=3600");
    let etag = headers["etag"].clone();
    let again = app
        .client
        .get(format!("{}{}", app.base, first["url"].as_str().unwrap()))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let (status, _, thumb, _) = fetch(&app, first["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let thumb = image::load_from_memory(&thumb).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (160, 320));

    // A transparent PNG stays PNG; a WebP is accepted.
    let clear = RgbaImage::from_fn(50, 40, |x, _| image::Rgba([200, 10, 10, (x * 5) as u8]));
    let png = encode(&DynamicImage::ImageRgba8(clear), ImageFormat::Png);
    let (status, second) = upload(&app, &m.access, &path, &png).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["content_type"], "image/png");
    let (_, kind, _, _) = fetch(&app, second["url"].as_str().unwrap()).await;
    assert_eq!(kind, "image/png");
    let webp = encode(
        &DynamicImage::ImageRgb8(RgbImage::from_pixel(30, 30, image::Rgb([1, 2, 3]))),
        ImageFormat::WebP,
    );
    let (status, third) = upload(&app, &m.access, &path, &webp).await;
    assert_eq!(status, StatusCode::CREATED, "{third}");

    // Order: the first is primary; a new order must name each once.
    let ids: Vec<&str> = [&first, &second, &third]
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    let (status, p) = app
        .put(
            &path,
            Some(&m.access),
            json!({"order": [ids[2], ids[0], ids[1]]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["media"][0]["id"], ids[2]);
    let (status, _) = app
        .put(&path, Some(&m.access), json!({"order": [ids[2], ids[0]]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, p) = app.get(&format!("/api/v1/products/{product}"), None).await;
    assert_eq!(
        p["media"][0]["id"], ids[2],
        "a refused order changed nothing"
    );
    // Removing one deletes its files.
    let (status, _) = app
        .delete(&format!("{path}/{}", ids[1]), Some(&m.access))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, ..) = fetch(&app, second["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(stored_files(&media_dir).len(), 4, "two sizes of two images");

    // Deleted with the product, which reads as gone.
    let (status, _) = app
        .delete(&format!("/api/v1/products/{product}"), Some(&other.access))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .delete(&format!("/api/v1/products/{product}"), Some(&m.access))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for m in [&first, &third] {
        let (status, ..) = fetch(&app, m["url"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert!(stored_files(&media_dir).is_empty());
    let (status, _) = app.get(&format!("/api/v1/products/{product}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .delete(&format!("/api/v1/products/{product}"), Some(&m.access))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "deleting again is fine");
    let (_, list) = app.get("/api/v1/products?limit=100", None).await;
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["id"] != product.as_str()));
    let (status, _) = app
        .get(
            &format!("/api/v1/products/{product}/inventory"),
            Some(&m.access),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_product_whose_stock_is_held_is_not_deleted_and_courses_and_reviews_take_images() {
    let app = spawn_app_with(crate::reviews::with_admin).await;
    let (m, _, product) = shop_with_product(&app, 10_000, 5).await;
    let (c, order) = crate::reviews::ordered(&app, &product).await;
    let (status, body) = app
        .delete(&format!("/api/v1/products/{product}"), Some(&m.access))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "stock_held");
    let (status, p) = app.get(&format!("/api/v1/products/{product}"), None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a refused deletion changed nothing: {p}"
    );

    // A review's photos: its author only, listed in its images.
    crate::reviews::deliver(&app, &m, &order).await;
    let (status, review) = app
        .post(
            &format!("/api/v1/products/{product}/reviews"),
            Some(&c.access),
            json!({"order_id": order, "stars": 5, "text": "great"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{review}");
    let rid = review["id"].as_str().unwrap();
    let photos = format!("/api/v1/reviews/{rid}/photos");
    let (status, _) = upload(&app, &m.access, &photos, &jpeg(50, 50)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, r) = upload(&app, &c.access, &photos, &jpeg(50, 50)).await;
    assert_eq!(status, StatusCode::CREATED, "{r}");
    let url = r["images"][0].as_str().unwrap().to_owned();
    let (status, kind, ..) = fetch(&app, &url).await;
    assert_eq!((status, kind.as_str()), (StatusCode::OK, "image/jpeg"));
    let media_id = url.rsplit('/').next().unwrap();
    let (status, r) = app
        .delete(&format!("{photos}/{media_id}"), Some(&c.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["images"], json!([]));
    let (status, ..) = fetch(&app, &url).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A course's images: its trainer only.
    let trainer = app.user("merchant").await;
    let (status, course) = app
        .post(
            "/api/v1/courses",
            Some(&trainer.access),
            json!({"title": "Morning Yoga", "kind": "yoga", "capacity": 10, "price": 0, "currency": "VND"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{course}");
    let cpath = format!("/api/v1/courses/{}/media", course["id"].as_str().unwrap());
    let (status, _) = upload(&app, &m.access, &cpath, &jpeg(50, 50)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, img) = upload(&app, &trainer.access, &cpath, &jpeg(50, 50)).await;
    assert_eq!(status, StatusCode::CREATED, "{img}");
    let (_, course) = app
        .get(
            &format!("/api/v1/courses/{}", course["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(course["media"][0]["id"], img["id"]);

    // Delivered, nothing holds it: deleted; a cart still holding it shows
    // it and its checkout is refused.
    let (buyer, address) = crate::commerce::customer(&app).await;
    crate::commerce::add(&app, &buyer, &product, 1).await;
    let (status, _) = app
        .delete(&format!("/api/v1/products/{product}"), Some(&m.access))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, cart) = app.get("/api/v1/cart", Some(&buyer.access)).await;
    assert_eq!(status, StatusCode::OK, "{cart}");
    let (status, body) = crate::commerce::checkout(&app, &buyer, &address, "cod", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "product_unavailable");
}

/// A moto S3 server on a free port, killed when dropped.
pub(crate) struct S3Server {
    child: Child,
    pub(crate) url: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn s3_server() -> S3Server {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/moto-venv/bin/moto_server");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/moto-setup (scripts/test does)",
        bin.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let server = S3Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = crate::helpers::client();
    loop {
        // moto takes unsigned requests: create the bucket directly.
        match client
            .put(format!("{}/surge-media", server.url))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return server,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("moto did not come up: {other:?}"),
        }
    }
}

#[tokio::test]
async fn images_live_in_an_s3_bucket_when_configured() {
    let s3 = s3_server().await;
    let endpoint = s3.url.clone();
    let app = spawn_app_with(move |s| {
        s.media_store = "s3".into();
        s.media_s3_bucket = Some("surge-media".into());
        s.media_s3_endpoint = Some(endpoint);
        s.media_s3_access_key_id = Some("test".into());
        s.media_s3_secret_access_key = Some("test".into());
    })
    .await;
    let (m, _, product) = shop_with_product(&app, 10_000, 5).await;
    let (status, img) = upload(
        &app,
        &m.access,
        &format!("/api/v1/products/{product}/media"),
        &jpeg(400, 300),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{img}");
    let (status, _, served, _) = fetch(&app, img["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // The object is in the bucket, byte for byte what is served.
    use object_store::ObjectStoreExt as _;
    let bucket = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("surge-media")
        .with_region("us-east-1")
        .with_endpoint(&s3.url)
        .with_allow_http(true)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let id = img["id"].as_str().unwrap();
    let (owner, n) = id.split_once('.').unwrap();
    let object = object_store::path::Path::from(format!("{owner}/{n}/display"));
    let stored = bucket.get(&object).await.unwrap().bytes().await.unwrap();
    assert_eq!(stored.to_vec(), served);
    assert!(!app.data_dir().join("media").exists(), "nothing on disk");
    let (status, _) = app
        .delete(&format!("/api/v1/products/{product}"), Some(&m.access))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(matches!(
        bucket.get(&object).await,
        Err(object_store::Error::NotFound { .. })
    ));
    let (status, ..) = fetch(&app, img["url"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_store_failure_answers_without_internals() {
    let media = tempfile::tempdir().unwrap();
    let root = media.path().join("store");
    let app = spawn_app_with(|s| s.media_dir = Some(root.clone())).await;
    let (m, _, product) = shop_with_product(&app, 1_000, 1).await;
    // The store's directory is now a file: every write fails.
    let _ = std::fs::remove_dir_all(&root);
    std::fs::write(&root, b"not a directory").unwrap();
    let (status, body) = upload(
        &app,
        &m.access,
        &format!("/api/v1/products/{product}/media"),
        &jpeg(64, 48),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_code(&body), "unavailable");
    let text = body.to_string();
    let dir = media.path().to_str().unwrap();
    assert!(!text.contains(dir) && !text.contains("directory"), "{text}");
    assert!(body["error"]["id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn uploads_have_a_budget_per_account_and_a_pixel_cap_a_camera_photo_fits() {
    let app = spawn_app_with(|s| s.media_uploads_per_account_per_minute = 2).await;
    let (m, _, product) = shop_with_product(&app, 10_000, 5).await;
    let path = format!("/api/v1/products/{product}/media");
    // 25 megapixels: a 24-megapixel photo (6000 × 4000) passes the cap
    // (and fails later, as this one is only a header); one row more than
    // 5000 × 5000 does not.
    let (status, body) = upload(&app, &m.access, &path, &png_claiming(6000, 4000)).await;
    assert_eq!(error_code(&body), "unreadable_image", "{status} {body}");
    let (status, body) = upload(&app, &m.access, &path, &png_claiming(5000, 5001)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    // Two a minute for this account: the third is told to come back, before
    // anything is decoded, and another account is not held up.
    let (status, body) = upload(&app, &m.access, &path, &jpeg(32, 32)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(error_code(&body), "too_many_requests");
    let (other, _, theirs) = shop_with_product(&app, 10_000, 5).await;
    let (status, body) = upload(
        &app,
        &other.access,
        &format!("/api/v1/products/{theirs}/media"),
        &jpeg(32, 32),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
