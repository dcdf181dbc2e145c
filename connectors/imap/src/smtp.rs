//! SMTP submission client (RFC 5321, RFC 3207 STARTTLS, RFC 4954 AUTH through the host).

use crate::error::{error, protocol};
use crate::mailroom::connector0_1_0::auth::Protocol;
use crate::mailroom::connector0_1_0::types::{Encryption, Error, ErrorKind};
use crate::transport::{Transport, wants_starttls};

/// The name Mailroom gives itself in EHLO.
const CLIENT_NAME: &str = "mailroom.localdomain";

/// The longest reply accepted.
const MAX_REPLY: usize = 64 * 1024;

/// Connects, upgrades to TLS when asked, logs in through the host and says goodbye.
pub fn check(transport: impl Transport, encryption: Encryption) -> Result<(), Error> {
    let mut client = Client {
        transport,
        buffer: Vec::new(),
    };
    let greeting = client.reply()?;
    if greeting.code != 220 {
        return Err(error(
            ErrorKind::Connect,
            format!("the server refused the connection: {}", greeting.text),
        ));
    }
    let mut extensions = client.ehlo()?;
    if wants_starttls(encryption) {
        if !extensions
            .iter()
            .any(|e| e.eq_ignore_ascii_case("STARTTLS"))
        {
            return Err(error(
                ErrorKind::Tls,
                "the server does not offer STARTTLS; Mailroom will not log in without encryption",
            ));
        }
        client.command("STARTTLS", 220)?;
        client.transport.start_tls()?;
        client.buffer.clear();
        extensions = client.ehlo()?;
    }
    let mechanisms: Vec<String> = extensions
        .iter()
        .filter_map(|e| {
            let upper = e.to_ascii_uppercase();
            let list = upper
                .strip_prefix("AUTH ")
                .or_else(|| upper.strip_prefix("AUTH="))?;
            Some(
                list.split_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect();
    client.transport.authenticate(Protocol::Smtp, &mechanisms)?;
    // The login is what was tested; a server that drops the line at QUIT is no failure.
    let _ = client.command("QUIT", 221);
    Ok(())
}

struct Client<T: Transport> {
    transport: T,
    buffer: Vec<u8>,
}

struct Reply {
    code: u16,
    /// The lines' texts, without codes.
    lines: Vec<String>,
    text: String,
}

impl<T: Transport> Client<T> {
    /// EHLO, returning the extension lines (the first line is the greeting).
    fn ehlo(&mut self) -> Result<Vec<String>, Error> {
        let reply = self.command(&format!("EHLO {CLIENT_NAME}"), 250)?;
        Ok(reply.lines.into_iter().skip(1).collect())
    }

    fn command(&mut self, command: &str, expected: u16) -> Result<Reply, Error> {
        self.transport.write(format!("{command}\r\n").as_bytes())?;
        let reply = self.reply()?;
        if reply.code != expected {
            let verb = command.split(' ').next().unwrap_or(command);
            return Err(protocol(format!("{verb} was refused: {}", reply.text)));
        }
        Ok(reply)
    }

    fn reply(&mut self) -> Result<Reply, Error> {
        let mut lines = Vec::new();
        let mut text = String::new();
        loop {
            let line = self.line()?;
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| protocol(format!("not an SMTP reply: {line:.80}")))?;
            lines.push(line.get(4..).unwrap_or_default().to_owned());
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply { code, lines, text });
            }
        }
    }

    fn line(&mut self) -> Result<String, Error> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return Ok(String::from_utf8_lossy(&line).trim_end().to_owned());
            }
            if self.buffer.len() > MAX_REPLY {
                return Err(protocol("the server sent an over-long reply"));
            }
            let data = self.transport.read()?;
            self.buffer.extend_from_slice(&data);
        }
    }
}
