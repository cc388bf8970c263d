//! Streaming the `file` part to disk, in three stages that overlap, so the
//! artifact is never held in memory and each byte is touched as few times as
//! possible (the README's release benchmark has the profiles behind this):
//! - the network task passes the multipart chunks on as they came (`Bytes`,
//!   not copied), gathered into batches so the next stage wakes up once per
//!   batch rather than per chunk;
//! - a hasher thread computes the MD5 of each chunk and copies it into
//!   aligned blocks taken from a small pool, while the data is still in the
//!   CPU's cache;
//! - a writer thread writes each block with `O_DIRECT` where the file
//!   system allows it, hands the buffer back to the pool, and fsyncs once at
//!   the end.
//!
//! Why `O_DIRECT`: with ordinary writes, the kernel's copy into the page
//! cache was the receiver's largest cost after MD5 (0.7 to 2.7 s of kernel
//! time per GiB on the development machine, against about 0.05 s for the
//! copy into our blocks that replaces it), and the final fsync is short when
//! the data is on the device already. The price: the artifact is not left
//! in the page cache, so a release script reads it from the disk. Where the
//! file system refuses `O_DIRECT` (some network and FUSE file systems), or
//! refuses a write, the writer falls back to ordinary writes and starts
//! write-back as it goes. The last bytes, which do not fill an aligned
//! block, are always written that way.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::mpsc as sync_mpsc;

use axum::body::Bytes;
use axum::http::StatusCode;
use tokio::sync::mpsc;

use super::{Rejection, ReleaseReceiver};
use crate::ops::publish_release::ReceivedFile;
use crate::release::digest::Md5Hasher;

/// The network task hands chunks over in batches of at least this many
/// bytes: a wake-up of the hasher per chunk of a few KiB dominated the
/// receiver's CPU time once.
const BATCH: usize = 512 * 1024;
/// Batches in flight between the network task and the hasher.
const BATCH_QUEUE: usize = 2;
/// The size of the writes to disk.
const BLOCK: usize = 1024 * 1024;
/// Blocks in the pool: one being filled, the others queued for the writer
/// or being written.
const BLOCKS: usize = 3;
/// Alignment of `O_DIRECT` buffers, offsets and lengths: the largest
/// logical block size in common use.
const ALIGN: usize = 4096;
/// With ordinary writes, start write-back every this many bytes, so the
/// final fsync does not have gigabytes of dirty pages to flush at once.
const WRITEBACK_STEP: u64 = 32 * 1024 * 1024;

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
        let (batch_tx, batch_rx) = mpsc::channel(BATCH_QUEUE);
        let (block_tx, block_rx) = sync_mpsc::sync_channel(BLOCKS);
        let (free_tx, free_rx) = sync_mpsc::channel();
        let hasher =
            tokio::task::spawn_blocking(move || hash_and_lay_out(batch_rx, block_tx, free_rx));
        let out = BlockWriter::new(file);
        let writer = tokio::task::spawn_blocking(move || write_blocks(out, block_rx, free_tx));
        let mut bytes: u64 = 0;
        let mut batch = Batch::default();
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
            batch.push(chunk);
            if batch.bytes >= BATCH && batch_tx.send(Stage::Part(batch.take())).await.is_err() {
                // The hasher stopped because the writer did: its error says why.
                break;
            }
        }
        let _ = batch_tx.send(Stage::Part(batch.take())).await;
        let _ = batch_tx.send(Stage::Finish).await;
        drop(batch_tx);
        let written = writer
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
        let md5 = hasher
            .await
            .map_err(|_| Rejection::internal("the upload hasher crashed"))?
            .map_err(|e| {
                self.log
                    .warn(format!("release: hashing {}: {e}", path.display()));
                Rejection::internal("computing the upload's MD5 failed")
            })?;
        if written != bytes {
            return Err(Rejection::internal(format!(
                "the upload writer wrote {written} bytes of {bytes}"
            )));
        }
        Ok(ReceivedFile { path, md5, bytes })
    }
}

/// Chunks gathered for the hasher, not copied.
#[derive(Default)]
struct Batch {
    chunks: Vec<Bytes>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, chunk: Bytes) {
        self.bytes += chunk.len();
        self.chunks.push(chunk);
    }

    fn take(&mut self) -> Vec<Bytes> {
        self.bytes = 0;
        std::mem::take(&mut self.chunks)
    }
}

