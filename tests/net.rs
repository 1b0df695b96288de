//! The network kinds `http`, `tcp` and `ping` against real endpoints: an HTTP
//! server this module runs on loopback, a port that refuses, a listener whose
//! full accept queue drops SYNs, a self-signed HTTPS server, and — as root —
//! two network namespaces joined by a veth pair, where a firewall drops TCP
//! SYNs to one port while ICMP passes: the incident's signature, for real.
//!
//! Traffic goes only to 127.0.0.0/8 and to addresses inside the namespaces the
//! test creates (10.231.0.0/24 exists nowhere else). A test that needs a tool
//! the machine lacks (`ping`, `python3`, `ip`, `iptables` or `nft`, root)
//! prints why it is skipped; with `CI=true` it fails instead, because CI
//! installs them all (.ci/run).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::util::{Run, Sandbox, of_type};

// ---------------------------------------------------------------------------
// What the machine offers.

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether a component a test needs is there. Without it the test says why it
/// is skipped, or fails under `CI=true`.
#[track_caller]
fn available(component: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(!under_ci(), "{component} is missing, and with CI=true this test must run (.ci/run installs it)");
    eprintln!("skipped: {component} is missing (with CI=true this would fail)");
    false
}

/// The full path of a program, looked up in PATH and in the system directories root's PATH may lack.
fn program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/net").join(name)
}

// ---------------------------------------------------------------------------
// Endpoints on loopback.

/// An HTTP/1.1 server on 127.0.0.1 with one answer per path; stops when dropped.
struct HttpServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
}

/// The body of `/big`: more than the 64 KiB the `body` output keeps.
const BIG_BODY_BYTES: usize = 100_000;
/// What `/token` answers; the workflow declares it a secret.
const TOKEN: &str = "s3cr3t-token-4711";

impl HttpServer {
    fn start() -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test server");
        let address = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    std::thread::spawn(move || {
                        let _ = answer(stream);
                    });
                }
            }
        });
        HttpServer { address, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
    }
}

/// Reads one request and answers it by its path.
fn answer(stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut first = [0u8; 1];
    if stream.peek(&mut first)? == 1 && first[0] == 0x16 {
        // A TLS ClientHello: answer in plain HTTP, as a server without TLS does.
        let mut writer = stream;
        writer.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return writer.flush();
    }
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut words = request_line.split_whitespace();
    let method = words.next().unwrap_or_default().to_owned();
    let path = words.next().unwrap_or_default().to_owned();
    let mut headers = serde_json::Map::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if name == "content-length" {
                content_length = value.trim().parse().unwrap_or(0);
            }
            headers.insert(name, value.trim().into());
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;

    let (status, extra, body): (&str, Vec<(&str, &str)>, Vec<u8>) = match path.as_str() {
        "/ok" => ("200 OK", vec![("X-Probe", "yes")], b"hello from Mini-XDR\n".to_vec()),
        "/missing" => ("404 Not Found", vec![], b"not here\n".to_vec()),
        "/moved" => ("301 Moved Permanently", vec![("Location", "/ok")], Vec::new()),
        "/json" => (
            "200 OK",
            vec![("Content-Type", "application/json")],
            br#"{"ip": "127.0.0.7", "ports": [80, 443]}"#.to_vec(),
        ),
        "/echo" => {
            let echoed = serde_json::json!({
                "method": method,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
            });
            ("200 OK", vec![("Content-Type", "application/json")], echoed.to_string().into_bytes())
        }
        "/big" => ("200 OK", vec![], vec![b'x'; BIG_BODY_BYTES]),
        "/token" => ("200 OK", vec![], format!("token={TOKEN}\n").into_bytes()),
        "/slow" => {
            // Longer than the steps' timeouts; bounded so the thread ends by itself.
            std::thread::sleep(Duration::from_secs(3));
            ("200 OK", vec![], b"late\n".to_vec())
        }
        _ => ("400 Bad Request", vec![], Vec::new()),
    };
    let mut writer = stream;
    write!(writer, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len())?;
    for (name, value) in extra {
        write!(writer, "{name}: {value}\r\n")?;
    }
    writer.write_all(b"\r\n")?;
    writer.write_all(&body)?;
    writer.flush()
}

/// A listener that accepts each connection and closes it without a word.
struct ClosingListener {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl ClosingListener {
    fn start() -> ClosingListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                drop(stream);
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
            }
        });
        ClosingListener { address, stop }
    }
}

impl Drop for ClosingListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
    }
}

