//! Escalation: the `bundle` kind and `runbook bundle`, emailed to a real SMTP
//! server on loopback (aiosmtpd writing a maildir), then taken apart: the
//! attachment opens, every checksum matches, the facts are there, no secret is.

use mail_parser::MimeHeaders as _;
use sha2::{Digest, Sha256};
use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Sandbox, of_type};

/// The declared secret's value: it must never leave the runs.
const CANARY: &str = "canary-7f3a9c1e5b";
/// A fake storage account key (88 characters) printed by a step: redacted by pattern.
const ACCOUNT_KEY: &str = "c3RvcmFnZWtleXN0b3JhZ2VrZXlzdG9yYWdla2V5c3RvcmFnZWtleXN0b3JhZ2VrZXlzdG9yYWdla2V5c3Rvcm==";
const PUBLIC_IP: &str = "203.0.113.10";
const SUBSCRIPTION: &str = "0a1b2c3d-0000-4000-8000-00000000c0de";
const RESOURCE_GROUP: &str = "mini-xdr-prod-rg";
const LB_NAME: &str = "kubernetes-lb-test";

/// An aiosmtpd server on loopback writing every message it receives to a maildir; stopped on drop.
struct SmtpSink {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python that can import aiosmtpd: Debian's `python3-aiosmtpd` is for /usr/bin/python3.
fn python_with_aiosmtpd() -> Result<String, String> {
    let mut tried = Vec::new();
    for python in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(python.to_owned());
        }
        tried.push(python);
    }
    Err(format!(
        "no Python with aiosmtpd ({} tried); install python3-aiosmtpd or `pip install aiosmtpd`",
        tried.join(", ")
    ))
}

