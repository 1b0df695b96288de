//! `helm`: repo add / update / list, upgrade --install / install, status, list,
//! uninstall. One chart exists: `ingress-nginx` from
//! https://kubernetes.github.io/ingress-nginx. Installing it creates the
//! controller Deployment, its pod and its LoadBalancer Service, whose address
//! arrives after the scenario's number of reads (or at once with `--wait`).

use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::cli::{Args, Command, Flag, Reply, Tool, one, parse_pflag, switch};
use crate::format::yaml;
use crate::world::{Release, azure_time, text};

type Handler = fn(&mut Ctx<'_>, &Args) -> Reply;

/// Flags every helm command accepts.
pub const GLOBALS: &[Flag] =
    &[one(&["--namespace", "-n"]), one(&["--kube-context"]), one(&["--kubeconfig"]), switch(&["--debug"])];

const OUTPUT: Flag = one(&["--output", "-o"]);
const CHART_REPO_URL: &str = "https://kubernetes.github.io/ingress-nginx";
const CHART_VERSION: &str = "4.12.1";
const APP_VERSION: &str = "1.12.1";

const INSTALL_FLAGS: &[Flag] = &[
    switch(&["--install", "-i"]),
    switch(&["--create-namespace"]),
    one(&["--set"]),
    one(&["--set-string"]),
    one(&["--values", "-f"]),
    one(&["--version"]),
    switch(&["--wait"]),
    one(&["--timeout"]),
    switch(&["--atomic"]),
    switch(&["--reuse-values"]),
    OUTPUT,
];

/// Every helm command line the simulator knows.
pub const COMMANDS: &[Command<Handler>] = &[
    Command {
        path: &["repo", "add"],
        flags: &[switch(&["--force-update"])],
        positionals: (2, 2),
        summary: "NAME URL",
        run: repo_add,
    },
    Command { path: &["repo", "update"], flags: &[], positionals: (0, 8), summary: "[NAME...]", run: repo_update },
    Command { path: &["repo", "list"], flags: &[OUTPUT], positionals: (0, 0), summary: "repositories", run: repo_list },
    Command {
        path: &["upgrade"],
        flags: INSTALL_FLAGS,
        positionals: (2, 2),
        summary: "--install RELEASE ingress-nginx/ingress-nginx [--create-namespace] [--set k=v]... [--wait] [-o json]",
        run: upgrade,
    },
    Command {
        path: &["install"],
        flags: INSTALL_FLAGS,
        positionals: (2, 2),
        summary: "RELEASE ingress-nginx/ingress-nginx ...",
        run: install,
    },
    Command { path: &["status"], flags: &[OUTPUT], positionals: (1, 1), summary: "RELEASE [-o json]", run: status },
    Command {
        path: &["list"],
        flags: &[OUTPUT, switch(&["--all-namespaces", "-A"])],
        positionals: (0, 0),
        summary: "releases",
        run: list,
    },
    Command {
        path: &["uninstall"],
        flags: &[switch(&["--wait"]), one(&["--timeout"]), switch(&["--ignore-not-found"])],
        positionals: (1, 1),
        summary: "RELEASE",
        run: uninstall,
    },
];

/// Runs one helm command line.
pub fn run(ctx: &mut Ctx<'_>, tokens: &[String]) -> (Reply, bool) {
    match parse_pflag(Tool::Helm, COMMANDS, GLOBALS, tokens) {
        Ok((command, args)) => {
            let (min, max) = command.positionals;
            let count = args.positionals.len();
            if count < min || count > max {
                let expected = if min == max { format!("{min}") } else { format!("at least {min}") };
                let name = command.path.join(" ");
                let reply = Reply::fail(
                    1,
                    format!(
                        "Error: \"helm {name}\" requires {expected} argument{}\n\nUsage:  helm {name} [flags]",
                        if min == 1 { "" } else { "s" }
                    ),
                );
                return (reply, true);
            }
            ((command.run)(ctx, &args), true)
        }
        Err(reply) => (reply, false),
    }
}

fn error(message: impl std::fmt::Display) -> Reply {
    Reply::fail(1, format!("Error: {message}"))
}

fn namespace(args: &Args) -> String {
    args.value("--namespace").unwrap_or("default").to_owned()
}

fn repo_add(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let (name, url) = (args.positionals[0].clone(), args.positionals[1].trim_end_matches('/').to_owned());
    if let Some(existing) = ctx.world.helm_repos.iter_mut().find(|r| r.name == name) {
        if existing.url == url {
            return Reply::ok(format!("\"{name}\" already exists with the same configuration, skipping\n"));
        }
        if !args.switch("--force-update") {
            return error(format!("repository name ({name}) already exists, please specify a different name"));
        }
        existing.url = url;
        return Reply::ok(format!("\"{name}\" has been added to your repositories\n"));
    }
    ctx.world.helm_repos.push(crate::world::HelmRepo { name: name.clone(), url });
    Reply::ok(format!("\"{name}\" has been added to your repositories\n"))
}

fn repo_update(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    if ctx.world.helm_repos.is_empty() {
        return error("no repositories found. You must add one before updating");
    }
    for wanted in &args.positionals {
        if !ctx.world.helm_repos.iter().any(|r| &r.name == wanted) {
            return error(format!("no repositories found matching '{wanted}'.  Nothing will be updated"));
        }
    }
    ctx.world.helm_repos_updated = true;
    let mut out = "Hang tight while we grab the latest from your chart repositories...\n".to_owned();
    for repo in
        ctx.world.helm_repos.iter().filter(|r| args.positionals.is_empty() || args.positionals.contains(&r.name))
    {
        out.push_str(&format!("...Successfully got an update from the \"{}\" chart repository\n", repo.name));
    }
    out.push_str("Update Complete. ⎈Happy Helming!⎈\n");
    Reply::ok(out)
}

fn repo_list(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    if ctx.world.helm_repos.is_empty() {
        return error("no repositories to show");
    }
    let repos: Vec<Value> = ctx.world.helm_repos.iter().map(|r| json!({"name": r.name, "url": r.url})).collect();
    match args.value("--output") {
        Some("json") => Reply::ok(format!("{}\n", Value::Array(repos))),
        Some("yaml") => Reply::ok(yaml(&Value::Array(repos))),
        _ => {
            let mut out = format!("{:<16}\tURL\n", "NAME");
            for repo in &ctx.world.helm_repos {
                out.push_str(&format!("{:<16}\t{}\n", repo.name, repo.url));
            }
            Reply::ok(out)
        }
    }
}

/// Helm's `--set` syntax: `a.b=v,c=w`, `\.` for a literal dot, `{x,y}` lists; values typed as YAML scalars.
fn apply_set(values: &mut Value, assignment: &str, as_string: bool) -> Result<(), String> {
    let mut parts = Vec::new();
    let (mut current, mut depth, mut escaped) = (String::new(), 0, false);
    for c in assignment.chars() {
        match c {
            _ if escaped => {
                current.push('\\');
                current.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        let Some((key, raw)) = split_unescaped(&part, '=').map(|(k, v)| (k.to_owned(), v.to_owned())) else {
            return Err(format!("failed parsing --set data: key \"{part}\" has no value"));
        };
        let mut keys: Vec<String> = Vec::new();
        let mut rest = key.as_str();
        while let Some((head, tail)) = split_unescaped(rest, '.') {
            keys.push(head.replace("\\.", "."));
            rest = tail;
        }
        keys.push(rest.replace("\\.", "."));
        let value = if let Some(list) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            Value::Array(list.split(',').map(|v| scalar(v, as_string)).collect())
        } else {
            scalar(&raw.replace("\\,", ","), as_string)
        };
        let mut node = &mut *values;
        for key in &keys[..keys.len() - 1] {
            if !node[key.as_str()].is_object() {
                node[key.as_str()] = json!({});
            }
            node = &mut node[key.as_str()];
        }
        node[keys[keys.len() - 1].as_str()] = value;
    }
    Ok(())
}

fn split_unescaped(text: &str, separator: char) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    (0..bytes.len())
        .find(|&i| bytes[i] == separator as u8 && (i == 0 || bytes[i - 1] != b'\\'))
        .map(|i| (&text[..i], &text[i + 1..]))
}

fn scalar(raw: &str, as_string: bool) -> Value {
    if as_string {
        return json!(raw);
    }
    match raw {
        "true" => json!(true),
        "false" => json!(false),
        "null" => Value::Null,
        _ => raw.parse::<i64>().map(|n| json!(n)).unwrap_or_else(|_| json!(raw)),
    }
}

fn fullname(release: &str) -> String {
    if release.contains("ingress-nginx") { release.to_owned() } else { format!("{release}-ingress-nginx") }
}

fn release_json(release: &Release) -> Value {
    let mut info = Map::new();
    for (key, value) in [
        ("first_deployed", json!(release.first_deployed)),
        ("last_deployed", json!(release.last_deployed)),
        ("deleted", json!("")),
        ("description", json!(release.description)),
        ("status", json!(release.status)),
        ("notes", json!(notes(release))),
    ] {
        info.insert(key.to_owned(), value);
    }
    let mut out = Map::new();
    out.insert("name".to_owned(), json!(release.name));
    out.insert("info".to_owned(), Value::Object(info));
    out.insert(
        "chart".to_owned(),
        json!({"metadata": {"name": release.chart, "home": "https://github.com/kubernetes/ingress-nginx", "version": release.chart_version,
                            "description": "Ingress controller for Kubernetes using NGINX as a reverse proxy and load balancer",
                            "apiVersion": "v2", "appVersion": release.app_version, "kubeVersion": ">=1.21.0-0"}}),
    );
    out.insert("config".to_owned(), release.values.clone());
    out.insert("version".to_owned(), json!(release.revision));
    out.insert("namespace".to_owned(), json!(release.namespace));
    Value::Object(out)
}

fn notes(release: &Release) -> String {
    format!(
        "The ingress-nginx controller has been installed.\nIt may take a few minutes for the load balancer IP to be available.\nYou can watch the status by running 'kubectl get service --namespace {ns} {svc} --output wide --watch'\n",
        ns = release.namespace,
        svc = format_args!("{}-controller", fullname(&release.name))
    )
}

fn release_text(release: &Release) -> String {
    let deployed = chrono::DateTime::parse_from_rfc3339(&release.last_deployed)
        .map(|t| t.format("%a %b %e %H:%M:%S %Y").to_string())
        .unwrap_or_default();
    format!(
        "NAME: {}\nLAST DEPLOYED: {deployed}\nNAMESPACE: {}\nSTATUS: {}\nREVISION: {}\nTEST SUITE: None\nNOTES:\n{}",
        release.name,
        release.namespace,
        release.status,
        release.revision,
        notes(release)
    )
}

fn print_release(release: &Release, args: &Args, preamble: &str) -> Reply {
    match args.value("--output") {
        Some("json") => Reply::ok(format!("{}\n", release_json(release))),
        Some("yaml") => Reply::ok(yaml(&release_json(release))),
        Some("table") | None => Reply::ok(format!("{preamble}{}", release_text(release))),
        Some(other) => error(format!("invalid format type \"{other}\"")),
    }
}

fn install(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let name = args.positionals[0].clone();
    let ns = namespace(args);
    if ctx.world.releases.iter().any(|r| r.name == name && r.namespace == ns) {
        return error("INSTALLATION FAILED: cannot re-use a name that is still in use");
    }
    deploy(ctx, args, "")
}

fn upgrade(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let name = args.positionals[0].clone();
    let ns = namespace(args);
    let exists = ctx.world.releases.iter().any(|r| r.name == name && r.namespace == ns);
    if !exists && !args.switch("--install") {
        return error(format!("UPGRADE FAILED: \"{name}\" has no deployed releases"));
    }
    let preamble = if exists {
        format!("Release \"{name}\" has been upgraded. Happy Helming!\n")
    } else {
        format!("Release \"{name}\" does not exist. Installing it now.\n")
    };
    deploy(ctx, args, &preamble)
}

/// Installs or upgrades the ingress-nginx chart.
fn deploy(ctx: &mut Ctx<'_>, args: &Args, preamble: &str) -> Reply {
    let name = args.positionals[0].clone();
    let chart = args.positionals[1].clone();
    let ns = namespace(args);
    let installing = !ctx.world.releases.iter().any(|r| r.name == name && r.namespace == ns);
    let failed = if installing { "INSTALLATION FAILED" } else { "UPGRADE FAILED" };
    let Some((repo, chart_name)) = chart.split_once('/') else {
        return error(format!(
            "{failed}: non-absolute URLs should be in form of repo_name/path_to_chart, got: {chart}"
        ));
    };
    let Some(repository) = ctx.world.helm_repos.iter().find(|r| r.name == repo) else {
        return error(format!("{failed}: repo {repo} not found"));
    };
    if repository.url != CHART_REPO_URL || chart_name != "ingress-nginx" {
        return error(format!("{failed}: chart \"{chart_name}\" not found in {repo} index. (try 'helm repo update')"));
    }
    if args.given("--values") {
        return Reply::fail(1, "azsim: --values files are not simulated: use --set");
    }
    let mut values = match ctx.world.releases.iter().find(|r| r.name == name && r.namespace == ns) {
        Some(r) if args.switch("--reuse-values") => r.values.clone(),
        _ => json!({}),
    };
    for (flag, as_string) in [("--set", false), ("--set-string", true)] {
        for assignment in args.values(flag) {
            if let Err(message) = apply_set(&mut values, assignment, as_string) {
                return error(message);
            }
        }
    }
    let now = ctx.now;
    if installing && !ctx.world.namespace_exists(&ns) {
        if !args.switch("--create-namespace") {
            return error(format!("{failed}: create: failed to create: namespaces \"{ns}\" not found"));
        }
        ctx.world.ensure_namespace(&ns, now);
    }
    let service_values = &values["controller"]["service"];
    let policy =
        service_values["externalTrafficPolicy"].as_str().filter(|p| !p.is_empty()).unwrap_or("Cluster").to_owned();
    if !["Local", "Cluster"].contains(&policy.as_str()) {
        return error(format!(
            "{failed}: Service \"{}-controller\" is invalid: spec.externalTrafficPolicy: Unsupported value: \"{policy}\": supported values: \"Cluster\", \"Local\"",
            fullname(&name)
        ));
    }
    let annotations = service_values["annotations"].clone();
    let annotations = if annotations.is_object() { annotations } else { json!({}) };
    let port = |key: &str, default: u64| service_values["ports"][key].as_u64().unwrap_or(default);
    let app_protocol = service_values["appProtocol"].as_bool().unwrap_or(true);
    let controller = format!("{}-controller", fullname(&name));
    let labels = json!({
        "app.kubernetes.io/component": "controller", "app.kubernetes.io/instance": name, "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/part-of": "ingress-nginx", "app.kubernetes.io/version": APP_VERSION,
        "helm.sh/chart": format!("ingress-nginx-{CHART_VERSION}")
    });
    let selector = json!({"app.kubernetes.io/component": "controller", "app.kubernetes.io/instance": name, "app.kubernetes.io/name": "ingress-nginx"});
    if installing {
        let mut http = json!({"name": "http", "port": port("http", 80), "protocol": "TCP", "targetPort": "http"});
        let mut https = json!({"name": "https", "port": port("https", 443), "protocol": "TCP", "targetPort": "https"});
        if app_protocol {
            http["appProtocol"] = json!("http");
            https["appProtocol"] = json!("https");
        }
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": controller, "namespace": ns, "labels": labels, "annotations": annotations},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy, "selector": selector, "ports": [http, https]}
        });
        let s = &ctx.world.scenario.load_balancer;
        let plan = (s.ingress_role, s.ingress_pending_polls);
        ctx.world.create_service(service, Some(plan), now);
        let admission = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": format!("{controller}-admission"), "namespace": ns, "labels": labels},
            "spec": {"type": "ClusterIP", "selector": selector, "ports": [{"name": "https-webhook", "port": 443, "protocol": "TCP", "targetPort": "webhook"}]}
        });
        ctx.world.create_service(admission, None, now);
        let mut pod_labels = selector.clone();
        pod_labels["pod-template-hash"] = json!("6c8d7f9b8c");
        let pod = ctx.world.pod(
            &ns,
            &format!("{controller}-6c8d7f9b8c-x2x7q"),
            pod_labels,
            "10.244.0.40",
            &format!("registry.k8s.io/ingress-nginx/controller:v{APP_VERSION}"),
            &[("http", 80), ("https", 443), ("webhook", 8443)],
            now,
        );
        ctx.world.objects.push(pod);
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": controller, "namespace": ns, "labels": labels, "uid": ctx.world.new_uid(), "creationTimestamp": crate::world::k8s_time(now), "generation": 1},
            "spec": {"replicas": 1, "selector": {"matchLabels": selector}},
            "status": {"availableReplicas": 1, "readyReplicas": 1, "replicas": 1, "updatedReplicas": 1, "observedGeneration": 1,
                       "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                      {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
        });
        ctx.world.objects.push(deployment);
    } else if let Some(service) = ctx.world.find_mut("Service", &ns, &controller) {
        service["metadata"]["annotations"] = annotations;
        let was_local = service["spec"]["externalTrafficPolicy"] == "Local";
        service["spec"]["externalTrafficPolicy"] = json!(policy);
        if policy == "Cluster"
            && let Some(spec) = service["spec"].as_object_mut()
        {
            spec.remove("healthCheckNodePort");
        }
        if policy == "Local" && !was_local {
            let port = ctx.world.next_node_port();
            if let Some(service) = ctx.world.find_mut("Service", &ns, &controller) {
                service["spec"]["healthCheckNodePort"] = json!(port);
            }
        }
    }
    let mut status = "deployed".to_owned();
    let mut failure = None;
    if args.switch("--wait") || args.switch("--atomic") {
        let controller_name = controller.clone();
        let namespace_name = ns.clone();
        ctx.world.settle_services(|n, s| n == namespace_name && s == controller_name, now);
        let ready = ctx
            .world
            .find("Service", &ns, &controller)
            .is_some_and(|s| !s["status"]["loadBalancer"]["ingress"].is_null());
        if !ready {
            status = "failed".to_owned();
            failure = Some("context deadline exceeded");
        }
    }
    let stamp = azure_time(now);
    let previous = ctx.world.releases.iter().position(|r| r.name == name && r.namespace == ns);
    let (revision, first_deployed) = match previous {
        Some(index) => (ctx.world.releases[index].revision + 1, ctx.world.releases[index].first_deployed.clone()),
        None => (1, stamp.clone()),
    };
    let release = Release {
        name: name.clone(),
        namespace: ns.clone(),
        revision,
        status,
        chart: "ingress-nginx".to_owned(),
        chart_version: args.value("--version").unwrap_or(CHART_VERSION).to_owned(),
        app_version: APP_VERSION.to_owned(),
        values,
        first_deployed,
        last_deployed: stamp,
        description: if failure.is_some() {
            "Release failed: context deadline exceeded".to_owned()
        } else if revision == 1 {
            "Install complete".to_owned()
        } else {
            "Upgrade complete".to_owned()
        },
    };
    match previous {
        Some(index) => ctx.world.releases[index] = release.clone(),
        None => ctx.world.releases.push(release.clone()),
    }
    if let Some(reason) = failure {
        if args.switch("--atomic") && installing {
            remove_release(ctx, &name, &ns);
            return error(format!(
                "{failed}: release {name} failed, and has been uninstalled due to atomic being set: {reason}"
            ));
        }
        return error(format!("{failed}: {reason}"));
    }
    let preamble = if args.value("--output").is_some_and(|o| o != "table") { "" } else { preamble };
    print_release(&release, args, preamble)
}

