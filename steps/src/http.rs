//! The `http` kind: one HTTP request, checked against the status and body
//! expected, with reqwest on rustls (ring).
//!
//! ```yaml
//! - id: probe_http
//!   http:
//!     url: "http://{{ inputs.public_ip }}/"
//!     method: GET
//!     headers: { Accept: text/html }
//!     timeout: 5s
//!     expect_status: [200, 301]
//!     expect_body: Mini-XDR
//! ```
//!
//! Outputs, on success and on failure: `status` (0 without a response),
//! `headers` (lowercase names), `body` (the first 64 KiB, as UTF-8),
//! `elapsed_ms`, and `result`: `ok`, `wrong_status`, `body_mismatch`,
//! `timed_out`, `refused`, `unreachable`, `tls_error` or `error`. Only `ok`
//! is a success. The body is also kept as the artifact `body`.
//!
//! The request goes straight to the URL's host: proxy variables in the
//! environment are ignored, because a probe must see what the path to the
//! host does, not what a proxy does. Redirects are not followed unless
//! `follow_redirects: true`, so that `expect_status: 301` can be checked.

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use runbook_engine::diag::did_you_mean;
use runbook_engine::step::{ConfigCheck, StepKind, StepRequest, StepResult};
use runbook_engine::yaml::Node;
use std::time::{Duration, Instant};

use crate::net::{self, Keys};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of the body that becomes the `body` output (the artifact keeps more).
pub const BODY_OUTPUT_CAP_BYTES: usize = 64 * 1024;
/// How far past the connect timeout the whole exchange may run, so that a
/// connection that never opens is reported by the connector as such rather
/// than by the overall deadline as "no response".
const CONNECT_FIRST_SLACK: Duration = Duration::from_millis(100);
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
const OUTPUTS: &[&str] = &["status", "headers", "body", "elapsed_ms", "result"];

/// The `http` step kind.
pub struct HttpKind;

/// What a request sends as its body.
#[derive(Debug, Clone, PartialEq)]
enum Body {
    Text(String),
    /// Written as a mapping or a list: sent as JSON.
    Json(serde_json::Value),
}

/// A status the step accepts: one code or a class (`2xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpectedStatus {
    Code(u16),
    Class(u16),
}

impl ExpectedStatus {
    fn matches(self, status: u16) -> bool {
        match self {
            ExpectedStatus::Code(code) => code == status,
            ExpectedStatus::Class(class) => status / 100 == class,
        }
    }
}

impl std::fmt::Display for ExpectedStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedStatus::Code(code) => write!(f, "{code}"),
            ExpectedStatus::Class(class) => write!(f, "{class}xx"),
        }
    }
}

#[derive(Debug, Clone)]
struct HttpProbe {
    url: Option<reqwest::Url>,
    method: reqwest::Method,
    headers: HeaderMap,
    body: Option<Body>,
    timeout: Duration,
    verify_tls: bool,
    follow_redirects: bool,
    expect_status: Vec<ExpectedStatus>,
    expect_body: Option<String>,
}

impl Default for HttpProbe {
    fn default() -> HttpProbe {
        HttpProbe {
            url: None,
            method: reqwest::Method::GET,
            headers: HeaderMap::new(),
            body: None,
            timeout: DEFAULT_TIMEOUT,
            verify_tls: true,
            follow_redirects: false,
            expect_status: vec![ExpectedStatus::Class(2)],
            expect_body: None,
        }
    }
}

const KEYS: Keys<HttpProbe> = Keys {
    kind: "http",
    known: &[
        "url",
        "method",
        "headers",
        "body",
        "timeout",
        "verify_tls",
        "follow_redirects",
        "expect_status",
        "expect_body",
    ],
    required: &["url"],
    shorthand: Some("url"),
    apply: apply_key,
};

