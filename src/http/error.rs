//! Typed API errors and how they map to Consul's status codes and plain-text bodies.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use actors::WriteError;
use protocol::api::RequestError;

/// Every way a request can fail; the text is exactly what the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: bad input (`Missing key name`, `Request decode failed: …`, `Invalid index` …).
    BadRequest(String),
    /// 404 with a text body (unknown endpoint).
    NotFound(String),
    /// 405: `method X not allowed`, with the route's `Allow` list.
    MethodNotAllowed { method: String, allow: &'static str },
    /// 413: body over the route's limit.
    TooLarge(String),
    /// 408: the request body did not arrive in time.
    RequestTimeout(String),
    /// 429: this client has too many requests in flight.
    TooManyRequests(String),
    /// 500: RPC / state machine errors, passed through verbatim (`No cluster leader` …).
    Internal(String),
}

/// Consul writes error bodies with Go's default sniffed type.
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

impl ApiError {
    pub fn bad_request(text: impl Into<String>) -> Self {
        ApiError::BadRequest(text.into())
    }

    pub fn internal(text: impl Into<String>) -> Self {
        ApiError::Internal(text.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn text(&self) -> String {
        match self {
            ApiError::BadRequest(t)
            | ApiError::NotFound(t)
            | ApiError::TooLarge(t)
            | ApiError::RequestTimeout(t)
            | ApiError::TooManyRequests(t)
            | ApiError::Internal(t) => t.clone(),
            ApiError::MethodNotAllowed { method, .. } => format!("method {method} not allowed"),
        }
    }

    pub fn to_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status());
        if let ApiError::MethodNotAllowed { allow, .. } = self {
            builder.insert_header(("Allow", *allow));
        }
        builder.content_type(TEXT_PLAIN).body(self.text())
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// The endpoint's typed errors, with Consul's status codes: the text is the same.
impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::BadRequest(text) => ApiError::BadRequest(text),
            RequestError::NotFound(text) => ApiError::NotFound(text),
            RequestError::TooLarge(text) => ApiError::TooLarge(text),
            RequestError::Internal(text) => ApiError::Internal(text),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status().as_u16(), self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_not_allowed_text_and_allow_header() {
        let e = ApiError::MethodNotAllowed {
            method: "POST".into(),
            allow: "OPTIONS,GET",
        };
        assert_eq!(e.text(), "method POST not allowed");
        let resp = e.to_response();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers().get("Allow").unwrap(), "OPTIONS,GET");
    }

    #[test]
    fn write_errors_are_500_with_display_text() {
        let e: ApiError = WriteError::NoLeader.into();
        assert_eq!(e, ApiError::Internal("No cluster leader".into()));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn request_errors_keep_their_text_and_status() {
        let cases = [
            (RequestError::NoLeader, 500, "No cluster leader"),
            (
                RequestError::bad_request("Invalid index"),
                400,
                "Invalid index",
            ),
            (RequestError::TooLarge("big".into()), 413, "big"),
            (RequestError::NotFound("gone".into()), 404, "gone"),
            (RequestError::Timeout, 500, "timed out enqueuing operation"),
            (
                RequestError::CommandTooLarge { len: 9, limit: 8 },
                500,
                "command of 9 bytes exceeds the limit of 8 bytes",
            ),
            // A client agent that knows or reaches no server (Consul's text).
            (RequestError::NoServers, 500, "No known Consul servers"),
        ];
        for (e, status, text) in cases {
            let api = ApiError::from(e);
            assert_eq!((api.status().as_u16(), api.text().as_str()), (status, text));
        }
    }
}
