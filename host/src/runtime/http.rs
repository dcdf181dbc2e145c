//! `wasi:http/outgoing-handler` for connectors of 0.5.0 on, under the host's policy.
//!
//! A request may go to the account's own servers, to its provider's API (the configured
//! `api_url`) and to the hosts an admin granted the connector; nowhere else. HTTPS only, plain
//! HTTP to loopback only when the operator allows it (`net.http_plain_loopback`, for tests).
//! The request is sent by [`HttpClient`], which resolves the name and checks every address as
//! mail connections are checked. Request and response bodies are capped.
//!
//! The host adds the account's credentials, and only to requests bound for the account's own
//! server or its provider's API: a bearer token for an OAuth account, Basic for a password
//! account. The connector may not set `Authorization` itself. A 401 to a bearer token gets
//! one retry with a fresh token; when the provider refuses the fresh token too, or the grant
//! itself, the host keeps the reason, which the job's error then carries (and with no token
//! to send, it answers the connector 401 itself).

use crate::auth::{Bearer, Credentials};
use crate::connector::{ConnectorError, ErrorKind};
use crate::net::http::{HttpClient, Origin};
use crate::net::policy::AllowList;
use crate::secret::Secret;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

/// How long a request may take to connect and get its response's head, unless the
/// connector asks for less.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(120);
/// Requests of one job in flight at once, their answers' bodies included; more wait.
pub const MAX_IN_FLIGHT: usize = 16;

/// What one job may reach over HTTP, and with which credentials.
pub struct HttpAccess {
    pub client: HttpClient,
    /// Whether granted hosts may resolve to private or loopback addresses
    /// (`net.http_granted_private`); the account's servers and the provider's API follow
    /// `net.allow_private_networks`.
    pub granted_private: bool,
    /// The most one request's body may hold, and all the job's requests in flight together.
    pub max_request_bytes: usize,
    /// Kibibytes of request bodies the job may hold at once (see `max_request_bytes`).
    pub request_budget: Arc<tokio::sync::Semaphore>,
    /// Requests in flight (see [`MAX_IN_FLIGHT`]).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// The provider's API: reachable, and given the bearer token.
    pub api: Option<Origin>,
    /// The account's servers: reachable, and given Basic credentials.
    pub servers: AllowList,
    /// Hosts an admin granted the connector (any port, HTTPS).
    pub granted: Vec<String>,
    pub bearer: Option<Bearer>,
    pub basic: Option<Credentials>,
    /// Why the account's credentials failed, when the host learned it during the job.
    pub problem: Mutex<Option<ConnectorError>>,
}

/// The hooks a job's `wasi:http` runs through; `None` for a store with no account
/// (`describe`), which may reach nothing.
#[derive(Clone, Default)]
pub struct HttpHooks(pub Option<Arc<HttpAccess>>);

impl HttpHooks {
    /// The credential failure learned during the job, if any.
    pub fn problem(&self) -> Option<ConnectorError> {
        let access = self.0.as_ref()?;
        access.problem.lock().expect("problem poisoned").clone()
    }
}