/// What the network task sends the hasher and the hasher the writer.
enum Stage<T> {
    Part(T),
    /// The file part ended normally: finish and report. A closed channel
    /// without it means the upload was abandoned.
    Finish,
}

fn abandoned() -> io::Error {
    io::Error::other("the upload stopped before its end")
}

/// The hasher thread: hash every chunk and copy it into aligned blocks for
/// the writer. Returns the MD5 (hex).
fn hash_and_lay_out(
    mut batches: mpsc::Receiver<Stage<Vec<Bytes>>>,
    blocks: sync_mpsc::SyncSender<Stage<Block>>,
    free: sync_mpsc::Receiver<Block>,
) -> io::Result<String> {
    // The writer stopping ends the pool and the queue: its own error is the
    // one reported, so this one only needs to stop the hasher.
    let writer_gone = || io::Error::other("the writer stopped");
    let mut hasher = Md5Hasher::new();
    let mut block = Block::new();
    let mut spare = BLOCKS - 1;
    while let Some(stage) = batches.blocking_recv() {
        let chunks = match stage {
            Stage::Part(chunks) => chunks,
            Stage::Finish => {
                blocks.send(Stage::Part(block)).map_err(|_| writer_gone())?;
                blocks.send(Stage::Finish).map_err(|_| writer_gone())?;
                return Ok(hasher.finish_hex()?);
            }
        };
        for chunk in chunks {
            hasher.update(&chunk);
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                rest = block.fill(rest);
                if block.is_full() {
                    let next = if spare > 0 {
                        spare -= 1;
                        Block::new()
                    } else {
                        free.recv().map_err(|_| writer_gone())?
                    };
                    let full = std::mem::replace(&mut block, next);
                    blocks.send(Stage::Part(full)).map_err(|_| writer_gone())?;
                }
            }
        }
    }
    Err(abandoned())
}

/// The writer thread: write every block, return each to the pool, fsync at
/// the end. Returns the byte count.
fn write_blocks(
    mut out: BlockWriter,
    blocks: sync_mpsc::Receiver<Stage<Block>>,
    free: sync_mpsc::Sender<Block>,
) -> io::Result<u64> {
    while let Ok(stage) = blocks.recv() {
        match stage {
            Stage::Part(mut block) => {
                out.write(block.data())?;
                block.clear();
                // The hasher may be done with the pool already.
                let _ = free.send(block);
            }
            Stage::Finish => {
                out.file.sync_all()?;
                return Ok(out.written);
            }
        }
    }
    Err(abandoned())
}

/// A buffer of `BLOCK` bytes at an `ALIGN`ed address, filled from the start.
struct Block {
    buf: Box<[u8]>,
    start: usize,
    len: usize,
}

impl Block {
    fn new() -> Self {
        let buf = vec![0; BLOCK + ALIGN].into_boxed_slice();
        let start = (ALIGN - buf.as_ptr().addr() % ALIGN) % ALIGN;
        Self { buf, start, len: 0 }
    }

    /// Copy as much of `data` as fits; returns the rest.
    fn fill<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let n = (BLOCK - self.len).min(data.len());
        let at = self.start + self.len;
        self.buf[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        &data[n..]
    }

