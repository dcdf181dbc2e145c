//! Reads server replies and turns them into the few shapes the client acts on. Parsing is
//! imap-proto's; this module only buffers bytes and copies out what is needed.

use crate::error::protocol;
use crate::mailroom::connector::types::Error;
use crate::transport::Transport;
use imap_proto::types::{Capability, MailboxDatum, NameAttribute, Response, ResponseCode};

pub use imap_proto::types::Status;

/// The most a single reply may take before it is refused.
const MAX_REPLY: usize = 16 * 1024 * 1024;

/// One `LIST` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub name: String,
    pub delimiter: Option<String>,
    pub attributes: Vec<String>,
}

pub enum Reply {
    Tagged {
        tag: String,
        status: Status,
        capabilities: Option<Vec<String>>,
        text: String,
    },
    Untagged {
        status: Status,
        capabilities: Option<Vec<String>>,
        text: String,
    },
    Continue,
    Capabilities(Vec<String>),
    List(ListEntry),
    /// Anything the client does not act on (and lines it could not parse).
    Other,
}

#[derive(Default)]
pub struct Reader {
    buffer: Vec<u8>,
}

impl Reader {
    pub fn next(&mut self, transport: &mut impl Transport) -> Result<Reply, Error> {
        loop {
            match imap_proto::parser::parse_response(&self.buffer) {
                Ok((rest, response)) => {
                    let consumed = self.buffer.len() - rest.len();
                    let reply = convert(response);
                    self.buffer.drain(..consumed);
                    return Ok(reply);
                }
                Err(nom::Err::Incomplete(_)) => {
                    if self.buffer.len() > MAX_REPLY {
                        return Err(protocol("the server sent an over-long reply"));
                    }
                    let data = transport.read()?;
                    self.buffer.extend_from_slice(&data);
                }
                Err(_) => {
                    // A line imap-proto does not know: skip it rather than fail the job.
                    match self.buffer.windows(2).position(|w| w == b"\r\n") {
                        Some(end) => {
                            self.buffer.drain(..end + 2);
                            return Ok(Reply::Other);
                        }
                        None => {
                            let data = transport.read()?;
                            self.buffer.extend_from_slice(&data);
                        }
                    }
                }
            }
        }
    }
}

fn capability_names(list: &[Capability<'_>]) -> Vec<String> {
    list.iter()
        .map(|c| match c {
            Capability::Imap4rev1 => "IMAP4rev1".to_owned(),
            Capability::Auth(mechanism) => format!("AUTH={mechanism}"),
            Capability::Atom(atom) => atom.to_string(),
        })
        .collect()
}

fn code_capabilities(code: &Option<ResponseCode<'_>>) -> Option<Vec<String>> {
    match code {
        Some(ResponseCode::Capabilities(list)) => Some(capability_names(list)),
        _ => None,
    }
}

fn convert(response: Response<'_>) -> Reply {
    match response {
        Response::Done {
            tag,
            status,
            code,
            information,
        } => Reply::Tagged {
            tag: tag.0,
            status,
            capabilities: code_capabilities(&code),
            text: information.map(|i| i.into_owned()).unwrap_or_default(),
        },
        Response::Data {
            status,
            code,
            information,
        } => Reply::Untagged {
            status,
            capabilities: code_capabilities(&code),
            text: information.map(|i| i.into_owned()).unwrap_or_default(),
        },
        Response::Continue { .. } => Reply::Continue,
        Response::Capabilities(list) => Reply::Capabilities(capability_names(&list)),
        Response::MailboxData(MailboxDatum::List {
            name_attributes,
            delimiter,
            name,
        }) => Reply::List(ListEntry {
            name: name.into_owned(),
            delimiter: delimiter.map(|d| d.into_owned()),
            attributes: name_attributes.iter().map(attribute_name).collect(),
        }),
        _ => Reply::Other,
    }
}

fn attribute_name(attribute: &NameAttribute<'_>) -> String {
    match attribute {
        NameAttribute::NoInferiors => "\\Noinferiors".into(),
        NameAttribute::NoSelect => "\\Noselect".into(),
        NameAttribute::Marked => "\\Marked".into(),
        NameAttribute::Unmarked => "\\Unmarked".into(),
        NameAttribute::All => "\\All".into(),
        NameAttribute::Archive => "\\Archive".into(),
        NameAttribute::Drafts => "\\Drafts".into(),
        NameAttribute::Flagged => "\\Flagged".into(),
        NameAttribute::Junk => "\\Junk".into(),
        NameAttribute::Sent => "\\Sent".into(),
        NameAttribute::Trash => "\\Trash".into(),
        NameAttribute::Extension(other) => other.to_string(),
        _ => String::new(),
    }
}