type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for HttpHooks {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(|name| {
            *name == http::header::AUTHORIZATION
                || *name == http::header::PROXY_AUTHORIZATION
                || DEFAULT_FORBIDDEN_HEADERS.contains(name)
        })
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let access = self.0.clone();
        Box::new(async move {
            let Some(access) = access else {
                return Err(Error::HttpRequestDenied);
            };
            let timeout = options
                .and_then(|o| o.first_byte_timeout)
                .unwrap_or(FIRST_BYTE_TIMEOUT)
                .min(FIRST_BYTE_TIMEOUT);
            let response = access.send(request, timeout).await?;
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// The credential a request gets.
enum Credential<'a> {
    None,
    Bearer(&'a Bearer),
    Basic(&'a Credentials),
}

impl HttpAccess {
    async fn send(
        &self,
        request: http::Request<WasiBody>,
        timeout: Duration,
    ) -> Result<http::Response<WasiBody>, Error> {
        let (parts, body) = request.into_parts();
        let origin = Origin::of(&parts.uri).ok_or(Error::HttpRequestUriInvalid)?;
        // TRACE would echo the credentials the host adds back to the connector.
        if parts.method == http::Method::TRACE || parts.method == http::Method::CONNECT {
            return Err(Error::HttpRequestMethodInvalid);
        }
        if let Err(reason) = self.allowed(&origin) {
            tracing::warn!(target: "mailroom::connector", "HTTP request refused: {reason}");
            return Err(Error::HttpRequestDenied);
        }
        let turn = self
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::InternalError(Some("the job is ending".into())))?;
        let (body, _held) = self.take_body(body).await?;
        let credential = self.credential(&origin);
        let mut token = match credential {
            Credential::Bearer(bearer) => match bearer.0.token().await {
                Ok(token) => Some(token),
                Err(problem) => {
                    self.keep(problem);
                    return Ok(unauthorized());
                }
            },
            _ => None,
        };
        let build = |token: Option<&Secret>| {
            let mut request = http::Request::new(Full::new(body.clone()));
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = parts.uri.clone();
            *request.headers_mut() = parts.headers.clone();
            let value = match (&credential, token) {
                (Credential::Bearer(_), Some(token)) => Some(format!("Bearer {}", token.expose())),
                (Credential::Basic(credentials), _) => {
                    let pair = format!("{}:{}", credentials.login, credentials.password.expose());
                    Some(format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    ))
                }
                _ => None,
            };
            if let Some(value) = value.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
                let mut value = value;
                value.set_sensitive(true);
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, value);
            }
            request
        };
        let private = self.granted_private || self.own(&origin);
        // The turn is held until the answer's body is dropped.
        let wasi_body = move |body: Limited<hyper::body::Incoming>| {
            let turn = turn;
            body.map_err(move |e| {
                let _turn = &turn;
                match e.downcast::<hyper::Error>() {
                    Ok(e) => Error::from(*e),
                    Err(_) => Error::HttpResponseBodySize(None),
                }
            })
            .boxed_unsync()
        };
        let mut retried = false;
        loop {
            let response = self
                .client
                .send(build(token.as_ref()), private, timeout)
                .await
                .map_err(wasi_error)?;
            let refused = response.status() == http::StatusCode::UNAUTHORIZED;
            let (Credential::Bearer(bearer), Some(used), true) = (&credential, &token, refused)
            else {
                return Ok(response.map(wasi_body));
            };
            if retried {
                self.keep(ConnectorError::new(
                    ErrorKind::AuthFailed,
                    "the provider refused an access token it had just issued",
                ));
                return Ok(response.map(wasi_body));
            }
            retried = true;
            match bearer.0.refused(used).await {
                Ok(Some(fresh)) => token = Some(fresh),
                Ok(None) => return Ok(response.map(wasi_body)),
                Err(problem) => {
                    self.keep(problem);
                    return Ok(response.map(wasi_body));
                }
            }
        }
    }

    /// Reads a request's body, at most `max_request_bytes`, within what the job's requests in
    /// flight may hold together; the permits go with the body.
    async fn take_body(
        &self,
        mut body: WasiBody,
    ) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), Error> {
        let mut collected = bytes::BytesMut::new();
        let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            if collected.len() + data.len() > self.max_request_bytes {
                return Err(Error::HttpRequestBodySize(None));
            }
            let kib = (collected.len() + data.len()).div_ceil(1024) as u32;
            let more = kib - held.as_ref().map_or(0, |p| p.num_permits() as u32);
            if more > 0 {
                let permit = self
                    .request_budget
                    .clone()
                    .try_acquire_many_owned(more)
                    .map_err(|_| Error::HttpRequestBodySize(None))?;
                match &mut held {
                    Some(held) => held.merge(permit),
                    None => held = Some(permit),
                }
            }
            collected.extend_from_slice(&data);
        }
        Ok((collected.freeze(), held))
    }

    /// The account's own server or its provider's API.
    fn own(&self, origin: &Origin) -> bool {
        self.api.as_ref() == Some(origin)
            || self.servers.server(&origin.host, origin.port).is_some()
    }

    /// Whether the policy lets a request go to `origin`, or why not.
    fn allowed(&self, origin: &Origin) -> Result<(), String> {
        if !self.client.scheme_allowed(origin) {
            return Err(format!("plain HTTP to {} (HTTPS only)", origin.host));
        }
        let to_api = self.api.as_ref() == Some(origin);
        let to_server = self.servers.server(&origin.host, origin.port).is_some();
        let granted = self
            .granted
            .iter()
            .any(|host| host.eq_ignore_ascii_case(&origin.host));
        if to_api || to_server || granted {
            Ok(())
        } else {
            Err(format!(
                "{}:{} is neither the account's server, its provider's API nor a host granted to the connector",
                origin.host, origin.port
            ))
        }
    }

    fn credential(&self, origin: &Origin) -> Credential<'_> {
        if self.api.as_ref() == Some(origin)
            && let Some(bearer) = &self.bearer
        {
            return Credential::Bearer(bearer);
        }
        if self.servers.server(&origin.host, origin.port).is_some() {
            if let Some(bearer) = &self.bearer {
                return Credential::Bearer(bearer);
            }
            if let Some(basic) = &self.basic {
                return Credential::Basic(basic);
            }
        }
        Credential::None
    }

    fn keep(&self, problem: ConnectorError) {
        tracing::warn!("the account's credentials failed: {problem}");
        *self.problem.lock().expect("problem poisoned") = Some(problem);
    }
}