/// A loopback port with nothing listening: connections to it are refused.
fn refusing_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local address").port()
}

/// A loopback port that drops SYNs, without a namespace or a firewall.
///
/// The trick: Linux drops a SYN when the listener's accept queue is full
/// (`tcp_conn_request` → `LINUX_MIB_LISTENOVERFLOWS`). A listener with backlog
/// 0 that never accepts holds one connection; once that one is made, every
/// later SYN is dropped and the client sees no answer at all, as behind a
/// firewall that DROPs.
struct SynDroppingPort {
    port: u16,
    // Kept alive: the listener, its runtime, and the connections that fill the queue.
    _listener: tokio::net::TcpListener,
    _runtime: tokio::runtime::Runtime,
    _fillers: Vec<TcpStream>,
}

impl SynDroppingPort {
    fn start() -> SynDroppingPort {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().expect("runtime");
        let listener = runtime
            .block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind("127.0.0.1:0".parse().expect("address"))?;
                socket.listen(0)
            })
            .expect("listen with backlog 0");
        let address = listener.local_addr().expect("local address");
        let mut fillers = Vec::new();
        loop {
            match TcpStream::connect_timeout(&address, Duration::from_millis(300)) {
                Ok(stream) => fillers.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(e) => panic!("cannot fill the accept queue of {address}: {e}"),
            }
            assert!(fillers.len() < 64, "the accept queue of {address} never filled");
        }
        SynDroppingPort { port: address.port(), _listener: listener, _runtime: runtime, _fillers: fillers }
    }
}

// ---------------------------------------------------------------------------
// Looking at a run.

/// A finished run: its status (`run --json`) and its events.
struct Finished {
    run: Run,
    status: serde_json::Value,
    events: Vec<serde_json::Value>,
}

impl Finished {
    #[track_caller]
    fn of(sandbox: &Sandbox, run: Run) -> Finished {
        let status: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("run --json prints the status ({e}):\n{}\n{}", run.stdout, run.stderr));
        let run_id = status["run_id"]
            .as_u64()
            .or_else(|| status["run_id"].as_str().and_then(|s| s.parse().ok()))
            .expect("run_id");
        let events = sandbox.events(run_id);
        Finished { run, status, events }
    }

    #[track_caller]
    fn step(&self, id: &str) -> &serde_json::Value {
        self.status["steps"]
            .as_array()
            .and_then(|steps| steps.iter().find(|s| s["id"] == id))
            .unwrap_or_else(|| panic!("no step {id} in {}", self.status))
    }

    #[track_caller]
    fn outputs(&self, id: &str) -> &serde_json::Value {
        &self.step(id)["outputs"]
    }

    #[track_caller]
    fn status_of(&self, id: &str) -> &str {
        self.step(id)["status"].as_str().unwrap_or("?")
    }

    /// The error of the step's last failed attempt.
    #[track_caller]
    fn error(&self, id: &str) -> String {
        of_type(&self.events, "step_failed")
            .into_iter()
            .rfind(|e| e["step"] == id)
            .and_then(|e| e["error"].as_str())
            .unwrap_or_else(|| panic!("step {id} has no failure; status: {}", self.status))
            .to_owned()
    }
}

#[track_caller]
fn run_workflow(sandbox: &Sandbox, yaml: &str, args: &[&str]) -> Finished {
    let workflow = sandbox.write("workflow.yaml", yaml);
    let mut all = vec!["run", workflow.to_str().expect("utf-8 path"), "--json"];
    all.extend_from_slice(args);
    let run = sandbox.run(&all);
    Finished::of(sandbox, run)
}

#[track_caller]
fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected `{needle}` in: {text}");
}

// ---------------------------------------------------------------------------
// tcp

