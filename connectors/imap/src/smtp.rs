//! SMTP submission client (RFC 5321, RFC 3207 STARTTLS, RFC 4954 AUTH through the host,
//! RFC 1870 SIZE).

use crate::error::{error, protocol};
use crate::mailroom::connector0_1_0::auth::Protocol;
use crate::mailroom::connector0_1_0::types::{Encryption, Error, ErrorKind};
use crate::mailroom::connector0_3_0::changes::{self, Delivery, Envelope, Recipient};
use crate::transport::{Transport, WRITE_CHUNK, wants_starttls};

/// The name Mailroom gives itself in EHLO.
const CLIENT_NAME: &str = "mailroom.localdomain";

/// The longest reply accepted.
const MAX_REPLY: usize = 64 * 1024;

/// Connects, upgrades to TLS when asked, logs in through the host and says goodbye.
pub fn check(transport: impl Transport, encryption: Encryption) -> Result<(), Error> {
    Client::open(transport, encryption)?.quit();
    Ok(())
}

/// Submits `raw` to the envelope's recipients and reports what the server answered. The
/// message goes out as given, framed for DATA (see [`Stuffing`]).
pub fn send(
    transport: impl Transport,
    encryption: Encryption,
    envelope: &Envelope,
    raw: &[u8],
) -> Result<Delivery, Error> {
    check_address(&envelope.from)?;
    if envelope.recipients.is_empty() {
        return Err(error(
            ErrorKind::Unsupported,
            "the envelope has no recipients",
        ));
    }
    for address in &envelope.recipients {
        check_address(address)?;
    }
    let mut client = Client::open(transport, encryption)?;
    let delivery = client.deliver(envelope, raw)?;
    client.quit();
    Ok(delivery)
}

/// Refuses an address that cannot stand between the angle brackets of MAIL FROM or RCPT TO:
/// an empty one, or one with a control character (CR and LF would end the command) or an
/// angle bracket (which would end the path).
fn check_address(address: &str) -> Result<(), Error> {
    if address.is_empty() || address.contains(|c: char| c.is_control() || c == '<' || c == '>') {
        return Err(error(
            ErrorKind::Unsupported,
            format!("{address:?} cannot be used as an envelope address"),
        ));
    }
    Ok(())
}

/// The size of the message as SIZE counts it (RFC 1870): with CRLF line endings, without
/// the dot-stuffing and the final dot.
fn message_size(raw: &[u8]) -> u64 {
    let bare_endings = raw
        .iter()
        .enumerate()
        .filter(|&(i, &b)| match b {
            b'\n' => i == 0 || raw[i - 1] != b'\r',
            b'\r' => raw.get(i + 1) != Some(&b'\n'),
            _ => false,
        })
        .count();
    let open_last_line = !matches!(raw.last(), None | Some(b'\n' | b'\r'));
    (raw.len() + bare_endings + if open_last_line { 2 } else { 0 }) as u64
}

/// A message on its way into DATA (RFC 5321 §4.5.2): every line ending becomes CRLF (a bare
/// CR or LF too, so that no server can read a line end the client did not mean), a line
/// that begins with a dot gets another, and the last line is ended before the final dot.
#[derive(Default)]
struct Stuffing {
    /// Inside a line: a dot now is no line's first character.
    mid_line: bool,
    /// The part before ended with a CR, which may be a CRLF's first half.
    pending_cr: bool,
}

