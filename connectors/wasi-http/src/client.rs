//! A small blocking HTTP client over `wasi:http/outgoing-handler`.
//!
//! Several calls run at once: each is handed to the host (`handle`), and the client then
//! waits on the pollables of the answers and of the bodies being read (`wasi:io/poll`),
//! moving each call on as its data comes. Answers are handed back in the order of the calls.
//! Before a call starts, the [`Pacer`] makes room for it in the provider's rate; a call the
//! provider asks to slow down, or (when it may be repeated) one that meets a server error,
//! is started again after a backoff ([`crate::pace`]).
//!
//! The host adds the account's credentials; the client never sets `Authorization`.

use crate::pace::{self, Class, Pacer, Retries};
use crate::url::Base;
use crate::{Failure, Kind, Service};
use std::cell::RefCell;
use std::marker::PhantomData;
use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse,
    Method as HttpMethod, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::poll::{self, Pollable};
use wasi::io::streams::{InputStream, StreamError};

/// Bytes of answers held at once before the client reads only the one it hands back next
/// and starts no other call (the sandbox has 128 MiB).
const BUFFER_LIMIT: usize = 24 << 20;
/// The largest answer taken.
const BODY_CAP: usize = 64 << 20;
/// How much to read from an answer at once.
const READ_CHUNK: u64 = 256 << 10;
/// Reads from one answer before the others get a turn.
const READS_PER_TURN: usize = 16;

const SECOND_NS: u64 = 1_000_000_000;
const CONNECT_TIMEOUT_NS: u64 = 10 * SECOND_NS;
const FIRST_BYTE_TIMEOUT_NS: u64 = 60 * SECOND_NS;
const BETWEEN_BYTES_TIMEOUT_NS: u64 = 60 * SECOND_NS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    fn has_body(self) -> bool {
        matches!(self, Method::Post | Method::Patch)
    }
}

/// One API call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    /// The path and query after the base URL's own path (see [`Base::own_link`] for links
    /// the API hands out).
    pub path: String,
    /// Headers of this call besides the service's.
    pub headers: Vec<(String, String)>,
    /// A body, JSON unless `content_type` says otherwise.
    pub body: Option<Vec<u8>>,
    pub content_type: Option<String>,
    /// Its cost in the provider's rate units.
    pub cost: u32,
    /// Whether it may be repeated after a server error.
    pub idempotent: bool,
}

/// An answer: its status and its whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// What the caller of [`Http::run`] wants after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Start no more calls; hand back the answers of those already started.
    Drain,
}

/// The client of one API. `E` is the error its calls fail with: a connector's world error,
/// made from a [`Failure`] (see [`crate::http_errors`]).
pub struct Http<E> {
    base: Base,
    service: Service,
    pacer: RefCell<Pacer>,
    error: PhantomData<fn() -> E>,
}

/// An answer being read. Fields drop in order: the stream before its body, the body
/// before its response.
struct Reading {
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
    status: u16,
    retry_after: Option<u32>,
    data: Vec<u8>,
}

enum Slot {
    /// Not started yet, or waiting to be started again (not before this time).
    Queued {
        not_before: u64,
    },
    Waiting(FutureIncomingResponse),
    Reading(Box<Reading>),
    Done(Result<Reply, Failure>),
    Delivered,
}

struct Job {
    call: Call,
    retries: Retries,
    started: bool,
    slot: Slot,
}

impl Job {
    fn held_bytes(&self) -> usize {
        match &self.slot {
            Slot::Reading(reading) => reading.data.len(),
            Slot::Done(Ok(reply)) => reply.body.len(),
            _ => 0,
        }
    }
}

impl<E: From<Failure>> Http<E> {
    pub fn new(base: Base, service: Service) -> Self {
        let pacer = RefCell::new(Pacer::new(service.rate));
        Self {
            base,
            service,
            pacer,
            error: PhantomData,
        }
    }

    pub fn base(&self) -> &Base {
        &self.base
    }

    /// One call, to its end.
    pub fn one(&self, call: Call) -> Result<Reply, E> {
        let mut out = None;
        self.run(vec![call], |_, result| {
            out = Some(result);
            Ok(Flow::Continue)
        })?;
        out.unwrap_or_else(|| Err(self.protocol("the call came to nothing").into()))
    }

