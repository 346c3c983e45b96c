//! The admin API's client: one blocking request at a time, every failure sorted by the
//! exit code a script would act on.

use std::fmt;
use std::io::ErrorKind;
use std::time::Duration;

use serde_json::Value;
use ureq::http::StatusCode;

use crate::exit;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a whole request may take, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a command failed. [`Failure::exit_code`] is what the process exits with; the
/// `Display` form is the one line printed after `strata: `.
#[derive(Debug)]
pub enum Failure {
    /// The instance answered with an error other than a refused token (exit 1).
    Answered(String),
    /// Nothing answered at `url` (exit 3).
    Unreachable { url: String, why: String },
    /// The token was refused (exit 4).
    Refused(Refusal),
    /// The command line cannot be carried out as given (exit 2, as clap's own errors).
    Usage(String),
}

/// A refused token: which refusal, and the instance's own words.
#[derive(Debug)]
pub enum Refusal {
    /// 401 and no token was sent.
    Missing,
    /// 401 for the token sent.
    Invalid(String),
    /// 403: the read-only token on a change.
    Forbidden(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Answered(_) => exit::ANSWERED,
            Failure::Usage(_) => exit::USAGE,
            Failure::Unreachable { .. } => exit::UNREACHABLE,
            Failure::Refused(_) => exit::REFUSED,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Answered(detail) | Failure::Usage(detail) => f.write_str(detail),
            Failure::Unreachable { url, why } => write!(f, "cannot reach {url}: {why}"),
            Failure::Refused(Refusal::Missing) => f.write_str(
                "the instance wants a token (401): set STRATA_ADMIN_TOKEN to its admin \
                 or read-only token",
            ),
            Failure::Refused(Refusal::Invalid(detail)) => write!(
                f,
                "token refused (401: {detail}): set STRATA_ADMIN_TOKEN to the instance's \
                 admin or read-only token"
            ),
            Failure::Refused(Refusal::Forbidden(detail)) => write!(
                f,
                "token refused (403: {detail}): set STRATA_ADMIN_TOKEN to the instance's \
                 admin token"
            ),
        }
    }
}

/// A client of one instance's admin API.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// `base` is the API's root (`http://host:port`, or with a path prefix when the API is
    /// nested); `token` goes in `Authorization: Bearer`.
    pub fn new(base: &str, token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            // 4xx and 5xx carry the API's `{"error", "detail"}`: read them as answers.
            .http_status_as_error(false)
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, Failure> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.answer(request.call())
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let mut request = self.agent.post(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        self.answer(request.send_json(body))
    }

    fn answer(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, Failure> {
        let mut response = result.map_err(|e| self.transport(e))?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport(e))?;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return body.ok_or_else(|| {
                Failure::Answered(format!(
                    "{} answered {status} with something that is not JSON: is it a strata \
                     admin API?",
                    self.base
                ))
            });
        }
        let detail = body
            .as_ref()
            .and_then(|b| b["detail"].as_str())
            .map(str::to_owned);
        match (status, detail) {
            // `GET /health` answers 503 with its usual body when down: an answer, not an error.
            (StatusCode::SERVICE_UNAVAILABLE, _)
                if body.as_ref().is_some_and(|b| b.get("status").is_some()) =>
            {
                Ok(body.unwrap_or_default())
            }
            (StatusCode::UNAUTHORIZED, _) if self.token.is_none() => {
                Err(Failure::Refused(Refusal::Missing))
            }
            (StatusCode::UNAUTHORIZED, detail) => Err(Failure::Refused(Refusal::Invalid(
                detail.unwrap_or_else(|| "unauthorized".into()),
            ))),
            (StatusCode::FORBIDDEN, detail) => Err(Failure::Refused(Refusal::Forbidden(
                detail.unwrap_or_else(|| "forbidden".into()),
            ))),
            // The API's fallback route: the URL points past (or beside) the API's root.
            (StatusCode::NOT_FOUND, Some(detail)) if detail.starts_with("no such route") => {
                Err(Failure::Answered(format!(
                    "{detail}: is {} the admin API's root (--url)?",
                    self.base
                )))
            }
            (_, Some(detail)) => Err(Failure::Answered(detail)),
            (_, None) => Err(Failure::Answered(format!(
                "{} answered {status} without an error body: is it a strata admin API?",
                self.base
            ))),
        }
    }

    /// A failure before any answer: unreachable (3), or a URL or token this build cannot
    /// send (2).
    fn transport(&self, e: ureq::Error) -> Failure {
        let unreachable = |why: String| Failure::Unreachable {
            url: self.base.clone(),
            why,
        };
        match e {
            ureq::Error::Io(io) => unreachable(match io.kind() {
                ErrorKind::ConnectionRefused => "connection refused".into(),
                ErrorKind::ConnectionReset => "connection reset".into(),
                ErrorKind::ConnectionAborted => "connection aborted".into(),
                ErrorKind::TimedOut => "timed out".into(),
                ErrorKind::UnexpectedEof => "the connection closed before an answer".into(),
                _ => io.to_string(),
            }),
            ureq::Error::Timeout(ureq::Timeout::Connect) => unreachable(format!(
                "no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            )),
            ureq::Error::Timeout(ureq::Timeout::Resolve) | ureq::Error::HostNotFound => {
                unreachable("host not found".into())
            }
            ureq::Error::Timeout(_) => {
                unreachable(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()))
            }
            ureq::Error::Protocol(e) => unreachable(format!("not an HTTP answer ({e})")),
            ureq::Error::BadUri(why) => Failure::Usage(format!("--url {}: {why}", self.base)),
            ureq::Error::Http(_) => {
                Failure::Usage("the token holds characters an HTTP header cannot carry".into())
            }
            ureq::Error::TlsRequired => Failure::Usage(format!(
                "--url {}: https needs strata built with `--features tls`",
                self.base
            )),
            other => unreachable(other.to_string()),
        }
    }
}

/// `text` as one URL path segment (namespace names may hold any character).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn segments_escape_what_a_path_would_misread() {
        assert_eq!(super::segment("user"), "user");
        assert_eq!(super::segment("a/b c?d"), "a%2Fb%20c%3Fd");
        assert_eq!(super::segment("é"), "%C3%A9");
    }
}