impl Stuffing {
    /// Appends the next part of the message, framed, to `out`.
    fn push(&mut self, part: &[u8], out: &mut Vec<u8>) {
        for &byte in part {
            if std::mem::take(&mut self.pending_cr) {
                out.extend_from_slice(b"\r\n");
                self.mid_line = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.mid_line = false;
                }
                _ => {
                    if byte == b'.' && !self.mid_line {
                        out.push(b'.');
                    }
                    out.push(byte);
                    self.mid_line = true;
                }
            }
        }
    }

    /// Ends the last line, if it is open, and appends the final dot.
    fn finish(self, out: &mut Vec<u8>) {
        if self.pending_cr || self.mid_line {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

struct Client<T: Transport> {
    transport: T,
    buffer: Vec<u8>,
    /// The extension lines of the last EHLO reply.
    extensions: Vec<String>,
}

struct Reply {
    code: u16,
    /// The lines' texts, without codes.
    lines: Vec<String>,
    text: String,
}

impl Reply {
    /// The reply as the host sees it: the code and the lines' texts.
    fn answer(&self) -> changes::Reply {
        changes::Reply {
            code: self.code,
            text: self.lines.join(" "),
        }
    }
}

impl<T: Transport> Client<T> {
    /// Reads the greeting, upgrades to TLS when the account asks for STARTTLS, and has the
    /// host log in.
    fn open(transport: T, encryption: Encryption) -> Result<Self, Error> {
        let mut client = Client {
            transport,
            buffer: Vec::new(),
            extensions: Vec::new(),
        };
        let greeting = client.reply()?;
        if greeting.code != 220 {
            return Err(error(
                ErrorKind::Connect,
                format!("the server refused the connection: {}", greeting.text),
            ));
        }
        client.ehlo()?;
        if wants_starttls(encryption) {
            if client.extension("STARTTLS").is_none() {
                return Err(error(
                    ErrorKind::Tls,
                    "the server does not offer STARTTLS; Mailroom will not log in without encryption",
                ));
            }
            client.command("STARTTLS", 220)?;
            client.transport.start_tls()?;
            client.buffer.clear();
            client.ehlo()?;
        }
        let mechanisms: Vec<String> = client
            .extensions
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
        Ok(client)
    }

    /// One mail transaction: MAIL FROM, RCPT TO for each recipient and, when one was
    /// accepted, DATA.
    fn deliver(&mut self, envelope: &Envelope, raw: &[u8]) -> Result<Delivery, Error> {
        let mut delivery = Delivery {
            recipients: Vec::with_capacity(envelope.recipients.len()),
            refused: None,
            data: None,
        };
        let mut mail = format!("MAIL FROM:<{}>", envelope.from);
        if let Some(limit) = self.extension("SIZE") {
            let size = message_size(raw);
            // No number, or 0, means no fixed limit.
            if let Ok(limit) = limit.trim().parse::<u64>()
                && limit > 0
                && size > limit
            {
                delivery.refused = Some(changes::Reply {
                    code: 552,
                    text: format!(
                        "the message is {size} bytes, more than the {limit} the server accepts"
                    ),
                });
                return Ok(delivery);
            }
            mail.push_str(&format!(" SIZE={size}"));
        }
        let reply = self.ask(&mail)?;
        if reply.code != 250 {
            delivery.refused = Some(reply.answer());
            return Ok(delivery);
        }
        for address in &envelope.recipients {
            let reply = self.ask(&format!("RCPT TO:<{address}>"))?;
            delivery.recipients.push(Recipient {
                address: address.clone(),
                reply: reply.answer(),
            });
        }
        if !delivery
            .recipients
            .iter()
            .any(|r| matches!(r.reply.code, 250 | 251))
        {
            return Ok(delivery);
        }
        let reply = self.ask("DATA")?;
        if reply.code != 354 {
            delivery.data = Some(reply.answer());
            return Ok(delivery);
        }
        let mut stuffing = Stuffing::default();
        let mut framed = Vec::with_capacity(WRITE_CHUNK + WRITE_CHUNK / 8);
        for part in raw.chunks(WRITE_CHUNK) {
            framed.clear();
            stuffing.push(part, &mut framed);
            self.transport.write(&framed)?;
        }
        framed.clear();
        stuffing.finish(&mut framed);
        self.transport.write(&framed)?;
        delivery.data = Some(self.reply()?.answer());
        Ok(delivery)
    }

    /// Says goodbye. A server that drops the line at QUIT is no failure.
    fn quit(mut self) {
        let _ = self.command("QUIT", 221);
    }

    /// EHLO, keeping the extension lines (those after the greeting line).
    fn ehlo(&mut self) -> Result<(), Error> {
        let reply = self.command(&format!("EHLO {CLIENT_NAME}"), 250)?;
        self.extensions = reply.lines.into_iter().skip(1).collect();
        Ok(())
    }

    /// The parameters of an extension the server advertised (empty when it has none).
    fn extension(&self, keyword: &str) -> Option<&str> {
        self.extensions.iter().find_map(|line| {
            let (name, parameters) = line.split_once(' ').unwrap_or((line, ""));
            name.eq_ignore_ascii_case(keyword).then_some(parameters)
        })
    }

    /// Sends a command and returns the reply, whatever its code.
    fn ask(&mut self, command: &str) -> Result<Reply, Error> {
        self.transport.write(format!("{command}\r\n").as_bytes())?;
        self.reply()
    }

    /// Sends a command; any reply but `expected` is an error.
    fn command(&mut self, command: &str, expected: u16) -> Result<Reply, Error> {
        let reply = self.ask(command)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::script::{Dialogue, Log};

    const GREETING: &str = "220 mx.example ESMTP\r\n";
    const EHLO: &str = "250-mx.example\r\n250-SIZE 1000\r\n250 AUTH PLAIN LOGIN\r\n";

    fn envelope(recipients: &[&str]) -> Envelope {
        Envelope {
            from: "me@example.org".into(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// What the client wrote, one entry per write.
    fn written(log: &Log) -> Vec<String> {
        log.borrow()
            .iter()
            .filter_map(|entry| entry.strip_prefix("C: "))
            .map(str::to_owned)
            .collect()
    }

    fn framed(raw: &[u8], part: usize) -> Vec<u8> {
        let mut stuffing = Stuffing::default();
        let mut out = Vec::new();
        for chunk in raw.chunks(part) {
            stuffing.push(chunk, &mut out);
        }
        stuffing.finish(&mut out);
        out
    }

    #[test]
    fn dots_are_stuffed_and_line_endings_made_crlf() {
        let cases: [(&[u8], &[u8]); 7] = [
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".", b"..\r\n.\r\n"),
            (
                b"Subject: x\n\n.\r\n..b\r\nc.d\n",
                b"Subject: x\r\n\r\n..\r\n...b\r\nc.d\r\n.\r\n",
            ),
            // A bare CR ends a line too: no server may find a line of one dot in it.
            (b"a\r.\rb\r", b"a\r\n..\r\nb\r\n.\r\n"),
            (b"\n.\n", b"\r\n..\r\n.\r\n"),
        ];
        for (raw, want) in cases {
            // Parts of every size, so that CRLF and line starts fall across part boundaries.
            for part in 1..=raw.len().max(1) {
                assert_eq!(
                    String::from_utf8_lossy(&framed(raw, part)),
                    String::from_utf8_lossy(want),
                    "{:?} in parts of {part}",
                    String::from_utf8_lossy(raw),
                );
            }
        }
    }

    #[test]
    fn sizes_count_crlf_line_endings() {
        for raw in [
            &b""[..],
            b"a",
            b"a\r\n",
            b"a\nb",
            b"a\r\rb\r",
            b"x\r\n\n\r\ny",
        ] {
            assert_eq!(
                message_size(raw) as usize,
                framed(raw, 64).len() - 3,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        // Doubled dots are not counted.
        assert_eq!(message_size(b".a\r\n"), 4);
    }

    #[test]
    fn envelope_addresses_cannot_carry_commands() {
        assert!(check_address("someone@example.org").is_ok());
        assert!(check_address("\"a b\"@example.org").is_ok());
        for bad in [
            "",
            "a@b>",
            "<a@b",
            "a@b\r\nRCPT TO:<c@d>",
            "a@b\nDATA",
            "a@b\r",
            "a\0@b",
        ] {
            let error = check_address(bad).unwrap_err();
            assert_eq!(error.kind, ErrorKind::Unsupported, "{bad:?}");
        }
    }

    #[test]
    fn hostile_envelopes_are_refused_before_anything_is_sent() {
        let (transport, log) = Dialogue::new(&[GREETING, EHLO]);
        let mut bad = envelope(&["ok@example.org", "x@y>\r\nRCPT TO:<z@w"]);
        let error = send(transport, Encryption::Ssl, &bad, b"hi").unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unsupported);
        assert!(log.borrow().is_empty());

        bad.recipients.clear();
        let (transport, _) = Dialogue::new(&[GREETING, EHLO]);
        let error = send(transport, Encryption::Ssl, &bad, b"hi").unwrap_err();
        assert_eq!(error.kind, ErrorKind::Unsupported);
    }

    #[test]
    fn a_message_goes_to_the_accepted_recipients() {
        let (transport, log) = Dialogue::new(&[
            GREETING,
            EHLO,
            "250 2.1.0 Ok\r\n",
            "250 2.1.5 Ok\r\n",
            "550-5.1.1 No such user\r\n550 5.1.1 here\r\n",
            "251 2.1.5 Forwarded\r\n",
            "354 End data with <CR><LF>.<CR><LF>\r\n",
            "250 2.0.0 Ok: queued as 4F2\r\n",
            "221 2.0.0 Bye\r\n",
        ]);
        let envelope = envelope(&["a@example.com", "b@example.com", "c@example.com"]);
        let delivery = send(transport, Encryption::Ssl, &envelope, b"Hi\n.\n").unwrap();
        assert_eq!(
            written(&log),
            [
                "EHLO mailroom.localdomain\r\n",
                "AUTH",
                "MAIL FROM:<me@example.org> SIZE=7\r\n",
                "RCPT TO:<a@example.com>\r\n",
                "RCPT TO:<b@example.com>\r\n",
                "RCPT TO:<c@example.com>\r\n",
                "DATA\r\n",
                "Hi\r\n..\r\n",
                ".\r\n",
                "QUIT\r\n",
            ]
        );
        let replies: Vec<(&str, u16, &str)> = delivery
            .recipients
            .iter()
            .map(|r| (r.address.as_str(), r.reply.code, r.reply.text.as_str()))
            .collect();
        assert_eq!(
            replies,
            [
                ("a@example.com", 250, "2.1.5 Ok"),
                ("b@example.com", 550, "5.1.1 No such user 5.1.1 here"),
                ("c@example.com", 251, "2.1.5 Forwarded"),
            ]
        );
        assert!(delivery.refused.is_none());
        let data = delivery.data.unwrap();
        assert_eq!(
            (data.code, data.text.as_str()),
            (250, "2.0.0 Ok: queued as 4F2")
        );
    }

    #[test]
    fn a_message_over_the_size_limit_is_refused_without_a_transaction() {
        let (transport, log) =
            Dialogue::new(&[GREETING, "250-mx.example\r\n250 SIZE 10\r\n", "221 Bye\r\n"]);
        let delivery = send(
            transport,
            Encryption::Ssl,
            &envelope(&["a@example.com"]),
            b"eleven byte",
        )
        .unwrap();
        let refused = delivery.refused.unwrap();
        assert_eq!(refused.code, 552);
        assert!(refused.text.contains("13 bytes") && refused.text.contains("10"));
        assert!(delivery.recipients.is_empty() && delivery.data.is_none());
        assert_eq!(
            written(&log),
            ["EHLO mailroom.localdomain\r\n", "AUTH", "QUIT\r\n"]
        );
    }

    #[test]
    fn a_refused_sender_ends_the_transaction() {
        let (transport, log) = Dialogue::new(&[
            GREETING,
            "250 mx.example\r\n",
            "451 4.3.0 Try again later\r\n",
            "221 Bye\r\n",
        ]);
        let delivery = send(
            transport,
            Encryption::Ssl,
            &envelope(&["a@example.com"]),
            b"x\r\n",
        )
        .unwrap();
        let refused = delivery.refused.unwrap();
        assert_eq!(
            (refused.code, refused.text.as_str()),
            (451, "4.3.0 Try again later")
        );
        assert!(delivery.recipients.is_empty() && delivery.data.is_none());
        // Without SIZE, MAIL FROM has no size.
        assert_eq!(
            written(&log)[2..],
            ["MAIL FROM:<me@example.org>\r\n", "QUIT\r\n"]
        );
    }

    #[test]
    fn no_data_when_no_recipient_was_accepted() {
        let (transport, log) = Dialogue::new(&[
            GREETING,
            EHLO,
            "250 Ok\r\n",
            "550 No\r\n",
            "450 Later\r\n",
            "221 Bye\r\n",
        ]);
        let delivery = send(
            transport,
            Encryption::Ssl,
            &envelope(&["a@example.com", "b@example.com"]),
            b"x\r\n",
        )
        .unwrap();
        assert_eq!(delivery.recipients.len(), 2);
        assert!(delivery.refused.is_none() && delivery.data.is_none());
        assert!(!written(&log).iter().any(|w| w == "DATA\r\n"));
    }

    #[test]
    fn a_refused_data_or_message_is_reported() {
        let (transport, log) = Dialogue::new(&[
            GREETING,
            EHLO,
            "250 Ok\r\n",
            "250 Ok\r\n",
            "554 5.5.1 No valid recipients\r\n",
            "221 Bye\r\n",
        ]);
        let delivery = send(
            transport,
            Encryption::Ssl,
            &envelope(&["a@example.com"]),
            b"x\r\n",
        )
        .unwrap();
        assert_eq!(delivery.data.unwrap().code, 554);
        assert_eq!(written(&log).last().unwrap(), "QUIT\r\n");
        assert!(!written(&log).iter().any(|w| w == "x\r\n"));

        // Refused at the end of DATA; the server then drops the line before QUIT.
        let (transport, _) = Dialogue::new(&[
            GREETING,
            EHLO,
            "250 Ok\r\n",
            "250 Ok\r\n",
            "354 Go ahead\r\n",
            "552 5.3.4 Message too big\r\n",
        ]);
        let delivery = send(
            transport,
            Encryption::Ssl,
            &envelope(&["a@example.com"]),
            b"x\r\n",
        )
        .unwrap();
        let data = delivery.data.unwrap();
        assert_eq!(
            (data.code, data.text.as_str()),
            (552, "5.3.4 Message too big")
        );
    }

    #[test]
    fn a_lost_connection_is_an_error() {
        let (transport, _) = Dialogue::new(&[GREETING, EHLO, "250 Ok\r\n"]);
        let error = send(
            transport,
            Encryption::Ssl,
            &envelope(&["a@example.com"]),
            b"x\r\n",
        )
        .unwrap_err();
        assert_eq!(error.kind, ErrorKind::Connect);
    }

    #[test]
    fn check_upgrades_to_tls_before_logging_in() {
        let (transport, log) = Dialogue::new(&[
            GREETING,
            "250-mx.example\r\n250 STARTTLS\r\n",
            "220 Ready to start TLS\r\n",
            EHLO,
            "221 Bye\r\n",
        ]);
        check(transport, Encryption::Starttls).unwrap();
        assert_eq!(
            written(&log),
            [
                "EHLO mailroom.localdomain\r\n",
                "STARTTLS\r\n",
                "TLS",
                "EHLO mailroom.localdomain\r\n",
                "AUTH",
                "QUIT\r\n",
            ]
        );

        let (transport, _) = Dialogue::new(&[GREETING, EHLO]);
        let error = check(transport, Encryption::Starttls).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Tls);
    }
}
