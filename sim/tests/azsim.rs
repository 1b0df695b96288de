//! Drives the built `azsim` binary through symlinks named `az`, `kubectl` and `helm`, as a runbook would.
//!
//! What is here:
//! - `every_known_command_is_exercised`: one valid line per table entry, each answering exit 0 with its documented shape.
//! - state transitions: the ingress IP after N polls, recreate, patch, packet capture, NSG rules.
//! - refusals: unknown commands and flags, with the real exit codes and the command line on stderr.
//! - documented field names in the fixtures.
//! - concurrent invocations against one state directory.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const NRG: &str = "MC_mini-xdr-prod-rg_mini-xdr-aks_eastus";
const RG: &str = "mini-xdr-prod-rg";
const VMSS: &str = "aks-system-17665817-vmss";

struct Sim {
    dir: tempfile::TempDir,
}

#[derive(Debug)]
struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

impl Sim {
    fn new(scenario: &str, sets: &[&str]) -> Sim {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut init = Command::new(env!("CARGO_BIN_EXE_azsim"));
        init.args(["init", "--scenario", scenario, "--state"]).arg(dir.path().join("state"));
        for set in sets {
            init.args(["--set", set]);
        }
        let out = init.output().expect("azsim init");
        assert!(out.status.success(), "init: {}", String::from_utf8_lossy(&out.stderr));
        let out = Command::new(env!("CARGO_BIN_EXE_azsim"))
            .arg("install")
            .arg(dir.path().join("bin"))
            .output()
            .expect("install");
        assert!(out.status.success(), "install: {}", String::from_utf8_lossy(&out.stderr));
        Sim { dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `tool ARGS` through its symlink, in the temporary directory.
    fn run(&self, tool: &str, args: &[&str]) -> Run {
        let out = Command::new(self.dir.path().join("bin").join(tool))
            .args(args)
            .env("AZSIM_STATE", self.state())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run simulated tool");
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    }

    #[track_caller]
    fn ok(&self, tool: &str, args: &[&str]) -> String {
        let run = self.run(tool, args);
        assert_eq!(run.code, 0, "{tool} {args:?}: {}", run.stderr);
        run.stdout
    }

    #[track_caller]
    fn json(&self, tool: &str, args: &[&str]) -> Value {
        let out = self.ok(tool, args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{tool} {args:?} printed no JSON ({e}): {out}"))
    }

    fn calls(&self) -> Vec<Value> {
        std::fs::read_to_string(self.state().join("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("calls.jsonl line is JSON"))
            .collect()
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write file");
        path
    }
}

/// Follows a dotted path (`a.b[0].c`) and asserts it exists.
#[track_caller]
fn field<'v>(value: &'v Value, path: &str) -> &'v Value {
    let mut node = value;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((key, rest)) => (key, Some(rest.trim_end_matches(']').parse::<usize>().expect("index"))),
            None => (part, None),
        };
        if !key.is_empty() {
            node = node.get(key).unwrap_or_else(|| panic!("no `{key}` in `{path}`: {node}"));
        }
        if let Some(index) = index {
            node = node.get(index).unwrap_or_else(|| panic!("no [{index}] in `{path}`: {node}"));
        }
    }
    node
}

fn frontend_ip(sim: &Sim) -> String {
    sim.ok(
        "kubectl",
        &["get", "svc", "mini-xdr-frontend", "-n", "mini-xdr", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"],
    )
}

/// One valid command line per table entry, with a field its output must have (`None`: prints nothing).
fn shape_checks(sim: &Sim) -> Vec<(&'static str, Vec<String>, Option<&'static str>)> {
    let nic = format!(
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{NRG}/providers/Microsoft.Compute/virtualMachineScaleSets/{VMSS}/virtualMachines/0/networkInterfaces/{VMSS}"
    );
    let lb_id = format!(
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{NRG}/providers/Microsoft.Network/loadBalancers/kubernetes"
    );
    let pip_name = sim.ok(
        "az",
        &[
            "network",
            "public-ip",
            "list",
            "-g",
            NRG,
            "--query",
            "[?tags.\"k8s-azure-service\"=='mini-xdr/mini-xdr-frontend'] | [0].name",
            "-o",
            "tsv",
        ],
    );
    let pip_name = pip_name.trim().to_owned();
    let manifest = sim.write(
        "extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: probe-settings, namespace: mini-xdr}\ndata: {path: /healthz}\n",
    );
    let manifest = manifest.display().to_string();
    let line = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    let with = |s: &str, extra: &[&str]| {
        let mut l = line(s);
        l.extend(extra.iter().map(|e| (*e).to_owned()));
        l
    };
    vec![
        ("az", line("account show"), Some("tenantId")),
        ("az", line(&format!("aks show -g {RG} -n mini-xdr-aks")), Some("networkProfile.outboundType")),
        (
            "az",
            line(&format!("aks nodepool show -g {RG} --cluster-name mini-xdr-aks -n system")),
            Some("enableNodePublicIp"),
        ),
        ("az", line(&format!("aks nodepool list -g {RG} --cluster-name mini-xdr-aks")), Some("[0].vnetSubnetId")),
        (
            "az",
            line("policy assignment list --scope /subscriptions/00000000-0000-0000-0000-000000000000"),
            Some("[0].enforcementMode"),
        ),
        ("az", line(&format!("network public-ip list -g {NRG}")), Some("[0].ipAddress")),
        ("az", line(&format!("network public-ip show -g {NRG} -n {pip_name}")), Some("ddosSettings.protectionMode")),
        (
            "az",
            line(&format!(
                "network public-ip create -g {NRG} -n mini-xdr-static --sku Standard --allocation-method static"
            )),
            Some("publicIp.ipAddress"),
        ),
        (
            "az",
            line(&format!("network public-ip ddos-protection show -g {NRG} -n {pip_name}")),
            Some("isWorkloadProtected"),
        ),
        ("az", line(&format!("network vnet list -g {RG}")), Some("[0].enableDdosProtection")),
        (
            "az",
            line(&format!("network vnet show -g {RG} -n mini-xdr-vnet")),
            Some("subnets[0].serviceEndpoints[0].service"),
        ),
        (
            "az",
            line(&format!("network vnet subnet show -g {RG} --vnet-name mini-xdr-vnet -n aks-subnet")),
            Some("networkSecurityGroup.id"),
        ),
        ("az", line(&format!("network vnet subnet list -g {RG} --vnet-name mini-xdr-vnet")), Some("[0].addressPrefix")),
        ("az", line("network nsg list"), Some("[1].securityRules")),
        (
            "az",
            line(&format!("network nsg show -g {NRG} -n aks-agentpool-17665817-nsg")),
            Some("defaultSecurityRules[0].priority"),
        ),
        (
            "az",
            line(&format!("network nsg rule list -g {RG} --nsg-name mini-xdr-aks-subnet-nsg --include-default")),
            Some("[0].destinationPortRanges"),
        ),
        (
            "az",
            line(&format!("network nsg rule show -g {RG} --nsg-name mini-xdr-aks-subnet-nsg -n allow-web-inbound")),
            Some("access"),
        ),
        (
            "az",
            line(&format!(
                "network nsg rule create -g {RG} --nsg-name mini-xdr-aks-subnet-nsg -n allow-test --priority 310 --protocol Tcp --source-address-prefixes 203.0.113.25/32 --destination-port-ranges 80 443"
            )),
            Some("provisioningState"),
        ),
        (
            "az",
            line(&format!("network nsg rule delete -g {RG} --nsg-name mini-xdr-aks-subnet-nsg -n allow-test")),
            None,
        ),
        ("az", line(&format!("network lb list -g {NRG}")), Some("[0].sku.name")),
        (
            "az",
            line(&format!("network lb show -g {NRG} -n kubernetes")),
            Some("frontendIPConfigurations[1].loadBalancingRules[0].id"),
        ),
        ("az", line(&format!("network lb rule list -g {NRG} --lb-name kubernetes")), Some("[0].enableFloatingIP")),
        ("az", line(&format!("network lb probe list -g {NRG} --lb-name kubernetes")), Some("[0].requestPath")),
        (
            "az",
            line(&format!("network lb frontend-ip list -g {NRG} --lb-name kubernetes")),
            Some("[0].publicIPAddress.id"),
        ),
        (
            "az",
            line(&format!("network lb address-pool list -g {NRG} --lb-name kubernetes")),
            Some("[0].backendIPConfigurations[0].id"),
        ),
        ("az", line("network watcher list"), Some("[0].location")),
        (
            "az",
            with(
                "network watcher run-configuration-diagnostic --direction Inbound --protocol TCP --source 203.0.113.25 --port 80 --resource",
                &[&nic, "--destination", "127.0.0.20"],
            ),
            Some("results[0].networkSecurityGroupResult.securityRuleAccessResult"),
        ),
        (
            "az",
            line(&format!(
                "network watcher packet-capture create -g {NRG} -n pc1 --target {VMSS} --target-type AzureVMSS --include 0 --storage-account minixdrdiag --time-limit 900"
            )),
            Some("storageLocation.storagePath"),
        ),
        ("az", line("network watcher packet-capture show-status -l eastus -n pc1"), Some("packetCaptureStatus")),
        ("az", line("network watcher packet-capture show -l eastus -n pc1"), Some("targetType")),
        ("az", line("network watcher packet-capture list -l eastus"), Some("[0].name")),
        ("az", line("network watcher packet-capture stop -l eastus -n pc1"), None),
        ("az", line("network watcher packet-capture delete -l eastus -n pc1"), None),
        (
            "az",
            line(&format!(
                "network manager list-effective-security-admin-rule -g {RG} --virtual-network-name mini-xdr-vnet"
            )),
            Some("value"),
        ),
        ("az", line(&format!("network route-table list -g {RG}")), Some("")),
        // Known commands whose answer here is, by design, a missing resource.
        ("az", line(&format!("network route-table route list -g {RG} --route-table-name none")), Some("exit 3")),
        ("az", line(&format!("network nic list-effective-nsg -g {NRG} -n {VMSS}")), Some("exit 3")),
        // A download before any capture stopped (the life-cycle test downloads a real one).
        (
            "az",
            line(
                "storage blob download --blob-url https://minixdrdiag.blob.core.windows.net/network-watcher-logs/none.cap --file none.cap",
            ),
            Some("exit 3"),
        ),
        ("az", line(&format!("vmss list -g {NRG}")), Some("[0].orchestrationMode")),
        ("az", line(&format!("vmss list-instances -g {NRG} -n {VMSS}")), Some("[0].osProfile.computerName")),
        ("az", line(&format!("vmss list-instance-public-ips -g {NRG} -n {VMSS}")), Some("")),
        ("az", line(&format!("vmss nic list -g {NRG} --vmss-name {VMSS}")), Some("[0].networkSecurityGroup.id")),
        (
            "az",
            line(&format!("vmss nic list-vm-nics -g {NRG} --vmss-name {VMSS} --instance-id 0")),
            Some("[0].ipConfigurations[0].privateIPAddress"),
        ),
        ("az", line(&format!("vmss extension list -g {NRG} --vmss-name {VMSS}")), Some("[0].name")),
        (
            "az",
            line(&format!(
                "vmss extension set -g {NRG} --vmss-name {VMSS} -n NetworkWatcherAgentLinux --publisher Microsoft.Azure.NetworkWatcher"
            )),
            Some("virtualMachineProfile.extensionProfile.extensions"),
        ),
        ("az", line(&format!("storage account list -g {RG}")), Some("[0].id")),
        ("az", line(&format!("storage account show -g {RG} -n minixdrdiag")), Some("primaryEndpoints.blob")),
        (
            "az",
            with("monitor metrics list --metric DipAvailability VipAvailability --resource", &[&lb_id]),
            Some("value[1].timeseries[0].data[0].average"),
        ),
        ("az", line(&format!("monitor activity-log list -g {NRG} --status Failed")), Some("")),
        ("az", line("support services list"), Some("[0].displayName")),
        (
            "az",
            line("support services problem-classifications list --service-name 7b29574f-b855-9dec-9b08-fe4aeaa3bbc0"),
            Some("[0].id"),
        ),
        ("az", ticket("support in-subscription tickets create", "t1"), Some("supportTicketId")),
        ("az", line("support in-subscription tickets show --ticket-name t1"), Some("status")),
        ("az", line("support in-subscription tickets list"), Some("[0].name")),
        ("az", ticket("support tickets create", "t2"), Some("status")),
        ("az", line("support tickets show --ticket-name t2"), Some("serviceLevelAgreement.slaMinutes")),
        ("az", line("support tickets list"), Some("[1].name")),
        ("kubectl", line("get svc -A -o json"), Some("items[0].spec.ports[0].port")),
        ("kubectl", line("apply -o json -f").into_iter().chain([manifest.clone()]).collect(), Some("data.path")),
        (
            "kubectl",
            line(
                "patch svc mini-xdr-backend -n mini-xdr --type merge -p {\"metadata\":{\"labels\":{\"tier\":\"api\"}}}",
            ),
            Some(""),
        ),
        (
            "kubectl",
            line("wait --for=condition=ready pod -l app=mini-xdr-frontend -n mini-xdr --timeout=60s"),
            Some(""),
        ),
        ("kubectl", line("create namespace scratch"), Some("")),
        ("kubectl", line("version -o json"), Some("serverVersion.gitVersion")),
        ("kubectl", line("delete").into_iter().chain(["-f".to_owned(), manifest]).collect(), Some("")),
        ("helm", line("repo add ingress-nginx https://kubernetes.github.io/ingress-nginx"), Some("")),
        ("helm", line("repo update"), Some("")),
        ("helm", line("repo list -o json"), Some("[0].url")),
        (
            "helm",
            line("install ingress-nginx ingress-nginx/ingress-nginx -n ingress-nginx --create-namespace -o json"),
            Some("info.status"),
        ),
        (
            "helm",
            line(
                "upgrade --install ingress-nginx ingress-nginx/ingress-nginx -n ingress-nginx --set controller.replicaCount=1 -o json",
            ),
            Some("version"),
        ),
        ("helm", line("status ingress-nginx -n ingress-nginx -o json"), Some("chart.metadata.version")),
        ("helm", line("list -A -o json"), Some("[0].app_version")),
        ("helm", line("uninstall ingress-nginx -n ingress-nginx"), Some("")),
    ]
}

fn ticket(group: &str, name: &str) -> Vec<String> {
    let mut line: Vec<String> = group.split_whitespace().map(str::to_owned).collect();
    let classification = "/providers/Microsoft.Support/services/7b29574f-b855-9dec-9b08-fe4aeaa3bbc0/problemClassifications/7b29574f-0000-4000-8000-000000000000";
    for (flag, value) in [
        ("--ticket-name", name),
        ("--title", "AKS public LB: ICMP OK, TCP 80/443 no SYN-ACK"),
        ("--description", "see the bundle"),
        ("--problem-classification", classification),
        ("--severity", "moderate"),
        ("--contact-first-name", "Ada"),
        ("--contact-last-name", "Ops"),
        ("--contact-method", "email"),
        ("--contact-email", "oncall@example.com"),
        ("--contact-timezone", "W. Europe Standard Time"),
        ("--contact-country", "DEU"),
        ("--contact-language", "en-us"),
    ] {
        line.push(flag.to_owned());
        line.push(value.to_owned());
    }
    line
}

#[test]
fn every_known_command_is_exercised() {
    let sim = Sim::new("healthy", &[]);
    let checks = shape_checks(&sim);
    for (tool, line, shape) in &checks {
        let args: Vec<&str> = line.iter().map(String::as_str).collect();
        let run = sim.run(tool, &args);
        if !shape.is_some_and(|s| s.starts_with("exit ")) {
            assert_eq!(run.code, 0, "{tool} {line:?}: {}", run.stderr);
        }
        match shape {
            Some(expected) if expected.starts_with("exit ") => {
                assert_eq!(format!("exit {}", run.code), *expected, "{tool} {line:?}: {}", run.stderr);
                continue;
            }
            None => assert!(run.stdout.is_empty(), "{tool} {line:?} printed {}", run.stdout),
            Some("") => {}
            Some(path) => {
                let value: Value = serde_json::from_str(&run.stdout)
                    .unwrap_or_else(|e| panic!("{tool} {line:?}: {e}: {}", run.stdout));
                field(&value, path);
            }
        }
    }
    // Every table entry was hit by at least one line above (kubectl get is hit by the setup too).
    let mut exercised = BTreeSet::new();
    for (tool, line, _) in &checks {
        let words: Vec<&str> = line.iter().map(String::as_str).take_while(|w| !w.starts_with('-')).collect();
        exercised.insert(format!("{tool} {}", words.join(" ")));
    }
    for (entry, _) in runbook_sim::command_table() {
        let path: String =
            entry.split(" [").next().unwrap_or_default().split(" --").next().unwrap_or_default().to_owned();
        assert!(exercised.iter().any(|e| e.starts_with(&path)), "no check exercises `{path}`");
    }
}

#[test]
fn documented_field_names_are_in_the_fixtures() {
    let sim = Sim::new("nothing-fixes", &[]);
    let lb = sim.json("az", &["network", "lb", "show", "-g", NRG, "-n", "kubernetes"]);
    for path in [
        "frontendIPConfigurations[1].publicIPAddress.id",
        "loadBalancingRules[0].frontendPort",
        "loadBalancingRules[0].backendPort",
        "loadBalancingRules[0].enableFloatingIP",
        "loadBalancingRules[0].probe.id",
        "probes[0].port",
        "probes[0].protocol",
        "probes[0].requestPath",
        "backendAddressPools[1].backendIPConfigurations[0].id",
        "outboundRules[0].name",
        "sku.name",
    ] {
        field(&lb, path);
    }
    let svc = sim.json("kubectl", &["get", "svc", "mini-xdr-frontend", "-n", "mini-xdr", "-o", "json"]);
    assert_eq!(field(&svc, "spec.externalTrafficPolicy"), "Local");
    assert_eq!(field(&svc, "spec.healthCheckNodePort"), 32600);
    assert_eq!(field(&svc, "spec.ports[0].nodePort"), 32662);
    assert_eq!(field(&svc, "spec.ports[1].nodePort"), 30699);
    field(&svc, "status.loadBalancer.ingress[0].ip");
    let list = sim.json("kubectl", &["get", "svc", "-n", "mini-xdr", "-o", "json"]);
    assert_eq!(list["kind"], "List");
    assert_eq!(list["apiVersion"], "v1");
    field(&list, "items[0].metadata.name");
    let pips = sim.json("az", &["network", "public-ip", "list", "-g", NRG]);
    field(&pips, "[1].ipAddress");
    field(&pips, "[1].ddosSettings.protectionMode");
    field(&pips, "[1].ipConfiguration.id");
    let vnet = sim.json("az", &["network", "vnet", "show", "-g", RG, "-n", "mini-xdr-vnet"]);
    field(&vnet, "enableDdosProtection");
    field(&vnet, "subnets[0].serviceEndpoints");
    let nodes = sim.json("kubectl", &["get", "nodes", "-o", "json"]);
    assert!(field(&nodes, "items[0].spec.providerID").as_str().is_some_and(|p| p.contains(VMSS)));
    let slices = sim.json(
        "kubectl",
        &[
            "get",
            "endpointslices",
            "-n",
            "mini-xdr",
            "-l",
            "kubernetes.io/service-name=mini-xdr-frontend",
            "-o",
            "json",
        ],
    );
    assert_eq!(field(&slices, "items[0].endpoints[0].conditions.ready"), true);
    let events = sim.json(
        "kubectl",
        &[
            "get",
            "events",
            "-n",
            "mini-xdr",
            "--field-selector",
            "involvedObject.kind=Service,involvedObject.name=mini-xdr-frontend",
            "-o",
            "json",
        ],
    );
    assert_eq!(field(&events, "items[1].reason"), "EnsuredLoadBalancer");
}

#[test]
fn kubectl_yaml_is_yaml_of_the_same_objects() {
    let sim = Sim::new("healthy", &[]);
    let text = sim.ok("kubectl", &["get", "svc", "-A", "-o", "yaml"]);
    assert!(text.starts_with("apiVersion: v1\nitems:\n"), "{text}");
    let parsed: Value = serde_saphyr::from_str(&text).expect("valid YAML");
    let json = sim.json("kubectl", &["get", "svc", "-A", "-o", "json"]);
    assert_eq!(parsed["items"].as_array().map(Vec::len), json["items"].as_array().map(Vec::len));
    assert_eq!(parsed["items"][3]["spec"]["healthCheckNodePort"], 32600);
}

#[test]
fn the_ingress_controller_ip_appears_after_the_configured_polls() {
    let sim = Sim::new(
        "ingress-fixes",
        &["load_balancer.ingress_pending_polls=2", "addresses.healthy=127.0.0.50,127.0.0.51"],
    );
    let run = sim.run(
        "helm",
        &[
            "upgrade",
            "--install",
            "ingress-nginx",
            "ingress-nginx/ingress-nginx",
            "-n",
            "ingress-nginx",
            "--create-namespace",
        ],
    );
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr.lines().next(), Some("Error: INSTALLATION FAILED: repo ingress-nginx not found"));
    sim.ok("helm", &["repo", "add", "ingress-nginx", "https://kubernetes.github.io/ingress-nginx"]);
    sim.ok("helm", &["repo", "update"]);
    let out = sim.ok(
        "helm",
        &[
            "upgrade",
            "--install",
            "ingress-nginx",
            "ingress-nginx/ingress-nginx",
            "--namespace",
            "ingress-nginx",
            "--create-namespace",
            "--set",
            r"controller.service.annotations.service\.beta\.kubernetes\.io/azure-load-balancer-health-probe-request-path=/healthz",
            "--set",
            "controller.service.externalTrafficPolicy=Local",
        ],
    );
    assert!(
        out.starts_with("Release \"ingress-nginx\" does not exist. Installing it now.\nNAME: ingress-nginx\n"),
        "{out}"
    );
    let poll = || {
        sim.ok(
            "kubectl",
            &[
                "get",
                "svc",
                "ingress-nginx-controller",
                "-n",
                "ingress-nginx",
                "-o",
                "jsonpath={.status.loadBalancer.ingress[0].ip}",
            ],
        )
    };
    assert_eq!(poll(), "");
    assert!(sim.ok("kubectl", &["get", "svc", "-n", "ingress-nginx"]).contains("<pending>"));
    assert_eq!(poll(), "127.0.0.50");
    let svc = sim.json("kubectl", &["get", "svc", "ingress-nginx-controller", "-n", "ingress-nginx", "-o", "json"]);
    assert_eq!(svc["spec"]["ports"][0]["appProtocol"], "http");
    assert!(svc["spec"]["healthCheckNodePort"].is_u64());
    let rules = sim.json(
        "az",
        &[
            "network",
            "lb",
            "rule",
            "list",
            "-g",
            NRG,
            "--lb-name",
            "kubernetes",
            "--query",
            "[].frontendIPConfiguration.id",
        ],
    );
    assert_eq!(rules.as_array().map(Vec::len), Some(4), "{rules}");
    sim.write(
        "ingress.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: frontend, namespace: mini-xdr}\nspec:\n  ingressClassName: nginx\n  rules:\n  - http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend: {service: {name: mini-xdr-frontend, port: {number: 80}}}\n",
    );
    assert_eq!(sim.ok("kubectl", &["apply", "-f", "ingress.yaml"]), "ingress.networking.k8s.io/frontend created\n");
    assert_eq!(sim.ok("kubectl", &["apply", "-f", "ingress.yaml"]), "ingress.networking.k8s.io/frontend unchanged\n");
    assert_eq!(
        sim.ok(
            "kubectl",
            &["get", "ingress", "frontend", "-n", "mini-xdr", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]
        ),
        "127.0.0.50"
    );
}

#[test]
fn kubectl_wait_and_helm_wait_settle_a_pending_address() {
    let sim = Sim::new("nothing-fixes", &["load_balancer.ingress_pending_polls=5"]);
    sim.ok("helm", &["repo", "add", "ingress-nginx", "https://kubernetes.github.io/ingress-nginx"]);
    sim.ok(
        "helm",
        &["install", "ingress-nginx", "ingress-nginx/ingress-nginx", "-n", "ingress-basic", "--create-namespace"],
    );
    let out = sim.ok(
        "kubectl",
        &[
            "wait",
            "-n",
            "ingress-basic",
            "--for=jsonpath={.status.loadBalancer.ingress}",
            "service/ingress-nginx-controller",
            "--timeout=300s",
        ],
    );
    assert_eq!(out, "service/ingress-nginx-controller condition met\n");
    let out = sim.ok(
        "kubectl",
        &[
            "wait",
            "-n",
            "ingress-basic",
            "--for=condition=ready",
            "pod",
            "--selector=app.kubernetes.io/component=controller",
            "--timeout=120s",
        ],
    );
    assert!(out.starts_with("pod/ingress-nginx-controller-") && out.ends_with(" condition met\n"), "{out}");
    // An exhausted pool: the address never comes; helm --wait and kubectl wait time out.
    let sim = Sim::new("nothing-fixes", &["addresses.broken=127.0.0.20"]);
    sim.ok("helm", &["repo", "add", "ingress-nginx", "https://kubernetes.github.io/ingress-nginx"]);
    let run = sim.run(
        "helm",
        &[
            "upgrade",
            "--install",
            "ingress-nginx",
            "ingress-nginx/ingress-nginx",
            "-n",
            "x",
            "--create-namespace",
            "--wait",
            "--timeout",
            "10m",
        ],
    );
    assert_eq!((run.code, run.stderr.as_str()), (1, "Error: INSTALLATION FAILED: context deadline exceeded\n"));
    let run = sim.run(
        "kubectl",
        &["wait", "-n", "x", "--for=jsonpath={.status.loadBalancer.ingress}", "service/ingress-nginx-controller"],
    );
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (1, "error: timed out waiting for the condition on services/ingress-nginx-controller\n")
    );
    assert_eq!(sim.json("helm", &["status", "ingress-nginx", "-n", "x", "-o", "json"])["info"]["status"], "failed");
}