#[test]
fn tcp_reports_connected_refused_and_timed_out_on_loopback() {
    let server = HttpServer::start();
    let refused = refusing_port();
    let dropping = SynDroppingPort::start();
    let sandbox = Sandbox::new();
    let yaml = format!(
        r#"
name: tcp-loopback
inputs:
  port: {{ type: int }}
steps:
  - id: open
    tcp: {{ host: 127.0.0.1, port: "{{{{ inputs.port }}}}", timeout: 2s }}
  - id: closed
    tcp: {{ host: "[127.0.0.1]", port: {refused}, timeout: 2s }}
    continue_on_error: true
  - id: dropped
    tcp: {{ host: 127.0.0.1, port: {dropping}, timeout: 700ms }}
    continue_on_error: true
  - id: on_timeout
    needs: [dropped]
    if: steps.dropped.outputs.result == 'timed_out'
    set: {{ seen: "{{{{ steps.dropped.outputs.address }}}}" }}
"#,
        dropping = dropping.port
    );
    let port = format!("port={}", server.address.port());
    let done = run_workflow(&sandbox, &yaml, &["-i", &port]);
    assert_eq!(done.run.code, 0, "{}\n{}", done.run.stdout, done.run.stderr);

    let open = done.outputs("open");
    assert_eq!(open["result"], "connected");
    assert_eq!(open["address"], format!("127.0.0.1:{}", server.address.port()));
    assert!(open["elapsed_ms"].is_u64(), "{open}");

    assert_eq!(done.status_of("closed"), "failed");
    assert_eq!(done.outputs("closed")["result"], "refused");
    assert_contains(&done.error("closed"), &format!("tcp 127.0.0.1:{refused} refused the connection"));

    assert_eq!(done.status_of("dropped"), "failed");
    let dropped = done.outputs("dropped");
    assert_eq!(dropped["result"], "timed_out");
    assert!(dropped["elapsed_ms"].as_u64().is_some_and(|ms| ms >= 650), "{dropped}");
    assert_contains(&done.error("dropped"), "timed out after 700ms: no answer to the SYN");
    assert_eq!(done.outputs("on_timeout")["seen"], format!("127.0.0.1:{}", dropping.port));
}

#[test]
fn tcp_fails_with_a_clear_message_when_a_rendered_port_is_not_a_port() {
    let sandbox = Sandbox::new();
    let done = run_workflow(
        &sandbox,
        r#"
name: tcp-bad-port
inputs:
  port: { type: string }
steps:
  - id: probe
    tcp: { host: 127.0.0.1, port: "{{ inputs.port }}" }
"#,
        &["-i", "port=http"],
    );
    assert_eq!(done.run.code, 1, "{}\n{}", done.run.stdout, done.run.stderr);
    assert_eq!(done.error("probe"), "tcp `port`: `http` is not a port: use 1 to 65535");
}

#[test]
fn a_step_timeout_stops_a_longer_tcp_probe_promptly() {
    let dropping = SynDroppingPort::start();
    let sandbox = Sandbox::new();
    let started = Instant::now();
    let done = run_workflow(
        &sandbox,
        &format!(
            r#"
name: tcp-step-timeout
steps:
  - id: probe
    tcp: {{ host: 127.0.0.1, port: {}, timeout: 60s }}
    timeout: 400ms
"#,
            dropping.port
        ),
        &[],
    );
    assert_eq!(done.run.code, 1, "{}\n{}", done.run.stdout, done.run.stderr);
    assert!(started.elapsed() < Duration::from_secs(10), "the run took {:?}", started.elapsed());
    assert_contains(&done.error("probe"), "timed out after 400ms");
}

// ---------------------------------------------------------------------------
// ping

fn ping_available() -> bool {
    available("`ping` (iputils-ping)", program("ping").is_some())
}

#[test]
fn ping_of_loopback_is_reachable_with_a_round_trip_time() {
    if !ping_available() {
        return;
    }
    let sandbox = Sandbox::new();
    let done = run_workflow(
        &sandbox,
        r#"
name: ping-loopback
steps:
  - id: probe
    ping: { host: 127.0.0.1, count: 2, interval: 200ms, timeout: 5s }
  - id: short
    ping: 127.0.0.1
    if: "false"
"#,
        &[],
    );
    assert_eq!(done.run.code, 0, "{}\n{}", done.run.stdout, done.run.stderr);
    let probe = done.outputs("probe");
    assert_eq!(probe["reachable"], true, "{probe}");
    assert_eq!(probe["sent"], 2);
    assert_eq!(probe["received"], 2);
    assert!(probe["rtt_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{probe}");
}

#[test]
fn ping_without_the_system_ping_says_so() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "workflow.yaml",
        r#"
name: ping-missing
steps:
  - id: probe
    ping: 127.0.0.1
    continue_on_error: true
  - id: handled
    needs: [probe]
    if: not steps.probe.outputs.reachable
    set: { note: ping failed }
"#,
    );
    let empty = sandbox.path().join("empty-bin");
    std::fs::create_dir_all(&empty).expect("directory");
    let output = sandbox
        .command(&["run", workflow.to_str().expect("utf-8 path"), "--json"])
        .env("PATH", &empty)
        .output()
        .expect("run runbook");
    let done = Finished::of(&sandbox, Run::from(output));
    assert_eq!(done.run.code, 0, "{}\n{}", done.run.stdout, done.run.stderr);
    assert_contains(&done.error("probe"), "ping is not installed");
    assert_eq!(done.outputs("probe")["reachable"], false);
    assert_eq!(done.outputs("probe")["rtt_ms"], serde_json::Value::Null);
    assert_eq!(done.status_of("handled"), "succeeded");
}

