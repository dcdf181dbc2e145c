//! The POP3 client: commands, single-line and multi-line replies (RFC 1939 section 3), over a
//! connection the host opened. The host runs the login.

use crate::fail;
use crate::mailroom::connector0_1_0::net::{self, Connection};
use crate::mailroom::connector0_1_0::types::{Encryption, Error, ErrorKind, Server};
use crate::mailroom::connector0_4_0::login::{self, Protocol};

/// How much to ask the host for at once.
const READ_CHUNK: u32 = 64 * 1024;
/// The longest line read: message lines should stay under 1,000 bytes (RFC 5322), but some
/// do not.
const MAX_LINE: usize = 1 << 20;

/// One message of the maildrop: its number in this session, its UIDL and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub number: u32,
    pub uid: String,
    pub size: u64,
}

pub struct Client {
    conn: Connection,
    /// Bytes read and not yet consumed.
    buffer: Vec<u8>,
}

impl Client {
    /// Connects (with TLS as the account asks: implicit, or STLS before anything else),
    /// reads the greeting and capabilities, and has the host log in.
    pub fn login(server: &Server) -> Result<Self, Error> {
        let conn = net::connect(&server.host, server.port, server.encryption)?;
        let mut client = Self {
            conn,
            buffer: Vec::new(),
        };
        client.expect_ok()?;
        let mut capabilities = client.capabilities()?;
        if server.encryption == Encryption::Starttls {
            if !capabilities.iter().any(|c| c.eq_ignore_ascii_case("STLS")) {
                return Err(fail(ErrorKind::Tls, "the server does not offer STLS"));
            }
            client.command("STLS")?;
            client.buffer.clear();
            client.conn.start_tls()?;
            capabilities = client.capabilities()?;
        }
        let mechanisms: Vec<String> = capabilities
            .iter()
            .find_map(|line| {
                let (word, rest) = line.split_once(' ')?;
                word.eq_ignore_ascii_case("SASL")
                    .then(|| rest.split_whitespace().map(str::to_owned).collect())
            })
            .unwrap_or_default();
        login::authenticate(&client.conn, Protocol::Pop3, &mechanisms)?;
        Ok(client)
    }

    /// The maildrop in arrival order (oldest first), from `UIDL` and `LIST`.
    pub fn listing(&mut self) -> Result<Vec<Entry>, Error> {
        let uids = self.multi_line("UIDL")?;
        let sizes = self.multi_line("LIST")?;
        let mut sizes = sizes.iter().filter_map(|line| {
            let (number, size) = line.split_once(' ')?;
            Some((
                number.parse::<u32>().ok()?,
                size.trim().parse::<u64>().ok()?,
            ))
        });
        let mut entries = Vec::with_capacity(uids.len());
        for line in &uids {
            let parsed = line.split_once(' ').and_then(|(number, uid)| {
                Some((number.parse::<u32>().ok()?, uid.trim().to_owned()))
            });
            let Some((number, uid)) = parsed.filter(|(_, uid)| valid_uid(uid)) else {
                return Err(fail(
                    ErrorKind::Protocol,
                    "the server sent a malformed UIDL line",
                ));
            };
            let size = sizes
                .find(|(n, _)| *n == number)
                .map(|(_, size)| size)
                .ok_or_else(|| fail(ErrorKind::Protocol, "LIST and UIDL disagree"))?;
            entries.push(Entry { number, uid, size });
        }
        Ok(entries)
    }