#[test]
fn recreating_the_service_releases_its_ip_and_rebuilds_the_rules() {
    let sim = Sim::new("recreate-fixes", &[]);
    let old_ip = frontend_ip(&sim);
    assert_eq!(old_ip, "127.0.0.20");
    let backup = sim.ok("kubectl", &["get", "svc", "mini-xdr-frontend", "-n", "mini-xdr", "-o", "yaml"]);
    let old_rules =
        sim.json("az", &["network", "lb", "rule", "list", "-g", NRG, "--lb-name", "kubernetes", "--query", "[].name"]);
    assert_eq!(
        sim.ok("kubectl", &["delete", "svc", "mini-xdr-frontend", "-n", "mini-xdr", "--wait=true"]),
        "service \"mini-xdr-frontend\" deleted\n"
    );
    let ips = sim.json("az", &["network", "public-ip", "list", "-g", NRG, "--query", "[].ipAddress"]);
    assert!(
        !ips.as_array().into_iter().flatten().any(|ip| ip == old_ip.as_str()),
        "the IP is released with the Service: {ips}"
    );
    assert_eq!(
        sim.json("az", &["network", "lb", "rule", "list", "-g", NRG, "--lb-name", "kubernetes"]),
        Value::Array(vec![])
    );
    // A backup switched to Cluster but still carrying healthCheckNodePort is refused, as by the API server.
    sim.write("bad.yaml", &backup.replace("externalTrafficPolicy: Local", "externalTrafficPolicy: Cluster"));
    let run = sim.run("kubectl", &["apply", "-f", "bad.yaml"]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "The Service \"mini-xdr-frontend\" is invalid: spec.healthCheckNodePort: Invalid value: 32600: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'\n"
    );
    let sanitized: String = backup
        .replace("externalTrafficPolicy: Local", "externalTrafficPolicy: Cluster")
        .lines()
        .filter(|l| !l.contains("healthCheckNodePort") && !l.contains("uid:") && !l.contains("resourceVersion:"))
        .map(|l| format!("{l}\n"))
        .collect();
    sim.write("svc-new.yaml", &sanitized);
    assert_eq!(sim.ok("kubectl", &["apply", "-f", "svc-new.yaml"]), "service/mini-xdr-frontend created\n");
    let new_ip = frontend_ip(&sim);
    assert_eq!(new_ip, "127.0.0.10", "recreate-fixes hands the recreated Service a healthy address");
    let new_rules =
        sim.json("az", &["network", "lb", "rule", "list", "-g", NRG, "--lb-name", "kubernetes", "--query", "[].name"]);
    assert_eq!(new_rules.as_array().map(Vec::len), Some(2));
    assert_ne!(new_rules, old_rules, "a new UID names new rules");
    let probes = sim.json(
        "az",
        &[
            "network",
            "lb",
            "probe",
            "list",
            "-g",
            NRG,
            "--lb-name",
            "kubernetes",
            "--query",
            "[].{port:port, proto:protocol}",
        ],
    );
    assert_eq!(probes, serde_json::json!([{"port": 32662, "proto": "Tcp"}, {"port": 30699, "proto": "Tcp"}]));
}

