//! `body-sink`: where a connector writes a message too large for one page, in parts.

/// The largest message a connector may hand over. Mailboxes hold messages of 50–150 MB;
/// anything past this is refused rather than held in memory.
pub const MAX_MESSAGE_BYTES: u64 = 512 * 1024 * 1024;

/// A message body being written by a connector. The connector announced its size up front;
/// writes past it are refused, so a connector cannot make the host hold more than it said.
pub struct BodySink {
    pub(super) data: Vec<u8>,
    pub(super) size: u64,
}

impl BodySink {
    pub(super) fn new(size: u64) -> Result<Self, String> {
        if size > MAX_MESSAGE_BYTES {
            return Err(format!(
                "a message of {size} bytes is larger than the {MAX_MESSAGE_BYTES} bytes Mailroom accepts"
            ));
        }
        Ok(Self {
            data: Vec::with_capacity(size as usize),
            size,
        })
    }

    pub(super) fn write(&mut self, part: &[u8]) -> Result<(), String> {
        if self.data.len() as u64 + part.len() as u64 > self.size {
            return Err(format!(
                "the message is longer than the {} bytes announced",
                self.size
            ));
        }
        self.data.extend_from_slice(part);
        Ok(())
    }
}
