//! A plain IMAP client for tests: it plays "another mail client" on the test Dovecot —
//! seeding mailboxes with APPEND, changing flags, moving and expunging — and reads back what
//! the server holds. Plaintext on loopback; answers are returned as text.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub struct ImapClient {
    stream: BufReader<TcpStream>,
    tag: u32,
}

impl ImapClient {
    /// Connects to the plaintext IMAP port and logs in.
    pub async fn login(port: u16, email: &str, password: &str) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("cannot reach the test IMAP server");
        let mut client = Self {
            stream: BufReader::new(stream),
            tag: 0,
        };
        let greeting = client.line().await;
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        client
            .run(&format!("LOGIN \"{email}\" \"{password}\""))
            .await;
        client
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self
            .stream
            .read_line(&mut line)
            .await
            .expect("reading from the IMAP server");
        assert!(n > 0, "the IMAP server closed the connection");
        line
    }

    /// Reads one response, literals included (as lossy text).
    async fn response(&mut self) -> String {
        let mut text = self.line().await;
        while let Some(len) = literal_len(&text) {
            let mut bytes = vec![0; len];
            self.stream
                .read_exact(&mut bytes)
                .await
                .expect("reading a literal");
            text.push_str(&String::from_utf8_lossy(&bytes));
            text.push_str(&self.line().await);
        }
        text
    }

    /// Runs a command; panics unless it completes with OK. Returns everything the server
    /// answered, the tagged line last.
    pub async fn run(&mut self, command: &str) -> String {
        let (ok, text) = self.try_run(command).await;
        assert!(ok, "IMAP command `{command}` failed:\n{text}");
        text
    }

    /// Runs a command and says whether it completed with OK.
    pub async fn try_run(&mut self, command: &str) -> (bool, String) {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.stream
            .get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .await
            .expect("writing to the IMAP server");
        let mut text = String::new();
        loop {
            let response = self.response().await;
            text.push_str(&response);
            if let Some(rest) = response.strip_prefix(&format!("{tag} ")) {
                return (rest.starts_with("OK"), text);
            }
        }
    }

    /// Appends a message; returns its UID (from APPENDUID).
    pub async fn append(
        &mut self,
        mailbox: &str,
        flags: &str,
        internal_date: &str,
        message: &[u8],
    ) -> u32 {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let head = format!(
            "{tag} APPEND \"{mailbox}\" ({flags}) \"{internal_date}\" {{{}+}}\r\n",
            message.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await.expect("APPEND");
        stream.write_all(message).await.expect("APPEND");
        stream.write_all(b"\r\n").await.expect("APPEND");
        loop {
            let response = self.response().await;
            if let Some(rest) = response.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "APPEND failed: {response}");
                let uid = rest
                    .split("APPENDUID ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().nth(1))
                    .and_then(|u| u.trim_end_matches(']').parse().ok())
                    .expect("APPENDUID in the reply");
                return uid;
            }
        }
    }

    /// The UIDs of the selected mailbox matching `criteria`, ascending.
    pub async fn uid_search(&mut self, criteria: &str) -> Vec<u32> {
        let text = self.run(&format!("UID SEARCH {criteria}")).await;
        let mut uids: Vec<u32> = text
            .lines()
            .filter_map(|l| l.strip_prefix("* SEARCH"))
            .flat_map(|l| l.split_whitespace().filter_map(|n| n.parse().ok()))
            .collect();
        uids.sort_unstable();
        uids
    }

    /// The Message-ID headers in a mailbox.
    pub async fn message_ids(&mut self, mailbox: &str) -> Vec<String> {
        self.run(&format!("SELECT \"{mailbox}\"")).await;
        let text = self
            .run("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            .await;
        let mut ids: Vec<String> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                l.to_ascii_lowercase()
                    .starts_with("message-id:")
                    .then(|| l[11..].trim().trim_matches(['<', '>']).to_owned())
            })
            .collect();
        ids.sort();
        ids
    }

    pub async fn logout(mut self) {
        let _ = self.try_run("LOGOUT").await;
    }
}

fn literal_len(line: &str) -> Option<usize> {
    let line = line.trim_end_matches(['\r', '\n']);
    let inner = line.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    inner[open + 1..].trim_end_matches('+').parse().ok()
}

/// A message in RFC 5322 form with the given headers and a text body.
pub fn message(message_id: &str, subject: &str, date: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Dana Sender <dana@client.test>\r\nTo: alice@example.test\r\n\
Subject: {subject}\r\nMessage-ID: <{message_id}>\r\nDate: {date}\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}