fn apply_key(probe: &mut HttpProbe, key: &str, value: &serde_json::Value) -> Result<(), String> {
    match key {
        "url" => probe.url = Some(url(value)?),
        "method" => probe.method = method(value)?,
        "headers" => probe.headers = headers(value)?,
        "body" => {
            probe.body = match value {
                serde_json::Value::Null => None,
                serde_json::Value::Object(_) | serde_json::Value::Array(_) => Some(Body::Json(value.clone())),
                other => Some(Body::Text(net::text(other)?)),
            }
        }
        "timeout" => probe.timeout = net::duration(value)?,
        "verify_tls" => probe.verify_tls = net::boolean(value)?,
        "follow_redirects" => probe.follow_redirects = net::boolean(value)?,
        "expect_status" => probe.expect_status = expect_status(value)?,
        "expect_body" => probe.expect_body = Some(net::text(value)?),
        other => return Err(format!("unknown key `{other}`")),
    }
    Ok(())
}

fn url(value: &serde_json::Value) -> Result<reqwest::Url, String> {
    let written = net::text(value)?;
    let url = reqwest::Url::parse(written.trim()).map_err(|e| format!("`{written}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{written}`: only http:// and https:// URLs can be requested"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{written}` has no host"));
    }
    Ok(url)
}

fn method(value: &serde_json::Value) -> Result<reqwest::Method, String> {
    let written = net::text(value)?;
    let upper = written.trim().to_ascii_uppercase();
    if !METHODS.contains(&upper.as_str()) {
        let hint = did_you_mean(&upper, METHODS.iter().copied())
            .map(|m| format!(" (did you mean `{m}`?)"))
            .unwrap_or_else(|| format!("; use one of {}", METHODS.join(", ")));
        return Err(format!("`{written}` is not an HTTP method{hint}"));
    }
    reqwest::Method::from_bytes(upper.as_bytes()).map_err(|e| format!("`{written}`: {e}"))
}

fn headers(value: &serde_json::Value) -> Result<HeaderMap, String> {
    let serde_json::Value::Object(map) = value else {
        return Err("expected a mapping of header names to values".to_owned());
    };
    let mut headers = HeaderMap::new();
    for (name, value) in map {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("`{name}` is not a header name"))?;
        let text = net::text(value).map_err(|e| format!("header `{name}`: {e}"))?;
        let value = HeaderValue::from_str(&text)
            .map_err(|_| format!("header `{name}`: the value has characters a header cannot carry"))?;
        headers.append(header, value);
    }
    Ok(headers)
}

fn expect_status(value: &serde_json::Value) -> Result<Vec<ExpectedStatus>, String> {
    let one = |item: &serde_json::Value| -> Result<ExpectedStatus, String> {
        let written = net::text(item)?;
        let trimmed = written.trim();
        if let Some(class) = trimmed.strip_suffix("xx").or_else(|| trimmed.strip_suffix("XX")) {
            return match class.parse::<u16>() {
                Ok(class @ 1..=5) => Ok(ExpectedStatus::Class(class)),
                _ => Err(format!("`{written}` is not a status class: use 1xx to 5xx")),
            };
        }
        match trimmed.parse::<u16>() {
            Ok(code @ 100..=599) => Ok(ExpectedStatus::Code(code)),
            Ok(_) => Err(format!("{written} is not an HTTP status: use 100 to 599, or a class like 2xx")),
            Err(_) => Err(format!("`{written}` is not an HTTP status: use 100 to 599, or a class like 2xx")),
        }
    };
    match value {
        serde_json::Value::Array(items) if items.is_empty() => {
            Err("the list is empty: name at least one status".to_owned())
        }
        serde_json::Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

#[async_trait]
impl StepKind for HttpKind {
    fn name(&self) -> &'static str {
        "http"
    }

    fn output_locals(&self) -> &'static [&'static str] {
        &["status", "headers", "body", "json", "elapsed_ms", "result"]
    }

    fn provided_outputs(&self, _config: &serde_json::Value) -> Vec<String> {
        OUTPUTS.iter().map(|&name| name.to_owned()).collect()
    }

    fn check_config(&self, config: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value {
        KEYS.check(config, check)
    }

    /// GET, HEAD and OPTIONS only read. Any other method, or one a template
    /// chooses, may change something (a POST to an incident webhook): after
    /// a crash the step is repeated only if the workflow says
    /// `idempotent: true`, or has a `check`.
    fn idempotent_by_default(&self, config: &serde_json::Value) -> bool {
        match config.get("method") {
            None => true,
            Some(serde_json::Value::String(method)) => {
                matches!(method.trim().to_ascii_uppercase().as_str(), "GET" | "HEAD" | "OPTIONS")
            }
            Some(_) => false,
        }
    }

    async fn execute(&self, request: StepRequest) -> StepResult {
        let probe = match KEYS.probe(&request) {
            Ok(probe) => probe,
            Err(message) => return StepResult::failed(message),
        };
        let Some(url) = probe.url.clone() else {
            return StepResult::failed("http: missing key `url`");
        };
        let started = Instant::now();
        let exchange = exchange(&probe, &url, request.artifacts.cap_bytes());
        let outcome = tokio::select! {
            outcome = exchange => outcome,
            () = request.cancel.cancelled() => Outcome {
                result: "timed_out",
                error: Some("stopped".to_owned()),
                ..Outcome::default()
            },
        };
        outcome.into_step_result(&url, started, &request)
    }
}

/// What one exchange produced.
#[derive(Debug, Default)]
struct Outcome {
    result: &'static str,
    /// Why the step failed, when it did.
    error: Option<String>,
    status: u16,
    headers: serde_json::Map<String, serde_json::Value>,
    /// The body as received, up to the artifact cap.
    body: Vec<u8>,
    /// Bytes of the body not read, when the length was announced.
    body_dropped: u64,
    /// Whether a response arrived (so that there is a body to keep).
    responded: bool,
}

impl Outcome {
    fn into_step_result(self, url: &reqwest::Url, started: Instant, request: &StepRequest) -> StepResult {
        let mut artifacts = Vec::new();
        if self.responded {
            match request.artifacts.write("body", &self.body, self.body_dropped) {
                Ok(artifact) => artifacts.push(artifact),
                Err(e) => return StepResult::failed(format!("http {url}: cannot keep the body: {e}")),
            }
        }
        let shown = &self.body[..self.body.len().min(BODY_OUTPUT_CAP_BYTES)];
        let mut values = serde_json::Map::new();
        values.insert("status".to_owned(), self.status.into());
        values.insert("headers".to_owned(), serde_json::Value::Object(self.headers));
        values.insert("body".to_owned(), String::from_utf8_lossy(shown).into_owned().into());
        values.insert("elapsed_ms".to_owned(), net::elapsed_ms(started).into());
        values.insert("result".to_owned(), self.result.into());
        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&self.body) {
            values.insert("json".to_owned(), json);
        }
        StepResult { values, error: self.error, artifacts, ..StepResult::default() }
    }
}

/// Sends the request and reads the answer within the probe's timeout.
async fn exchange(probe: &HttpProbe, url: &reqwest::Url, body_cap: usize) -> Outcome {
    let failed = |result: &'static str, error: String| Outcome { result, error: Some(error), ..Outcome::default() };
    let client = match client(probe, url) {
        Ok(client) => client,
        Err(e) => {
            let result = if is_tls(&e) { "tls_error" } else { "error" };
            return failed(result, format!("http {url}: cannot set up the client: {}", chain(&e)));
        }
    };
    let mut builder = client.request(probe.method.clone(), url.clone()).headers(probe.headers.clone());
    match &probe.body {
        None => {}
        Some(Body::Text(text)) => builder = builder.body(text.clone()),
        Some(Body::Json(json)) => {
            if !probe.headers.contains_key(CONTENT_TYPE) {
                builder = builder.header(CONTENT_TYPE, "application/json");
            }
            builder = builder.body(json.to_string());
        }
    }
    let deadline = tokio::time::Instant::now() + probe.timeout + CONNECT_FIRST_SLACK;
    let timeout = net::shown(probe.timeout);
    let mut response = match tokio::time::timeout_at(deadline, builder.send()).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            let (result, error) = classify(&e, url, &timeout);
            return failed(result, error);
        }
        Err(_) => return failed("timed_out", format!("http {url} timed out after {timeout}: no response")),
    };
    let status = response.status();
    let mut outcome = Outcome {
        result: "ok",
        error: None,
        status: status.as_u16(),
        headers: header_values(response.headers()),
        body: Vec::new(),
        body_dropped: 0,
        responded: true,
    };
    let announced = response.content_length();
    loop {
        match tokio::time::timeout_at(deadline, response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                let room = body_cap.saturating_sub(outcome.body.len());
                outcome.body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    // Enough kept; the rest is not worth waiting for.
                    outcome.body_dropped = announced.map_or(0, |n| n.saturating_sub(outcome.body.len() as u64));
                    break;
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                outcome.result = "error";
                outcome.error = Some(format!("http {url}: the body was cut off: {}", chain(&e)));
                return outcome;
            }
            Err(_) => {
                outcome.result = "timed_out";
                outcome.error = Some(format!(
                    "http {url} timed out after {timeout}: answered {status} but the body did not arrive in time"
                ));
                return outcome;
            }
        }
    }
    if !probe.expect_status.iter().any(|expected| expected.matches(status.as_u16())) {
        let expected: Vec<String> = probe.expect_status.iter().map(ToString::to_string).collect();
        outcome.result = "wrong_status";
        outcome.error = Some(format!("http {url} answered {status}, expected {}", expected.join(" or ")));
        return outcome;
    }
    if let Some(needle) = &probe.expect_body
        && !String::from_utf8_lossy(&outcome.body).contains(needle.as_str())
    {
        outcome.result = "body_mismatch";
        outcome.error = Some(format!("http {url} answered {status} but the body does not contain `{needle}`"));
    }
    outcome
}

/// A client for this probe. Roots come from the system's store (through
/// rustls-platform-verifier); a system without one can still make plain
/// `http://` requests.
fn client(probe: &HttpProbe, url: &reqwest::Url) -> Result<reqwest::Client, reqwest::Error> {
    net::install_crypto_provider();
    let builder = || {
        reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(probe.timeout)
            .redirect(if probe.follow_redirects {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            })
            .tls_danger_accept_invalid_certs(!probe.verify_tls)
            .user_agent(concat!("runbook/", env!("CARGO_PKG_VERSION")))
    };
    match builder().build() {
        Ok(client) => Ok(client),
        Err(_) if url.scheme() == "http" => builder().tls_certs_only(Vec::<reqwest::Certificate>::new()).build(),
        Err(e) => Err(e),
    }
}

/// OS errors that say no path leads to the host.
const UNREACHABLE: &[i32] = &[
    libc::EHOSTUNREACH,
    libc::ENETUNREACH,
    libc::EHOSTDOWN,
    libc::ENETDOWN,
    libc::EADDRNOTAVAIL,
    libc::EACCES,
    libc::EPERM,
];

/// Names a failed request: `timed_out`, `refused`, `tls_error`, `unreachable` or `error`.
fn classify(error: &reqwest::Error, url: &reqwest::Url, timeout: &str) -> (&'static str, String) {
    let detail = chain(error);
    if error.is_timeout() || net::has_os_error(error, libc::ETIMEDOUT) {
        let phase = if error.is_connect() {
            "no connection: no answer to the SYN (filtered or dropped)"
        } else {
            "no response"
        };
        return ("timed_out", format!("http {url} timed out after {timeout}: {phase}"));
    }
    if is_tls(error) {
        return ("tls_error", format!("http {url}: TLS failed: {detail}"));
    }
    if net::has_os_error(error, libc::ECONNREFUSED) {
        return (
            "refused",
            format!("http {url}: the connection was refused: nothing listens there, or a firewall rejects it"),
        );
    }
    if error.is_dns() {
        return ("unreachable", format!("http {url}: cannot resolve the host: {detail}"));
    }
    if UNREACHABLE.iter().any(|&code| net::has_os_error(error, code)) {
        return ("unreachable", format!("http {url} is unreachable: {detail}"));
    }
    // A connection that opened and then broke (reset during the TLS handshake, closed before an answer).
    ("error", format!("http {url}: {detail}"))
}

fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    net::sources(error).any(|e| e.is::<rustls::Error>())
}

/// An error and its causes in one line, without repeating a cause a wrapper already quoted.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in net::sources(error) {
        let text = cause.to_string();
        if parts.last().is_some_and(|last| last.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    // reqwest's top line names the URL, which the message already names, and
    // hyper's "client error (Connect)" says nothing its causes do not.
    if parts.len() > 1 {
        parts.retain(|part| !part.starts_with("error sending request") && !part.starts_with("client error ("));
    }
    parts.join(": ")
}

/// Response headers as a mapping of lowercase names to values, repeated headers joined with `, `.
fn header_values(headers: &HeaderMap) -> serde_json::Map<String, serde_json::Value> {
    let mut values = serde_json::Map::new();
    for name in headers.keys() {
        let joined: Vec<String> =
            headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
        values.insert(name.as_str().to_owned(), joined.join(", ").into());
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_reading_methods_are_safe_to_repeat_by_default() {
        let safe = |config: serde_json::Value| HttpKind.idempotent_by_default(&config);
        assert!(safe(json!("http://127.0.0.1:1/health")), "the URL shorthand is a GET");
        assert!(safe(json!({ "url": "http://127.0.0.1:1/", "method": "get" })));
        assert!(safe(json!({ "url": "http://127.0.0.1:1/", "method": "HEAD" })));
        assert!(!safe(json!({ "url": "http://127.0.0.1:1/", "method": "POST" })));
        assert!(!safe(json!({ "url": "http://127.0.0.1:1/", "method": "delete" })));
        assert!(!safe(json!({ "url": "http://127.0.0.1:1/", "method": "{{ inputs.method }}" })));
    }

    #[test]
    fn statuses() {
        assert_eq!(expect_status(&json!(200)), Ok(vec![ExpectedStatus::Code(200)]));
        assert_eq!(expect_status(&json!([200, "3xx"])), Ok(vec![ExpectedStatus::Code(200), ExpectedStatus::Class(3)]));
        assert!(expect_status(&json!(99)).is_err());
        assert!(expect_status(&json!(600)).is_err());
        assert!(expect_status(&json!("6xx")).is_err());
        assert!(expect_status(&json!([])).is_err());
        assert!(expect_status(&json!("ok")).is_err());
        assert!(ExpectedStatus::Class(2).matches(204));
        assert!(!ExpectedStatus::Class(2).matches(301));
    }

    #[test]
    fn methods() {
        assert_eq!(method(&json!("post")), Ok(reqwest::Method::POST));
        assert!(method(&json!("GTE")).expect_err("an error").contains("did you mean `GET`"));
        assert!(method(&json!("FETCH")).is_err());
    }

    #[test]
    fn urls() {
        assert!(url(&json!("http://127.0.0.1:8080/x")).is_ok());
        assert!(url(&json!("https://[::1]/")).is_ok());
        assert!(url(&json!("ftp://127.0.0.1/")).expect_err("an error").contains("only http"));
        assert!(url(&json!("127.0.0.1")).is_err());
    }

    #[test]
    fn header_names_and_values() {
        assert!(headers(&json!({"Accept": "text/html", "X-Count": 3})).is_ok());
        assert!(headers(&json!({"Bad Name": "x"})).is_err());
        assert!(headers(&json!({"X": "a\nb"})).is_err());
        assert!(headers(&json!(["Accept"])).is_err());
    }

    #[test]
    fn a_client_builds_for_plain_and_tls_urls() {
        let probe = HttpProbe::default();
        let plain = reqwest::Url::parse("http://127.0.0.1/").expect("url");
        assert!(client(&probe, &plain).is_ok(), "the ring provider is installed before the first client");
    }
}