impl SmtpSink {
    /// Starts a sink, or `None` (test skipped) when aiosmtpd is missing outside CI.
    fn start(dir: &Path) -> Option<SmtpSink> {
        let python = match python_with_aiosmtpd() {
            Ok(python) => python,
            Err(why) => {
                assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must run the SMTP tests: {why}");
                eprintln!("skipped: {why}");
                return None;
            }
        };
        let maildir = dir.join("maildir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        let port = free_port();
        let log = std::fs::File::create(dir.join("aiosmtpd.log")).expect("log file");
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start aiosmtpd");
        let mut sink = SmtpSink { child, port, maildir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = sink.child.try_wait() {
                let log = std::fs::read_to_string(dir.join("aiosmtpd.log")).unwrap_or_default();
                panic!("aiosmtpd exited ({status}) before listening:\n{log}");
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        sink.port = port;
        Some(sink)
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw.
    fn messages(&self) -> Vec<Vec<u8>> {
        let mut paths: Vec<PathBuf> =
            std::fs::read_dir(self.maildir.join("new")).expect("maildir").map(|e| e.expect("entry").path()).collect();
        paths.sort();
        paths.iter().map(|p| std::fs::read(p).expect("message")).collect()
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// A port nothing listens on: SMTP is down.
fn closed_port() -> u16 {
    free_port()
}

/// Environment for a `runbook` command: the secret, and SMTP settings for `url` (none when `None`).
fn env(command: &mut Command, sandbox: &Sandbox, url: Option<&str>) {
    command
        .env("RUNBOOK_TEST_CANARY", CANARY)
        .env("XDG_CONFIG_HOME", sandbox.path().join("config"))
        .env_remove("RUNBOOK_CONFIG")
        .env_remove("RUNBOOK_SMTP_URL")
        .env_remove("RUNBOOK_SMTP_USER")
        .env_remove("RUNBOOK_SMTP_PASSWORD")
        .env("RUNBOOK_MAIL_FROM", "runbook@example.com")
        .env("RUNBOOK_MAIL_TO", "oncall@example.com, support@example.com");
    if let Some(url) = url {
        command.env("RUNBOOK_SMTP_URL", url);
    }
}

fn run_with(sandbox: &Sandbox, args: &[&str], url: Option<&str>, crash_after: Option<u64>) -> crate::util::Run {
    let mut command = sandbox.command(args);
    env(&mut command, sandbox, url);
    if let Some(n) = crash_after {
        command.env("RUNBOOK_CRASH_AFTER_EVENTS", n.to_string());
    }
    crate::util::Run::from(command.output().expect("run runbook"))
}

/// The incident: an umbrella run whose remediation (a child run) gathers
/// evidence and fails, then an `escalate` child run whose `bundle` step
/// reports on the whole umbrella run.
fn write_incident(sandbox: &Sandbox, email: &str) -> PathBuf {
    let payload = format!("GET / HTTP/1.1 token={CANARY}");
    let n = payload.len();
    sandbox.write(
        "remediate.yaml",
        &format!(
            r#"
name: remediate
secrets: [RUNBOOK_TEST_CANARY]
steps:
  - id: svc_yaml
    run: |
      cat <<EOF
      apiVersion: v1
      items:
      - kind: Service
        metadata: {{ name: frontend, namespace: mini-xdr }}
        spec: {{ type: LoadBalancer, externalTrafficPolicy: Local, healthCheckNodePort: 32600 }}
        status: {{ loadBalancer: {{ ingress: [ {{ ip: {PUBLIC_IP} }} ] }} }}
      # DefaultEndpointsProtocol=https;AccountName=minixdr;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net
      # internal-note=do-not-share
      # token $RUNBOOK_TEST_CANARY
      EOF
  - id: lb_show
    run: |
      echo '{{"name": "{LB_NAME}", "sku": {{"name": "Standard"}}, "frontendIPConfigurations": [{{"publicIPAddress": "{PUBLIC_IP}"}}]}}'
  - id: capture_download
    run: |
      printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x00\x00\x01\x00\x00\x00' > capture.pcap
      printf '\x00\x00\x00\x00\x00\x00\x00\x00\x{n:02x}\x00\x00\x00\x{n:02x}\x00\x00\x00' >> capture.pcap
      printf '%s' "GET / HTTP/1.1 token=$RUNBOOK_TEST_CANARY" >> capture.pcap
      echo "$PWD/capture.pcap"
    outputs:
      pcap: "{{{{ stdout }}}}"
  - id: fix
    needs: [svc_yaml, lb_show, capture_download]
    run: echo "the service was recreated; TCP still times out" >&2; exit 3
"#
        ),
    );
    sandbox.write(
        "escalate.yaml",
        &format!(
            r#"
name: escalate
inputs:
  public_ip: {{ type: ip }}
  subscription: {{ type: string }}
  resource_group: {{ type: string }}
  lb_name: {{ type: string }}
outputs:
  email: "{{{{ steps.bundle.outputs.email }}}}"
steps:
  - id: bundle
    bundle:
      title: "AKS LoadBalancer {{{{ inputs.public_ip }}}} answers ping, TCP 80/443 time out"
      summary:
        symptom: "TCP to {{{{ inputs.public_ip }}}} ports 80/443 times out (no SYN-ACK); ICMP answers"
        impact: "The frontend is unreachable from the internet"
        since: "2026-01-26T09:00:00+01:00"
      facts:
        Subscription: "{{{{ inputs.subscription }}}}"
        Resource group: "{{{{ inputs.resource_group }}}}"
        Load balancer: "{{{{ inputs.lb_name }}}}"
        Public IP: "{{{{ inputs.public_ip }}}}"
      healthy:
        - Pods running, endpoints populated
        - Health probe on 32600 /healthz passes
      remediations:
        - step: recreate
          name: Recreate the Service with externalTrafficPolicy Cluster
          changed: the Service was deleted and recreated
          rolled_back: "no"
      question: Why does the Standard LB answer ICMP but not complete TCP handshakes while its probe is healthy?
      run: parent
      files:
        kubectl-get-svc-all.yaml: {{ step: svc_yaml }}
        az-network-lb-show.json: {{ step: remediate.lb_show }}
      captures_from: [capture_download]
      redact: ["internal-note=\\S+"]
      email: {email}
      ticket:
        create: true
        dry_run: true
        severity: moderate
        problem_classification: /providers/Microsoft.Support/services/7b29574f-b855-9dec-9b08-fe4aeaa3bbc0/problemClassifications/00000000-0000-0000-0000-000000000000
        technical_resource: "/subscriptions/{{{{ inputs.subscription }}}}/resourceGroups/MC_rg/providers/Microsoft.Network/loadBalancers/{{{{ inputs.lb_name }}}}"
        contact:
          first_name: Ada
          last_name: Ops
          email: oncall@example.com
          timezone: W. Europe Standard Time
          country: DEU
          language: en-us
"#
        ),
    );
    sandbox.write(
        "incident.yaml",
        &format!(
            r#"
name: incident
inputs:
  public_ip: {{ type: ip, default: {PUBLIC_IP} }}
  subscription: {{ type: string, default: {SUBSCRIPTION} }}
  resource_group: {{ type: string, default: {RESOURCE_GROUP} }}
  lb_name: {{ type: string, default: {LB_NAME} }}
secrets: [RUNBOOK_TEST_CANARY]
steps:
  - id: recreate
    workflow: remediate
    continue_on_error: true
  - id: escalate
    needs: [recreate]
    if: steps.recreate.outcome == 'failure'
    workflow:
      name: escalate
      inputs:
        public_ip: "{{{{ inputs.public_ip }}}}"
        subscription: "{{{{ inputs.subscription }}}}"
        resource_group: "{{{{ inputs.resource_group }}}}"
        lb_name: "{{{{ inputs.lb_name }}}}"
"#
        ),
    )
}

/// The escalate child run of the umbrella run 1.
fn escalate_run(sandbox: &Sandbox) -> u64 {
    let status = sandbox.status(1);
    let step =
        status["steps"].as_array().expect("steps").iter().find(|s| s["id"] == "escalate").expect("escalate step");
    step["outputs"]["run_id"].as_u64().unwrap_or_else(|| panic!("escalate has a child run: {status}"))
}

/// Opens a zip, checks every manifest entry against the archive, and returns the entries by path (without the top directory).
fn open_bundle(bytes: &[u8]) -> (serde_json::Value, Vec<(String, Vec<u8>)>) {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("the attachment is a zip that opens");
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).expect("entry");
        let name = file.name().expect("entry name").into_owned();
        let mut data = Vec::new();
        file.read_to_end(&mut data).expect("entry reads");
        let inner =
            name.split_once('/').map(|(_, rest)| rest.to_owned()).expect("entries are under the bundle's directory");
        entries.push((inner, data));
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        &entries.iter().find(|(p, _)| p == "manifest.json").expect("manifest.json in the archive").1,
    )
    .expect("manifest is JSON");
    let files = manifest["files"].as_array().expect("manifest lists files");
    assert!(!files.is_empty());
    for file in files {
        let path = file["path"].as_str().expect("path");
        let (_, data) = entries.iter().find(|(p, _)| p == path).unwrap_or_else(|| panic!("{path} is in the archive"));
        assert_eq!(file["size"].as_u64(), Some(data.len() as u64), "size of {path}");
        assert_eq!(file["sha256"].as_str(), Some(hex::encode(Sha256::digest(data)).as_str()), "sha256 of {path}");
    }
    assert_eq!(entries.len(), files.len() + 1, "the archive holds the manifest and exactly the files it lists");
    (manifest, entries)
}

fn entry<'a>(entries: &'a [(String, Vec<u8>)], path: &str) -> &'a [u8] {
    &entries.iter().find(|(p, _)| p == path).unwrap_or_else(|| panic!("{path} in the bundle")).1
}

fn manifest_file<'a>(manifest: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} in the manifest"))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() { stack.push(path) } else { out.push(path) }
        }
    }
    out
}

