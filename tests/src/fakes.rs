//! Small misbehaving servers for the cases a real server will not produce on demand.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};

/// Accepts connections and never says a word. Returns its port.
pub async fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local address").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

/// An IMAP server that offers no STARTTLS, answers CAPABILITY, and, when a client logs in,
/// echoes the whole login line back in a `BAD` reply (as some broken servers do).
pub async fn plaintext_imap_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local address").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let greeting = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake server ready\r\n";
                if write.write_all(greeting).await.is_err() {
                    return;
                }
                let mut pending_login: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = if let Some(tag) = pending_login.take() {
                        format!("{tag} BAD you sent {line}\r\n")
                    } else {
                        let mut words = line.splitn(3, ' ');
                        let tag = words.next().unwrap_or("*").to_owned();
                        match words.next().map(str::to_ascii_uppercase).as_deref() {
                            Some("CAPABILITY") => {
                                format!("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n")
                            }
                            Some("AUTHENTICATE") => {
                                pending_login = Some(tag);
                                "+ \r\n".to_owned()
                            }
                            Some("LOGOUT") => format!("* BYE\r\n{tag} OK bye\r\n"),
                            _ => format!("{tag} OK fine\r\n"),
                        }
                    };
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A plaintext IMAP proxy in front of the server on `upstream` that withholds the content of
/// one message: every untagged FETCH response with a `BODY[` item whose bytes hold the text
/// in `hidden` (say, a Message-ID) is dropped, while the message is still listed, searched
/// and counted: a server with a message it cannot deliver, as damaged storage makes one.
/// Hides nothing while `hidden` is none.
pub async fn withholding_imap_proxy(upstream: u16, hidden: Arc<Mutex<Option<String>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("local address").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let hidden = hidden.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (server_read, mut server_write) = server.into_split();
                let upward = async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                };
                let downward = async move {
                    let mut replies = BufReader::new(server_read);
                    while let Some(response) = read_response(&mut replies).await {
                        let marker = hidden.lock().expect("poisoned").clone();
                        if marker.is_some_and(|m| withholds(&response, &m)) {
                            continue;
                        }
                        if client_write.write_all(&response).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::join!(upward, downward);
            });
        }
    });
    port
}

/// One whole IMAP response: a line, and after each `{n}` that ends one, n bytes of literal
/// and the line's continuation. None at the end of the stream.
async fn read_response(reader: &mut BufReader<OwnedReadHalf>) -> Option<Vec<u8>> {
    let mut response = Vec::new();
    loop {
        let start = response.len();
        if reader.read_until(b'\n', &mut response).await.ok()? == 0 {
            return None;
        }
        let Some(size) = literal_size(&response[start..]) else {
            return Some(response);
        };
        let mut literal = vec![0; size];
        reader.read_exact(&mut literal).await.ok()?;
        response.extend_from_slice(&literal);
    }
}

/// The n of a line ending in `{n}\r\n`.
fn literal_size(line: &[u8]) -> Option<usize> {
    let line = std::str::from_utf8(line).ok()?.trim_end();
    let open = line.strip_suffix('}')?.rfind('{')?;
    line[open + 1..line.len() - 1].parse().ok()
}

/// Whether `response` is a FETCH response with content holding `marker`.
fn withholds(response: &[u8], marker: &str) -> bool {
    let first_line = response.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(first_line).to_ascii_uppercase();
    line.starts_with("* ")
        && line.contains(" FETCH (")
        && line.contains("BODY[")
        && response
            .windows(marker.len())
            .any(|window| window == marker.as_bytes())
}