    /// The message's headers (`TOP n 0`).
    pub fn top(&mut self, number: u32) -> Result<Vec<u8>, Error> {
        let mut headers = Vec::new();
        self.send(&format!("TOP {number} 0"))?;
        self.expect_ok()?;
        self.read_body(&mut |chunk| {
            headers.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(headers)
    }

    /// The whole message (`RETR n`), handed to `take` in pieces, lines ending in CRLF.
    pub fn retrieve(
        &mut self,
        number: u32,
        take: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.send(&format!("RETR {number}"))?;
        self.expect_ok()?;
        self.read_body(take)
    }

    /// Ends the session politely; errors do not matter any more.
    pub fn quit(&mut self) {
        if self.send("QUIT").is_ok() {
            let _ = self.read_line();
        }
    }

    fn capabilities(&mut self) -> Result<Vec<String>, Error> {
        self.send("CAPA")?;
        // A server without CAPA (RFC 1939 only) answers -ERR: it has no STLS and no SASL.
        match self.status()? {
            Ok(_) => self.lines(),
            Err(_) => Ok(Vec::new()),
        }
    }

    fn command(&mut self, line: &str) -> Result<String, Error> {
        self.send(line)?;
        self.expect_ok()
    }

    fn multi_line(&mut self, line: &str) -> Result<Vec<String>, Error> {
        self.command(line)?;
        self.lines()
    }

    fn send(&mut self, line: &str) -> Result<(), Error> {
        self.conn.write(format!("{line}\r\n").as_bytes())
    }

    fn expect_ok(&mut self) -> Result<String, Error> {
        self.status()?
            .map_err(|text| fail(ErrorKind::Protocol, format!("the server refused: {text}")))
    }

    /// The status line: `Ok` with the text after `+OK`, `Err` with the text after `-ERR`.
    fn status(&mut self) -> Result<Result<String, String>, Error> {
        let line = self.read_line()?;
        let line = String::from_utf8_lossy(&line);
        let line: String = line.chars().filter(|c| !c.is_control()).take(200).collect();
        if let Some(rest) = line.strip_prefix("+OK") {
            Ok(Ok(rest.trim().to_owned()))
        } else if let Some(rest) = line.strip_prefix("-ERR") {
            Ok(Err(rest.trim().to_owned()))
        } else {
            Err(fail(
                ErrorKind::Protocol,
                "the server's reply is not +OK or -ERR",
            ))
        }
    }

    /// The lines of a multi-line reply, as text.
    fn lines(&mut self) -> Result<Vec<String>, Error> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line()?;
            match unstuff(&line) {
                None => return Ok(lines),
                Some(line) => lines.push(String::from_utf8_lossy(line).trim_end().to_owned()),
            }
        }
    }

    /// The body of a multi-line reply, dot-unstuffed, lines ending in CRLF.
    fn read_body(&mut self, take: &mut dyn FnMut(&[u8]) -> Result<(), Error>) -> Result<(), Error> {
        let mut piece = Vec::with_capacity(READ_CHUNK as usize);
        loop {
            let line = self.read_line()?;
            let Some(line) = unstuff(&line) else {
                break;
            };
            let text = line
                .strip_suffix(b"\r\n")
                .or_else(|| line.strip_suffix(b"\n"))
                .unwrap_or(line);
            piece.extend_from_slice(text);
            piece.extend_from_slice(b"\r\n");
            if piece.len() >= READ_CHUNK as usize {
                take(&piece)?;
                piece.clear();
            }
        }
        if !piece.is_empty() {
            take(&piece)?;
        }
        Ok(())
    }

    /// One line with its ending. Body lines may be long; status lines may not.
    fn read_line(&mut self) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let rest = self.buffer.split_off(end + 1);
                return Ok(std::mem::replace(&mut self.buffer, rest));
            }
            if self.buffer.len() > MAX_LINE {
                return Err(fail(
                    ErrorKind::Protocol,
                    "the server sent an over-long line",
                ));
            }
            let data = self.conn.read(READ_CHUNK)?;
            if data.is_empty() {
                return Err(fail(ErrorKind::Connect, "the server closed the connection"));
            }
            self.buffer.extend_from_slice(&data);
        }
    }
}

/// A multi-line reply's line without its stuffed dot, or `None` for the terminating `.`.
fn unstuff(line: &[u8]) -> Option<&[u8]> {
    let text = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line);
    if text == b"." {
        return None;
    }
    Some(line.strip_prefix(b".").unwrap_or(line))
}

/// RFC 1939: a UIDL is 1 to 70 characters from 0x21 to 0x7E.
fn valid_uid(uid: &str) -> bool {
    (1..=70).contains(&uid.len()) && uid.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffed_dots_are_removed_and_the_end_is_found() {
        assert_eq!(unstuff(b"..hidden\r\n"), Some(&b".hidden\r\n"[..]));
        assert_eq!(unstuff(b".\r\n"), None);
        assert_eq!(unstuff(b"plain\r\n"), Some(&b"plain\r\n"[..]));
    }

    #[test]
    fn uids_are_printable_and_short() {
        assert!(valid_uid("00000001507c8f4a"));
        assert!(!valid_uid(""));
        assert!(!valid_uid("has space"));
        assert!(!valid_uid(&"x".repeat(71)));
    }
}