/// The secrets appear nowhere in what leaves the machine.
fn assert_no_secret(what: &str, bytes: &[u8]) {
    for secret in [CANARY, ACCOUNT_KEY, "do-not-share"] {
        assert!(!contains(bytes, secret), "{what} holds the secret `{secret}`");
    }
}

#[test]
fn escalation_bundle_is_emailed_with_every_checksum_matching() {
    let sandbox = Sandbox::new();
    let Some(smtp) = SmtpSink::start(sandbox.path()) else { return };
    let workflow = write_incident(&sandbox, "{ attempts: 2, delay: 100ms }");
    let result = run_with(&sandbox, &["run", workflow.to_str().expect("utf-8 path")], Some(&smtp.url()), None);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "one email");
    let raw = &messages[0];
    assert_no_secret("the raw email", raw);
    let message = mail_parser::MessageParser::default().parse(raw).expect("the email parses");
    assert!(message.subject().is_some_and(|s| s.contains(PUBLIC_IP)), "{:?}", message.subject());
    let text = message.body_text(0).expect("a plain-text body").into_owned();
    let html = message.body_html(0).expect("an HTML body").into_owned();
    for fact in [PUBLIC_IP, LB_NAME, RESOURCE_GROUP, SUBSCRIPTION, "Recreate the Service"] {
        assert!(text.contains(fact), "the text body names {fact}:\n{text}");
        assert!(html.contains(fact), "the HTML body names {fact}:\n{html}");
    }
    assert!(text.contains("is attached"), "{text}");
    let attachments: Vec<_> = message.attachments().collect();
    assert_eq!(attachments.len(), 1, "the bundle is attached");
    let name = attachments[0].attachment_name().expect("attachment name").to_owned();
    assert!(
        name.starts_with("aks-loadbalancer-203-0-113-10-answers-ping-tcp-run-1-")
            && name.contains("-run-1-")
            && name.ends_with("Z.zip"),
        "{name}"
    );
    let zip_bytes = attachments[0].contents().to_vec();

    let (manifest, entries) = open_bundle(&zip_bytes);
    assert_eq!(manifest["run_id"], 1, "the bundle reports on the umbrella run");
    assert_eq!(manifest["runs"].as_array().map(Vec::len), Some(3), "the umbrella run and both child runs");
    assert!(
        manifest["engine_version"].is_string() && manifest["created_at"].as_str().is_some_and(|t| t.ends_with('Z'))
    );
    for (path, data) in &entries {
        assert_no_secret(path, data);
    }
    let summary = String::from_utf8(entry(&entries, "SUMMARY.md").to_vec()).expect("utf-8 summary");
    for fact in [PUBLIC_IP, LB_NAME, RESOURCE_GROUP, SUBSCRIPTION, "2026-01-26T08:00:00Z", "Why does the Standard LB"] {
        assert!(summary.contains(fact), "SUMMARY.md holds {fact}:\n{summary}");
    }
    for step in [
        "`svc_yaml` attempt 1: succeeded",
        "`fix` attempt 1: failed",
        "exit 3",
        "Run 2 `remediate`",
        "Run 3 `escalate`",
    ] {
        assert!(summary.contains(step), "the timeline has {step}:\n{summary}");
    }
    assert!(!summary.contains('%'), "facts only: no rates or estimates:\n{summary}");

    // The named files, the capture and the raw events are there, redacted and counted.
    let svc = String::from_utf8_lossy(entry(&entries, "diagnostics/kubectl-get-svc-all.yaml")).into_owned();
    assert!(svc.contains("AccountKey=[REDACTED:storage_account_key]") && svc.contains("[REDACTED:custom]"), "{svc}");
    let counted = &manifest_file(&manifest, "diagnostics/kubectl-get-svc-all.yaml")["redacted"];
    assert_eq!(counted["storage_account_key"], 1, "{counted}");
    assert_eq!(counted["custom"], 1, "{counted}");
    assert!(String::from_utf8_lossy(entry(&entries, "diagnostics/az-network-lb-show.json")).contains(LB_NAME));
    let capture = entry(&entries, "diagnostics/captures/capture.pcap");
    let original = std::fs::read(sandbox.path().join("capture.pcap")).expect("the capture on disk");
    assert!(contains(&original, CANARY), "the test's capture carries the canary");
    assert_eq!(&capture[..4], b"\xd4\xc3\xb2\xa1", "a pcap file");
    assert_eq!(capture.len(), original.len(), "redacted to the same length: the capture stays valid");
    assert_eq!(manifest_file(&manifest, "diagnostics/captures/capture.pcap")["redacted"]["secret"], 1);
    let events = String::from_utf8_lossy(entry(&entries, "diagnostics/events.jsonl")).into_owned();
    assert!(
        events.lines().count() > 10 && events.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    assert!(
        entries.iter().any(|(p, _)| p.starts_with("diagnostics/steps/run-2-remediate/fix.1.stderr")),
        "each step's output"
    );
    assert!(manifest["redactions"]["total"].as_u64().is_some_and(|n| n >= 3), "{}", manifest["redactions"]);

    // The log records the bundle, the email and the (dry-run) ticket.
    let child = escalate_run(&sandbox);
    let events = sandbox.events(child);
    let created = of_type(&events, "bundle_created");
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0]["sha256"].as_str(),
        Some(hex::encode(Sha256::digest(&zip_bytes)).as_str()),
        "the archive sent is the one recorded"
    );
    let sent = of_type(&events, "email_sent");
    assert_eq!(sent.len(), 1);
    assert_eq!(format!("<{}>", message.message_id().expect("Message-ID")), sent[0]["message_id"].as_str().expect("id"));
    assert_eq!(sent[0]["attached"], true);
    let tickets = of_type(&events, "support_ticket_created");
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["dry_run"], true);
    let status = sandbox.status(child);
    let command = status["steps"][0]["outputs"]["ticket_command"].as_str().expect("the ticket command");
    assert!(command.starts_with("az support in-subscription tickets create --ticket-name "), "{command}");
    assert!(
        command.contains("--severity moderate") && command.contains("--start-time 2026-01-26T08:00:00Z"),
        "{command}"
    );

    // The bundle on disk: the directory and the archive, no temporary left, no secret anywhere.
    let archive = PathBuf::from(created[0]["archive"].as_str().expect("archive"));
    let directory = PathBuf::from(created[0]["directory"].as_str().expect("directory"));
    assert_eq!(std::fs::read(&archive).expect("archive on disk"), zip_bytes);
    assert!(archive.starts_with(sandbox.store().join("bundles")), "{}", archive.display());
    for file in files_under(archive.parent().expect("bundles dir")) {
        assert!(!file.to_string_lossy().contains(".tmp-"), "{}", file.display());
        assert_no_secret(&file.display().to_string(), &std::fs::read(&file).expect("read"));
    }
    let on_disk = std::fs::read(directory.join("SUMMARY.md")).expect("SUMMARY.md on disk");
    assert_eq!(on_disk, entry(&entries, "SUMMARY.md"));
}

