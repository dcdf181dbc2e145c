//! Microsoft Graph's error answers, as <https://learn.microsoft.com/en-us/graph/errors>
//! shows them: a status code and
//! `{"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}`.

use serde_json::{Value, json};

/// One error answer of Microsoft Graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GraphError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u32>,
    /// A `Location` header: where a client starts over after a 410.
    pub location: Option<String>,
}

impl GraphError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        GraphError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            location: None,
        }
    }

    /// No bearer token, or one that is unknown or expired.
    pub(crate) fn unauthenticated(message: &str) -> Self {
        Self::new(401, "InvalidAuthenticationToken", message)
    }

    /// A message or folder id that names nothing in the mailbox (any more).
    pub(crate) fn item_not_found() -> Self {
        Self::new(
            404,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        )
    }

    /// An id that is not one the mailbox could have issued.
    pub(crate) fn malformed_id() -> Self {
        Self::new(400, "ErrorInvalidIdMalformed", "Id is malformed.")
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// A path segment that names no resource or function.
    pub(crate) fn unknown_segment(segment: &str) -> Self {
        Self::bad_request(format!("Resource not found for the segment '{segment}'."))
    }

    /// A `$select` or `$orderby` property the message type does not have.
    pub(crate) fn unknown_property(name: &str) -> Self {
        Self::new(
            400,
            "RequestBroker--ParseUri",
            format!("Could not find a property named '{name}' on type 'microsoft.graph.message'."),
        )
    }

    /// A `$filter` the delta function does not support.
    pub(crate) fn invalid_filter() -> Self {
        Self::new(
            400,
            "ErrorInvalidUrlQueryFilter",
            "The query filter contains one or more invalid nodes.",
        )
    }

    pub(crate) fn invalid_mime() -> Self {
        Self::new(
            400,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        )
    }

    pub(crate) fn access_denied() -> Self {
        Self::new(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        )
    }

    pub(crate) fn payload_too_large() -> Self {
        Self::new(
            413,
            "ErrorRequestEntityTooLarge",
            "The request body exceeds the maximum size.",
        )
    }

    /// A delta token from before `expire_delta_tokens`: start over at `location`.
    pub(crate) fn sync_state_not_found(location: String) -> Self {
        GraphError {
            location: Some(location),
            ..Self::new(
                410,
                "syncStateNotFound",
                "The sync state generation is not found. The delta token is expired and data must be synchronized again.",
            )
        }
    }

    /// More requests in the ten-minute window than the mailbox allows.
    pub(crate) fn over_request_limit(retry_after: u32) -> Self {
        GraphError {
            retry_after: Some(retry_after),
            ..Self::new(
                429,
                "ApplicationThrottled",
                "Application is over its MailboxRequests limit.",
            )
        }
    }

    /// More requests at once than the mailbox allows.
    pub(crate) fn over_concurrency_limit() -> Self {
        GraphError {
            retry_after: Some(1),
            ..Self::new(
                429,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            )
        }
    }

    /// An error the test asked for with `fail_next`.
    pub(crate) fn injected(status: u16, retry_after: Option<u32>) -> Self {
        let error = match status {
            400 => Self::bad_request("Injected bad request."),
            401 => Self::unauthenticated("Lifetime validation failed, the token is expired."),
            403 => Self::access_denied(),
            404 => Self::item_not_found(),
            429 => Self::new(429, "TooManyRequests", "Too many requests."),
            500 => Self::new(
                500,
                "generalException",
                "An unspecified error has occurred.",
            ),
            502 => Self::new(502, "BadGateway", "Bad gateway."),
            503 => Self::new(
                503,
                "serviceNotAvailable",
                "The service is temporarily unavailable. Try again after a delay.",
            ),
            504 => Self::new(504, "UnknownError", "The gateway timed out."),
            _ => Self::new(status, "UnknownError", format!("Injected error {status}.")),
        };
        GraphError {
            retry_after: retry_after.filter(|_| matches!(status, 429 | 503)),
            ..error
        }
    }

    /// The JSON body; `date` is the answer's time without fractions.
    pub(crate) fn body(&self, request_id: &str, client_request_id: &str, date: &str) -> Value {
        json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": date,
                    "request-id": request_id,
                    "client-request-id": client_request_id,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_graphs_shape() {
        let body = GraphError::item_not_found().body("r", "c", "2024-01-02T03:04:05");
        assert_eq!(body["error"]["code"], "ErrorItemNotFound");
        assert_eq!(body["error"]["innerError"]["request-id"], "r");
        assert_eq!(body["error"]["innerError"]["client-request-id"], "c");
        assert_eq!(body["error"]["innerError"]["date"], "2024-01-02T03:04:05");
    }

    #[test]
    fn injected_errors_keep_retry_after_only_where_graph_sends_it() {
        assert_eq!(GraphError::injected(429, Some(3)).retry_after, Some(3));
        assert_eq!(GraphError::injected(503, Some(2)).retry_after, Some(2));
        assert_eq!(GraphError::injected(500, Some(2)).retry_after, None);
        assert_eq!(
            GraphError::injected(401, None).code,
            "InvalidAuthenticationToken"
        );
    }
}
