//! `runbook demo`: rehearses the LoadBalancer incident end to end on this
//! machine, with no Azure account, cluster or network.
//!
//! It puts the simulator (`az`, `kubectl`, `helm` answered by this very
//! binary, see `main`) first on PATH for the run's steps only, starts real
//! loopback endpoints for the probes (a frontend answering 200, and "broken
//! LB" addresses where ping answers but TCP SYNs are dropped), and runs
//! `lb-incident` on the store with the incident's inputs and short waits.

use anyhow::{Context as _, Result, anyhow};
use runbook_engine::executor::RunEnvironment;
use runbook_engine::load::load_file;
use runbook_sim::Tool;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::run::{Follow, execute_and_follow};
use crate::context::{Caller, Context};
use crate::exit::{self, UsageError};

/// The shipped runbooks, built into the binary so that the demo runs anywhere.
pub const WORKFLOWS: &[(&str, &str)] = &[
    ("lb-incident.yaml", include_str!("../../workflows/lb-incident.yaml")),
    ("diagnose.yaml", include_str!("../../workflows/diagnose.yaml")),
    ("ingress.yaml", include_str!("../../workflows/ingress.yaml")),
    ("recreate.yaml", include_str!("../../workflows/recreate.yaml")),
    ("capture.yaml", include_str!("../../workflows/capture.yaml")),
    ("escalate.yaml", include_str!("../../workflows/escalate.yaml")),
];

/// Scenario names, in the order the help lists them.
pub const SCENARIOS: &[&str] = &["healthy", "ingress-fixes", "recreate-fixes", "nothing-fixes"];

/// The incident's facts, as in shared/INCIDENT.md and the simulator's scenarios.
const INCIDENT: &[(&str, &str)] = &[
    ("subscription", "00000000-0000-0000-0000-000000000000"),
    ("resource_group", "mini-xdr-prod-rg"),
    ("node_resource_group", "MC_mini-xdr-prod-rg_mini-xdr-aks_eastus"),
    ("cluster", "mini-xdr-aks"),
    ("region", "eastus"),
    ("namespace", "mini-xdr"),
    ("service", "mini-xdr-frontend"),
    ("vnet", "mini-xdr-vnet"),
    ("subnet_nsg", "mini-xdr-aks-subnet-nsg"),
    ("vmss", "aks-system-17665817-vmss"),
    ("storage_account", "minixdrdiag"),
    ("operator_cidr", "127.0.0.1/32"),
];

/// Addresses the simulator hands out; the demo serves each one.
const HEALTHY: [Ipv4Addr; 4] = [
    Ipv4Addr::new(127, 0, 0, 10),
    Ipv4Addr::new(127, 0, 0, 11),
    Ipv4Addr::new(127, 0, 0, 12),
    Ipv4Addr::new(127, 0, 0, 13),
];
const BROKEN: [Ipv4Addr; 4] = [
    Ipv4Addr::new(127, 0, 0, 20),
    Ipv4Addr::new(127, 0, 0, 21),
    Ipv4Addr::new(127, 0, 0, 22),
    Ipv4Addr::new(127, 0, 0, 23),
];
/// The simulated node's InternalIP, where the NodePort answers.
const NODE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// What keeps the endpoints alive until the demo ends.
struct Endpoints {
    http_port: u16,
    node_port: u16,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
    _listeners: Vec<tokio::net::TcpListener>,
    _fillers: Vec<TcpStream>,
}