#[test]
fn smtp_down_keeps_the_bundle_and_records_email_failed_then_bundle_email_sends_it() {
    let sandbox = Sandbox::new();
    let workflow = write_incident(&sandbox, "{ attempts: 2, delay: 100ms }");
    let down = format!("smtp://127.0.0.1:{}", closed_port());
    let result = run_with(&sandbox, &["run", workflow.to_str().expect("utf-8 path")], Some(&down), None);
    assert_eq!(result.code, 1, "the run fails when its email does: {}\n{}", result.stdout, result.stderr);
    assert_eq!(sandbox.status(1)["status"], "failed");
    let umbrella = sandbox.status(1);
    let escalate = umbrella["steps"].as_array().expect("steps").iter().find(|s| s["id"] == "escalate").expect("step");
    assert_eq!(escalate["outputs"]["email"], "failed", "the umbrella run's outcome says the email failed: {escalate}");

    let child = escalate_run(&sandbox);
    let status = sandbox.status(child);
    let error = status["steps"][0]["error"].as_str().expect("the bundle step failed");
    assert!(error.contains("the email could not be sent") && error.contains("runbook bundle 1 --email"), "{error}");
    let events = sandbox.events(child);
    let failures = of_type(&events, "email_failed");
    assert_eq!(failures.len(), 2, "one event per try: {failures:?}");
    assert!(
        failures[0]["error"].as_str().is_some_and(|e| e.contains("try 1 of 2") && e.contains("127.0.0.1")),
        "{}",
        failures[0]
    );
    assert!(of_type(&events, "email_sent").is_empty());
    let created = of_type(&events, "bundle_created");
    assert_eq!(created.len(), 1);
    let archive = PathBuf::from(created[0]["archive"].as_str().expect("archive"));
    let bytes = std::fs::read(&archive).expect("the bundle is on disk");
    open_bundle(&bytes);

    // Later, with SMTP up: `runbook bundle 1 --email` sends that same bundle, once.
    let Some(smtp) = SmtpSink::start(sandbox.path()) else { return };
    let sent = run_with(&sandbox, &["bundle", "1", "--email"], Some(&smtp.url()), None);
    assert_eq!(sent.code, 0, "{}\n{}", sent.stdout, sent.stderr);
    assert!(sent.stdout.contains("email sent to oncall@example.com, support@example.com"), "{}", sent.stdout);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1);
    let message = mail_parser::MessageParser::default().parse(&messages[0]).expect("parses");
    let attached = message.attachments().next().expect("attachment").contents().to_vec();
    assert_eq!(attached, bytes, "the bundle written by the run is the one sent");
    assert_no_secret("the email", &messages[0]);
    let events = sandbox.events(child);
    let recorded = of_type(&events, "email_sent");
    assert_eq!(recorded.len(), 1, "recorded in the stream of the run that holds the bundle");
    assert_eq!(recorded[0]["archive"].as_str(), Some(archive.to_str().expect("utf-8")));
    assert!(recorded[0].get("step").is_none(), "sent by the command, not a step");

    let again = run_with(&sandbox, &["bundle", "1", "--email"], Some(&smtp.url()), None);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("already emailed"), "{}", again.stdout);
    assert_eq!(smtp.messages().len(), 1, "never sent twice");
}

