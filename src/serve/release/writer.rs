//! Streaming the `file` part to disk: the network task gathers chunks into
//! batches and hands them to a writer thread on the blocking pool, which
//! hashes and writes them, so network reads, hashing and disk writes
//! overlap and the artifact is never held in memory.

use std::fs::File;
use std::io::{self, Write};

use axum::body::Bytes;
use axum::http::StatusCode;
use md5::{Digest, Md5};
use tokio::sync::mpsc;

use super::{Rejection, ReleaseReceiver};
use crate::ops::publish_release::ReceivedFile;
use crate::release;

/// Start write-back of what was written every this many bytes, so the final
/// fsync does not have gigabytes of dirty pages to flush at once.
const WRITEBACK_STEP: u64 = 32 * 1024 * 1024;
/// Batches in flight between the network task and the writer thread.
const WRITER_QUEUE: usize = 4;
/// The network delivers the body in chunks of a few KiB; handing each to the
/// writer thread costs a wake-up and a `write` call, which dominated the
/// server's CPU time. Chunks are gathered into batches of this size first
/// (at most `WRITER_QUEUE` of them in memory).
const WRITER_BATCH: usize = 512 * 1024;

impl ReleaseReceiver {
    /// Stream the `file` part into a new temporary file on the file system
    /// of `product`'s directory (when the form named it already); its MD5
    /// and length are computed on the way.
    pub(super) async fn receive_file(
        &self,
        field: &mut multer::Field<'_>,
        product: Option<String>,
    ) -> Result<ReceivedFile, Rejection> {
        let publisher = self.publisher.clone();
        let temp = tokio::task::spawn_blocking(move || publisher.temp_file(product.as_deref()))
            .await
            .map_err(|_| Rejection::internal("creating a temporary file crashed"))?
            .map_err(|e| {
                self.log.warn(format!(
                    "release: cannot create a temporary file in {}: {e}",
                    self.publisher.dir().display()
                ));
                Rejection::internal("cannot create a temporary file in the release directory")
            })?;
        let (file, path) = temp.into_parts();
        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let writer = tokio::task::spawn_blocking(move || write_and_hash(file, rx));
        let mut bytes: u64 = 0;
        let mut batch: Vec<u8> = Vec::with_capacity(WRITER_BATCH);
        let mut writer_alive = true;
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(self.multipart_error(e)),
            };
            bytes += chunk.len() as u64;
            if bytes > self.max_size {
                return Err(self.too_large());
            }
            batch.extend_from_slice(&chunk);
            if batch.len() >= WRITER_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(WRITER_BATCH));
                if tx
                    .send(WriterMessage::Chunk(Bytes::from(full)))
                    .await
                    .is_err()
                {
                    // The writer stopped early: its error says why.
                    writer_alive = false;
                    break;
                }
            }
        }
        if writer_alive && !batch.is_empty() {
            let _ = tx.send(WriterMessage::Chunk(Bytes::from(batch))).await;
        }
        let _ = tx.send(WriterMessage::Finish).await;
        drop(tx);
        let (md5, bytes) = writer
            .await
            .map_err(|_| Rejection::internal("the upload writer crashed"))?
            .map_err(|e| {
                self.log
                    .warn(format!("release: writing {}: {e}", path.display()));
                if e.raw_os_error() == Some(libc::ENOSPC) {
                    Rejection::new(
                        StatusCode::INSUFFICIENT_STORAGE,
                        "no space left in the release directory",
                    )
                } else {
                    Rejection::internal("writing the upload to disk failed")
                }
            })?;
        Ok(ReceivedFile { path, md5, bytes })
    }
}

enum WriterMessage {
    Chunk(Bytes),
    /// The part ended normally: fsync and report. A closed channel without
    /// it means the upload was abandoned.
    Finish,
}

/// The writer thread: hash and write every chunk, start write-back as it
/// goes, fsync at the end. Returns the MD5 (hex) and the byte count.
fn write_and_hash(
    mut file: File,
    mut rx: mpsc::Receiver<WriterMessage>,
) -> io::Result<(String, u64)> {
    let mut hasher = Md5::new();
    let mut written: u64 = 0;
    let mut flushed: u64 = 0;
    while let Some(message) = rx.blocking_recv() {
        match message {
            WriterMessage::Chunk(chunk) => {
                hasher.update(&chunk);
                file.write_all(&chunk)?;
                written += chunk.len() as u64;
                if written - flushed >= WRITEBACK_STEP {
                    start_writeback(&file, flushed, written - flushed);
                    flushed = written;
                }
            }
            WriterMessage::Finish => {
                file.sync_all()?;
                return Ok((release::hex(&hasher.finalize()), written));
            }
        }
    }
    Err(io::Error::other("upload abandoned"))
}

/// Ask the kernel to start writing a range back now (without waiting), so
/// the disk works while the network does and the final fsync is short.
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: the descriptor is open for the whole call (we hold `file`);
    // sync_file_range only reads its arguments. Failure is harmless (the
    // final fsync does the work), so the result is ignored.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}
