//! The `ping` kind: ICMP echo to a host through the system `ping` (iputils),
//! reporting whether it answered and the average round trip.
//!
//! ```yaml
//! - id: probe_ping
//!   ping: { host: "{{ inputs.public_ip }}", count: 3, timeout: 5s }
//! ```
//!
//! The system `ping` is used rather than an ICMP socket of our own: raw
//! sockets need root and unprivileged ICMP sockets need
//! `net.ipv4.ping_group_range`, while the distribution's `ping` is set up to
//! work for every user. Outputs, on success and on failure: `reachable`,
//! `rtt_ms` (the average, null without a reply), `sent`, `received`. A host
//! that never answers fails the step.

use async_trait::async_trait;
use runbook_engine::step::{ConfigCheck, StepKind, StepRequest, StepResult};
use runbook_engine::yaml::Node;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

use crate::net::{self, Keys};

const DEFAULT_COUNT: u64 = 3;
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest interval every iputils `ping` allows an unprivileged user.
const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// How long `ping` gets beyond its own deadline before it is killed.
const OVERRUN_GRACE: Duration = Duration::from_secs(3);
/// How long a stopped `ping` gets to print its statistics after SIGINT.
const STOP_GRACE: Duration = Duration::from_millis(500);

const OUTPUTS: &[&str] = &["reachable", "rtt_ms", "sent", "received"];

/// The `ping` step kind.
pub struct PingKind;

#[derive(Debug, Clone, PartialEq)]
struct PingProbe {
    host: String,
    count: u64,
    interval: Duration,
    timeout: Duration,
}

impl Default for PingProbe {
    fn default() -> PingProbe {
        PingProbe { host: String::new(), count: DEFAULT_COUNT, interval: DEFAULT_INTERVAL, timeout: DEFAULT_TIMEOUT }
    }
}

const KEYS: Keys<PingProbe> = Keys {
    kind: "ping",
    known: &["host", "count", "interval", "timeout"],
    required: &["host"],
    shorthand: Some("host"),
    apply: apply_key,
};

fn apply_key(probe: &mut PingProbe, key: &str, value: &serde_json::Value) -> Result<(), String> {
    match key {
        "host" => probe.host = net::host(value)?,
        "count" => probe.count = net::whole_number(value, 1..=1000)?,
        "interval" => {
            let interval = net::duration(value)?;
            if interval < MIN_INTERVAL {
                return Err(format!(
                    "{} is shorter than {}, the least `ping` allows without root",
                    net::shown(interval),
                    net::shown(MIN_INTERVAL)
                ));
            }
            probe.interval = interval;
        }
        "timeout" => probe.timeout = net::duration(value)?,
        other => return Err(format!("unknown key `{other}`")),
    }
    Ok(())
}

#[async_trait]
impl StepKind for PingKind {
    fn name(&self) -> &'static str {
        "ping"
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
        ping(&probe, &request).await
    }
}

/// What `ping` printed at its end.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    sent: u64,
    received: u64,
    rtt_ms: Option<f64>,
}

impl Summary {
    fn values(self) -> serde_json::Map<String, serde_json::Value> {
        let mut values = serde_json::Map::new();
        values.insert("reachable".to_owned(), (self.received > 0).into());
        let rtt = self.rtt_ms.and_then(serde_json::Number::from_f64).map_or(serde_json::Value::Null, Into::into);
        values.insert("rtt_ms".to_owned(), rtt);
        values.insert("sent".to_owned(), self.sent.into());
        values.insert("received".to_owned(), self.received.into());
        values
    }
}

const NOTHING: Summary = Summary { sent: 0, received: 0, rtt_ms: None };