    fn is_full(&self) -> bool {
        self.len == BLOCK
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// Appends to a file, with `O_DIRECT` while the file system allows it.
struct BlockWriter {
    file: File,
    direct: bool,
    written: u64,
    /// With ordinary writes: where write-back was last started.
    flushed: u64,
}

impl BlockWriter {
    /// With `O_DIRECT` if the file system allows it.
    fn new(file: File) -> Self {
        let direct = set_direct(&file, true);
        Self {
            file,
            direct,
            written: 0,
            flushed: 0,
        }
    }

    /// Write `data`, which starts at an aligned address and an aligned
    /// offset (every block but the last is full).
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        if self.direct {
            // Whole aligned blocks directly; what is left (the end of the
            // file) through the page cache.
            let mut aligned = rest.len() - rest.len() % ALIGN;
            while aligned > 0 {
                match self.file.write(&rest[..aligned]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.written += n as u64;
                        rest = &rest[n..];
                        aligned = aligned.saturating_sub(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // Refused (alignment, file system): nothing was written;
                    // the rest goes through the page cache.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                    Err(e) => return Err(e),
                }
            }
            if !rest.is_empty() {
                self.direct = false;
                set_direct(&self.file, false);
            }
        }
        if !rest.is_empty() {
            self.file.write_all(rest)?;
            self.written += rest.len() as u64;
            if self.written - self.flushed >= WRITEBACK_STEP {
                start_writeback(&self.file, self.flushed, self.written - self.flushed);
                self.flushed = self.written;
            }
        }
        Ok(())
    }
}

/// Turn `O_DIRECT` on or off for `file`; whether that worked.
fn set_direct(file: &File, on: bool) -> bool {
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is open for the whole call (we hold `file`); F_GETFL and
    // F_SETFL only read and set the descriptor's status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return false;
        }
        let flags = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        libc::fcntl(fd, libc::F_SETFL, flags) == 0
    }
}

/// Ask the kernel to start writing a range back now (without waiting), so
/// the disk works while the network does and the final fsync is short.
fn start_writeback(file: &File, offset: u64, len: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    /// Run the hasher and the writer over `data` in chunks of `piece`
    /// bytes, batched as the network task does; returns (MD5, bytes written).
    fn store(data: &[u8], piece: usize, out: BlockWriter) -> (String, u64) {
        let (batch_tx, batch_rx) = mpsc::channel(BATCH_QUEUE);
        let (block_tx, block_rx) = sync_mpsc::sync_channel(BLOCKS);
        let (free_tx, free_rx) = sync_mpsc::channel();
        let hasher = std::thread::spawn(move || hash_and_lay_out(batch_rx, block_tx, free_rx));
        let writer = std::thread::spawn(move || write_blocks(out, block_rx, free_tx));
        let mut batch = Batch::default();
        for chunk in data.chunks(piece) {
            batch.push(Bytes::copy_from_slice(chunk));
            if batch.bytes >= BATCH {
                batch_tx.blocking_send(Stage::Part(batch.take())).unwrap();
            }
        }
        batch_tx.blocking_send(Stage::Part(batch.take())).unwrap();
        batch_tx.blocking_send(Stage::Finish).unwrap();
        (
            hasher.join().unwrap().unwrap(),
            writer.join().unwrap().unwrap(),
        )
    }

    fn data(len: usize) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(len as u64);
        (0..len).map(|_| rng.u8(..)).collect()
    }

    #[test]
    fn every_size_is_stored_whole_with_its_md5_direct_or_not() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            3 * BLOCK + 12_345,
        ] {
            let data = data(len);
            let md5 = crate::release::hex(&Md5::digest(&data));
            for piece in [1000, 65_536, 700_001] {
                for direct in [true, false] {
                    let path = dir.path().join(format!("{len}-{piece}-{direct}"));
                    let file = File::create(&path).unwrap();
                    let out = if direct {
                        BlockWriter::new(file)
                    } else {
                        BlockWriter {
                            file,
                            direct: false,
                            written: 0,
                            flushed: 0,
                        }
                    };
                    let what = format!("{len} bytes in pieces of {piece}, direct: {direct}");
                    assert_eq!(
                        store(&data, piece, out),
                        (md5.clone(), len as u64),
                        "{what}"
                    );
                    assert!(std::fs::read(&path).unwrap() == data, "{what}");
                }
            }
        }
    }

    #[test]
    fn a_write_that_o_direct_refuses_goes_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("artifact");
        let mut out = BlockWriter::new(File::create(&path).unwrap());
        let data = data(2 * BLOCK);
        let mut block = Block::new();
        let rest = block.fill(&data);
        // One byte into an aligned buffer: a misaligned address, which
        // O_DIRECT refuses with EINVAL on the file systems that enforce it.
        out.write(&block.data()[1..]).unwrap();
        out.write(rest).unwrap();
        assert!(!out.direct);
        assert_eq!(out.written, 2 * BLOCK as u64 - 1);
        assert!(std::fs::read(&path).unwrap() == data[1..]);
    }
}