const SINGLE: &str = r#"
name: escalate-now
secrets: [RUNBOOK_TEST_CANARY]
steps:
  - id: evidence
    run: echo "evidence with $RUNBOOK_TEST_CANARY"
  - id: bundle
    needs: [evidence]
    bundle:
      title: "crash test"
      email: { attempts: 1 }
"#;

/// The seq of `email_sent` in a run of SINGLE that nothing interrupts: the number of events its process appends up to it.
fn email_sent_seq(url: &str) -> u64 {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write("single.yaml", SINGLE);
    let result = run_with(&sandbox, &["run", workflow.to_str().expect("utf-8 path")], Some(url), None);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    let events = sandbox.events(1);
    of_type(&events, "email_sent")[0]["seq"].as_u64().expect("seq")
}

#[test]
fn resume_after_a_crash_right_after_email_sent_sends_nothing_more() {
    let root = tempfile::tempdir().expect("temporary directory");
    let Some(smtp) = SmtpSink::start(root.path()) else { return };
    let n = email_sent_seq(&smtp.url());
    assert_eq!(smtp.messages().len(), 1);

    let sandbox = Sandbox::new();
    let workflow = sandbox.write("single.yaml", SINGLE);
    let crashed = run_with(&sandbox, &["run", workflow.to_str().expect("utf-8 path")], Some(&smtp.url()), Some(n));
    assert_ne!(crashed.code, 0, "aborted after event {n}: {}", crashed.stderr);
    assert_eq!(smtp.messages().len(), 2, "the crashed run sent its email");
    let events = sandbox.events(1);
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some("email_sent".into()),
        "email_sent is the last durable event"
    );

    let resumed = run_with(&sandbox, &["resume", "1"], Some(&smtp.url()), None);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    assert_eq!(smtp.messages().len(), 2, "the resume sent nothing");
    let events = sandbox.events(1);
    assert_eq!(of_type(&events, "email_sent").len(), 1);
    assert_eq!(of_type(&events, "bundle_created").len(), 1, "the bundle on disk was taken up, not written again");
    let status = sandbox.status(1);
    assert_eq!(status["steps"][1]["outputs"]["email"], "already_sent", "{status}");
}

