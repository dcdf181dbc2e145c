//! Gmail API errors in Google's JSON shape:
//! `{"error":{"code","message","errors":[{"message","domain","reason"}],"status"}}`
//! (see <https://developers.google.com/gmail/api/guides/handle-errors>).

use serde_json::{Value, json};

/// One error answer of the Gmail API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub reason: &'static str,
    pub domain: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            reason,
            domain: "global",
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn not_found() -> Self {
        Self::new(404, "notFound", "Requested entity was not found.")
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(400, "invalidArgument", message)
    }

    pub(crate) fn unauthenticated() -> Self {
        Self::new(
            401,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential. \
             See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        )
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "forbidden", message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "duplicate", message)
    }

    pub(crate) fn payload_too_large() -> Self {
        Self::new(
            413,
            "uploadTooLarge",
            "Request payload size exceeds the limit.",
        )
    }

    /// The per-user quota was spent: 429 `rateLimitExceeded`.
    pub(crate) fn user_rate_limit(retry_at: &str) -> Self {
        ApiError {
            domain: "usageLimits",
            ..Self::new(
                429,
                "rateLimitExceeded",
                format!("User-rate limit exceeded.  Retry after {retry_at}"),
            )
        }
    }

    /// An error the test asked for with `fail_next`.
    pub(crate) fn injected(status: u16, retry_after: Option<u32>) -> Self {
        let error = match status {
            429 => ApiError {
                domain: "usageLimits",
                ..Self::new(429, "rateLimitExceeded", "Rate Limit Exceeded")
            },
            403 => ApiError {
                domain: "usageLimits",
                ..Self::new(403, "userRateLimitExceeded", "User Rate Limit Exceeded")
            },
            401 => Self::unauthenticated(),
            404 => Self::not_found(),
            500 => Self::new(500, "backendError", "Backend Error"),
            503 => Self::new(503, "backendError", "The service is currently unavailable."),
            _ => Self::new(status, "unknown", format!("Injected error {status}")),
        };
        ApiError {
            retry_after,
            ..error
        }
    }

    /// Whether this answer is one of Gmail's rate-limit errors.
    pub(crate) fn is_rate_limit(&self) -> bool {
        matches!(self.reason, "rateLimitExceeded" | "userRateLimitExceeded")
    }

    /// The JSON body.
    pub(crate) fn body(&self) -> Value {
        let mut item = json!({
            "message": self.message,
            "domain": self.domain,
            "reason": self.reason,
        });
        if self.status == 401 {
            item["message"] = json!("Invalid Credentials");
            item["location"] = json!("Authorization");
            item["locationType"] = json!("header");
        }
        json!({
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [item],
                "status": status_name(self.status),
            }
        })
    }
}

/// The canonical status name Google puts beside each HTTP code.
fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        413 => "OUT_OF_RANGE",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unauthenticated_body_has_googles_shape() {
        let body = ApiError::unauthenticated().body();
        assert_eq!(body["error"]["code"], 401);
        assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
        assert_eq!(body["error"]["errors"][0]["reason"], "authError");
        assert_eq!(body["error"]["errors"][0]["domain"], "global");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Request had invalid authentication credentials.")
        );
    }

    #[test]
    fn injected_rate_limits_are_recognised() {
        let e429 = ApiError::injected(429, Some(3));
        assert_eq!(e429.retry_after, Some(3));
        assert!(e429.is_rate_limit());
        assert_eq!(e429.body()["error"]["status"], "RESOURCE_EXHAUSTED");
        let e403 = ApiError::injected(403, None);
        assert!(e403.is_rate_limit());
        assert_eq!(
            e403.body()["error"]["errors"][0]["reason"],
            "userRateLimitExceeded"
        );
        assert!(!ApiError::injected(500, None).is_rate_limit());
    }
}
