//! What one sync page may still take (`limits` of `mailroom:connector/mail@0.2.0`).
//!
//! A page carries at most `max-messages` messages and at most `max-bytes` bytes of bodies,
//! plus at most one message larger than `max-bytes`, which travels in a body sink and ends
//! the page (the host keeps two live sinks per job). A `held` body counts as a message but
//! carries no bytes.

/// A message a page may hand over, in the order pages take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    /// Its labels when a change record said them; none when only fetching tells.
    pub labels: Option<Vec<String>>,
}

/// How a message joins the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Its bytes in the page.
    Inline,
    /// In a body sink; the page ends after it.
    Sink,
    /// Not in this page: it carries over.
    Full,
}

#[derive(Debug, Clone)]
pub struct Budget {
    messages: u32,
    bytes: u64,
    max_bytes: u64,
    closed: bool,
}

impl Budget {
    pub fn new(max_messages: u32, max_bytes: u64) -> Self {
        Self {
            messages: max_messages.max(1),
            bytes: max_bytes.max(1),
            max_bytes: max_bytes.max(1),
            closed: false,
        }
    }

    /// Whether one more message of any kind may join.
    pub fn has_room(&self) -> bool {
        !self.closed && self.messages > 0
    }

    /// How many more messages may join.
    pub fn messages_left(&self) -> usize {
        if self.closed {
            0
        } else {
            self.messages as usize
        }
    }

    /// Bytes of bodies the page may still take (besides its one large message).
    pub fn bytes_left(&self) -> u64 {
        if self.has_room() { self.bytes } else { 0 }
    }

    /// Takes a message whose body the host holds.
    pub fn admit_held(&mut self) -> bool {
        if !self.has_room() {
            return false;
        }
        self.messages -= 1;
        true
    }

    /// Takes a message of `size` bytes if it fits.
    pub fn admit(&mut self, size: u64) -> Admit {
        if !self.has_room() {
            return Admit::Full;
        }
        if size <= self.bytes {
            self.messages -= 1;
            self.bytes -= size;
            return Admit::Inline;
        }
        if size > self.max_bytes {
            self.messages -= 1;
            self.closed = true;
            return Admit::Sink;
        }
        Admit::Full
    }

    /// Ends the page: nothing more joins.
    pub fn close(&mut self) {
        self.closed = true;
    }
}

/// Messages fetched whole in a job's first round, before their size is known.
const FIRST_FETCHES: usize = 8;

/// How many messages to fetch whole for the room a page has left, so that few are fetched
/// only to wait for the next page: what fits by the mean size seen, and at least one.
#[derive(Debug, Clone)]
pub struct FetchWindow {
    room: u64,
    mean: Option<u64>,
    count: usize,
}

impl FetchWindow {
    pub fn new(room: u64, mean: Option<u64>) -> Self {
        Self {
            room,
            mean,
            count: 0,
        }
    }

    /// A message at hand already (fetched for an earlier page) takes its room.
    pub fn known(&mut self, size: u64) {
        self.room = self.room.saturating_sub(size);
        self.count += 1;
    }

    /// Whether one more message may be fetched whole.
    pub fn fetch(&mut self) -> bool {
        let allowed = match self.mean {
            None => self.count < FIRST_FETCHES,
            Some(_) => self.room > 0 || self.count == 0,
        };
        if allowed {
            self.count += 1;
            self.room = self.room.saturating_sub(self.mean.unwrap_or(0).max(1));
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_fill_the_bytes_then_carry_over() {
        let mut budget = Budget::new(10, 100);
        assert_eq!(budget.admit(60), Admit::Inline);
        assert_eq!(budget.admit(40), Admit::Inline);
        assert!(budget.admit_held());
        assert_eq!(budget.admit(1), Admit::Full);
        assert!(budget.has_room());
        assert_eq!(budget.messages_left(), 7);
        assert_eq!(budget.bytes_left(), 0);
    }

    #[test]
    fn one_large_message_travels_in_a_sink_and_ends_the_page() {
        let mut budget = Budget::new(10, 100);
        assert_eq!(budget.admit(30), Admit::Inline);
        // Larger than what is left but not than a page: carried over.
        assert_eq!(budget.admit(90), Admit::Full);
        // Larger than a page: the page's one sink.
        assert_eq!(budget.admit(500), Admit::Sink);
        assert!(!budget.has_room());
        assert_eq!(budget.admit(1), Admit::Full);
        assert!(!budget.admit_held());
    }

    #[test]
    fn the_message_count_is_a_limit_too() {
        let mut budget = Budget::new(2, 1000);
        assert!(budget.admit_held());
        assert_eq!(budget.admit(10), Admit::Inline);
        assert!(!budget.has_room());
        assert_eq!(budget.admit(10), Admit::Full);
        // Zero limits still let one message through.
        let mut budget = Budget::new(0, 0);
        assert_eq!(budget.admit(1), Admit::Inline);
        assert!(!budget.has_room());
    }

    #[test]
    fn fetches_follow_the_room_left() {
        // Small messages: what fits.
        let mut window = FetchWindow::new(50_000, Some(1_000));
        assert_eq!((0..100).filter(|_| window.fetch()).count(), 50);
        // Messages larger than the page: one, the page's sink.
        let mut window = FetchWindow::new(4 << 20, Some(5 << 20));
        assert!(window.fetch());
        assert!(!window.fetch());
        // A full page still fetches one: it may be the page's one large message.
        let mut window = FetchWindow::new(0, Some(1_000));
        assert!(window.fetch());
        assert!(!window.fetch());
        // Messages at hand take room first.
        let mut window = FetchWindow::new(4 << 20, Some(5 << 20));
        window.known(5 << 20);
        assert!(!window.fetch());
        // Before any size is known, a few.
        let mut window = FetchWindow::new(1 << 30, None);
        assert_eq!((0..100).filter(|_| window.fetch()).count(), FIRST_FETCHES);
    }
}
