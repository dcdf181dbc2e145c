//! `body-sink`: where a connector writes a message too large for one page, in parts.
//!
//! A connector cannot make the host hold more than a page per job in memory, however large
//! the messages it announces: a sink keeps its first bytes in memory while they fit the job's
//! share (one page) and the host-wide allowance for all jobs together, and spools the rest
//! to an unlinked file in the data directory as it is written. A job holds at most
//! [`MAX_LIVE_SINKS`] sinks at once, and the spool as a whole has a cap.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The largest message a connector may hand over. Mailboxes hold messages of 50–150 MB;
/// anything past this is refused.
pub const MAX_MESSAGE_BYTES: u64 = 512 * 1024 * 1024;

/// Sinks one job may hold at once. A page carries at most one message larger than its byte
/// limit, and a sink is handed back in the page it was made for.
pub const MAX_LIVE_SINKS: usize = 2;

/// The host-wide allowance for sinks, shared by every job.
#[derive(Debug)]
pub struct SinkPool {
    spool_dir: PathBuf,
    memory_cap: u64,
    spool_cap: u64,
    memory_used: AtomicU64,
    spool_used: AtomicU64,
}

impl SinkPool {
    /// Sinks of all jobs together keep at most `memory_cap` bytes in memory and
    /// `spool_cap` bytes in files under `spool_dir`.
    pub fn new(spool_dir: PathBuf, memory_cap: u64, spool_cap: u64) -> Arc<Self> {
        Arc::new(Self {
            spool_dir,
            memory_cap,
            spool_cap,
            memory_used: AtomicU64::new(0),
            spool_used: AtomicU64::new(0),
        })
    }

    /// Bytes held in memory by the sinks of every job.
    pub fn memory_used(&self) -> u64 {
        self.memory_used.load(Ordering::Relaxed)
    }

    /// Bytes spooled to disk by the sinks of every job.
    pub fn spool_used(&self) -> u64 {
        self.spool_used.load(Ordering::Relaxed)
    }

    fn reserve(counter: &AtomicU64, cap: u64, bytes: u64) -> bool {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= cap)
            })
            .is_ok()
    }
}

/// A message body being written by a connector. The connector announced its size up front;
/// writes past it are refused.
#[derive(Debug)]
pub struct BodySink {
    pool: Arc<SinkPool>,
    /// The job's count of live sinks, this one included.
    live: Arc<AtomicUsize>,
    size: u64,
    written: u64,
    /// The bytes kept in memory (all of them until the sink spools).
    memory: Vec<u8>,
    /// How many bytes this sink may keep in memory.
    memory_share: u64,
    /// Bytes of the pool's memory allowance this sink holds.
    memory_reserved: u64,
    spool: Option<File>,
    /// Bytes of the pool's spool allowance this sink holds.
    spool_reserved: u64,
}

impl BodySink {
    /// A sink for a message of `size` bytes, keeping at most `memory_share` of them in
    /// memory; one of the job's `live` sinks.
    pub(super) fn new(
        pool: Arc<SinkPool>,
        live: Arc<AtomicUsize>,
        size: u64,
        memory_share: u64,
    ) -> Result<Self, String> {
        if size > MAX_MESSAGE_BYTES {
            return Err(format!(
                "a message of {size} bytes is larger than the {MAX_MESSAGE_BYTES} bytes Mailroom accepts"
            ));
        }
        let taken = live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_LIVE_SINKS).then_some(n + 1)
        });
        if taken.is_err() {
            return Err(format!(
                "a job may hold at most {MAX_LIVE_SINKS} body sinks at once; hand each back in its page"
            ));
        }
        Ok(Self {
            pool,
            live,
            size,
            written: 0,
            memory: Vec::new(),
            memory_share,
            memory_reserved: 0,
            spool: None,
            spool_reserved: 0,
        })
    }

    pub(super) fn write(&mut self, part: &[u8]) -> Result<(), String> {
        let len = part.len() as u64;
        if self.written + len > self.size {
            return Err(format!(
                "the message is longer than the {} bytes announced",
                self.size
            ));
        }
        if self.spool.is_none() {
            let fits = self.memory.len() as u64 + len <= self.memory_share
                && SinkPool::reserve(&self.pool.memory_used, self.pool.memory_cap, len);
            if fits {
                self.memory_reserved += len;
                self.memory.extend_from_slice(part);
                self.written += len;
                return Ok(());
            }
            self.start_spool()?;
        }
        self.reserve_spool(len)?;
        let file = self.spool.as_mut().expect("spooling");
        file.write_all(part).map_err(spool_error)?;
        self.written += len;
        Ok(())
    }

    /// Moves what is in memory to a new spool file, which has no name: it is gone with the
    /// sink, whatever ends the job.
    fn start_spool(&mut self) -> Result<(), String> {
        let mut file = anonymous_file(&self.pool.spool_dir).map_err(spool_error)?;
        let held = std::mem::take(&mut self.memory);
        self.reserve_spool(held.len() as u64)?;
        file.write_all(&held).map_err(spool_error)?;
        self.release_memory();
        self.spool = Some(file);
        Ok(())
    }

    /// Takes `len` bytes of the host-wide spool allowance for this sink.
    fn reserve_spool(&mut self, len: u64) -> Result<(), String> {
        if !SinkPool::reserve(&self.pool.spool_used, self.pool.spool_cap, len) {
            return Err(
                "the host's spool for large messages is full; the message is tried again later"
                    .into(),
            );
        }
        self.spool_reserved += len;
        Ok(())
    }

    fn release_memory(&mut self) {
        self.pool
            .memory_used
            .fetch_sub(self.memory_reserved, Ordering::AcqRel);
        self.memory_reserved = 0;
    }

    /// The message's bytes, for the page that carries it.
    pub(super) fn into_bytes(mut self) -> Result<Vec<u8>, String> {
        match self.spool.take() {
            None => Ok(std::mem::take(&mut self.memory)),
            Some(mut file) => {
                let mut bytes = Vec::with_capacity(self.written as usize);
                file.seek(SeekFrom::Start(0)).map_err(spool_error)?;
                file.read_to_end(&mut bytes).map_err(spool_error)?;
                Ok(bytes)
            }
        }
    }

    /// The bytes written so far.
    pub(super) fn written(&self) -> u64 {
        self.written
    }
}