// ---------------------------------------------------------------------------
// http

#[test]
fn http_checks_status_and_body_and_exposes_the_response() {
    let server = HttpServer::start();
    let sandbox = Sandbox::new();
    let yaml = format!(
        r#"
name: http-loopback
steps:
  - id: ok
    http:
      url: {ok}
      headers: {{ Accept: text/plain }}
      expect_body: Mini-XDR
  - id: missing
    http: {missing}
    continue_on_error: true
  - id: expected_404
    http: {{ url: {missing}, expect_status: 404 }}
  - id: mismatch
    http: {{ url: {ok}, expect_body: nginx }}
    continue_on_error: true
  - id: moved
    http: {{ url: {moved}, expect_status: [301, 302] }}
  - id: followed
    http: {{ url: {moved}, follow_redirects: true, expect_body: Mini-XDR }}
  - id: api
    http: {json}
    outputs:
      ip: "{{{{ json.ip }}}}"
      first_port: "{{{{ json.ports[0] }}}}"
      code: "{{{{ status }}}}"
  - id: after_404
    needs: [missing]
    if: steps.missing.outputs.status == 404 and steps.missing.outputs.result == 'wrong_status'
    set: {{ handled: true }}
"#,
        ok = server.url("/ok"),
        missing = server.url("/missing"),
        moved = server.url("/moved"),
        json = server.url("/json"),
    );
    let done = run_workflow(&sandbox, &yaml, &[]);
    assert_eq!(done.run.code, 0, "{}\n{}", done.run.stdout, done.run.stderr);

    let ok = done.outputs("ok");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["result"], "ok");
    assert_eq!(ok["body"], "hello from Mini-XDR\n");
    assert_eq!(ok["headers"]["x-probe"], "yes", "header names are lowercase: {ok}");
    assert!(ok["elapsed_ms"].is_u64());

    assert_eq!(done.status_of("missing"), "failed");
    assert_eq!(done.outputs("missing")["status"], 404);
    assert_eq!(done.outputs("missing")["result"], "wrong_status");
    assert_eq!(done.error("missing"), format!("http {} answered 404 Not Found, expected 2xx", server.url("/missing")));
    assert_eq!(done.status_of("expected_404"), "succeeded");

    assert_eq!(done.outputs("mismatch")["result"], "body_mismatch");
    assert_contains(&done.error("mismatch"), "the body does not contain `nginx`");

    assert_eq!(done.outputs("moved")["status"], 301, "redirects are not followed unless asked");
    assert_eq!(done.outputs("moved")["headers"]["location"], "/ok");
    assert_eq!(done.outputs("followed")["status"], 200);

    let api = done.outputs("api");
    assert_eq!(api["ip"], "127.0.0.7");
    assert_eq!(api["first_port"], 80);
    assert_eq!(api["code"], 200);
    assert_eq!(done.outputs("after_404")["handled"], true);
}

#[test]
fn http_names_timeouts_refusals_closed_connections_and_tls_failures() {
    let server = HttpServer::start();
    let closing = ClosingListener::start();
    let refused = refusing_port();
    let dropping = SynDroppingPort::start();
    let sandbox = Sandbox::new();
    let yaml = format!(
        r#"
name: http-failures
steps:
  - id: slow
    http: {{ url: {slow}, timeout: 500ms }}
    continue_on_error: true
  - id: no_syn_answer
    http: {{ url: "http://127.0.0.1:{dropping}/", timeout: 500ms }}
    continue_on_error: true
  - id: refused
    http: "http://127.0.0.1:{refused}/"
    continue_on_error: true
  - id: closed
    http: "http://{closing}/"
    continue_on_error: true
  - id: not_tls
    http: "https://{plain}/ok"
    continue_on_error: true
"#,
        slow = server.url("/slow"),
        dropping = dropping.port,
        closing = closing.address,
        plain = server.address,
    );
    let started = Instant::now();
    let done = run_workflow(&sandbox, &yaml, &[]);
    assert_eq!(done.run.code, 0, "{}\n{}", done.run.stdout, done.run.stderr);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());

    let expect = |step: &str, result: &str, message: &str| {
        assert_eq!(done.status_of(step), "failed", "{step}");
        assert_eq!(done.outputs(step)["result"], result, "{step}: {} {}", done.outputs(step), done.error(step));
        assert_eq!(done.outputs(step)["status"], 0, "{step}");
        assert_contains(&done.error(step), message);
    };
    expect("slow", "timed_out", "timed out after 500ms: no response");
    expect("no_syn_answer", "timed_out", "timed out after 500ms: no connection: no answer to the SYN");
    expect("refused", "refused", "the connection was refused");
    expect("closed", "error", &format!("http http://{}/", closing.address));
    expect("not_tls", "tls_error", "TLS failed");
}

