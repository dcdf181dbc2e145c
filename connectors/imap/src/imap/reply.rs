//! Reads server replies and turns them into the few shapes the client acts on. Parsing is
//! imap-proto's; this module only buffers bytes and copies out what is needed.

use crate::error::protocol;
use crate::mailroom::connector0_1_0::types::Error;
use crate::transport::Transport;
use imap_proto::types::{
    AttributeValue, Capability, MailboxDatum, NameAttribute, Response, ResponseCode, UidSetMember,
};

pub use imap_proto::types::Status;

/// The most a single reply may take before it is refused. Message bodies larger than a page
/// are fetched in parts well below this.
const MAX_REPLY: usize = 48 * 1024 * 1024;

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
        code: Option<Code>,
        text: String,
    },
    Untagged {
        status: Status,
        capabilities: Option<Vec<String>>,
        code: Option<Code>,
        text: String,
    },
    Continue,
    Capabilities(Vec<String>),
    List(ListEntry),
    Fetch(Box<Fetch>),
    Exists(u32),
    /// `EXPUNGE`: a message left the selected mailbox.
    Expunge,
    /// `STATUS` of a mailbox (RFC 3501; sent unasked under NOTIFY, RFC 5465): its name.
    Status(String),
    /// `VANISHED` (RFC 7162): UIDs gone from the selected mailbox.
    Vanished(Vec<(u32, u32)>),
    /// `SEARCH` numbers, or the `ALL` set of an `ESEARCH` (RFC 4731), as ranges.
    Search(Vec<(u32, u32)>),
    /// Anything the client does not act on (and lines it could not parse).
    Other,
}

/// The response codes the client acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Code {
    UidValidity(u32),
    UidNext(u32),
    HighestModSeq(u64),
    /// `COPYUID` (RFC 4315): the UIDs copied and, in the same order, the UIDs of the copies,
    /// both as ranges.
    CopyUid {
        source: Vec<(u32, u32)>,
        copies: Vec<(u32, u32)>,
    },
    /// `APPENDUID` (RFC 4315) for one message: its UID.
    AppendUid(u32),
    /// The mailbox named does not exist: `NONEXISTENT` (RFC 5530) or `TRYCREATE`.
    NoMailbox,
}

/// One message's `FETCH` data.
#[derive(Debug, Default)]
pub struct Fetch {
    pub uid: Option<u32>,
    pub flags: Option<Vec<String>>,
    pub internal_date: Option<String>,
    pub size: Option<u32>,
    /// `BODY[]` (or a part of it): the offset and the bytes.
    pub body: Option<(u32, Vec<u8>)>,
    /// A `BODY[HEADER.FIELDS (...)]` section.
    pub header: Option<Vec<u8>>,
}