impl Drop for BodySink {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        self.release_memory();
        self.pool
            .spool_used
            .fetch_sub(self.spool_reserved, Ordering::AcqRel);
    }
}

fn spool_error(error: std::io::Error) -> String {
    format!("the host could not spool the message: {error}")
}

/// A read-write file in `dir` that no other process can open: created owner-only and
/// unlinked at once.
fn anonymous_file(dir: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(format!("sink-{}", hex::encode(rand::random::<[u8; 16]>())));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(dir: &Path, memory_cap: u64, spool_cap: u64) -> Arc<SinkPool> {
        SinkPool::new(dir.to_path_buf(), memory_cap, spool_cap)
    }

    fn sink(pool: &Arc<SinkPool>, live: &Arc<AtomicUsize>, size: u64) -> Result<BodySink, String> {
        BodySink::new(pool.clone(), live.clone(), size, 4096)
    }

    #[test]
    fn a_large_message_is_spooled_beyond_the_jobs_share_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), 1 << 20, 1 << 30);
        let live = Arc::new(AtomicUsize::new(0));
        let mut sink = sink(&pool, &live, 10_000).unwrap();
        let message: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for part in message.chunks(3000) {
            sink.write(part).unwrap();
        }
        assert_eq!(
            pool.memory_used(),
            0,
            "nothing stays in memory once spooled"
        );
        assert_eq!(pool.spool_used(), 10_000);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the spool file has no name"
        );
        assert_eq!(sink.into_bytes().unwrap(), message);
        assert_eq!(pool.spool_used(), 0, "the spool is freed with the sink");
    }

    #[test]
    fn a_sink_refuses_bytes_past_its_announced_size_and_a_size_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), 1 << 20, 1 << 30);
        let live = Arc::new(AtomicUsize::new(0));
        assert!(sink(&pool, &live, MAX_MESSAGE_BYTES + 1).is_err());
        let mut sink = sink(&pool, &live, 10).unwrap();
        sink.write(b"0123456789").unwrap();
        assert!(sink.write(b"x").unwrap_err().contains("longer than"));
        drop(sink);
        assert_eq!(pool.memory_used(), 0);
    }

    #[test]
    fn the_host_wide_allowances_hold_across_sinks() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), 100, 250);
        let live = Arc::new(AtomicUsize::new(0));
        let mut first = sink(&pool, &live, 1000).unwrap();
        first.write(&[1; 80]).unwrap();
        assert_eq!(pool.memory_used(), 80);
        // The second sink finds the memory allowance taken and spools at once.
        let mut second = sink(&pool, &live, 1000).unwrap();
        second.write(&[2; 80]).unwrap();
        assert_eq!((pool.memory_used(), pool.spool_used()), (80, 80));
        second.write(&[2; 170]).unwrap();
        assert!(second.write(&[2; 1]).unwrap_err().contains("spool"));
        drop((first, second));
        assert_eq!((pool.memory_used(), pool.spool_used()), (0, 0));
    }

    #[test]
    fn a_job_holds_few_sinks_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool(dir.path(), 1 << 20, 1 << 30);
        let live = Arc::new(AtomicUsize::new(0));
        let held: Vec<BodySink> = (0..MAX_LIVE_SINKS)
            .map(|_| sink(&pool, &live, 100).unwrap())
            .collect();
        assert!(sink(&pool, &live, 100).unwrap_err().contains("at most"));
        drop(held);
        assert!(sink(&pool, &live, 100).is_ok());
    }
}