async fn ping(probe: &PingProbe, request: &StepRequest) -> StepResult {
    // `-w` takes whole seconds.
    let deadline_s = probe.timeout.as_millis().div_ceil(1000).max(1);
    let mut command = Command::new("ping");
    if let Some(vars) = &request.inherited_env {
        command.env_clear().envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    command
        .envs(request.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        // The summary is parsed: keep it in English with `.` decimals.
        .env("LC_ALL", "C")
        .arg("-n")
        .arg("-c")
        .arg(probe.count.to_string())
        .arg("-i")
        .arg(format!("{:.3}", probe.interval.as_secs_f64()))
        .arg("-w")
        .arg(deadline_s.to_string())
        .arg("--")
        .arg(&probe.host)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return StepResult::failed_with(
                "ping is not installed: the `ping` kind runs the system `ping` (iputils-ping on Debian and Ubuntu)",
                NOTHING.values(),
            );
        }
        Err(e) => return StepResult::failed_with(format!("cannot start ping: {e}"), NOTHING.values()),
    };
    let pid = child.id();
    let finished = child.wait_with_output();
    tokio::pin!(finished);
    let limit = Duration::from_secs(u64::try_from(deadline_s).unwrap_or(u64::MAX)) + OVERRUN_GRACE;
    let output = tokio::select! {
        output = tokio::time::timeout(limit, &mut finished) => match output {
            Ok(output) => output,
            // Dropping the future kills ping.
            Err(_) => return StepResult::failed_with(
                format!("ping {} did not finish within {}", probe.host, net::shown(limit)),
                NOTHING.values(),
            ),
        },
        () = request.cancel.cancelled() => {
            // SIGINT makes ping print its statistics so far; kill it if it does not stop.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            }
            let summary = match tokio::time::timeout(STOP_GRACE, &mut finished).await {
                Ok(Ok(output)) => summary(&String::from_utf8_lossy(&output.stdout)),
                _ => None,
            };
            return StepResult::failed_with("stopped", summary.unwrap_or(NOTHING).values());
        }
    };
    let output = match output {
        Ok(output) => output,
        Err(e) => return StepResult::failed_with(format!("cannot wait for ping: {e}"), NOTHING.values()),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(summary) = summary(&stdout) else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map_or_else(|| format!("ping exited with {}", output.status), |l| l.trim().to_owned());
        return StepResult::failed_with(format!("ping {}: {reason}", probe.host), NOTHING.values());
    };
    if summary.received == 0 {
        return StepResult::failed_with(
            format!(
                "ping {}: no reply to {} echo request{} within {}",
                probe.host,
                summary.sent,
                if summary.sent == 1 { "" } else { "s" },
                net::shown(Duration::from_secs(u64::try_from(deadline_s).unwrap_or(u64::MAX)))
            ),
            summary.values(),
        );
    }
    StepResult::succeeded(summary.values())
}

/// Reads the statistics at the end of iputils' (or busybox's) output:
///
/// ```text
/// 3 packets transmitted, 3 received, 0% packet loss, time 2003ms
/// rtt min/avg/max/mdev = 0.055/0.128/0.202/0.073 ms
/// ```
fn summary(stdout: &str) -> Option<Summary> {
    let counts = stdout.lines().find(|l| l.contains(" packets transmitted, "))?;
    let number_before = |suffix: &str| -> Option<u64> {
        let end = counts.find(suffix)?;
        counts[..end].rsplit(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    let sent = number_before(" packets transmitted")?;
    let received = number_before(" received").or_else(|| number_before(" packets received"))?;
    let rtt_ms = stdout
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .and_then(|l| l.split_once('=').map(|(_, figures)| figures.trim()))
        .and_then(|figures| figures.split('/').nth(1))
        .and_then(|avg| avg.trim().parse::<f64>().ok());
    Some(Summary { sent, received, rtt_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(stdout: &str, expected: Option<Summary>) {
        assert_eq!(summary(stdout), expected);
    }

    #[test]
    fn summaries() {
        check(
            "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.202 ms\n\n\
             --- 10.0.0.2 ping statistics ---\n\
             3 packets transmitted, 3 received, 0% packet loss, time 2003ms\n\
             rtt min/avg/max/mdev = 0.055/0.128/0.202/0.073 ms\n",
            Some(Summary { sent: 3, received: 3, rtt_ms: Some(0.128) }),
        );
        check(
            "--- 10.0.0.3 ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 2040ms\n",
            Some(Summary { sent: 3, received: 0, rtt_ms: None }),
        );
        check(
            "4 packets transmitted, 0 received, +4 errors, 100% packet loss, time 3003ms\n",
            Some(Summary { sent: 4, received: 0, rtt_ms: None }),
        );
        // busybox
        check(
            "2 packets transmitted, 1 packets received, 50% packet loss\nround-trip min/avg/max = 0.1/0.25/0.4 ms\n",
            Some(Summary { sent: 2, received: 1, rtt_ms: Some(0.25) }),
        );
        check("ping: nohost: Name or service not known\n", None);
        check("", None);
    }

    #[test]
    fn values_are_null_without_a_round_trip() {
        let values = Summary { sent: 3, received: 0, rtt_ms: None }.values();
        assert_eq!(values["reachable"], false);
        assert_eq!(values["rtt_ms"], serde_json::Value::Null);
        assert_eq!(values["sent"], 3);
    }
}