fn status(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let ns = namespace(args);
    match ctx.world.releases.iter().find(|r| r.name == args.positionals[0] && r.namespace == ns) {
        Some(release) => print_release(&release.clone(), args, ""),
        None => error("release: not found"),
    }
}

fn list(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let ns = namespace(args);
    let releases: Vec<&Release> =
        ctx.world.releases.iter().filter(|r| args.switch("--all-namespaces") || r.namespace == ns).collect();
    let rows: Vec<Value> = releases
        .iter()
        .map(|r| {
            let updated = chrono::DateTime::parse_from_rfc3339(&r.last_deployed)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.f %z UTC").to_string())
                .unwrap_or_default();
            json!({"name": r.name, "namespace": r.namespace, "revision": r.revision.to_string(), "updated": updated,
                   "status": r.status, "chart": format!("{}-{}", r.chart, r.chart_version), "app_version": r.app_version})
        })
        .collect();
    match args.value("--output") {
        Some("json") => Reply::ok(format!("{}\n", Value::Array(rows))),
        Some("yaml") => Reply::ok(yaml(&Value::Array(rows))),
        _ => {
            let mut out = "NAME\tNAMESPACE\tREVISION\tUPDATED\tSTATUS\tCHART\tAPP VERSION\n".to_owned();
            for row in &rows {
                let cells: Vec<&str> = ["name", "namespace", "revision", "updated", "status", "chart", "app_version"]
                    .iter()
                    .map(|k| text(row, &format!("/{k}")))
                    .collect();
                out.push_str(&format!("{}\n", cells.join("\t")));
            }
            Reply::ok(out)
        }
    }
}