#[test]
fn a_crash_right_before_email_sent_sends_the_same_message_at_most_once_more() {
    let root = tempfile::tempdir().expect("temporary directory");
    let Some(smtp) = SmtpSink::start(root.path()) else { return };
    let n = email_sent_seq(&smtp.url());

    let sandbox = Sandbox::new();
    let workflow = sandbox.write("single.yaml", SINGLE);
    let crashed = run_with(&sandbox, &["run", workflow.to_str().expect("utf-8 path")], Some(&smtp.url()), Some(n - 1));
    assert_ne!(crashed.code, 0);
    assert_eq!(smtp.messages().len(), 2, "sent before the crash, not recorded");
    let resumed = run_with(&sandbox, &["resume", "1"], Some(&smtp.url()), None);
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
    let messages = smtp.messages();
    assert_eq!(messages.len(), 3, "the documented window: sent once more");
    let ids: Vec<String> = messages
        .iter()
        .map(|m| {
            mail_parser::MessageParser::default().parse(m).and_then(|p| p.message_id().map(str::to_owned)).expect("id")
        })
        .collect();
    let most = ids.iter().map(|id| ids.iter().filter(|other| *other == id).count()).max();
    assert_eq!(most, Some(2), "the same bundle, so the same Message-ID: a receiver can tell it is a resend: {ids:?}");
    assert_eq!(of_type(&sandbox.events(1), "email_sent").len(), 1);
}

