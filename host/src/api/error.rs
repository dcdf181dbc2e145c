//! API errors: one type, one JSON shape (`{"error": {"code", "message", "field"?}}`), and
//! the one place where warp's own rejections (unknown path, wrong method, missing length,
//! oversized body, ...) are turned into that shape.

use serde_json::json;
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::reject::{
    LengthRequired, MethodNotAllowed, PayloadTooLarge, Rejection, UnsupportedMediaType,
};
use warp::reply::{Reply, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds, for 429 answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field} {}", message.into());
        Self {
            field: Some(field),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }

    /// The path names no endpoint.
    pub fn no_endpoint() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    /// The object does not exist, or the caller may not know that it does.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests; try again in {retry_after} s"),
            )
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Conflict(message) => Self::conflict(message),
            crate::store::StoreError::NotFound(what) => Self::not_found(what),
            other => {
                tracing::error!("store: {other}");
                Self::internal("the server could not read or write its database")
            }
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        let reply =
            warp::reply::with_status(warp::reply::json(&json!({ "error": error })), self.status);
        let mut response = match self.retry_after {
            Some(seconds) => {
                warp::reply::with_header(reply, "retry-after", seconds.to_string()).into_response()
            }
            None => reply.into_response(),
        };
        // A body refused unread leaves the connection unusable: say so, so that a client
        // does not send its next request on it.
        if matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::LENGTH_REQUIRED
        ) {
            response.headers_mut().insert(
                warp::http::header::CONNECTION,
                warp::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

/// Turns every rejection warp produces into the API's error shape.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::no_endpoint()
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not accept that method",
        )
    } else if rejection.find::<LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "the request needs a Content-Length header (chunked bodies are not accepted)",
        )
    } else if rejection.find::<PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is larger than this server accepts",
        )
    } else if rejection.find::<UnsupportedMediaType>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "unsupported content type",
        )
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::bad_request("the query string is malformed")
    } else if let Some(header) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(format!("the {} header is malformed", header.name()))
    } else if let Some(header) = rejection.find::<warp::reject::MissingHeader>() {
        ApiError::bad_request(format!("the {} header is missing", header.name()))
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        ApiError::bad_request("the request could not be handled")
    };
    Ok(error.into_response())
}