    /// Runs `calls`, several at once, and hands each answer (or the error that ended the
    /// call) to `each`, in the order of `calls`. An error from `each` ends the run (calls in
    /// flight are dropped, which cancels them); [`Flow::Drain`] starts no more calls and
    /// hands back only those already started.
    pub fn run(
        &self,
        calls: Vec<Call>,
        mut each: impl FnMut(usize, Result<Reply, E>) -> Result<Flow, E>,
    ) -> Result<(), E> {
        let mut jobs: Vec<Job> = calls
            .into_iter()
            .map(|call| Job {
                call,
                retries: Retries::default(),
                started: false,
                slot: Slot::Queued { not_before: 0 },
            })
            .collect();
        let mut next = 0;
        let mut draining = false;
        loop {
            while next < jobs.len() && matches!(jobs[next].slot, Slot::Done(_)) {
                let Slot::Done(result) = std::mem::replace(&mut jobs[next].slot, Slot::Delivered)
                else {
                    unreachable!("checked above")
                };
                if each(next, result.map_err(E::from))? == Flow::Drain {
                    draining = true;
                }
                next += 1;
            }
            if draining {
                let started = jobs.iter().take_while(|j| j.started).count();
                jobs.truncate(started.max(next));
            }
            if next == jobs.len() {
                return Ok(());
            }

            // Start what may start.
            let now = monotonic_clock::now();
            let buffered: usize = jobs[next..].iter().map(Job::held_bytes).sum();
            let only_next = buffered > BUFFER_LIMIT;
            let mut in_flight = jobs[next..]
                .iter()
                .filter(|j| matches!(j.slot, Slot::Waiting(_) | Slot::Reading(_)))
                .count();
            let mut wake: Option<u64> = None;
            for (i, job) in jobs.iter_mut().enumerate().skip(next) {
                // The call handed back next may always start: everything waits on it.
                if (in_flight >= self.service.in_flight || only_next) && i != next {
                    break;
                }
                let Slot::Queued { not_before } = job.slot else {
                    continue;
                };
                if not_before > now {
                    wake = Some(wake.map_or(not_before, |w| w.min(not_before)));
                    continue;
                }
                let wait = self.pacer.borrow_mut().wait(now, job.call.cost);
                if wait > 0 {
                    wake = Some(wake.map_or(now + wait, |w| w.min(now + wait)));
                    break;
                }
                self.pacer.borrow_mut().spend(now, job.call.cost);
                job.started = true;
                job.slot = match self.start(&job.call) {
                    Ok(future) => {
                        in_flight += 1;
                        Slot::Waiting(future)
                    }
                    Err(e) => Slot::Done(Err(e)),
                };
            }
            if matches!(jobs[next].slot, Slot::Done(_)) {
                continue;
            }

            // Wait for an answer, for data, or for the time to start a call.
            let mut pollables: Vec<Pollable> = Vec::new();
            let mut owners: Vec<Option<usize>> = Vec::new();
            for (i, job) in jobs.iter().enumerate().skip(next) {
                match &job.slot {
                    Slot::Waiting(future) => {
                        pollables.push(future.subscribe());
                        owners.push(Some(i));
                    }
                    Slot::Reading(reading) if !only_next || i == next => {
                        pollables.push(reading.stream.subscribe());
                        owners.push(Some(i));
                    }
                    _ => {}
                }
            }
            match wake {
                Some(at) => pollables.push(monotonic_clock::subscribe_instant(at)),
                // Nothing to wait on would be a slip of this loop: look again shortly.
                None if pollables.is_empty() => {
                    pollables.push(monotonic_clock::subscribe_duration(SECOND_NS / 100))
                }
                None => {}
            }
            let ready = {
                let refs: Vec<&Pollable> = pollables.iter().collect();
                poll::poll(&refs)
            };
            drop(pollables);
            for index in ready {
                if let Some(&Some(i)) = owners.get(index as usize) {
                    self.advance(&mut jobs[i]);
                }
            }
        }
    }