/// `runbook demo [--scenario NAME] [--json]`.
pub async fn demo(context: &mut Context, scenario: &str, json: bool) -> Result<u8> {
    let app = context.app().await?;
    let (term, caller) = (&context.term, &context.caller);
    if !SCENARIOS.contains(&scenario) {
        return Err(anyhow!(UsageError(format!("unknown scenario `{scenario}`: one of {}", SCENARIOS.join(", ")))));
    }
    let store_dir = app.journal().store().path().to_path_buf();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let work = store_dir.join("demo").join(format!("{scenario}-{stamp}"));
    let workflows = work.join("workflows");
    std::fs::create_dir_all(&workflows).with_context(|| format!("cannot create {}", workflows.display()))?;
    for (name, text) in WORKFLOWS {
        std::fs::write(workflows.join(name), text).with_context(|| format!("cannot write {name}"))?;
    }

    let endpoints = start_endpoints().await?;
    let state = work.join("simulator");
    let overrides = vec![
        format!("frontend.port_http={}", endpoints.http_port),
        format!("frontend.node_port_http={}", endpoints.node_port),
        format!("cluster.node_ip={NODE}"),
        format!("addresses.healthy={}", join(&HEALTHY)),
        format!("addresses.broken={}", join(&BROKEN)),
    ];
    runbook_sim::init(&state, scenario, &overrides).map_err(|e| anyhow!("cannot set up the simulator: {e}"))?;
    let public_ip = frontend_ip(&state)?;
    let bin = work.join("bin");
    install_tools(&bin)?;

    let mut vars: Vec<(String, String)> = match &caller.environment.vars {
        Some(vars) => vars.as_ref().clone(),
        None => std::env::vars().collect(),
    };
    let path = vars.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
    vars.retain(|(k, _)| k != "PATH" && k != "AZSIM_STATE");
    vars.push(("PATH".to_owned(), format!("{}:{path}", bin.display())));
    vars.push(("AZSIM_STATE".to_owned(), state.display().to_string()));
    let smtp = vars.iter().any(|(k, v)| k == "RUNBOOK_SMTP_URL" && !v.is_empty());
    let environment =
        RunEnvironment { vars: Some(Arc::new(vars)), dir: Some(work.clone()), workflows_dir: Some(workflows.clone()) };

    let mut inputs: serde_json::Map<String, serde_json::Value> =
        INCIDENT.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
    inputs.insert("public_ip".to_owned(), public_ip.clone().into());
    inputs.insert("http_port".to_owned(), endpoints.http_port.into());
    inputs.insert("https_port".to_owned(), endpoints.http_port.into());
    inputs.insert("since".to_owned(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into());
    inputs.insert("require_approval".to_owned(), false.into());
    inputs.insert("email".to_owned(), smtp.into());
    inputs.insert("bundle_dir".to_owned(), work.join("bundles").display().to_string().into());
    inputs.insert("capture_dir".to_owned(), work.join("captures").display().to_string().into());
    inputs.insert("probe_timeout".to_owned(), "1s".into());
    inputs.insert("poll_interval".to_owned(), "200ms".into());
    inputs.insert("poll_timeout".to_owned(), "15s".into());

    let loaded = load_file(&workflows.join("lb-incident.yaml"), app.registry())
        .map_err(runbook_engine::error::EngineError::Invalid)?;
    let inputs = runbook_engine::inputs::resolve_input_values(&loaded.workflow, &inputs)?;
    if !json {
        term.out(format!(
            "demo: scenario {scenario}; simulated cluster in {}; the frontend's public IP is {public_ip} (port {})",
            state.display(),
            endpoints.http_port
        ));
    }
    let run_id = app.engine.start_run(&loaded, inputs, None, &environment).await?;
    let demo_caller = Caller { environment, workflows_dir: workflows, gone: caller.gone.clone() };
    let follow = if json { Follow::Quiet } else { Follow::Progress };
    let code = execute_and_follow(&app, run_id, follow, term, &demo_caller).await?;
    drop(endpoints);

    let (state, _) = app.journal().load(run_id)?;
    let bundle = state.outputs.get("bundle").and_then(|b| b.as_str()).filter(|b| !b.is_empty()).map(str::to_owned);
    if json {
        let value = serde_json::json!({
            "run_id": run_id,
            "status": state.status.as_str(),
            "bundle": bundle,
        });
        term.out(serde_json::to_string_pretty(&value)?);
        return Ok(demo_exit(scenario, state.status.as_str(), bundle.is_some(), code));
    }
    let fixed_by = state.outputs.get("fixed_by").and_then(|f| f.as_str()).unwrap_or("nothing");
    let story = match (state.status.as_str(), fixed_by) {
        ("succeeded", "nothing") => "the LB path answered: no remediation was needed".to_owned(),
        ("succeeded", how) => format!("`{how}` fixed the LB path"),
        _ => "no remediation fixed the LB path; the incident was escalated".to_owned(),
    };
    term.out(format!("demo: {story}"));
    match &bundle {
        Some(bundle) => term.out(format!("demo: the support bundle is {bundle}")),
        None if state.status.as_str() != "succeeded" => term.out("demo: no bundle was written"),
        None => {}
    }
    term.out(format!(
        "demo: look closer with `runbook status {run_id}`, `runbook logs {run_id}` and `runbook events {run_id}`"
    ));
    Ok(demo_exit(scenario, state.status.as_str(), bundle.is_some(), code))
}

/// The demo succeeds when the rehearsal played out as its scenario says: the
/// fixing scenarios end with a green run, `nothing-fixes` with a failed run
/// (the incident is not fixed) and a bundle for support.
fn demo_exit(scenario: &str, status: &str, bundle: bool, run_code: u8) -> u8 {
    let expected = match scenario {
        "nothing-fixes" => status == "failed" && bundle,
        _ => status == "succeeded",
    };
    if expected {
        exit::OK
    } else if run_code == exit::OK {
        exit::FAILED
    } else {
        run_code
    }
}

fn join(addresses: &[Ipv4Addr]) -> String {
    addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// The public IP the simulator gave the frontend Service.
fn frontend_ip(state: &Path) -> Result<String> {
    let args: Vec<String> =
        ["get", "svc", "mini-xdr-frontend", "-n", "mini-xdr", "-o", "json"].iter().map(|s| (*s).to_owned()).collect();
    let reply = runbook_sim::invoke(Tool::Kubectl, &args, state).map_err(|e| anyhow!("simulator: {e}"))?;
    let service: serde_json::Value = serde_json::from_str(&reply.stdout).context("reading the simulated Service")?;
    service["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the simulated frontend Service has no IP"))
}

/// `az`, `kubectl` and `helm` as links to this binary, which answers as the simulator under those names.
fn install_tools(bin: &Path) -> Result<()> {
    std::fs::create_dir_all(bin).with_context(|| format!("cannot create {}", bin.display()))?;
    let me: PathBuf = std::env::current_exe().context("cannot find this program's path")?;
    for tool in ["az", "kubectl", "helm"] {
        let link = bin.join(tool);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&me, &link).with_context(|| format!("cannot link {}", link.display()))?;
    }
    Ok(())
}

