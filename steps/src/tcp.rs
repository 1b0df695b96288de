//! The `tcp` kind: opens a TCP connection to `host:port` and closes it,
//! telling "nothing listening" (refused) from "no answer to the SYN" (timed
//! out). With the `ping` kind it shows the incident's signature: ICMP
//! answers, TCP times out.
//!
//! ```yaml
//! - id: probe_tcp
//!   tcp: { host: "{{ inputs.public_ip }}", port: 80, timeout: 5s }
//! ```
//!
//! Outputs, on success and on failure: `result` (`connected`, `refused`,
//! `timed_out`, `unreachable`), `elapsed_ms`, `address` (the `ip:port` tried
//! last). Only `connected` is a success.

use async_trait::async_trait;
use runbook_engine::step::{ConfigCheck, StepKind, StepRequest, StepResult};
use runbook_engine::yaml::Node;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

use crate::net::{self, Keys};

/// How long a connection attempt waits for an answer unless the step says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

const OUTPUTS: &[&str] = &["result", "address", "elapsed_ms"];

/// The `tcp` step kind.
pub struct TcpKind;

/// One probe, as configured.
#[derive(Debug, Clone, PartialEq)]
struct TcpProbe {
    host: String,
    port: u16,
    timeout: Duration,
}

impl Default for TcpProbe {
    fn default() -> TcpProbe {
        TcpProbe { host: String::new(), port: 0, timeout: DEFAULT_TIMEOUT }
    }
}

const KEYS: Keys<TcpProbe> = Keys {
    kind: "tcp",
    known: &["host", "port", "timeout"],
    required: &["host", "port"],
    shorthand: None,
    apply: apply_key,
};

fn apply_key(probe: &mut TcpProbe, key: &str, value: &serde_json::Value) -> Result<(), String> {
    match key {
        "host" => probe.host = net::host(value)?,
        "port" => probe.port = net::port(value)?,
        "timeout" => probe.timeout = net::duration(value)?,
        other => return Err(format!("unknown key `{other}`")),
    }
    Ok(())
}

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcpResult {
    Connected,
    Refused,
    TimedOut,
    Unreachable,
}

impl TcpResult {
    fn as_str(self) -> &'static str {
        match self {
            TcpResult::Connected => "connected",
            TcpResult::Refused => "refused",
            TcpResult::TimedOut => "timed_out",
            TcpResult::Unreachable => "unreachable",
        }
    }
}

#[async_trait]
impl StepKind for TcpKind {
    fn name(&self) -> &'static str {
        "tcp"
    }

    fn output_locals(&self) -> &'static [&'static str] {
        OUTPUTS
    }

    fn provided_outputs(&self, _config: &serde_json::Value) -> Vec<String> {
        OUTPUTS.iter().map(|&name| name.to_owned()).collect()
    }

    fn check_config(&self, config: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value {
        KEYS.check(config, check)
    }

    async fn execute(&self, request: StepRequest) -> StepResult {
        let probe = match KEYS.probe(&request) {
            Ok(probe) => probe,
            Err(message) => return StepResult::failed(message),
        };
        let started = Instant::now();
        tokio::select! {
            result = connect(&probe, started) => result,
            // Stopped (by the step's `timeout`, most often) while waiting for an answer.
            () = request.cancel.cancelled() => StepResult::failed_with(
                "stopped",
                values(TcpResult::TimedOut, String::new(), started),
            ),
        }
    }
}

/// Resolves the host and tries its addresses in turn until one connects or the time is up.
async fn connect(probe: &TcpProbe, started: Instant) -> StepResult {
    let deadline = tokio::time::Instant::from_std(started + probe.timeout);
    let outcome = |result: TcpResult, address: String| values(result, address, started);
    let target = format!("{}:{}", bracketed(&probe.host), probe.port);
    let addresses: Vec<SocketAddr> =
        match tokio::time::timeout_at(deadline, tokio::net::lookup_host((probe.host.as_str(), probe.port))).await {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(e)) => {
                return StepResult::failed_with(
                    format!("tcp cannot resolve `{}`: {e}", probe.host),
                    outcome(TcpResult::Unreachable, String::new()),
                );
            }
            Err(_) => {
                return StepResult::failed_with(
                    format!("tcp cannot resolve `{}`: no answer within {}", probe.host, net::shown(probe.timeout)),
                    outcome(TcpResult::TimedOut, String::new()),
                );
            }
        };
    if addresses.is_empty() {
        return StepResult::failed_with(
            format!("tcp cannot resolve `{}`: it has no address", probe.host),
            outcome(TcpResult::Unreachable, String::new()),
        );
    }
    let mut failures = Vec::new();
    let mut last = (TcpResult::Unreachable, String::new());
    for address in addresses {
        let (result, message) = match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                drop(stream);
                return StepResult::succeeded(outcome(TcpResult::Connected, address.to_string()));
            }
            Ok(Err(e)) => classify(&e, address),
            Err(_) => (
                TcpResult::TimedOut,
                format!(
                    "tcp {address} timed out after {}: no answer to the SYN (filtered or dropped)",
                    net::shown(probe.timeout)
                ),
            ),
        };
        failures.push(message);
        last = (result, address.to_string());
        if result == TcpResult::TimedOut {
            // The time is spent; later addresses would get none.
            break;
        }
    }
    let error = match failures.as_slice() {
        [one] => one.clone(),
        many => format!("tcp {target}: {}", many.join("; ")),
    };
    StepResult::failed_with(error, outcome(last.0, last.1))
}

/// The step's outputs.
fn values(result: TcpResult, address: String, started: Instant) -> serde_json::Map<String, serde_json::Value> {
    let mut values = serde_json::Map::new();
    values.insert("result".to_owned(), result.as_str().into());
    values.insert("address".to_owned(), address.into());
    values.insert("elapsed_ms".to_owned(), net::elapsed_ms(started).into());
    values
}

/// Names the result of a connection the OS refused or gave up on.
fn classify(error: &std::io::Error, address: SocketAddr) -> (TcpResult, String) {
    match error.raw_os_error() {
        Some(libc::ECONNREFUSED) => (
            TcpResult::Refused,
            format!("tcp {address} refused the connection: nothing listens there, or a firewall rejects it"),
        ),
        // The kernel's own SYN retries ran out before our timeout.
        Some(libc::ETIMEDOUT) => {
            (TcpResult::TimedOut, format!("tcp {address} timed out: no answer to the SYN (filtered or dropped)"))
        }
        _ => (TcpResult::Unreachable, format!("tcp {address} is unreachable: {error}")),
    }
}

/// `::1` as `[::1]`, so that a port can follow.
fn bracketed(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_name_the_result() {
        let address: SocketAddr = "127.0.0.1:9".parse().expect("address");
        let result = |code| classify(&std::io::Error::from_raw_os_error(code), address).0;
        assert_eq!(result(libc::ECONNREFUSED), TcpResult::Refused);
        assert_eq!(result(libc::ETIMEDOUT), TcpResult::TimedOut);
        assert_eq!(result(libc::EHOSTUNREACH), TcpResult::Unreachable);
        assert_eq!(result(libc::ENETUNREACH), TcpResult::Unreachable);
        let (_, message) = classify(&std::io::Error::from_raw_os_error(libc::ECONNREFUSED), address);
        assert!(message.starts_with("tcp 127.0.0.1:9 refused the connection"), "{message}");
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(bracketed("::1"), "[::1]");
        assert_eq!(bracketed("example.test"), "example.test");
    }
}