#[test]
fn http_sends_the_method_headers_and_body() {
    let server = HttpServer::start();
    let sandbox = Sandbox::new();
    let yaml = format!(
        r#"
name: http-echo
inputs:
  who: {{ type: string, default: operator }}
steps:
  - id: text
    http:
      url: {echo}
      method: post
      headers: {{ X-Requested-By: "{{{{ inputs.who }}}}", X-Attempt: 1 }}
      body: "hello {{{{ inputs.who }}}}"
    outputs:
      method: "{{{{ json.method }}}}"
      by: "{{{{ json.headers['x-requested-by'] }}}}"
      body: "{{{{ json.body }}}}"
  - id: structured
    http:
      url: {echo}
      method: PUT
      body: {{ action: recreate, dry_run: true }}
    outputs:
      type: "{{{{ json.headers['content-type'] }}}}"
      body: "{{{{ json.body }}}}"
"#,
        echo = server.url("/echo")
    );
    let done = run_workflow(&sandbox, &yaml, &[]);
    assert_eq!(done.run.code, 0, "{}\n{}", done.run.stdout, done.run.stderr);
    let text = done.outputs("text");
    assert_eq!(text["method"], "POST");
    assert_eq!(text["by"], "operator");
    assert_eq!(text["body"], "hello operator");
    let structured = done.outputs("structured");
    assert_eq!(structured["type"], "application/json");
    let sent: serde_json::Value = serde_json::from_str(structured["body"].as_str().expect("text")).expect("JSON sent");
    assert_eq!(sent, serde_json::json!({"action": "recreate", "dry_run": true}));
}

#[test]
fn http_body_output_is_capped_and_the_artifact_is_masked() {
    let server = HttpServer::start();
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "workflow.yaml",
        &format!(
            r#"
name: http-body
secrets: [PROBE_TOKEN]
steps:
  - id: big
    http: {big}
  - id: token
    http: {token}
"#,
            big = server.url("/big"),
            token = server.url("/token")
        ),
    );
    let output = sandbox
        .command(&["run", workflow.to_str().expect("utf-8 path"), "--json"])
        .env("PROBE_TOKEN", TOKEN)
        .output()
        .expect("run runbook");
    let done = Finished::of(&sandbox, Run::from(output));
    assert_eq!(done.run.code, 0, "{}\n{}", done.run.stdout, done.run.stderr);
    assert_eq!(done.outputs("big")["body"].as_str().map(str::len), Some(64 * 1024));
    let big = of_type(&done.events, "step_succeeded").into_iter().find(|e| e["step"] == "big").expect("big succeeded");
    assert_eq!(big["artifacts"][0]["name"], "body");
    assert_eq!(big["artifacts"][0]["size"], BIG_BODY_BYTES as u64, "the artifact keeps the whole body: {big}");

    assert_eq!(done.outputs("token")["body"], "token=***\n");
    let run_id = done.status["run_id"].to_string();
    let logs = sandbox.run(&["logs", run_id.trim_matches('"'), "token"]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert_contains(&logs.stdout, "token=***");
    assert!(!logs.stdout.contains(TOKEN), "the secret is masked in the artifact: {}", logs.stdout);
}

/// A web server started from tests/fixtures/net/serve.py; killed when dropped.
struct PythonServer {
    child: Child,
    port: u16,
}