#[test]
fn email_asked_for_but_not_configured_fails_clearly_and_keeps_the_bundle() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write("single.yaml", SINGLE);
    let result = run_with(&sandbox, &["run", workflow.to_str().expect("utf-8 path")], None, None);
    assert_eq!(result.code, 1, "{}\n{}", result.stdout, result.stderr);
    let events = sandbox.events(1);
    let failed = of_type(&events, "email_failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["error"].as_str().is_some_and(|e| e.contains("RUNBOOK_SMTP_URL is not set")), "{}", failed[0]);
    let archive = of_type(&events, "bundle_created")[0]["archive"].as_str().expect("archive").to_owned();
    assert!(Path::new(&archive).is_file());

    let command = run_with(&sandbox, &["bundle", "1", "--email"], None, None);
    assert_eq!(command.code, 2, "{}", command.stderr);
    assert!(command.stderr.contains("RUNBOOK_SMTP_URL is not set"), "{}", command.stderr);
}

#[test]
fn runbook_bundle_writes_a_bundle_for_any_run_and_records_it() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "plain.yaml",
        "name: plain\nsecrets: [RUNBOOK_TEST_CANARY]\nsteps:\n  - id: look\n    run: echo looked; echo \"sig=abcdef123456 $RUNBOOK_TEST_CANARY\" >&2; exit 4\n",
    );
    let result = run_with(&sandbox, &["run", workflow.to_str().expect("utf-8 path")], None, None);
    assert_eq!(result.code, 1);
    let written = run_with(&sandbox, &["bundle", "1", "--out", "out"], None, None);
    assert_eq!(written.code, 0, "{}\n{}", written.stdout, written.stderr);
    assert!(written.stdout.contains("bundle written:"), "{}", written.stdout);
    let events = sandbox.events(1);
    let created = of_type(&events, "bundle_created");
    assert_eq!(created.len(), 1);
    let archive = PathBuf::from(created[0]["archive"].as_str().expect("archive"));
    assert!(archive.starts_with(sandbox.path().join("out")), "--out is relative to the caller: {}", archive.display());
    assert!(
        archive.file_name().is_some_and(|n| n.to_string_lossy().starts_with("plain-run-1-")),
        "{}",
        archive.display()
    );
    let (manifest, entries) = open_bundle(&std::fs::read(&archive).expect("archive"));
    let stderr =
        String::from_utf8_lossy(entry(&entries, "diagnostics/steps/run-1-plain/look.1.stderr.txt")).into_owned();
    assert!(stderr.contains("sig=[REDACTED:sas_signature]"), "{stderr}");
    for (path, data) in &entries {
        assert_no_secret(path, data);
    }
    assert_eq!(
        manifest_file(&manifest, "diagnostics/steps/run-1-plain/look.1.stderr.txt")["redacted"]["sas_signature"],
        1
    );
    assert!(manifest["redactions"]["by_kind"]["sas_signature"].as_u64().is_some_and(|n| n >= 1));
    let summary = String::from_utf8_lossy(entry(&entries, "SUMMARY.md")).into_owned();
    assert!(summary.contains("`look` attempt 1: failed") && summary.contains("exit 4"), "{summary}");

    // Without the secret in the environment the bundle could not mask it: refused.
    let mut command = sandbox.command(&["bundle", "1"]);
    command.env_remove("RUNBOOK_TEST_CANARY");
    let refused = crate::util::Run::from(command.output().expect("run"));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("secret `RUNBOOK_TEST_CANARY`"), "{}", refused.stderr);
}

