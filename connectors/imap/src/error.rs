//! Errors as the WIT world defines them, with the server role they concern.

use crate::mailroom::connector0_1_0::types::{Error, ErrorKind};

pub fn fail(kind: ErrorKind, server: &str, message: impl Into<String>) -> Error {
    Error {
        kind,
        message: message.into(),
        server: Some(server.to_owned()),
        retry_after_secs: None,
    }
}

/// An error raised inside a protocol module, before it is known which server it concerns.
pub fn protocol(message: impl Into<String>) -> Error {
    Error {
        kind: ErrorKind::Protocol,
        message: message.into(),
        server: None,
        retry_after_secs: None,
    }
}

pub fn error(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error {
        kind,
        message: message.into(),
        server: None,
        retry_after_secs: None,
    }
}

/// Names the server an error concerns, unless it already names one.
pub trait Failure<T> {
    fn at(self, server: &str) -> Result<T, Error>;
}

impl<T> Failure<T> for Result<T, Error> {
    fn at(self, server: &str) -> Result<T, Error> {
        self.map_err(|mut e| {
            e.server.get_or_insert_with(|| server.to_owned());
            e
        })
    }
}
