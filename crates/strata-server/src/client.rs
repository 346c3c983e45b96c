//! The admin API's client: one blocking request at a time, failures sorted by exit code.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// Why a command failed, each with its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The instance answered with an error (exit 1): its detail.
    Answered(String),
    /// Nothing answered (exit 3): the URL and why.
    Unreachable(String, String),
    /// The token was refused (exit 4).
    Refused(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Answered(_) => 1,
            Failure::Unreachable(..) => 3,
            Failure::Refused(_) => 4,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Answered(detail) => f.write_str(detail),
            Failure::Unreachable(url, why) => write!(f, "cannot reach {url}: {why}"),
            Failure::Refused(detail) => write!(f, "{detail} (set STRATA_ADMIN_TOKEN)"),
        }
    }
}

pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(url: &str, token: Option<String>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .build();
        Self {
            base: url.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    pub fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.request("GET", path).call())
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.request("POST", path).send_json(body.clone()))
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let request = self.agent.request(method, &format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    fn send(&self, result: Result<ureq::Response, ureq::Error>) -> Result<Value, Failure> {
        match result {
            Ok(response) => response
                .into_json()
                .map_err(|e| Failure::Answered(format!("the instance's answer is not JSON: {e}"))),
            Err(ureq::Error::Status(code, response)) => {
                let body: Value = response.into_json().unwrap_or(Value::Null);
                let detail = body["detail"]
                    .as_str()
                    .map_or_else(|| format!("HTTP {code}"), str::to_owned);
                Err(match code {
                    401 | 403 => Failure::Refused(detail),
                    // `health` answers 503 with a body when down; it is an answer, not a failure.
                    503 if body.get("status").is_some() => return Ok(body),
                    _ => Failure::Answered(detail),
                })
            }
            Err(ureq::Error::Transport(e)) => {
                // The underlying cause ("Connection refused (os error 111)") says most.
                let why = std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .or_else(|| e.message().map(str::to_owned))
                    .unwrap_or_else(|| e.kind().to_string());
                Err(Failure::Unreachable(self.base.clone(), why))
            }
        }
    }
}