#[derive(Default)]
pub struct Reader {
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` begins; consumed bytes are dropped in bulk, not
    /// after every response.
    start: usize,
}

impl Reader {
    /// Whether every byte read from the server has been handed out as a reply.
    pub fn is_drained(&self) -> bool {
        self.start == self.buffer.len()
    }

    /// Whether a whole reply is buffered: [`Reader::next`] returns it without reading.
    pub fn has_reply(&self) -> bool {
        complete_len(&self.buffer[self.start..]).is_some()
    }

    pub fn next(&mut self, transport: &mut impl Transport) -> Result<Reply, Error> {
        loop {
            // Parse only once a whole response is buffered: a large literal arrives in many
            // reads, and parsing at every read would make it quadratic.
            let Some(len) = complete_len(&self.buffer[self.start..]) else {
                if self.buffer.len() - self.start > MAX_REPLY {
                    return Err(protocol("the server sent an over-long reply"));
                }
                if self.start > 0 {
                    self.buffer.drain(..self.start);
                    self.start = 0;
                }
                let data = transport.read()?;
                self.buffer.extend_from_slice(&data);
                continue;
            };
            let response = &self.buffer[self.start..self.start + len];
            let reply = match esearch(response) {
                Some(ranges) => Reply::Search(ranges),
                None => match imap_proto::parser::parse_response(response) {
                    Ok((_, response)) => convert(response),
                    // A response imap-proto does not know is skipped rather than failing the job.
                    Err(_) => Reply::Other,
                },
            };
            self.start += len;
            return Ok(reply);
        }
    }
}

/// The length of the first complete response in `buffer`: its lines up to one that does not
/// announce a literal (`{n}` or `{n+}` at its end), with the literals' bytes between them.
fn complete_len(buffer: &[u8]) -> Option<usize> {
    let mut start = 0;
    loop {
        let line_end = start + buffer[start..].windows(2).position(|w| w == b"\r\n")?;
        let line = &buffer[start..line_end];
        match literal_len(line) {
            Some(n) => start = line_end + 2 + n,
            None => return Some(line_end + 2),
        }
        if start > buffer.len() {
            return None;
        }
    }
}

fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `* ESEARCH [(TAG "x")] [UID] [ALL set] ...` — imap-proto does not parse it.
fn esearch(response: &[u8]) -> Option<Vec<(u32, u32)>> {
    let line = std::str::from_utf8(response.strip_prefix(b"* ESEARCH")?).ok()?;
    let mut words = line.split_ascii_whitespace();
    let mut ranges = Vec::new();
    while let Some(word) = words.next() {
        if word.eq_ignore_ascii_case("ALL") {
            ranges = parse_set(words.next()?)?;
        }
    }
    Some(ranges)
}

/// A sequence set of numbers (`1:3,7,9:12`) as ranges; `None` if it is not one.
pub fn parse_set(text: &str) -> Option<Vec<(u32, u32)>> {
    text.split(',')
        .map(|part| match part.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                Some((a.min(b), a.max(b)))
            }
            None => part.parse().ok().map(|n| (n, n)),
        })
        .collect()
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

/// The code of a status response, when it is one the client acts on.
fn code_of(code: Option<ResponseCode<'_>>, text: &str) -> Option<Code> {
    match code {
        Some(ResponseCode::UidValidity(n)) => Some(Code::UidValidity(n)),
        Some(ResponseCode::UidNext(n)) => Some(Code::UidNext(n)),
        Some(ResponseCode::HighestModSeq(n)) => Some(Code::HighestModSeq(n)),
        Some(ResponseCode::CopyUid(_, source, copies)) => Some(Code::CopyUid {
            source: uid_ranges(&source),
            copies: uid_ranges(&copies),
        }),
        Some(ResponseCode::AppendUid(_, uids)) => match uid_ranges(&uids)[..] {
            [(first, last)] if first == last => Some(Code::AppendUid(first)),
            _ => None,
        },
        Some(ResponseCode::TryCreate) => Some(Code::NoMailbox),
        // imap-proto does not know this code and leaves it in the text.
        None if text
            .as_bytes()
            .get(..13)
            .is_some_and(|c| c.eq_ignore_ascii_case(b"[NONEXISTENT]")) =>
        {
            Some(Code::NoMailbox)
        }
        _ => None,
    }
}

fn uid_ranges(set: &[UidSetMember]) -> Vec<(u32, u32)> {
    set.iter()
        .map(|member| match member {
            UidSetMember::Uid(uid) => (*uid, *uid),
            UidSetMember::UidRange(range) => (*range.start(), *range.end()),
        })
        .collect()
}

fn convert(response: Response<'_>) -> Reply {
    match response {
        Response::Done {
            tag,
            status,
            code,
            information,
        } => {
            let text = information.map(|i| i.into_owned()).unwrap_or_default();
            Reply::Tagged {
                tag: tag.0,
                status,
                capabilities: code_capabilities(&code),
                code: code_of(code, &text),
                text,
            }
        }
        Response::Data {
            status,
            code,
            information,
        } => {
            let text = information.map(|i| i.into_owned()).unwrap_or_default();
            Reply::Untagged {
                status,
                capabilities: code_capabilities(&code),
                code: code_of(code, &text),
                text,
            }
        }
        Response::Fetch(_, attributes) => {
            let mut fetch = Fetch::default();
            for attribute in attributes {
                match attribute {
                    AttributeValue::Uid(uid) => fetch.uid = Some(uid),
                    AttributeValue::Flags(flags) => {
                        fetch.flags = Some(flags.iter().map(|f| f.to_string()).collect())
                    }
                    AttributeValue::InternalDate(date) => {
                        fetch.internal_date = Some(date.into_owned())
                    }
                    AttributeValue::Rfc822Size(size) => fetch.size = Some(size),
                    AttributeValue::BodySection {
                        section: None,
                        index,
                        data,
                    } => {
                        fetch.body = Some((
                            index.unwrap_or(0),
                            data.map(|d| d.into_owned()).unwrap_or_default(),
                        ))
                    }
                    AttributeValue::BodySection {
                        section: Some(_),
                        data,
                        ..
                    } => fetch.header = data.map(|d| d.into_owned()),
                    AttributeValue::Rfc822(data) => {
                        fetch.body = Some((0, data.map(|d| d.into_owned()).unwrap_or_default()))
                    }
                    _ => {}
                }
            }
            Reply::Fetch(Box::new(fetch))
        }
        Response::Vanished { uids, .. } => Reply::Vanished(
            uids.into_iter()
                .map(|range| (*range.start(), *range.end()))
                .collect(),
        ),
        Response::MailboxData(MailboxDatum::Exists(n)) => Reply::Exists(n),
        Response::Expunge(_) => Reply::Expunge,
        Response::MailboxData(MailboxDatum::Status { mailbox, .. }) => {
            Reply::Status(mailbox.into_owned())
        }
        Response::MailboxData(MailboxDatum::Search(numbers)) => {
            let mut numbers = numbers;
            numbers.sort_unstable();
            Reply::Search(numbers.into_iter().map(|n| (n, n)).collect())
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailroom::connector0_1_0::auth::Protocol;
    use crate::mailroom::connector0_1_0::types::ErrorKind;

    /// Hands out a script of server bytes in small pieces.
    struct Script(Vec<Vec<u8>>);

    impl Transport for Script {
        fn read(&mut self) -> Result<Vec<u8>, Error> {
            if self.0.is_empty() {
                return Err(crate::error::error(ErrorKind::Connect, "closed"));
            }
            Ok(self.0.remove(0))
        }
        fn write(&mut self, _: &[u8]) -> Result<(), Error> {
            Ok(())
        }
        fn start_tls(&mut self) -> Result<(), Error> {
            Ok(())
        }
        fn authenticate(&mut self, _: Protocol, _: &[String]) -> Result<String, Error> {
            Ok(String::new())
        }
        fn readable(&mut self, _: u32) -> Result<bool, Error> {
            Ok(!self.0.is_empty())
        }
    }

    #[test]
    fn responses_with_literals_split_across_reads() {
        let body = b"Subject: hi\r\n\r\nhello {5}\r\nworld\r\n";
        let mut stream = format!(
            "* 1 FETCH (UID 7 FLAGS (\\Seen) RFC822.SIZE {} BODY[] {{{}}}\r\n",
            body.len(),
            body.len()
        )
        .into_bytes();
        stream.extend_from_slice(body);
        stream.extend_from_slice(b")\r\n* ESEARCH (TAG \"m3\") UID ALL 1:3,7\r\n* VANISHED (EARLIER) 4:5\r\nm3 OK done\r\n");
        let mut script = Script(stream.chunks(7).map(<[u8]>::to_vec).collect());
        let mut reader = Reader::default();
        let Reply::Fetch(fetch) = reader.next(&mut script).unwrap() else {
            panic!("a FETCH first");
        };
        assert_eq!(fetch.uid, Some(7));
        assert_eq!(fetch.flags.as_deref(), Some(&["\\Seen".to_owned()][..]));
        assert_eq!(
            fetch.body.as_ref().map(|(_, b)| b.as_slice()),
            Some(&body[..])
        );
        assert!(
            matches!(reader.next(&mut script).unwrap(), Reply::Search(r) if r == [(1, 3), (7, 7)])
        );
        assert!(matches!(reader.next(&mut script).unwrap(), Reply::Vanished(r) if r == [(4, 5)]));
        assert!(
            matches!(reader.next(&mut script).unwrap(), Reply::Tagged { tag, .. } if tag == "m3")
        );
    }

    fn code(line: &str) -> Option<Code> {
        let mut script = Script(vec![line.as_bytes().to_vec()]);
        match Reader::default().next(&mut script).unwrap() {
            Reply::Tagged { code, .. } | Reply::Untagged { code, .. } => code,
            _ => panic!("a status response"),
        }
    }

    #[test]
    fn uidplus_codes_carry_their_uids() {
        assert_eq!(
            code("* OK [COPYUID 38505 304,319:320 3956:3958] Moved\r\n"),
            Some(Code::CopyUid {
                source: vec![(304, 304), (319, 320)],
                copies: vec![(3956, 3958)],
            })
        );
        assert_eq!(
            code("m4 OK [COPYUID 1 7 12] Done\r\n"),
            Some(Code::CopyUid {
                source: vec![(7, 7)],
                copies: vec![(12, 12)],
            })
        );
        assert_eq!(
            code("m5 OK [APPENDUID 38505 3955] APPEND completed\r\n"),
            Some(Code::AppendUid(3955))
        );
        // A set is the answer to a MULTIAPPEND, which the connector never sends.
        assert_eq!(code("m5 OK [APPENDUID 38505 3955:3956] Done\r\n"), None);
        assert_eq!(code("m5 OK APPEND completed\r\n"), None);
    }

    #[test]
    fn missing_mailboxes_are_recognised() {
        assert_eq!(
            code("m6 NO [NONEXISTENT] Unknown Mailbox: Foo\r\n"),
            Some(Code::NoMailbox)
        );
        assert_eq!(
            code("m7 NO [TRYCREATE] Mailbox doesn't exist\r\n"),
            Some(Code::NoMailbox)
        );
        assert_eq!(code("m8 NO Permission denied\r\n"), None);
    }

    #[test]
    fn literal_lengths_are_read_from_line_ends_only() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(literal_len(b"a APPEND x {3+}"), Some(3));
        assert_eq!(literal_len(b"* OK {not a literal}"), None);
        assert_eq!(literal_len(b"* OK done"), None);
    }
}