#[test]
fn patching_the_traffic_policy_keeps_the_ip_unless_the_scenario_says_otherwise() {
    let patch = [
        "patch",
        "svc",
        "mini-xdr-frontend",
        "-n",
        "mini-xdr",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"externalTrafficPolicy":"Cluster"}}"#,
    ];
    let sim = Sim::new("recreate-fixes", &[]);
    assert_eq!(sim.ok("kubectl", &patch), "service/mini-xdr-frontend patched\n");
    assert_eq!(sim.ok("kubectl", &patch), "service/mini-xdr-frontend patched (no change)\n");
    let svc = sim.json("kubectl", &["get", "svc", "mini-xdr-frontend", "-n", "mini-xdr", "-o", "json"]);
    assert!(svc["spec"]["healthCheckNodePort"].is_null(), "the API server drops healthCheckNodePort");
    assert_eq!(frontend_ip(&sim), "127.0.0.20");
    let sim = Sim::new("recreate-fixes", &["load_balancer.patch_moves_address=true"]);
    sim.ok("kubectl", &patch);
    assert_eq!(frontend_ip(&sim), "127.0.0.10");
}

#[test]
fn packet_capture_life_cycle_and_download() {
    for (scenario, packets) in [("nothing-fixes", false), ("recreate-fixes", true)] {
        let sim = Sim::new(scenario, &[]);
        let run = sim.run(
            "az",
            &[
                "network",
                "watcher",
                "packet-capture",
                "create",
                "-g",
                NRG,
                "-n",
                "pc",
                "--target",
                VMSS,
                "--target-type",
                "AzureVMSS",
                "--file-path",
                "x.pcap",
            ],
        );
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (2, "ERROR: usage error: --file-path PATH must end with the '*.cap' extension\n")
        );
        let created = sim.json(
            "az",
            &[
                "network",
                "watcher",
                "packet-capture",
                "create",
                "-g",
                NRG,
                "-n",
                "pc",
                "--target",
                VMSS,
                "--target-type",
                "AzureVMSS",
                "--include",
                "0",
                "--storage-account",
                "minixdrdiag",
                "--filters",
                r#"[{"protocol":"TCP","remoteIPAddress":"203.0.113.25","localPort":"80;443;"}]"#,
                "--time-limit",
                "900",
                "-o",
                "json",
            ],
        );
        assert_eq!(created["targetType"], "AzureVMSS");
        assert_eq!(created["scope"]["include"], serde_json::json!(["0"]));
        let status = || {
            sim.ok(
                "az",
                &[
                    "network",
                    "watcher",
                    "packet-capture",
                    "show-status",
                    "-l",
                    "eastus",
                    "-n",
                    "pc",
                    "--query",
                    "packetCaptureStatus",
                    "-o",
                    "tsv",
                ],
            )
        };
        assert_eq!(status(), "NotStarted\n");
        assert_eq!(status(), "Running\n");
        let url = sim.ok(
            "az",
            &[
                "network",
                "watcher",
                "packet-capture",
                "show",
                "-l",
                "eastus",
                "-n",
                "pc",
                "--query",
                "storageLocation.storagePath",
                "-o",
                "tsv",
            ],
        );
        let url = url.trim();
        let early = sim.run("az", &["storage", "blob", "download", "--blob-url", url, "--file", "early.cap"]);
        assert_eq!(early.code, 3, "no blob before the capture stops: {}", early.stderr);
        assert_eq!(sim.ok("az", &["network", "watcher", "packet-capture", "stop", "-l", "eastus", "-n", "pc"]), "");
        assert_eq!(status(), "Stopped\n");
        sim.ok(
            "az",
            &[
                "storage",
                "blob",
                "download",
                "--container-name",
                "network-watcher-logs",
                "--blob-url",
                url,
                "--file",
                "pc.cap",
                "--auth-mode",
                "login",
                "-o",
                "none",
            ],
        );
        let bytes = std::fs::read(sim.path("pc.cap")).expect("capture downloaded");
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "pcap magic");
        assert_eq!(bytes.len() > 24, packets, "{scenario}: packets at the node");
        sim.ok("az", &["network", "watcher", "packet-capture", "delete", "-l", "eastus", "-n", "pc"]);
        assert_eq!(
            sim.run("az", &["network", "watcher", "packet-capture", "show", "-l", "eastus", "-n", "pc"]).code,
            3
        );
    }
}

