//! Logged-in connections kept between an account's jobs (`keep` of
//! `mailroom:connector@0.7.0`).
//!
//! A job's connector gives back a connection the host logged in; the account's next job asks
//! for one to the same server and gets it after the server answered a no-op command on it,
//! skipping the connect, the TLS handshake and the login. A connection goes back only to the
//! account that kept it, only while that account logs in with the same credentials, and is
//! closed once it idled longer than `[net] keep_idle_secs`. The bounds hold per account and in
//! all: over them, the longest idle connection is closed.

use super::Connection;
use super::connection::LoggedIn;
use super::preauth::Protocol;
use crate::connector::ConnectorError;
use crate::endpoint::Encryption;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the server may take to answer the check before the connection is given up.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest line the check reads (an untagged reply the server queued meanwhile).
const MAX_LINE: usize = 1 << 20;
/// The most a connector's note may hold.
const MAX_NOTE: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct KeepLimits {
    pub per_account: usize,
    pub total: usize,
    pub idle: Duration,
}

/// The kept connections of every account.
pub struct Kept {
    limits: KeepLimits,
    accounts: Mutex<HashMap<String, Vec<Entry>>>,
}

struct Entry {
    connection: Connection,
    note: Vec<u8>,
    since: Instant,
}

/// The server and login a job wants a connection for.
pub struct Wanted<'a> {
    pub host: &'a str,
    pub port: u16,
    pub encryption: Encryption,
    pub credentials: [u8; 32],
}

impl Entry {
    fn fits(&self, wanted: &Wanted<'_>) -> bool {
        let server = &self.connection.server;
        server.host.eq_ignore_ascii_case(wanted.host)
            && server.port == wanted.port
            && server.encryption == wanted.encryption
            && self
                .connection
                .logged_in
                .as_ref()
                .is_some_and(|l| l.credentials == wanted.credentials)
    }
}

impl Kept {
    pub fn new(limits: KeepLimits) -> Self {
        Self {
            limits,
            accounts: Mutex::new(HashMap::new()),
        }
    }

    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Entry>>> {
        self.accounts.lock().expect("kept connections poisoned")
    }

    /// Keeps `connection` for `account`; false (and the connection closed) when it cannot
    /// be kept: nobody logged in on it, the note is too long, or keeping is off.
    pub fn keep(&self, account: &str, connection: Connection, note: Vec<u8>) -> bool {
        if self.limits.per_account == 0
            || self.limits.total == 0
            || note.len() > MAX_NOTE
            || connection.logged_in.is_none()
        {
            return false;
        }
        let mut accounts = self.accounts();
        let entries = accounts.entry(account.to_owned()).or_default();
        if entries.len() >= self.limits.per_account {
            entries.remove(0);
        }
        entries.push(Entry {
            connection,
            note,
            since: Instant::now(),
        });
        // One connection was added: at most one is over the bound in all, the longest idle.
        if accounts.values().map(Vec::len).sum::<usize>() > self.limits.total {
            let oldest = accounts
                .iter()
                .filter_map(|(id, entries)| Some((entries.first()?.since, id.clone())))
                .min();
            if let Some((_, id)) = oldest {
                let entries = accounts.get_mut(&id).expect("found above");
                entries.remove(0);
                if entries.is_empty() {
                    accounts.remove(&id);
                }
            }
        }
        true
    }

    /// A kept connection of `account` fitting `wanted` on which the server still answers, and
    /// its note. Connections found dead are closed on the way.
    pub async fn reuse(&self, account: &str, wanted: &Wanted<'_>) -> Option<(Connection, Vec<u8>)> {
        loop {
            let entry = {
                let mut accounts = self.accounts();
                let entries = accounts.get_mut(account)?;
                // The sweep closes what idled too long; one due meanwhile is not handed out.
                let idle = self.limits.idle;
                entries.retain(|e| e.since.elapsed() < idle);
                // The most recently kept first: the likeliest to be alive.
                let entry = entries
                    .iter()
                    .rposition(|e| e.fits(wanted))
                    .map(|at| entries.remove(at));
                if entries.is_empty() {
                    accounts.remove(account);
                }
                entry?
            };
            let mut connection = entry.connection;
            match answers(&mut connection).await {
                Ok(true) => return Some((connection, entry.note)),
                Ok(false) | Err(_) => {
                    tracing::debug!(account, "a kept connection no longer answers; closed");
                }
            }
        }
    }

