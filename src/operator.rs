//! The operator's backup commands: `surge backup` (a running server's
//! online copy, fetched as an admin, checked as it passes, kept in a file
//! or an S3 object) and `surge restore` (into an empty data directory).
//! S3 locations are `s3://bucket/key`; credentials, region and endpoint
//! come from the usual `AWS_*` environment (`AWS_ENDPOINT_URL` and
//! `AWS_ALLOW_HTTP=true` for MinIO and the like).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::store::backup::{Check, Summary};

/// Where a backup is kept.
enum Place {
    File(PathBuf),
    S3 {
        store: Arc<dyn ObjectStore>,
        key: object_store::path::Path,
    },
}

fn place(at: &str) -> anyhow::Result<Place> {
    let Some(rest) = at.strip_prefix("s3://") else {
        return Ok(Place::File(PathBuf::from(at)));
    };
    let (bucket, key) = rest
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .with_context(|| format!("{at}: expected s3://bucket/key"))?;
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .with_context(|| format!("{at}: the S3 settings (AWS_*)"))?;
    Ok(Place::S3 {
        store: Arc::new(store),
        key: object_store::path::Path::from(key),
    })
}

/// Fetches a backup from `server` as admin `email` into `to`; answers the
/// bytes kept. Nothing is left at `to` unless the whole backup, its end
/// and checksum included, came.
pub async fn backup(server: &str, email: &str, password: &str, to: &str) -> anyhow::Result<u64> {
    let server = server.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()?;
    let login = client
        .post(format!("{server}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .with_context(|| format!("reaching {server}"))?;
    if !login.status().is_success() {
        bail!(
            "login as {email}: {}",
            login.text().await.unwrap_or_default()
        );
    }
    let token = login.json::<serde_json::Value>().await?["access_token"]
        .as_str()
        .context("the login answered no access token")?
        .to_owned();
    let mut resp = client
        .get(format!("{server}/api/v1/admin/backup"))
        .bearer_auth(token)
        .send()
        .await?;
    if !resp.status().is_success() {
        bail!(
            "the server refused the backup: {}",
            resp.text().await.unwrap_or_default()
        );
    }
    let mut check = Check::default();
    match place(to)? {
        Place::File(path) => {
            use tokio::io::AsyncWriteExt;
            let partial = path.with_extension("partial");
            let mut file = tokio::fs::File::create(&partial)
                .await
                .with_context(|| partial.display().to_string())?;
            let kept = async {
                while let Some(chunk) = resp.chunk().await? {
                    check.feed(&chunk)?;
                    file.write_all(&chunk).await?;
                }
                file.sync_all().await?;
                anyhow::Ok(check.finish()?)
            }
            .await;
            match kept {
                Ok(bytes) => {
                    tokio::fs::rename(&partial, &path).await?;
                    Ok(bytes)
                }
                Err(e) => {
                    let _ = tokio::fs::remove_file(&partial).await;
                    Err(e)
                }
            }
        }
        Place::S3 { store, key } => {
            let upload = store.put_multipart(&key).await?;
            let mut writer = WriteMultipart::new(upload);
            let sent = async {
                while let Some(chunk) = resp.chunk().await? {
                    check.feed(&chunk)?;
                    writer.wait_for_capacity(4).await?;
                    writer.write(&chunk);
                }
                anyhow::Ok(check.finish()?)
            }
            .await;
            match sent {
                Ok(bytes) => {
                    writer.finish().await?;
                    Ok(bytes)
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    Err(e)
                }
            }
        }
    }
}

/// Restores the backup at `from` into `dir` (which must hold no store).
pub async fn restore(from: &str, dir: &Path) -> anyhow::Result<Summary> {
    let (file, downloaded) = match place(from)? {
        Place::File(path) => (path, false),
        Place::S3 { store, key } => {
            use futures_util::StreamExt;
            use tokio::io::AsyncWriteExt;
            tokio::fs::create_dir_all(dir).await?;
            let path = dir.join("surge.backup.download");
            let mut out = tokio::fs::File::create(&path).await?;
            let mut body = store.get(&key).await?.into_stream();
            while let Some(chunk) = body.next().await {
                out.write_all(&chunk?).await?;
            }
            out.sync_all().await?;
            (path, true)
        }
    };
    let source = std::fs::File::open(&file).with_context(|| file.display().to_string())?;
    let dir = dir.to_owned();
    let restored =
        tokio::task::spawn_blocking(move || crate::store::redb::restore(&dir, source)).await?;
    if downloaded {
        let _ = tokio::fs::remove_file(&file).await;
    }
    restored.map_err(anyhow::Error::msg)
}