fn remove_release(ctx: &mut Ctx<'_>, name: &str, ns: &str) {
    let owned: Vec<(String, String)> = ctx
        .world
        .objects
        .iter()
        .filter(|o| {
            text(o, "/metadata/namespace") == ns && o["metadata"]["labels"]["app.kubernetes.io/instance"] == name
        })
        .map(|o| (text(o, "/kind").to_owned(), text(o, "/metadata/name").to_owned()))
        .collect();
    for (kind, object) in owned {
        ctx.world.remove(&kind, ns, &object);
    }
    ctx.world.releases.retain(|r| !(r.name == name && r.namespace == ns));
}

fn uninstall(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let name = args.positionals[0].clone();
    let ns = namespace(args);
    if !ctx.world.releases.iter().any(|r| r.name == name && r.namespace == ns) {
        if args.switch("--ignore-not-found") {
            return Reply::ok("");
        }
        return error(format!("uninstall: Release not loaded: {name}: release: not found"));
    }
    remove_release(ctx, &name, &ns);
    Reply::ok(format!("release \"{name}\" uninstalled\n"))
}

/// The helm part of `azsim commands`.
pub fn describe() -> Vec<(String, &'static str)> {
    COMMANDS
        .iter()
        .map(|c| (format!("{} {}", Tool::Helm.name(), crate::describe_command(c.path, c.flags)), c.summary))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_parses_helm_syntax() {
        let mut values = json!({});
        apply_set(
            &mut values,
            r"controller.service.annotations.service\.beta\.kubernetes\.io/azure-load-balancer-health-probe-request-path=/healthz",
            false,
        )
        .expect("parses");
        apply_set(&mut values, "controller.service.externalTrafficPolicy=Local,controller.replicaCount=2", false)
            .expect("parses");
        apply_set(&mut values, "controller.service.ports.http=8080", false).expect("parses");
        assert_eq!(
            values["controller"]["service"]["annotations"]["service.beta.kubernetes.io/azure-load-balancer-health-probe-request-path"],
            "/healthz"
        );
        assert_eq!(values["controller"]["service"]["externalTrafficPolicy"], "Local");
        assert_eq!(values["controller"]["replicaCount"], 2);
        assert_eq!(values["controller"]["service"]["ports"]["http"], 8080);
        assert!(apply_set(&mut values, "novalue", false).is_err());
    }
}
