//! The byte stream the protocol code runs on. In the component it is a connection the host
//! opened; the protocol modules only see the [`Transport`] trait, so they can be driven by
//! anything that moves bytes.

use crate::error::error;
use crate::mailroom::connector0_1_0::auth::{self, Protocol};
use crate::mailroom::connector0_1_0::net;
use crate::mailroom::connector0_1_0::types::{Encryption, Error, ErrorKind, Server};
use crate::mailroom::connector0_8_0::wait;

pub trait Transport {
    /// Some bytes; an error when the server closed the connection.
    fn read(&mut self) -> Result<Vec<u8>, Error>;
    fn write(&mut self, data: &[u8]) -> Result<(), Error>;
    fn start_tls(&mut self) -> Result<(), Error>;
    /// Has the host log in; returns the server's final reply.
    fn authenticate(&mut self, protocol: Protocol, mechanisms: &[String]) -> Result<String, Error>;
    /// Waits at most `timeout_ms` for the server to say something; whether it did.
    fn readable(&mut self, timeout_ms: u32) -> Result<bool, Error>;
}

pub struct HostConnection(net::Connection);

impl HostConnection {
    pub fn connect(server: &Server) -> Result<Self, Error> {
        net::connect(&server.host, server.port, server.encryption).map(Self)
    }
}

/// A connection the host kept from an earlier job.
impl From<net::Connection> for HostConnection {
    fn from(connection: net::Connection) -> Self {
        Self(connection)
    }
}

impl From<HostConnection> for net::Connection {
    fn from(connection: HostConnection) -> Self {
        connection.0
    }
}

/// How much to ask the host for at once.
const READ_CHUNK: u32 = 256 * 1024;

/// How much of a message to hand the host at once when writing it.
pub const WRITE_CHUNK: usize = 64 * 1024;

impl Transport for HostConnection {
    fn read(&mut self) -> Result<Vec<u8>, Error> {
        let data = self.0.read(READ_CHUNK)?;
        if data.is_empty() {
            return Err(error(
                ErrorKind::Connect,
                "the server closed the connection",
            ));
        }
        Ok(data)
    }

    fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.0.write(data)
    }

    fn start_tls(&mut self) -> Result<(), Error> {
        self.0.start_tls()
    }

    fn authenticate(&mut self, protocol: Protocol, mechanisms: &[String]) -> Result<String, Error> {
        auth::authenticate(&self.0, protocol, mechanisms)
    }

    fn readable(&mut self, timeout_ms: u32) -> Result<bool, Error> {
        wait::readable(&self.0, timeout_ms)
    }
}

/// Whether the account asked for STARTTLS on this server.
pub fn wants_starttls(encryption: Encryption) -> bool {
    matches!(encryption, Encryption::Starttls)
}

/// A server played from a script, for the protocol modules' tests.
#[cfg(test)]
pub mod script {
    use super::Transport;
    use crate::error::error;
    use crate::mailroom::connector0_1_0::auth::Protocol;
    use crate::mailroom::connector0_1_0::types::{Error, ErrorKind};
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// What passed on the connection, in order: `S: ` and what one read returned, `C: ` and
    /// what one write wrote, `C: AUTH` for a login through the host.
    pub type Log = Rc<RefCell<Vec<String>>>;

    /// Answers each read with the next scripted reply; the connection closes after the last.
    /// An empty reply is a wait that hears nothing: `readable` says false once.
    pub struct Dialogue {
        replies: VecDeque<&'static str>,
        log: Log,
    }

    impl Dialogue {
        pub fn new(replies: &[&'static str]) -> (Self, Log) {
            let log = Log::default();
            let dialogue = Self {
                replies: replies.iter().copied().collect(),
                log: log.clone(),
            };
            (dialogue, log)
        }
    }

    impl Transport for Dialogue {
        fn read(&mut self) -> Result<Vec<u8>, Error> {
            let reply = self
                .replies
                .pop_front()
                .ok_or_else(|| error(ErrorKind::Connect, "the server closed the connection"))?;
            self.log.borrow_mut().push(format!("S: {reply}"));
            Ok(reply.as_bytes().to_vec())
        }

        fn write(&mut self, data: &[u8]) -> Result<(), Error> {
            let text = String::from_utf8_lossy(data);
            self.log.borrow_mut().push(format!("C: {text}"));
            Ok(())
        }

        fn start_tls(&mut self) -> Result<(), Error> {
            self.log.borrow_mut().push("C: TLS".to_owned());
            Ok(())
        }

        fn authenticate(&mut self, _: Protocol, _: &[String]) -> Result<String, Error> {
            self.log.borrow_mut().push("C: AUTH".to_owned());
            Ok(String::new())
        }

        fn readable(&mut self, _: u32) -> Result<bool, Error> {
            if self.replies.front() == Some(&"") {
                self.replies.pop_front();
                self.log.borrow_mut().push("S: (quiet)".to_owned());
                return Ok(false);
            }
            Ok(true)
        }
    }
}
