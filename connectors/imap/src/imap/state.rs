//! A folder's sync state, the bytes the host keeps for the connector between jobs.
//!
//! Version 2, little-endian: `2`, UIDVALIDITY (u32), the high-water UID (u32: every UID
//! below it was seen by an earlier step), HIGHESTMODSEQ (u64, 0 without CONDSTORE), the
//! backfill's low-water UID (u32: UIDs from it up to the high-water mark are done), whether
//! the backfill is complete (u8), and UIDNEXT when the folder's first sync began (u32: mail
//! from there on is synced whatever its date). Version 1 is version 2 without the last
//! field, which is then unknown (0).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderState {
    pub uid_validity: u32,
    /// UIDNEXT as far as new mail has been synced.
    pub high: u32,
    pub modseq: u64,
    /// The backfill goes down from here, newest first.
    pub low: u32,
    pub backfilled: bool,
    /// UIDNEXT when the first sync began; 0 when a state of version 1 did not say.
    pub origin: u32,
}

const VERSION: u8 = 2;
const LEN_1: usize = 1 + 4 + 4 + 8 + 4 + 1;
const LEN: usize = LEN_1 + 4;

impl FolderState {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(LEN);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.uid_validity.to_le_bytes());
        bytes.extend_from_slice(&self.high.to_le_bytes());
        bytes.extend_from_slice(&self.modseq.to_le_bytes());
        bytes.extend_from_slice(&self.low.to_le_bytes());
        bytes.push(self.backfilled as u8);
        bytes.extend_from_slice(&self.origin.to_le_bytes());
        bytes
    }

    /// `None` for bytes this version did not write: the folder then starts over.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match (bytes.first(), bytes.len()) {
            (Some(1), LEN_1) | (Some(&VERSION), LEN) => {}
            _ => return None,
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        Some(Self {
            uid_validity: u32_at(1),
            high: u32_at(5),
            modseq: u64::from_le_bytes(bytes[9..17].try_into().unwrap()),
            low: u32_at(17),
            backfilled: bytes[21] != 0,
            origin: if bytes.len() == LEN { u32_at(22) } else { 0 },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_foreign_bytes() {
        let state = FolderState {
            uid_validity: 7,
            high: 1200,
            modseq: 1 << 40,
            low: 3,
            backfilled: true,
            origin: 1100,
        };
        assert_eq!(FolderState::decode(&state.encode()), Some(state));
        // A state of version 1 keeps everything it said; where the first sync began is
        // unknown.
        let mut first = state.encode()[..LEN_1].to_vec();
        first[0] = 1;
        let old = FolderState::decode(&first).expect("version 1 is read");
        assert_eq!(old, FolderState { origin: 0, ..state });
        assert_eq!(FolderState::decode(b""), None);
        let mut other = state.encode();
        other[0] = 9;
        assert_eq!(FolderState::decode(&other), None);
    }
}
