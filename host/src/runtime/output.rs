//! A job's stdout and stderr: the first bytes, up to the job's log allowance, are kept for
//! the log; the rest is dropped without the guest noticing. A guest that prints without end
//! neither fills the host nor fails its own job (Rust's `println!` panics when a write
//! fails, Python raises).

use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much a guest may hand over in one write.
const WRITE_PERMIT: usize = 64 * 1024;

#[derive(Clone)]
pub struct CappedOutput {
    cap: usize,
    kept: Arc<Mutex<Vec<u8>>>,
}

impl CappedOutput {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            kept: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// What was kept.
    pub fn contents(&self) -> Vec<u8> {
        self.kept.lock().expect("output poisoned").clone()
    }

    fn take(&self, bytes: &[u8]) {
        let mut kept = self.kept.lock().expect("output poisoned");
        let room = self.cap.saturating_sub(kept.len());
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_cap_is_dropped_and_never_refused() {
        let mut output = CappedOutput::new(10);
        for _ in 0..1000 {
            output
                .write(Bytes::from_static(b"0123456789abcdef"))
                .unwrap();
            assert_eq!(output.check_write().unwrap(), WRITE_PERMIT);
        }
        assert_eq!(output.contents(), b"0123456789");
    }
}