    /// Closes every connection kept for `account` (deleted, or its login refused).
    pub fn forget(&self, account: &str) {
        self.accounts().remove(account);
    }

    /// Closes the connections that idled too long every 15 s, even while no job asks for
    /// one, for as long as `kept` is in use.
    pub fn sweep(kept: &Arc<Self>) {
        let kept = Arc::downgrade(kept);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(15));
            loop {
                every.tick().await;
                match kept.upgrade() {
                    Some(kept) => kept.expire(),
                    None => break,
                }
            }
        });
    }

    /// Closes the connections idle for longer than allowed.
    fn expire(&self) {
        let idle = self.limits.idle;
        let mut accounts = self.accounts();
        for entries in accounts.values_mut() {
            entries.retain(|e| e.since.elapsed() < idle);
        }
        accounts.retain(|_, entries| !entries.is_empty());
    }
}

/// Whether the server answers a no-op command on `connection` as it should, within
/// [`CHECK_TIMEOUT`]. What else it says meanwhile (an IMAP server's news about the mailbox
/// left selected) is read and thrown away; a reply to anything but the check means the
/// connection was not idle, and fails it.
async fn answers(connection: &mut Connection) -> Result<bool, ConnectorError> {
    let Some(LoggedIn { protocol, .. }) = connection.logged_in.clone() else {
        return Ok(false);
    };
    let check = async {
        match protocol {
            Protocol::Imap => {
                const TAG: &[u8] = b"mailroom-check ";
                connection.write_all(b"mailroom-check NOOP\r\n").await?;
                // Whether the line read next goes on a reply whose literal was just skipped.
                let mut continued = false;
                loop {
                    let line = connection.read_line(MAX_LINE).await?;
                    if !continued {
                        if let Some(status) = line.strip_prefix(TAG) {
                            return Ok(status
                                .get(..3)
                                .is_some_and(|s| s.eq_ignore_ascii_case(b"OK ")));
                        }
                        // Another command's completion: the connection was not idle.
                        if !line.starts_with(b"* ")
                            || line
                                .get(..6)
                                .is_some_and(|s| s.eq_ignore_ascii_case(b"* BYE "))
                        {
                            return Ok(false);
                        }
                    }
                    continued = match literal_length(&line) {
                        Some(n) => {
                            connection.skip(n).await?;
                            true
                        }
                        None => false,
                    };
                }
            }
            Protocol::Smtp => {
                connection.write_all(b"NOOP\r\n").await?;
                loop {
                    let line = connection.read_line(MAX_LINE).await?;
                    if line.get(3) == Some(&b'-') {
                        continue;
                    }
                    return Ok(line.starts_with(b"250"));
                }
            }
            Protocol::Pop3 => {
                connection.write_all(b"NOOP\r\n").await?;
                let line = connection.read_line(MAX_LINE).await?;
                Ok(line.starts_with(b"+OK"))
            }
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or(Ok(false))
}

/// The length of the IMAP literal announced at the end of `line` (`{n}` or `{n+}`).
fn literal_length(line: &[u8]) -> Option<usize> {
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::literal_length;

    #[test]
    fn literal_lengths_are_read_from_the_end_of_a_line() {
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {42}\r\n"), Some(42));
        assert_eq!(literal_length(b"* 1 FETCH (BODY[] {7+}\r\n"), Some(7));
        assert_eq!(literal_length(b"* 1 FETCH (FLAGS (\\Seen))\r\n"), None);
        assert_eq!(literal_length(b"* OK {not a number}\r\n"), None);
    }
}