impl PythonServer {
    /// Runs serve.py with `python` (a `python3`, or `ip netns exec NS python3`) and waits for its port.
    fn start(mut python: Command, args: &[&str]) -> PythonServer {
        let mut child = python
            .arg(fixture("serve.py"))
            .args(args)
            // The server exits when this pipe closes, however the test ends.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start serve.py");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).expect("serve.py prints its port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("serve.py printed `{line}`, not a port")
        });
        PythonServer { child, port }
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn http_verify_tls_false_accepts_a_self_signed_certificate() {
    let Some(python) = program("python3") else {
        available("python3 (for the HTTPS test server)", false);
        return;
    };
    let server = PythonServer::start(Command::new(python), &["--bind", "127.0.0.1", "--port", "0", "--tls"]);
    let sandbox = Sandbox::new();
    let yaml = format!(
        r#"
name: http-tls
steps:
  - id: verified
    http: "https://127.0.0.1:{port}/"
    continue_on_error: true
  - id: unverified
    http: {{ url: "https://127.0.0.1:{port}/", verify_tls: false, expect_body: Mini-XDR }}
"#,
        port = server.port
    );
    let done = run_workflow(&sandbox, &yaml, &[]);
    assert_eq!(done.run.code, 0, "{}\n{}", done.run.stdout, done.run.stderr);
    assert_eq!(done.outputs("verified")["result"], "tls_error");
    assert_contains(&done.error("verified"), "certificate");
    assert_eq!(done.outputs("unverified")["result"], "ok");
    assert_eq!(done.outputs("unverified")["status"], 200);
}

// ---------------------------------------------------------------------------
// The incident's signature, in network namespaces.

/// Where the server side lives; nothing outside the namespaces has these addresses.
const CLIENT_ADDRESS: &str = "10.231.0.1";
const SERVER_ADDRESS: &str = "10.231.0.2";
/// A second address of the server that does not answer ICMP.
const SILENT_ADDRESS: &str = "10.231.0.3";
/// TCP SYNs to it are dropped: the incident.
const DROPPED_PORT: u16 = 8080;
/// A web server listens there.
const LISTENING_PORT: u16 = 8081;
/// The server rejects connections with ICMP host-unreachable.
const REJECTED_PORT: u16 = 8082;
/// Nothing listens there.
const CLOSED_PORT: u16 = 8083;
const NAMESPACE_PREFIX: &str = "rbnet-";

/// Two namespaces joined by a veth pair, deleted (with what runs in them) when dropped.
struct Namespaces {
    ip: PathBuf,
    client: String,
    server: String,
}