#[test]
fn what_does_not_fit_the_size_cap_is_listed_as_left_out() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "big.yaml",
        r#"
name: big
steps:
  - id: small
    run: echo small
  - id: large
    run: head -c 6000 /dev/zero | tr '\0' 'x'
  - id: bundle
    needs: [small, large]
    bundle:
      title: size cap
      max_bytes: 4KiB
"#,
    );
    let result = run_with(&sandbox, &["run", workflow.to_str().expect("utf-8 path")], None, None);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    let events = sandbox.events(1);
    let archive = PathBuf::from(of_type(&events, "bundle_created")[0]["archive"].as_str().expect("archive"));
    let (manifest, entries) = open_bundle(&std::fs::read(&archive).expect("archive"));
    let left_out = manifest["left_out"].as_array().expect("left_out");
    let large = left_out
        .iter()
        .find(|f| f["path"] == "diagnostics/steps/run-1-big/large.1.stdout.txt")
        .expect("the large output is left out");
    assert_eq!(large["size"], 6000);
    assert!(
        Path::new(large["source"].as_str().expect("source")).is_file(),
        "the path on the operator's machine: {large}"
    );
    assert!(entries.iter().any(|(p, _)| p == "diagnostics/steps/run-1-big/small.1.stdout.txt"), "what fits is kept");
    let summary = String::from_utf8_lossy(entry(&entries, "SUMMARY.md")).into_owned();
    assert!(
        summary.contains("Left out (over the size cap): `diagnostics/steps/run-1-big/large.1.stdout.txt`, 6000 bytes"),
        "{summary}"
    );
    assert_eq!(sandbox.status(1)["steps"][2]["outputs"]["left_out"], 1);
}

#[test]
fn runbook_bundle_refuses_a_run_that_is_executing() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "hold.yaml",
        "name: hold\nsteps:\n  - id: wait\n    run: touch started; while [ ! -e release ]; do sleep 0.05; done\n",
    );
    let mut holder = sandbox.spawn(&["run", workflow.to_str().expect("utf-8 path")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sandbox.path().join("started").exists() {
        assert!(Instant::now() < deadline, "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = sandbox.run(&["bundle", "1"]);
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("run 1 is executing"), "{}", refused.stderr);
    std::fs::write(sandbox.path().join("release"), "").expect("release");
    assert_eq!(holder.wait().expect("wait").code(), Some(0));
    assert!(of_type(&sandbox.events(1), "bundle_created").is_empty());
}

#[test]
fn bundle_configuration_mistakes_are_reported_at_their_line() {
    let sandbox = Sandbox::new();
    let workflow = sandbox.write(
        "bad.yaml",
        r#"
name: bad
steps:
  - id: bundle
    bundle:
      title: t
      run: grandparent
      files:
        a.yaml: { step: NotAStep }
      redact: ["("]
      max_bytes: lots
      emial: true
"#,
    );
    let result = sandbox.run(&["validate", workflow.to_str().expect("utf-8 path")]);
    assert_eq!(result.code, 2, "{}", result.stderr);
    for (line, text) in [
        (7, "`grandparent` is not a run to report on"),
        (9, "not a valid step id"),
        (10, "is not a regular expression"),
        (11, "`lots` is not a size"),
        (12, "did you mean `email`?"),
    ] {
        assert!(
            result.stderr.lines().any(|l| l.contains(&format!("bad.yaml:{line}:")) && l.contains(text)),
            "line {line}: {text}\n{}",
            result.stderr
        );
    }
}