/// The host's own 401, when it has no credential to send.
fn unauthorized() -> http::Response<WasiBody> {
    let body = Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    response
}

/// A failure to send, as wasi:http reports it to the guest.
fn wasi_error(error: ConnectorError) -> Error {
    tracing::debug!(target: "mailroom::connector", "HTTP request failed: {error}");
    match error.kind {
        ErrorKind::Dns => Error::DnsError {
            rcode: None,
            info_code: None,
        },
        ErrorKind::Timeout => Error::ConnectionTimeout,
        ErrorKind::Tls => Error::TlsCertificateError,
        ErrorKind::Denied => Error::HttpRequestDenied,
        ErrorKind::Connect => Error::ConnectionRefused,
        _ => Error::HttpProtocolError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{Encryption, ServerSpec};
    use crate::net::{NetPolicy, TlsPolicy};

    fn access(api: Option<&str>, granted: &[&str], plain_loopback: bool) -> HttpAccess {
        HttpAccess {
            client: HttpClient {
                net: NetPolicy::new(&crate::config::NetConfig::default()),
                tls: TlsPolicy::new(None).unwrap(),
                max_response_bytes: 1 << 20,
                plain: if plain_loopback {
                    crate::net::PlainHttp::Loopback
                } else {
                    crate::net::PlainHttp::Never
                },
            },
            granted_private: false,
            max_request_bytes: 1 << 20,
            request_budget: Arc::new(tokio::sync::Semaphore::new(1024)),
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            api: api.and_then(Origin::parse),
            servers: AllowList::new(vec![ServerSpec {
                role: "jmap".into(),
                host: "mail.example.com".into(),
                port: 443,
                encryption: Encryption::Ssl,
            }]),
            granted: granted.iter().map(|h| h.to_string()).collect(),
            bearer: None,
            basic: Some(Credentials {
                login: "ann".into(),
                password: Secret::new("pw"),
            }),
            problem: Mutex::new(None),
        }
    }

    fn origin(url: &str) -> Origin {
        Origin::parse(url).unwrap()
    }

    #[test]
    fn nothing_is_reachable_but_the_account_its_api_and_granted_hosts() {
        let access = access(
            Some("https://gmail.googleapis.com"),
            &["cdn.example.org"],
            false,
        );
        for allowed in [
            "https://gmail.googleapis.com/gmail/v1/users/me/profile",
            "https://mail.example.com/jmap",
            "https://cdn.example.org:8443/x",
        ] {
            assert!(access.allowed(&origin(allowed)).is_ok(), "{allowed}");
        }
        for refused in [
            "https://evil.example/",
            "https://gmail.googleapis.com:8443/",
            "http://gmail.googleapis.com/",
            "https://169.254.169.254/latest/meta-data",
            "https://mail.example.com:8443/",
        ] {
            assert!(access.allowed(&origin(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn plain_http_goes_to_loopback_only_and_only_when_allowed() {
        let strict = access(Some("http://127.0.0.1:9000"), &[], false);
        assert!(strict.allowed(&origin("http://127.0.0.1:9000/")).is_err());
        let tests = access(Some("http://127.0.0.1:9000"), &[], true);
        assert!(tests.allowed(&origin("http://127.0.0.1:9000/")).is_ok());
        let elsewhere = access(Some("http://10.0.0.1:9000"), &["10.0.0.1"], true);
        assert!(elsewhere.allowed(&origin("http://10.0.0.1:9000/")).is_err());
    }

    #[test]
    fn credentials_go_only_to_the_account_server_or_its_api() {
        let access = access(
            Some("https://gmail.googleapis.com"),
            &["cdn.example.org"],
            false,
        );
        assert!(matches!(
            access.credential(&origin("https://mail.example.com/")),
            Credential::Basic(_)
        ));
        assert!(matches!(
            access.credential(&origin("https://cdn.example.org/")),
            Credential::None
        ));
        // A password account's API is not given the password; only a bearer would go there.
        assert!(matches!(
            access.credential(&origin("https://gmail.googleapis.com/")),
            Credential::None
        ));
    }

    #[test]
    fn a_connector_may_not_set_authorization_itself() {
        let filter = HttpHooks(None).forbidden_header_filter();
        assert!(filter(&http::header::AUTHORIZATION));
        assert!(filter(&http::header::PROXY_AUTHORIZATION));
        assert!(!filter(&http::header::ACCEPT));
    }
}