#[track_caller]
fn command_ok(program: &Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program).args(args).stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{} {}` failed: {}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Namespaces {
    fn create(ip: &Path) -> Result<Namespaces, String> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        remove_leftovers(ip);
        let id = format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let namespaces = Namespaces {
            ip: ip.to_path_buf(),
            client: format!("{NAMESPACE_PREFIX}{id}-c"),
            server: format!("{NAMESPACE_PREFIX}{id}-s"),
        };
        // From here on, dropping `namespaces` removes whatever was made.
        let (c, s) = (namespaces.client.as_str(), namespaces.server.as_str());
        let (client, server, silent) =
            (format!("{CLIENT_ADDRESS}/24"), format!("{SERVER_ADDRESS}/24"), format!("{SILENT_ADDRESS}/24"));
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", c],
            vec!["netns", "add", s],
            // Created directly inside the namespaces: the root namespace never sees them.
            vec!["link", "add", "vc", "netns", c, "type", "veth", "peer", "name", "vs", "netns", s],
            vec!["-n", c, "addr", "add", &client, "dev", "vc"],
            vec!["-n", s, "addr", "add", &server, "dev", "vs"],
            vec!["-n", s, "addr", "add", &silent, "dev", "vs"],
            vec!["-n", c, "link", "set", "lo", "up"],
            vec!["-n", s, "link", "set", "lo", "up"],
            vec!["-n", c, "link", "set", "vc", "up"],
            vec!["-n", s, "link", "set", "vs", "up"],
        ];
        for args in steps {
            command_ok(ip, &args)?;
        }
        Ok(namespaces)
    }

    /// `ip netns exec NS` as a prefix.
    fn exec(&self, namespace: &str) -> Vec<String> {
        vec![self.ip.display().to_string(), "netns".into(), "exec".into(), namespace.to_owned()]
    }

    /// The server's firewall: SYNs to one port dropped, another port rejected, one address silent to ping.
    fn firewall(&self, iptables: Option<&Path>, nft: Option<&Path>) -> Result<(), String> {
        let exec = self.exec(&self.server);
        let exec: Vec<&str> = exec.iter().map(String::as_str).collect();
        let program = Path::new(exec[0]);
        if let Some(iptables) = iptables {
            let iptables = iptables.to_str().expect("utf-8 path");
            let dropped = DROPPED_PORT.to_string();
            let rejected = REJECTED_PORT.to_string();
            let rules: Vec<Vec<&str>> = vec![
                vec!["-A", "INPUT", "-p", "tcp", "--dport", &dropped, "--syn", "-j", "DROP"],
                vec![
                    "-A",
                    "INPUT",
                    "-p",
                    "tcp",
                    "--dport",
                    &rejected,
                    "-j",
                    "REJECT",
                    "--reject-with",
                    "icmp-host-unreachable",
                ],
                vec!["-A", "INPUT", "-d", SILENT_ADDRESS, "-p", "icmp", "--icmp-type", "echo-request", "-j", "DROP"],
            ];
            for rule in rules {
                let mut args = exec[1..].to_vec();
                args.push(iptables);
                args.extend(rule);
                command_ok(program, &args)?;
            }
            return Ok(());
        }
        let nft = nft.ok_or("neither iptables nor nft")?;
        let ruleset = format!(
            "table ip runbook_test {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    \
             tcp dport {DROPPED_PORT} tcp flags & (syn | ack) == syn drop\n    \
             tcp dport {REJECTED_PORT} reject with icmp type host-unreachable\n    \
             ip daddr {SILENT_ADDRESS} icmp type echo-request drop\n  }}\n}}\n"
        );
        let rules = std::env::temp_dir().join(format!("{}.nft", self.server));
        std::fs::write(&rules, ruleset).map_err(|e| e.to_string())?;
        let mut args = exec[1..].to_vec();
        let nft = nft.to_str().expect("utf-8 path");
        let path = rules.to_str().expect("utf-8 path");
        args.extend([nft, "-f", path]);
        let result = command_ok(program, &args);
        let _ = std::fs::remove_file(&rules);
        result
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for namespace in [&self.client, &self.server] {
            delete_namespace(&self.ip, namespace);
        }
    }
}

/// Kills what still runs in a namespace and deletes it (its veth end goes with it).
fn delete_namespace(ip: &Path, namespace: &str) {
    if let Ok(output) = Command::new(ip).args(["netns", "pids", namespace]).output() {
        for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
            if let Some(pid) = pid.parse().ok().and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
    let _ = Command::new(ip).args(["netns", "del", namespace]).stderr(Stdio::null()).status();
}

/// Deletes namespaces an earlier test process left behind when it was killed.
fn remove_leftovers(ip: &Path) {
    let Ok(output) = Command::new(ip).args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        let Some(rest) = name.strip_prefix(NAMESPACE_PREFIX) else { continue };
        let owner = rest.split('-').next().unwrap_or_default();
        if !owner.is_empty() && !Path::new("/proc").join(owner).exists() {
            delete_namespace(ip, name);
        }
    }
}

/// Runs `runbook ARGS` inside a namespace.
fn run_in(namespaces: &Namespaces, namespace: &str, sandbox: &Sandbox, args: &[&str]) -> Run {
    let inner = sandbox.command(args);
    let exec = namespaces.exec(namespace);
    let mut command = Command::new(&exec[0]);
    command.args(&exec[1..]).arg(inner.get_program()).args(inner.get_args());
    for (name, value) in inner.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    if let Some(dir) = inner.get_current_dir() {
        command.current_dir(dir);
    }
    Run::from(command.stdin(Stdio::null()).output().expect("run runbook in the namespace"))
}

#[test]
fn incident_signature_in_a_network_namespace_icmp_answers_tcp_times_out() {
    let root = rustix::process::geteuid().is_root();
    let ip = program("ip");
    let iptables = program("iptables");
    let nft = program("nft");
    let python = program("python3");
    let present = [
        ("root (to create network namespaces)", root),
        ("`ip` (iproute2)", ip.is_some()),
        ("`iptables` or `nft`", iptables.is_some() || nft.is_some()),
        ("`ping` (iputils-ping)", program("ping").is_some()),
        ("python3 (the web server inside the namespace)", python.is_some()),
    ];
    if !present.iter().all(|(what, there)| available(what, *there)) {
        return;
    }
    let (Some(ip), Some(python)) = (ip, python) else { return };
    let namespaces = match Namespaces::create(&ip) {
        Ok(namespaces) => namespaces,
        Err(problem) => {
            available(&format!("a network namespace ({problem})"), false);
            return;
        }
    };
    namespaces.firewall(iptables.as_deref(), nft.as_deref()).expect("the server's firewall rules");
    let mut in_server = Command::new(&ip);
    in_server.args(["netns", "exec", &namespaces.server]).arg(&python);
    let web = PythonServer::start(in_server, &["--bind", SERVER_ADDRESS, "--port", &LISTENING_PORT.to_string()]);
    assert_eq!(web.port, LISTENING_PORT);

    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "incident.yaml",
        &format!(
            r#"
name: incident-signature
inputs:
  public_ip: {{ type: ip }}
steps:
  - id: probe_ping
    ping: {{ host: "{{{{ inputs.public_ip }}}}", count: 2, interval: 200ms, timeout: 3s }}
  - id: probe_tcp
    tcp: {{ host: "{{{{ inputs.public_ip }}}}", port: {DROPPED_PORT}, timeout: 1s }}
    continue_on_error: true
  - id: probe_http
    http: {{ url: "http://{{{{ inputs.public_ip }}}}:{DROPPED_PORT}/", timeout: 1s }}
    continue_on_error: true
  - id: listening
    tcp: {{ host: "{{{{ inputs.public_ip }}}}", port: {LISTENING_PORT}, timeout: 2s }}
  - id: web
    http: {{ url: "http://{{{{ inputs.public_ip }}}}:{LISTENING_PORT}/", expect_body: Mini-XDR, timeout: 2s }}
  - id: closed
    tcp: {{ host: "{{{{ inputs.public_ip }}}}", port: {CLOSED_PORT}, timeout: 2s }}
    continue_on_error: true
  - id: rejected
    tcp: {{ host: "{{{{ inputs.public_ip }}}}", port: {REJECTED_PORT}, timeout: 2s }}
    continue_on_error: true
  - id: silent_host
    ping: {{ host: {SILENT_ADDRESS}, count: 1, timeout: 1s }}
    continue_on_error: true
  - id: verdict
    needs: [probe_ping, probe_tcp]
    if: steps.probe_ping.outputs.reachable and steps.probe_tcp.outputs.result == 'timed_out'
    set:
      lb_path_broken: true
"#
        ),
    );
    let input = format!("public_ip={SERVER_ADDRESS}");
    let run = run_in(
        &namespaces,
        &namespaces.client,
        &sandbox,
        &["run", workflow.to_str().expect("utf-8 path"), "-i", &input, "--json"],
    );
    let done = Finished::of(&sandbox, run);
    assert_eq!(done.run.code, 0, "{}\n{}", done.run.stdout, done.run.stderr);

    // The signature: ICMP answers, the SYN gets no answer at all.
    let ping = done.outputs("probe_ping");
    assert_eq!(ping["reachable"], true, "{ping}");
    assert_eq!(ping["received"], 2, "{ping}");
    assert!(ping["rtt_ms"].is_number(), "{ping}");
    let tcp = done.outputs("probe_tcp");
    assert_eq!(tcp["result"], "timed_out", "{tcp}");
    assert_eq!(tcp["address"], format!("{SERVER_ADDRESS}:{DROPPED_PORT}"));
    assert_eq!(
        done.error("probe_tcp"),
        format!("tcp {SERVER_ADDRESS}:{DROPPED_PORT} timed out after 1s: no answer to the SYN (filtered or dropped)")
    );
    assert_eq!(done.outputs("probe_http")["result"], "timed_out");
    assert_contains(&done.error("probe_http"), "no connection: no answer to the SYN");
    assert_eq!(done.outputs("verdict")["lb_path_broken"], true);

    // The same host otherwise behaves: a listener connects, a closed port refuses, a REJECT is unreachable.
    assert_eq!(done.outputs("listening")["result"], "connected");
    assert_eq!(done.outputs("web")["result"], "ok");
    assert_eq!(done.outputs("closed")["result"], "refused");
    assert_contains(&done.error("closed"), "refused the connection");
    assert_eq!(done.outputs("rejected")["result"], "unreachable");
    assert_contains(&done.error("rejected"), "is unreachable");

    // A host that does not answer ICMP fails its ping step, with outputs.
    let silent = done.outputs("silent_host");
    assert_eq!(done.status_of("silent_host"), "failed");
    assert_eq!(silent["reachable"], false, "{silent}");
    assert_eq!(silent["sent"], 1);
    assert_eq!(silent["received"], 0);
    assert_eq!(silent["rtt_ms"], serde_json::Value::Null);
    assert_contains(&done.error("silent_host"), "no reply to 1 echo request");

    drop(web);
    let (client, server) = (namespaces.client.clone(), namespaces.server.clone());
    drop(namespaces);
    let list = Command::new(program("ip").expect("ip")).args(["netns", "list"]).output().expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains(&client) && !list.contains(&server), "the namespaces are gone: {list}");
}
