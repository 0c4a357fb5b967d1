//! History in an object store (`storage.history_url`), for instances of
//! `run` that share no volume: each partition's writer completes its parts
//! in its own data folder, as ever, then moves them to the store, where
//! every instance's SQL endpoint (and `jiancha sql --data URL`) reads
//! them; a partition taken up removes from the store the parts its earlier
//! owner wrote after the checkpoint it resumes from.
//!
//! `s3://bucket/prefix` is any S3-compatible store (Amazon S3, MinIO, the
//! government clouds' object storage), configured by the usual `AWS_*`
//! environment variables (`AWS_ENDPOINT` for a store that is not Amazon's);
//! `file:///path` is a folder (a mounted bucket, or tests).

use super::HistoryError;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// An object store holding history, and where in it.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    /// `scheme://authority`: what SQL sessions register the store under.
    root: ObjectStoreUrl,
    /// The history's folder in the store.
    prefix: ObjPath,
    /// The URL as configured, without a trailing slash.
    url: String,
    /// Runs the store's calls for threads outside an async runtime (the
    /// history writers, the consumer loop).
    rt: OnceLock<Result<tokio::runtime::Runtime, String>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.url)
    }
}

/// Whether a history location is an object store URL rather than a folder.
pub fn is_url(location: &Path) -> bool {
    location.to_str().is_some_and(|s| s.contains("://"))
}

impl Remote {
    /// The store of `url` (`s3://bucket/prefix` or `file:///path`).
    pub fn open(url: &str) -> Result<Remote, HistoryError> {
        let err = |why: String| HistoryError::Store { url: url.to_string(), why };
        let url = url.trim_end_matches('/').to_string();
        let (scheme, rest) = url.split_once("://").ok_or_else(|| err("not a URL".into()))?;
        let (store, root, prefix): (Arc<dyn ObjectStore>, String, String) = match scheme {
            "file" => {
                let dir = rest.strip_prefix('/').ok_or_else(|| err("a file:// URL needs an absolute path".into()))?;
                std::fs::create_dir_all(format!("/{dir}")).map_err(|e| err(format!("/{dir}: {e}")))?;
                (Arc::new(object_store::local::LocalFileSystem::new()), "file://".into(), dir.to_string())
            }
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(err("no bucket".into()));
                }
                let s3 = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| err(e.to_string()))?;
                (Arc::new(s3), format!("s3://{bucket}"), prefix.to_string())
            }
            other => return Err(err(format!("{other}:// is not supported (s3:// or file://)"))),
        };
        let root = ObjectStoreUrl::parse(&root).map_err(|e| err(e.to_string()))?;
        let prefix = ObjPath::parse(&prefix).map_err(|e| err(e.to_string()))?;
        Ok(Remote { store, root, prefix, url, rt: OnceLock::new() })
    }

    fn err(&self, why: impl std::fmt::Display) -> HistoryError {
        HistoryError::Store { url: self.url.clone(), why: why.to_string() }
    }

    /// Runs a call to the store to its end from a thread that is not in an
    /// async runtime — or, from one that is, on a thread of its own.
    fn block<T: Send>(&self, f: impl std::future::Future<Output = T> + Send) -> Result<T, HistoryError> {
        let rt = self
            .rt
            .get_or_init(|| {
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| self.err(e))?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Ok(rt.block_on(f));
        }
        std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join()).map_err(|_| self.err("a store call panicked"))
    }

    fn path(&self, rel: &str) -> ObjPath {
        rel.split('/').fold(self.prefix.clone(), |p, part| p.join(part))
    }

    /// Copies the file at `local` to `rel` (a path under the history, with
    /// `/` between folders).
    pub fn put_file(&self, local: &Path, rel: &str) -> Result<(), HistoryError> {
        let bytes = std::fs::read(local).map_err(|cause| HistoryError::Io { path: local.to_path_buf(), cause })?;
        let to = self.path(rel);
        self.block(self.store.put(&to, PutPayload::from(bytes)))?.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every object under the history, as a path relative to it.
    pub fn list(&self) -> Result<Vec<String>, HistoryError> {
        let metas: Vec<object_store::ObjectMeta> =
            self.block(self.store.list(Some(&self.prefix)).try_collect())?.map_err(|e| self.err(e))?;
        Ok(metas
            .iter()
            .filter_map(|m| {
                let parts: Vec<String> =
                    m.location.prefix_match(&self.prefix)?.map(|p| p.as_ref().to_string()).collect();
                Some(parts.join("/"))
            })
            .collect())
    }

    /// Removes the object at `rel`.
    pub fn delete(&self, rel: &str) -> Result<(), HistoryError> {
        let at = self.path(rel);
        match self.block(self.store.delete(&at))? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    /// The URL of a table's folder, for a listing table.
    pub fn table_url(&self, folder: &str) -> String {
        format!("{}/{folder}/", self.url)
    }

    /// Where SQL sessions register the store, and the store.
    pub fn registration(&self) -> (&ObjectStoreUrl, Arc<dyn ObjectStore>) {
        (&self.root, self.store.clone())
    }
}