#[test]
fn nsg_rules_are_created_evaluated_and_deleted() {
    let sim = Sim::new("ingress-fixes", &[]);
    let nic = sim.ok(
        "az",
        &[
            "vmss",
            "nic",
            "list-vm-nics",
            "-g",
            NRG,
            "--vmss-name",
            VMSS,
            "--instance-id",
            "0",
            "--query",
            "[0].id",
            "-o",
            "tsv",
        ],
    );
    let diagnose = |destination: &str| {
        sim.json(
            "az",
            &[
                "network",
                "watcher",
                "run-configuration-diagnostic",
                "--resource",
                nic.trim(),
                "--direction",
                "Inbound",
                "--protocol",
                "TCP",
                "--source",
                "203.0.113.25",
                "--destination",
                destination,
                "--port",
                "80",
                "--query",
                "results[0].networkSecurityGroupResult",
            ],
        )
    };
    assert_eq!(diagnose("127.0.0.20")["securityRuleAccessResult"], "Allow", "the AKS rule names the LB IP");
    assert_eq!(diagnose("127.0.0.2")["securityRuleAccessResult"], "Deny", "floating IP: the node IP is not allowed");
    let create = |name: &str, priority: &str| {
        sim.run(
            "az",
            &[
                "network",
                "nsg",
                "rule",
                "create",
                "-g",
                RG,
                "--nsg-name",
                "mini-xdr-aks-subnet-nsg",
                "-n",
                name,
                "--priority",
                priority,
                "--direction",
                "Inbound",
                "--access",
                "Deny",
                "--protocol",
                "Tcp",
                "--source-address-prefixes",
                "203.0.113.25/32",
                "--source-port-ranges",
                "*",
                "--destination-address-prefixes",
                "127.0.0.20",
                "--destination-port-ranges",
                "80",
                "443",
            ],
        )
    };
    let run = create("deny-test", "90");
    assert_eq!(run.code, 1);
    assert!(run.stderr.starts_with("ERROR: (SecurityRuleInvalidPriority)"), "{}", run.stderr);
    assert_eq!(create("deny-test", "4097").code, 1);
    let rule: Value = serde_json::from_str(&create("deny-test", "110").stdout).expect("rule JSON");
    assert_eq!(rule["destinationPortRanges"], serde_json::json!(["80", "443"]));
    assert_eq!(rule["sourceAddressPrefix"], "203.0.113.25/32");
    assert_eq!(create("other", "110").code, 1, "same priority and direction conflict");
    let evaluated = diagnose("127.0.0.20");
    assert_eq!(evaluated["securityRuleAccessResult"], "Deny");
    assert_eq!(evaluated["evaluatedNetworkSecurityGroups"][0]["matchedRule"]["ruleName"], "deny-test");
    assert_eq!(
        sim.ok(
            "az",
            &["network", "nsg", "rule", "delete", "-g", RG, "--nsg-name", "mini-xdr-aks-subnet-nsg", "-n", "deny-test"]
        ),
        ""
    );
    assert_eq!(diagnose("127.0.0.20")["securityRuleAccessResult"], "Allow");
    let names = sim.ok(
        "az",
        &[
            "network",
            "nsg",
            "rule",
            "list",
            "-g",
            RG,
            "--nsg-name",
            "mini-xdr-aks-subnet-nsg",
            "--query",
            "[].name",
            "-o",
            "tsv",
        ],
    );
    assert_eq!(names, "allow-web-inbound\n");
    let effective = sim.run("az", &["network", "nic", "list-effective-nsg", "-g", NRG, "-n", VMSS]);
    assert_eq!(effective.code, 3, "a scale-set NIC is not a standalone NIC");
}