/// Healthy frontends and the node's NodePort answer HTTP 200; broken addresses drop SYNs.
async fn start_endpoints() -> Result<Endpoints> {
    for _ in 0..20 {
        // One port for every address, so that the simulator can report a single service port.
        let probe = TcpListener::bind(SocketAddr::from((HEALTHY[0], 0))).await?;
        let http_port = probe.local_addr()?.port();
        drop(probe);
        let node = TcpListener::bind(SocketAddr::from((NODE, 0))).await?;
        let node_port = node.local_addr()?.port();
        let mut listeners = vec![node];
        let mut ok = true;
        for address in HEALTHY {
            match TcpListener::bind(SocketAddr::from((address, http_port))).await {
                Ok(listener) => listeners.push(listener),
                Err(_) => ok = false,
            }
        }
        let mut broken = Vec::new();
        for address in BROKEN {
            match syn_dropping_listener(SocketAddr::from((address, http_port))) {
                Ok(listener) => broken.push(listener),
                Err(_) => ok = false,
            }
        }
        if !ok {
            continue;
        }
        let mut tasks = Vec::new();
        for listener in listeners {
            tasks.push(tokio::spawn(serve_frontend(listener)));
        }
        let addresses: Vec<SocketAddr> = broken.iter().filter_map(|l| l.local_addr().ok()).collect();
        let fillers = tokio::task::spawn_blocking(move || fill_accept_queues(&addresses)).await??;
        return Ok(Endpoints { http_port, node_port, _tasks: tasks, _listeners: broken, _fillers: fillers });
    }
    Err(anyhow!("cannot find a free port on the demo's loopback addresses (127.0.0.2, .10-.13, .20-.23)"))
}

/// A listener with an accept queue of one that never accepts.
fn syn_dropping_listener(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(address)?;
    socket.listen(0)
}

/// Linux drops a SYN when the listener's accept queue is full, and the client
/// sees no answer at all, as behind a firewall that DROPs: the incident's
/// "TCP times out" (not "refused") while ping to the address answers.
fn fill_accept_queues(addresses: &[SocketAddr]) -> Result<Vec<TcpStream>> {
    let mut fillers = Vec::new();
    for address in addresses {
        for attempt in 0.. {
            match TcpStream::connect_timeout(address, Duration::from_millis(300)) {
                Ok(stream) => fillers.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(e) => return Err(anyhow!("cannot fill the accept queue of {address}: {e}")),
            }
            if attempt > 64 {
                return Err(anyhow!("the accept queue of {address} never filled"));
            }
        }
    }
    Ok(fillers)
}

/// The frontend: every request gets the Mini-XDR page.
async fn serve_frontend(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await;
            let body = "<!doctype html><title>Mini-XDR</title><h1>Mini-XDR</h1>\n";
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
