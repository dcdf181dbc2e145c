//! The byte stream the protocol code runs on. In the component it is a connection the host
//! opened; the protocol modules only see the [`Transport`] trait, so they can be driven by
//! anything that moves bytes.

use crate::error::error;
use crate::mailroom::connector0_1_0::auth::{self, Protocol};
use crate::mailroom::connector0_1_0::net;
use crate::mailroom::connector0_1_0::types::{Encryption, Error, ErrorKind, Server};

pub trait Transport {
    /// Some bytes; an error when the server closed the connection.
    fn read(&mut self) -> Result<Vec<u8>, Error>;
    fn write(&mut self, data: &[u8]) -> Result<(), Error>;
    fn start_tls(&mut self) -> Result<(), Error>;
    /// Has the host log in; returns the server's final reply.
    fn authenticate(&mut self, protocol: Protocol, mechanisms: &[String]) -> Result<String, Error>;
}

pub struct HostConnection(net::Connection);

impl HostConnection {
    pub fn connect(server: &Server) -> Result<Self, Error> {
        net::connect(&server.host, server.port, server.encryption).map(Self)
    }
}

/// How much to ask the host for at once.
const READ_CHUNK: u32 = 64 * 1024;

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
}

/// Whether the account asked for STARTTLS on this server.
pub fn wants_starttls(encryption: Encryption) -> bool {
    matches!(encryption, Encryption::Starttls)
}