#[track_caller]
fn refused(sim: &Sim, tool: &str, args: &[&str], code: i32, first_line: &str) {
    let run = sim.run(tool, args);
    assert_eq!(run.code, code, "{tool} {args:?}: {}", run.stderr);
    assert_eq!(run.stderr.lines().next(), Some(first_line), "{}", run.stderr);
    let line = format!("azsim: command line not simulated: {tool} {}", args.join(" "));
    assert!(run.stderr.contains(&line), "the command line is named: {}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn unknown_commands_and_flags_fail_like_the_real_clis() {
    let sim = Sim::new("healthy", &[]);
    refused(
        &sim,
        "az",
        &["network", "lb", "shw", "-g", NRG],
        2,
        "ERROR: 'shw' is misspelled or not recognized by the system.",
    );
    refused(
        &sim,
        "az",
        &["netwrok", "lb", "show"],
        2,
        "ERROR: 'netwrok' is misspelled or not recognized by the system.",
    );
    refused(
        &sim,
        "az",
        &["network", "lb", "show", "-g", NRG, "-n", "kubernetes", "--frobnicate"],
        2,
        "ERROR: unrecognized arguments: --frobnicate",
    );
    refused(
        &sim,
        "az",
        &["network", "lb", "rule", "list", "-g", NRG],
        2,
        "ERROR: the following arguments are required: --lb-name",
    );
    refused(&sim, "kubectl", &["gett", "svc"], 1, "error: unknown command \"gett\" for \"kubectl\"");
    refused(&sim, "kubectl", &["get", "svc", "--frobnicate"], 1, "error: unknown flag: --frobnicate");
    refused(&sim, "kubectl", &["get", "svc", "-x"], 1, "error: unknown shorthand flag: 'x' in -x");
    refused(&sim, "helm", &["instal", "x", "y"], 1, "Error: unknown command \"instal\" for \"helm\"");
    refused(&sim, "helm", &["repo", "ad", "x", "y"], 1, "Error: unknown command \"ad\" for \"helm repo\"");
    refused(&sim, "helm", &["status", "x", "--frobnicate"], 1, "Error: unknown flag: --frobnicate");
    let run = sim.run("az", &["network", "lb", "show", "-g", NRG, "-n", "kubernetes", "-o", "xml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with("ERROR: argument --output/-o: invalid choice: 'xml'"), "{}", run.stderr);
    let run = sim.run("az", &["network", "lb", "show", "-g", "no-such-rg", "-n", "kubernetes"]);
    assert_eq!(
        (run.code, run.stderr.lines().next()),
        (3, Some("ERROR: (ResourceGroupNotFound) Resource group 'no-such-rg' could not be found."))
    );
    let run = sim.run("kubectl", &["get", "svc", "nope", "-n", "mini-xdr"]);
    assert_eq!((run.code, run.stderr.as_str()), (1, "Error from server (NotFound): services \"nope\" not found\n"));
    let run = sim.run("kubectl", &["get", "widgets"]);
    assert_eq!((run.code, run.stderr.as_str()), (1, "error: the server doesn't have a resource type \"widgets\"\n"));
    let run = sim.run("helm", &["status", "nope"]);
    assert_eq!((run.code, run.stderr.as_str()), (1, "Error: release: not found\n"));
    // The call log records every invocation, known or not.
    let calls = sim.calls();
    assert!(calls.iter().any(|c| c["argv"][2] == "shw" && c["known"] == false && c["exit"] == 2));
    assert!(
        calls
            .iter()
            .any(|c| c["argv"][0] == "get" && c["argv"][1] == "widgets" && c["known"] == true && c["exit"] == 1)
    );
}

#[test]
fn concurrent_invocations_keep_the_state_whole() {
    let sim = Sim::new("ingress-fixes", &[]);
    let sim = std::sync::Arc::new(sim);
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let sim = std::sync::Arc::clone(&sim);
            std::thread::spawn(move || {
                for j in 0..5 {
                    if (i + j) % 2 == 0 {
                        sim.json("az", &["network", "lb", "show", "-g", NRG, "-n", "kubernetes"]);
                    } else {
                        sim.json("kubectl", &["get", "svc", "-A", "-o", "json"]);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    let calls = sim.calls();
    assert_eq!(calls.len(), 40);
    let seqs: BTreeSet<u64> = calls.iter().filter_map(|c| c["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=40).collect::<BTreeSet<u64>>(), "every invocation saw the previous one's state");
    let state: Value = serde_json::from_str(&std::fs::read_to_string(sim.state().join("state.json")).expect("state"))
        .expect("state is JSON");
    assert_eq!(state["invocations"], 40);
}

#[test]
fn direct_invocation_and_setup_errors() {
    let sim = Sim::new("healthy", &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_azsim"))
        .args(["az", "account", "show", "--query", "name", "-o", "tsv"])
        .env("AZSIM_STATE", sim.state())
        .output()
        .expect("azsim az");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "mini-xdr-prod\n");
    let out =
        Command::new(sim.path("bin/az")).args(["account", "show"]).env_remove("AZSIM_STATE").output().expect("az");
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("azsim: AZSIM_STATE is not set"));
    let out = Command::new(env!("CARGO_BIN_EXE_azsim"))
        .args(["init", "--scenario", "sunny", "--state"])
        .arg(sim.path("other"))
        .output()
        .expect("init");
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "unknown scenario `sunny`; the scenarios are: healthy, ingress-fixes, recreate-fixes, nothing-fixes"
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_azsim")).arg("commands").output().expect("commands");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("az network watcher packet-capture create --resource-group/-g V --name/-n V"), "{table}");
    assert!(Path::new(&sim.path("bin/kubectl")).is_symlink());
}
