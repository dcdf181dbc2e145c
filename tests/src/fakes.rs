//! Small misbehaving servers for the cases a real server will not produce on demand.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

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