    /// Hands a call to the host and writes its body.
    fn start(&self, call: &Call) -> Result<FutureIncomingResponse, Failure> {
        let mut entries: Vec<(String, Vec<u8>)> =
            vec![("accept".into(), b"application/json".to_vec())];
        for (name, value) in self.service.headers.iter().chain(&call.headers) {
            entries.push((name.clone(), value.as_bytes().to_vec()));
        }
        if call.method.has_body() {
            if call.body.is_some() {
                let content_type = call.content_type.as_deref().unwrap_or("application/json");
                entries.push(("content-type".into(), content_type.as_bytes().to_vec()));
            }
            let length = call.body.as_ref().map_or(0, Vec::len);
            entries.push(("content-length".into(), length.to_string().into_bytes()));
        }
        let headers = Fields::from_list(&entries).map_err(|e| {
            self.protocol(format!("the host refused the request's headers ({e:?})"))
        })?;
        let request = OutgoingRequest::new(headers);
        let method = match call.method {
            Method::Get => HttpMethod::Get,
            Method::Post => HttpMethod::Post,
            Method::Patch => HttpMethod::Patch,
            Method::Delete => HttpMethod::Delete,
        };
        let scheme = if self.base.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let refused = |what: &str| self.protocol(format!("the host refused the request's {what}"));
        request.set_method(&method).map_err(|_| refused("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|_| refused("scheme"))?;
        request
            .set_authority(Some(&self.base.authority))
            .map_err(|_| refused("host"))?;
        request
            .set_path_with_query(Some(&format!("{}{}", self.base.prefix, call.path)))
            .map_err(|_| refused("path"))?;
        let body = if call.method.has_body() {
            Some(request.body().map_err(|_| refused("body"))?)
        } else {
            None
        };
        let options = RequestOptions::new();
        // A host that does not take a timeout keeps its own.
        let _ = options.set_connect_timeout(Some(CONNECT_TIMEOUT_NS));
        let _ = options.set_first_byte_timeout(Some(FIRST_BYTE_TIMEOUT_NS));
        let _ = options.set_between_bytes_timeout(Some(BETWEEN_BYTES_TIMEOUT_NS));
        let future =
            outgoing_handler::handle(request, Some(options)).map_err(|e| self.transport(e))?;
        if let Some(body) = body {
            self.write_body(body, call.body.as_deref().unwrap_or_default())?;
        }
        Ok(future)
    }

    /// Moves a call on after its pollable fired.
    fn advance(&self, job: &mut Job) {
        match std::mem::replace(&mut job.slot, Slot::Delivered) {
            Slot::Waiting(future) => {
                job.slot = match future.get() {
                    None => Slot::Waiting(future),
                    Some(Err(())) => Slot::Done(Err(self.protocol("the host lost the answer"))),
                    Some(Ok(Err(code))) => Slot::Done(Err(self.transport(code))),
                    Some(Ok(Ok(response))) => match self.start_reading(response) {
                        Ok(reading) => Slot::Reading(Box::new(reading)),
                        Err(e) => Slot::Done(Err(e)),
                    },
                };
            }
            Slot::Reading(mut reading) => {
                for _ in 0..READS_PER_TURN {
                    match reading.stream.read(READ_CHUNK) {
                        Ok(chunk) if chunk.is_empty() => break,
                        Ok(chunk) => {
                            if reading.data.len() + chunk.len() > BODY_CAP {
                                job.slot = Slot::Done(Err(self.protocol(format!(
                                    "the answer is larger than {} MiB",
                                    BODY_CAP >> 20
                                ))));
                                return;
                            }
                            reading.data.extend_from_slice(&chunk);
                        }
                        Err(StreamError::Closed) => {
                            self.finish(job, *reading);
                            return;
                        }
                        Err(StreamError::LastOperationFailed(e)) => {
                            job.slot = Slot::Done(Err(Failure::new(
                                Kind::Connect,
                                format!(
                                    "the connection to {} broke while reading ({})",
                                    self.service.name,
                                    e.to_debug_string()
                                ),
                            )));
                            return;
                        }
                    }
                }
                job.slot = Slot::Reading(reading);
            }
            other => job.slot = other,
        }
    }

    /// A whole answer: done, or to be tried again.
    fn finish(&self, job: &mut Job, reading: Reading) {
        let Reading {
            stream,
            _body: body,
            _response: response,
            status,
            retry_after,
            data,
        } = reading;
        drop(stream);
        drop(body);
        drop(response);
        let now = monotonic_clock::now();
        let jitter = wasi::random::random::get_random_u64();
        let retry_in = match (self.service.classify)(status, &data) {
            Class::RateLimited => match job.retries.after_rate_limit(retry_after, jitter) {
                Ok(ms) => {
                    // Everything else waits too: the limit is the user's, not the call's.
                    self.pacer.borrow_mut().hold(now + ms * 1_000_000);
                    Some(ms)
                }
                Err(secs) => {
                    job.slot = Slot::Done(Err(self.rate_limited(secs)));
                    return;
                }
            },
            Class::ServerError if job.call.idempotent => {
                job.retries.after_server_error(retry_after, jitter)
            }
            _ => None,
        };
        job.slot = match retry_in {
            Some(ms) => Slot::Queued {
                not_before: now + ms * 1_000_000,
            },
            None => Slot::Done(Ok(Reply { status, body: data })),
        };
    }

    /// The answer's status and headers, and its body to read.
    fn start_reading(&self, response: IncomingResponse) -> Result<Reading, Failure> {
        let status = response.status();
        let (retry_after, length) = {
            let headers = response.headers();
            let first = |name: &str| headers.get(name).into_iter().next();
            let retry_after = first("retry-after").and_then(|v| pace::parse_retry_after(&v));
            let length = first("content-length")
                .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse::<usize>().ok());
            (retry_after, length)
        };
        let lost = || self.protocol("the host gave no body for the answer");
        let body = response.consume().map_err(|_| lost())?;
        let stream = body.stream().map_err(|_| lost())?;
        Ok(Reading {
            stream,
            _body: body,
            _response: response,
            status,
            retry_after,
            data: Vec::with_capacity(length.unwrap_or(0).min(BODY_CAP)),
        })
    }

    /// Writes a request body as fast as the host takes it, then ends it.
    fn write_body(&self, body: OutgoingBody, data: &[u8]) -> Result<(), Failure> {
        let broke = |e: StreamError| {
            let detail = match e {
                StreamError::Closed => "closed".to_owned(),
                StreamError::LastOperationFailed(e) => e.to_debug_string(),
            };
            Failure::new(
                Kind::Connect,
                format!(
                    "the connection to {} broke while sending ({detail})",
                    self.service.name
                ),
            )
        };
        {
            let stream = body
                .write()
                .map_err(|_| self.protocol("the host gave no stream for the request's body"))?;
            let mut rest = data;
            while !rest.is_empty() {
                let room = stream.check_write().map_err(broke)?;
                if room == 0 {
                    stream.subscribe().block();
                    continue;
                }
                let take = rest.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                stream.write(&rest[..take]).map_err(broke)?;
                rest = &rest[take..];
            }
            stream.blocking_flush().map_err(broke)?;
        }
        OutgoingBody::finish(body, None).map_err(|e| self.transport(e))
    }

    /// A transport failure, in the connector's terms.
    fn transport(&self, code: ErrorCode) -> Failure {
        let (kind, message) = match &code {
            ErrorCode::DnsTimeout | ErrorCode::DnsError(_) => {
                (Kind::Dns, "the address could not be resolved")
            }
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout => (Kind::Timeout, "no answer came in time"),
            ErrorCode::TlsProtocolError
            | ErrorCode::TlsCertificateError
            | ErrorCode::TlsAlertReceived(_) => (Kind::Tls, "the TLS connection failed"),
            ErrorCode::HttpRequestDenied
            | ErrorCode::DestinationIpProhibited
            | ErrorCode::DestinationIpUnroutable => {
                (Kind::Denied, "the host did not let the request through")
            }
            ErrorCode::DestinationNotFound
            | ErrorCode::DestinationUnavailable
            | ErrorCode::ConnectionRefused
            | ErrorCode::ConnectionTerminated
            | ErrorCode::ConnectionLimitReached => (Kind::Connect, "the API could not be reached"),
            ErrorCode::HttpRequestBodySize(_) => (
                Kind::Unsupported,
                "the request is larger than the host lets through",
            ),
            ErrorCode::HttpResponseBodySize(_) => (
                Kind::Protocol,
                "the answer is larger than the host lets through",
            ),
            _ => (Kind::Connect, "the exchange failed"),
        };
        Failure::new(kind, format!("{}: {message} ({code:?})", self.service.name))
    }

    /// A failure to make sense of the exchange, naming the service.
    fn protocol(&self, message: impl std::fmt::Display) -> Failure {
        Failure::protocol(format!("{}: {message}", self.service.name))
    }

    /// The provider keeps asking to slow down; the host should come back after `secs`.
    fn rate_limited(&self, secs: u32) -> Failure {
        let secs = secs.max(1);
        Failure {
            retry_after_secs: Some(secs),
            ..Failure::new(
                Kind::RateLimited,
                format!(
                    "{} asks to slow down; try again in {secs} s",
                    self.service.name
                ),
            )
        }
    }
}
