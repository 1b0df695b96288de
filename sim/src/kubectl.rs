//! `kubectl`: get / apply / delete / patch / wait / create namespace / version
//! against the simulated API server. Output follows kubectl: `-o json` with
//! sorted keys and 4-space indent, lists as `kind: List`, `-o yaml`, `-o name`,
//! `-o jsonpath=...` and the default tables. Reading a pending LoadBalancer
//! Service counts as one poll of it.

use std::io::Read as _;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::Ctx;
use crate::cli::{Args, Command, Flag, Reply, Tool, one, parse_pflag, switch, unsupported};
use crate::format::{json_indented, jsonpath, sorted, yaml};
use crate::world::{object_key, text};

type Handler = fn(&mut Ctx<'_>, &Args) -> Reply;

/// Flags every kubectl command accepts.
pub const GLOBALS: &[Flag] = &[
    one(&["--namespace", "-n"]),
    one(&["--context"]),
    one(&["--kubeconfig"]),
    one(&["--request-timeout"]),
    one(&["--v", "-v"]),
];

const OUTPUT: Flag = one(&["--output", "-o"]);

/// Every kubectl command line the simulator knows.
pub const COMMANDS: &[Command<Handler>] = &[
    Command {
        path: &["get"],
        flags: &[
            OUTPUT,
            one(&["--selector", "-l"]),
            one(&["--field-selector"]),
            switch(&["--all-namespaces", "-A"]),
            switch(&["--ignore-not-found"]),
            switch(&["--show-labels"]),
            switch(&["--no-headers"]),
            unsupported(&["--watch", "-w"], "a watch never ends; poll with a retry or `kubectl wait` instead"),
        ],
        positionals: (1, 16),
        summary: "TYPE [NAME...] | TYPE/NAME: svc, endpoints, endpointslices, pods, nodes, events, ingress, networkpolicies, namespaces, configmaps, deployments",
        run: get,
    },
    Command {
        path: &["apply"],
        flags: &[one(&["--filename", "-f"]), OUTPUT, unsupported(&["--dry-run"], "the simulator applies for real")],
        positionals: (0, 0),
        summary: "-f FILE|-: Service, Ingress, NetworkPolicy, Namespace, ConfigMap",
        run: apply,
    },
    Command {
        path: &["delete"],
        flags: &[
            one(&["--filename", "-f"]),
            one(&["--wait"]),
            switch(&["--ignore-not-found"]),
            one(&["--timeout"]),
            one(&["--grace-period"]),
        ],
        positionals: (0, 16),
        summary: "TYPE NAME | TYPE/NAME | -f FILE: svc, ingress, networkpolicy, configmap",
        run: delete,
    },
    Command {
        path: &["patch"],
        flags: &[one(&["--patch", "-p"]), one(&["--type"]), OUTPUT],
        positionals: (1, 2),
        summary: "svc NAME --type merge|strategic|json -p PATCH",
        run: patch,
    },
    Command {
        path: &["wait"],
        flags: &[
            one(&["--for"]),
            one(&["--timeout"]),
            one(&["--selector", "-l"]),
            switch(&["--all"]),
            switch(&["--all-namespaces", "-A"]),
        ],
        positionals: (1, 16),
        summary: "--for=condition=X | --for=jsonpath='{...}'[=VALUE] TYPE/NAME | TYPE -l SELECTOR",
        run: wait,
    },
    Command {
        path: &["create", "namespace"],
        flags: &[OUTPUT],
        positionals: (1, 1),
        summary: "create a namespace",
        run: create_namespace,
    },
    Command {
        path: &["version"],
        flags: &[OUTPUT, switch(&["--client"])],
        positionals: (0, 0),
        summary: "client and server versions",
        run: version,
    },
];

/// Runs one kubectl command line.
pub fn run(ctx: &mut Ctx<'_>, tokens: &[String]) -> (Reply, bool) {
    match parse_pflag(Tool::Kubectl, COMMANDS, GLOBALS, tokens) {
        Ok((command, args)) => ((command.run)(ctx, &args), true),
        Err(reply) => (reply, false),
    }
}

/// A resource type: its kind, API group/version, plural and whether it is namespaced.
#[derive(Debug, Clone, Copy)]
struct Resource {
    kind: &'static str,
    api_version: &'static str,
    plural: &'static str,
    namespaced: bool,
}

const RESOURCES: &[(&[&str], Resource)] = &[
    (
        &["svc", "service", "services"],
        Resource { kind: "Service", api_version: "v1", plural: "services", namespaced: true },
    ),
    (&["ep", "endpoints"], Resource { kind: "Endpoints", api_version: "v1", plural: "endpoints", namespaced: true }),
    (
        &["endpointslice", "endpointslices"],
        Resource {
            kind: "EndpointSlice",
            api_version: "discovery.k8s.io/v1",
            plural: "endpointslices",
            namespaced: true,
        },
    ),
    (&["po", "pod", "pods"], Resource { kind: "Pod", api_version: "v1", plural: "pods", namespaced: true }),
    (&["no", "node", "nodes"], Resource { kind: "Node", api_version: "v1", plural: "nodes", namespaced: false }),
    (&["ev", "event", "events"], Resource { kind: "Event", api_version: "v1", plural: "events", namespaced: true }),
    (
        &["ing", "ingress", "ingresses"],
        Resource { kind: "Ingress", api_version: "networking.k8s.io/v1", plural: "ingresses", namespaced: true },
    ),
    (
        &["netpol", "networkpolicy", "networkpolicies"],
        Resource {
            kind: "NetworkPolicy",
            api_version: "networking.k8s.io/v1",
            plural: "networkpolicies",
            namespaced: true,
        },
    ),
    (
        &["ns", "namespace", "namespaces"],
        Resource { kind: "Namespace", api_version: "v1", plural: "namespaces", namespaced: false },
    ),
    (
        &["cm", "configmap", "configmaps"],
        Resource { kind: "ConfigMap", api_version: "v1", plural: "configmaps", namespaced: true },
    ),
    (
        &["deploy", "deployment", "deployments"],
        Resource { kind: "Deployment", api_version: "apps/v1", plural: "deployments", namespaced: true },
    ),
];

fn resource(name: &str) -> Result<Resource, Reply> {
    let lower = name.to_lowercase();
    let bare = lower.split('.').next().unwrap_or(&lower);
    RESOURCES
        .iter()
        .find(|(aliases, _)| aliases.contains(&bare))
        .map(|(_, r)| *r)
        .ok_or_else(|| Reply::fail(1, format!("error: the server doesn't have a resource type \"{name}\"")))
}

fn resource_by_kind(kind: &str) -> Option<Resource> {
    RESOURCES.iter().map(|(_, r)| *r).find(|r| r.kind == kind)
}

/// `service`, `ingress.networking.k8s.io`: how kubectl names a kind in `-o name` and messages.
fn qualified(resource: Resource) -> String {
    let singular = resource.kind.to_lowercase();
    match resource.api_version.rsplit_once('/') {
        Some((group, _)) => format!("{singular}.{group}"),
        None => singular,
    }
}

fn not_found(resource: Resource, name: &str) -> String {
    format!("Error from server (NotFound): {} \"{name}\" not found", resource.plural)
}

fn namespace(args: &Args) -> &str {
    args.value("--namespace").unwrap_or("default")
}

/// Parses `a=b,c!=d,e` (equality-based) label selectors.
fn label_matches(selector: &str, labels: &Value) -> Result<bool, Reply> {
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if term.contains(" in ") || term.contains(" notin ") || term.contains('(') {
            return Err(Reply::fail(1, format!("azsim: set-based label selectors are not simulated: {term}")));
        }
        let ok = if let Some((key, value)) = term.split_once("!=") {
            labels[key.trim()] != value.trim()
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels[key.trim()] == value.trim()
        } else if let Some(key) = term.strip_prefix('!') {
            labels[key.trim()].is_null()
        } else {
            !labels[term].is_null()
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn field_matches(resource: Resource, selector: &str, label_selector: &str, object: &Value) -> Result<bool, Reply> {
    let mut allowed = vec!["metadata.name", "metadata.namespace"];
    match resource.kind {
        "Event" => allowed.extend([
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]),
        "Pod" => allowed.extend([
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
        ]),
        _ => {}
    }
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            (f, v, true)
        } else {
            return Err(Reply::fail(1, format!("error: invalid selector: '{term}'; can't understand '{term}'")));
        };
        let field = field.trim();
        if !allowed.contains(&field) {
            let group_version = match resource.api_version.split_once('/') {
                Some((g, v)) => format!("{g}/{v}"),
                None => format!("/{}", resource.api_version),
            };
            return Err(Reply::fail(
                1,
                format!(
                    "Error from server (BadRequest): Unable to find \"{group_version}, Resource={}\" that match label selector \"{label_selector}\", field selector \"{selector}\": field label not supported: {field}",
                    resource.plural
                ),
            ));
        }
        let pointer =
            if field == "source" { "/source/component".to_owned() } else { format!("/{}", field.replace('.', "/")) };
        let actual = object.pointer(&pointer).and_then(Value::as_str).unwrap_or_default();
        if (actual == value.trim()) != equal {
            return Ok(false);
        }
    }
    Ok(true)
}

/// All objects of a resource type as the API server would list them (derived kinds computed here).
fn objects_of(ctx: &Ctx<'_>, resource: Resource, namespace: Option<&str>) -> Vec<Value> {
    let namespace = if resource.namespaced { namespace } else { None };
    let mut items = match resource.kind {
        "Event" => ctx
            .world
            .events
            .iter()
            .filter(|e| namespace.is_none_or(|ns| text(e, "/metadata/namespace") == ns))
            .cloned()
            .collect(),
        "Endpoints" | "EndpointSlice" => endpoints(ctx, resource.kind, namespace),
        "Ingress" => ctx.world.list("Ingress", namespace).into_iter().map(|i| with_ingress_status(ctx, i)).collect(),
        kind => ctx.world.list(kind, namespace),
    };
    for item in &mut items {
        if item["apiVersion"].is_null() {
            item["apiVersion"] = json!(resource.api_version);
        }
    }
    // The API server lists in key order: namespace, then name.
    items.sort_by(|a, b| {
        (text(a, "/metadata/namespace"), text(a, "/metadata/name"))
            .cmp(&(text(b, "/metadata/namespace"), text(b, "/metadata/name")))
    });
    items
}

/// The ingress controller's address, once its Service has one.
fn with_ingress_status(ctx: &Ctx<'_>, mut ingress: Value) -> Value {
    let class = text(&ingress, "/spec/ingressClassName").to_owned();
    let controller = ctx.world.objects.iter().find(|o| {
        o["kind"] == "Service"
            && o["metadata"]["labels"]["app.kubernetes.io/component"] == "controller"
            && o["metadata"]["labels"]["app.kubernetes.io/name"] == "ingress-nginx"
    });
    let address = controller.and_then(|c| c["status"]["loadBalancer"]["ingress"][0]["ip"].as_str());
    ingress["status"] = match address {
        Some(ip) if class.is_empty() || class == "nginx" => json!({"loadBalancer": {"ingress": [{"ip": ip}]}}),
        _ => json!({"loadBalancer": {}}),
    };
    ingress
}

fn target_port(port: &Value, pod: &Value) -> Value {
    match &port["targetPort"] {
        Value::String(name) => pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .find(|p| p["name"] == name.as_str())
            .map(|p| p["containerPort"].clone())
            .unwrap_or(Value::Null),
        other => other.clone(),
    }
}

/// Endpoints / EndpointSlices for every Service with a selector, from its ready pods.
fn endpoints(ctx: &Ctx<'_>, kind: &str, namespace: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    for service in ctx.world.list("Service", namespace) {
        let selector = &service["spec"]["selector"];
        let Some(selector_map) = selector.as_object() else { continue };
        let ns = text(&service, "/metadata/namespace");
        let name = text(&service, "/metadata/name");
        let pods: Vec<Value> = ctx
            .world
            .list("Pod", Some(ns))
            .into_iter()
            .filter(|p| selector_map.iter().all(|(k, v)| &p["metadata"]["labels"][k] == v))
            .collect();
        let first_pod = pods.first().cloned().unwrap_or_default();
        let ports: Vec<Value> = service["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| json!({"name": p["name"], "port": target_port(p, &first_pod), "protocol": p["protocol"]}))
            .collect();
        let target = |p: &Value| json!({"kind": "Pod", "name": p["metadata"]["name"], "namespace": ns, "uid": p["metadata"]["uid"]});
        if kind == "Endpoints" {
            let mut endpoints = json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns, "labels": service["metadata"]["labels"], "creationTimestamp": service["metadata"]["creationTimestamp"]}
            });
            if !pods.is_empty() {
                let addresses: Vec<Value> = pods
                    .iter()
                    .map(|p| json!({"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"], "targetRef": target(p)}))
                    .collect();
                endpoints["subsets"] = json!([{"addresses": addresses, "ports": ports}]);
            }
            out.push(endpoints);
        } else {
            let suffix: String =
                crate::world::frontend_name(text(&service, "/metadata/uid")).chars().skip(1).take(5).collect();
            let items: Vec<Value> = pods
                .iter()
                .map(|p| {
                    json!({"addresses": [p["status"]["podIP"]], "conditions": {"ready": true, "serving": true, "terminating": false},
                           "nodeName": p["spec"]["nodeName"], "targetRef": target(p)})
                })
                .collect();
            out.push(json!({
                "addressType": "IPv4", "apiVersion": "discovery.k8s.io/v1", "endpoints": items, "kind": "EndpointSlice",
                "metadata": {"name": format!("{name}-{suffix}"), "namespace": ns, "creationTimestamp": service["metadata"]["creationTimestamp"],
                             "generateName": format!("{name}-"),
                             "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io", "kubernetes.io/service-name": name},
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": service["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
                "ports": ports
            }));
        }
    }
    out
}

fn age(created: &str, now: DateTime<Utc>) -> String {
    let Ok(created) = DateTime::parse_from_rfc3339(created) else { return "<unknown>".to_owned() };
    let seconds = (now - created.with_timezone(&Utc)).num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The default (human) table kubectl prints for a kind.
fn table(
    ctx: &Ctx<'_>,
    resource: Resource,
    items: &[Value],
    with_namespace: bool,
    headers: bool,
    labels: bool,
) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<&str> = match resource.kind {
        "Service" => vec!["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        "Pod" => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "Node" => vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
        "Event" => vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "Deployment" => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        _ => vec!["NAME", "AGE"],
    };
    if with_namespace {
        header.insert(0, "NAMESPACE");
    }
    if labels {
        header.push("LABELS");
    }
    for item in items {
        let name = text(item, "/metadata/name").to_owned();
        let created = age(text(item, "/metadata/creationTimestamp"), ctx.now);
        let mut row = match resource.kind {
            "Service" => {
                let kind = text(item, "/spec/type");
                let external = match item["status"]["loadBalancer"]["ingress"][0]["ip"].as_str() {
                    Some(ip) => ip.to_owned(),
                    None if kind == "LoadBalancer" => "<pending>".to_owned(),
                    None => "<none>".to_owned(),
                };
                let ports: Vec<String> = item["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| match p["nodePort"].as_u64() {
                        Some(node) => format!("{}:{node}/{}", p["port"], text(p, "/protocol")),
                        None => format!("{}/{}", p["port"], text(p, "/protocol")),
                    })
                    .collect();
                vec![
                    name,
                    kind.to_owned(),
                    text(item, "/spec/clusterIP").to_owned(),
                    external,
                    ports.join(","),
                    created,
                ]
            }
            "Pod" => vec![name, "1/1".to_owned(), text(item, "/status/phase").to_owned(), "0".to_owned(), created],
            "Node" => vec![
                name,
                "Ready".to_owned(),
                "<none>".to_owned(),
                created,
                text(item, "/status/nodeInfo/kubeletVersion").to_owned(),
            ],
            "Event" => vec![
                age(text(item, "/lastTimestamp"), ctx.now),
                text(item, "/type").to_owned(),
                text(item, "/reason").to_owned(),
                format!("service/{}", text(item, "/involvedObject/name")),
                text(item, "/message").to_owned(),
            ],
            "Deployment" => {
                let replicas = item["spec"]["replicas"].as_u64().unwrap_or(1);
                vec![name, format!("{replicas}/{replicas}"), replicas.to_string(), replicas.to_string(), created]
            }
            _ => vec![name, created],
        };
        if with_namespace {
            row.insert(0, text(item, "/metadata/namespace").to_owned());
        }
        if labels {
            let pairs: Vec<String> = item["metadata"]["labels"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
                .unwrap_or_default();
            row.push(if pairs.is_empty() { "<none>".to_owned() } else { pairs.join(",") });
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let render = |cells: Vec<String>| -> String {
        let last = cells.len() - 1;
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i == last { c.clone() } else { format!("{c:<w$}   ", w = widths[i]) })
            .collect::<String>()
            + "\n"
    };
    let mut out = String::new();
    if headers {
        out.push_str(&render(header.iter().map(|h| (*h).to_owned()).collect()));
    }
    for row in rows {
        out.push_str(&render(row));
    }
    out
}

/// Prints objects in the requested output format (`single`: one object asked for by name).
fn print(ctx: &Ctx<'_>, resource: Resource, items: Vec<Value>, single: bool, args: &Args) -> Result<String, Reply> {
    let output = args.value("--output").unwrap_or("");
    let document = if single && items.len() == 1 {
        items[0].clone()
    } else {
        json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
    };
    match output {
        "json" => Ok(format!("{}\n", json_indented(&sorted(&document), 4))),
        "yaml" => Ok(yaml(&document)),
        "name" => {
            Ok(items.iter().map(|i| format!("{}/{}\n", qualified(resource), text(i, "/metadata/name"))).collect())
        }
        "" | "wide" => Ok(table(
            ctx,
            resource,
            &items,
            args.switch("--all-namespaces"),
            !args.switch("--no-headers"),
            args.switch("--show-labels"),
        )),
        other => {
            if let Some(template) = other.strip_prefix("jsonpath=") {
                return jsonpath(template, &document).map_err(|e| Reply::fail(1, format!("error: {e}")));
            }
            let real = [
                "custom-columns",
                "custom-columns-file",
                "go-template",
                "go-template-file",
                "jsonpath-as-json",
                "jsonpath-file",
                "template",
                "templatefile",
            ];
            if real.iter().any(|r| other.starts_with(r)) {
                return Err(Reply::fail(
                    1,
                    format!("azsim: -o {other} is not simulated: use json, yaml, name, wide or jsonpath="),
                ));
            }
            Err(Reply::fail(
                1,
                format!(
                    "error: unable to match a printer suitable for the output format \"{other}\", allowed formats are: custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml"
                ),
            ))
        }
    }
}

/// `TYPE NAME...` or `TYPE/NAME...`: the resource type and names asked for.
fn targets(positionals: &[String]) -> Result<(Resource, Vec<String>), Reply> {
    let Some(first) = positionals.first() else {
        return Err(Reply::fail(
            1,
            "error: You must specify the type of resource to get. Use \"kubectl api-resources\" for a complete list of supported resources.",
        ));
    };
    if first.contains('/') {
        let mut kind = None;
        let mut names = Vec::new();
        for item in positionals {
            let Some((t, n)) = item.split_once('/') else {
                return Err(Reply::fail(
                    1,
                    "error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'kubectl get resource/<resource_name>' instead of 'kubectl get resource resource/<resource_name>'",
                ));
            };
            let r = resource(t)?;
            if kind.is_some_and(|k: Resource| k.kind != r.kind) {
                return Err(Reply::fail(1, "azsim: mixing resource types in one command line is not simulated"));
            }
            kind = Some(r);
            names.push(n.to_owned());
        }
        return kind.map(|k| (k, names)).ok_or_else(|| Reply::fail(1, "error: no resource given"));
    }
    if first.contains(',') {
        return Err(Reply::fail(1, format!("azsim: several resource types at once ({first}) are not simulated")));
    }
    Ok((resource(first)?, positionals[1..].to_vec()))
}

fn get(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let (resource, names) = match targets(&args.positionals) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let all = args.switch("--all-namespaces");
    let ns = namespace(args).to_owned();
    if all && !names.is_empty() {
        return Reply::fail(1, "error: a resource cannot be retrieved by name across all namespaces");
    }
    let scope = if all || !resource.namespaced { None } else { Some(ns.as_str()) };
    if resource.kind == "Service" || resource.kind == "Ingress" {
        let now = ctx.now;
        let wanted = names.clone();
        let ns_filter = scope.map(str::to_owned);
        ctx.world.poll_services(
            |n, name| {
                ns_filter.as_deref().is_none_or(|s| s == n) && (wanted.is_empty() || wanted.iter().any(|w| w == name))
            },
            now,
        );
    }
    let label_selector = args.value("--selector").unwrap_or_default();
    let field_selector = args.value("--field-selector").unwrap_or_default();
    let mut items = Vec::new();
    for item in objects_of(ctx, resource, scope) {
        match (
            label_matches(label_selector, &item["metadata"]["labels"]),
            field_matches(resource, field_selector, label_selector, &item),
        ) {
            (Ok(true), Ok(true)) => items.push(item),
            (Err(reply), _) | (_, Err(reply)) => return reply,
            _ => {}
        }
    }
    let mut errors = String::new();
    if !names.is_empty() {
        let mut found = Vec::new();
        for name in &names {
            match items.iter().find(|i| text(i, "/metadata/name") == name) {
                Some(item) => found.push(item.clone()),
                None if args.switch("--ignore-not-found") => {}
                None => errors.push_str(&format!("{}\n", not_found(resource, name))),
            }
        }
        items = found;
    }
    let single = names.len() == 1;
    let mut reply = match print(ctx, resource, items.clone(), single, args) {
        Ok(out) => Reply::ok(out),
        Err(reply) => return reply,
    };
    if single && items.is_empty() {
        reply.stdout.clear();
    }
    if names.is_empty() && items.is_empty() && args.value("--output").is_none_or(|o| o.is_empty() || o == "wide") {
        reply.stdout.clear();
        reply.stderr = match scope {
            Some(ns) => format!("No resources found in {ns} namespace.\n"),
            None => "No resources found\n".to_owned(),
        };
    }
    if !errors.is_empty() {
        reply.stderr.push_str(&errors);
        reply.code = 1;
    }
    reply
}

/// The documents of `-f FILE` (`-` reads standard input), expanding `kind: List`.
fn read_manifests(source: &str) -> Result<Vec<Value>, Reply> {
    let text = if source == "-" {
        let mut buffer = String::new();
        std::io::stdin()
            .read_to_string(&mut buffer)
            .map_err(|e| Reply::fail(1, format!("error: reading stdin: {e}")))?;
        buffer
    } else {
        std::fs::read_to_string(source)
            .map_err(|_| Reply::fail(1, format!("error: the path \"{source}\" does not exist")))?
    };
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| Reply::fail(1, format!("error: error parsing {source}: error converting YAML to JSON: {e}")))?;
    let mut out = Vec::new();
    for document in documents.into_iter().filter(|d| !d.is_null()) {
        if document["kind"] == "List" {
            out.extend(document["items"].as_array().cloned().unwrap_or_default());
        } else {
            out.push(document);
        }
    }
    if out.is_empty() {
        return Err(Reply::fail(1, "error: no objects passed to apply"));
    }
    Ok(out)
}

/// Resolves an object's namespace against `-n` as kubectl does.
fn object_namespace(object: &Value, resource: Resource, args: &Args) -> Result<String, Reply> {
    if !resource.namespaced {
        return Ok(String::new());
    }
    let own = text(object, "/metadata/namespace");
    match (own.is_empty(), args.value("--namespace")) {
        (true, flag) => Ok(flag.unwrap_or("default").to_owned()),
        (false, Some(flag)) if flag != own => Err(Reply::fail(
            1,
            format!(
                "error: the namespace from the provided object \"{own}\" does not match the namespace \"{flag}\". You must pass '--namespace={own}' to perform this operation."
            ),
        )),
        (false, _) => Ok(own.to_owned()),
    }
}

fn invalid(object: &Value, field: &str, message: &str) -> Reply {
    Reply::fail(
        1,
        format!("The {} \"{}\" is invalid: {field}: {message}", text(object, "/kind"), text(object, "/metadata/name")),
    )
}

/// The API server's validation of a Service about to be stored.
fn validate_service(ctx: &Ctx<'_>, service: &Value, replacing: Option<&Value>) -> Result<(), Reply> {
    let spec = &service["spec"];
    let kind = spec["type"].as_str().unwrap_or("ClusterIP");
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&kind) {
        return Err(invalid(
            service,
            "spec.type",
            &format!(
                "Unsupported value: \"{kind}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
            ),
        ));
    }
    if spec["ports"].as_array().is_none_or(Vec::is_empty) {
        return Err(invalid(service, "spec.ports", "Required value"));
    }
    if let Some(port) = spec["healthCheckNodePort"].as_u64()
        && (kind != "LoadBalancer" || spec["externalTrafficPolicy"] != "Local")
    {
        return Err(invalid(
            service,
            "spec.healthCheckNodePort",
            &format!(
                "Invalid value: {port}: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"
            ),
        ));
    }
    if let Some(policy) = spec["externalTrafficPolicy"].as_str()
        && !["Local", "Cluster"].contains(&policy)
    {
        return Err(invalid(
            service,
            "spec.externalTrafficPolicy",
            &format!("Unsupported value: \"{policy}\": supported values: \"Cluster\", \"Local\""),
        ));
    }
    let key = object_key(service);
    for (index, port) in spec["ports"].as_array().into_iter().flatten().enumerate() {
        let Some(node_port) = port["nodePort"].as_u64() else { continue };
        let taken = ctx.world.objects.iter().filter(|o| o["kind"] == "Service" && object_key(o) != key).any(|other| {
            other["spec"]["ports"].as_array().into_iter().flatten().any(|p| p["nodePort"] == node_port)
                || other["spec"]["healthCheckNodePort"] == node_port
        });
        let own = replacing
            .is_some_and(|r| r["spec"]["ports"].as_array().into_iter().flatten().any(|p| p["nodePort"] == node_port));
        if taken && !own {
            return Err(invalid(
                service,
                &format!("spec.ports[{index}].nodePort"),
                &format!("Invalid value: {node_port}: provided port is already allocated"),
            ));
        }
    }
    Ok(())
}

/// The role and pending reads of a new LoadBalancer Service created with kubectl.
fn lb_plan(ctx: &Ctx<'_>, namespace: &str, name: &str) -> (crate::scenario::Role, u32) {
    let s = &ctx.world.scenario;
    if namespace == s.frontend.namespace && name == s.frontend.name {
        (s.load_balancer.recreated_role, s.load_balancer.recreated_pending_polls)
    } else {
        (s.load_balancer.other_role, s.load_balancer.other_pending_polls)
    }
}

/// Labels and annotations come from the applied manifest (absent there: absent after).
fn copy_metadata(target: &mut Value, applied: &Value) {
    for field in ["labels", "annotations"] {
        match &applied["metadata"][field] {
            Value::Null => {
                target["metadata"].as_object_mut().map(|m| m.remove(field));
            }
            value => target["metadata"][field] = value.clone(),
        }
    }
}

/// What an update of a Service keeps from the stored one: server-assigned fields, unless the manifest sets them.
fn merge_service_update(stored: &Value, applied: &Value) -> Value {
    let mut merged = stored.clone();
    copy_metadata(&mut merged, applied);
    let mut spec = applied["spec"].clone();
    for field in [
        "clusterIP",
        "clusterIPs",
        "ipFamilies",
        "ipFamilyPolicy",
        "internalTrafficPolicy",
        "sessionAffinity",
        "allocateLoadBalancerNodePorts",
    ] {
        if spec[field].is_null() && !stored["spec"][field].is_null() {
            spec[field] = stored["spec"][field].clone();
        }
    }
    if spec["type"].is_null() {
        spec["type"] = json!("ClusterIP");
    }
    if spec["externalTrafficPolicy"].is_null() && !stored["spec"]["externalTrafficPolicy"].is_null() {
        spec["externalTrafficPolicy"] = json!("Cluster");
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for port in ports.iter_mut() {
            let old = stored["spec"]["ports"].as_array().into_iter().flatten().find(|p| p["port"] == port["port"]);
            if port["nodePort"].is_null()
                && let Some(old) = old
            {
                port["nodePort"] = old["nodePort"].clone();
            }
            if port["protocol"].is_null() {
                port["protocol"] = json!("TCP");
            }
            if port["targetPort"].is_null() {
                port["targetPort"] = port["port"].clone();
            }
        }
    }
    if spec["externalTrafficPolicy"] == "Local" && spec["healthCheckNodePort"].is_null() {
        spec["healthCheckNodePort"] = stored["spec"]["healthCheckNodePort"].clone();
    }
    merged["spec"] = spec;
    merged
}

/// Stores an updated Service; a change of externalTrafficPolicy may move the address (scenario knob).
fn store_service_update(ctx: &mut Ctx<'_>, stored: &Value, mut updated: Value) -> Result<bool, Reply> {
    let to_cluster =
        stored["spec"]["externalTrafficPolicy"] == "Local" && updated["spec"]["externalTrafficPolicy"] == "Cluster";
    if to_cluster && let Some(spec) = updated["spec"].as_object_mut() {
        spec.remove("healthCheckNodePort");
    }
    if updated["spec"]["externalTrafficPolicy"] == "Local" && updated["spec"]["healthCheckNodePort"].is_null() {
        updated["spec"].as_object_mut().map(|s| s.remove("healthCheckNodePort"));
    }
    validate_service(ctx, &updated, Some(stored))?;
    if sorted(&updated) == sorted(stored) {
        return Ok(false);
    }
    updated["metadata"]["resourceVersion"] = json!(ctx.world.next_version());
    let (_, namespace, name) = object_key(stored);
    let s = ctx.world.scenario.clone();
    let now = ctx.now;
    let is_frontend = namespace == s.frontend.namespace && name == s.frontend.name;
    if let Some(slot) = ctx.world.find_mut("Service", &namespace, &name) {
        *slot = updated;
    }
    if to_cluster && is_frontend && s.load_balancer.patch_moves_address {
        let address = ctx.world.take_address(s.load_balancer.recreated_role);
        if let Some(allocation) = ctx.world.allocations.iter_mut().find(|a| a.namespace == namespace && a.name == name)
        {
            allocation.address = address;
            allocation.pending_polls = s.load_balancer.recreated_pending_polls;
        }
        if let Some(service) = ctx.world.find_mut("Service", &namespace, &name) {
            service["status"] = json!({"loadBalancer": {}});
        }
    }
    let uid =
        ctx.world.find("Service", &namespace, &name).map(|s| text(s, "/metadata/uid").to_owned()).unwrap_or_default();
    ctx.world.event(
        &namespace,
        &name,
        &uid,
        "Normal",
        "UpdatedLoadBalancer",
        "Updated load balancer with new hosts",
        now,
    );
    ctx.world.sync_load_balancers(now);
    Ok(true)
}

fn apply(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let Some(source) = args.value("--filename") else {
        return Reply::fail(1, "error: must specify one of -f and -k");
    };
    let documents = match read_manifests(source) {
        Ok(d) => d,
        Err(reply) => return reply,
    };
    let mut out = String::new();
    let mut printed = Vec::new();
    for document in documents {
        let kind = text(&document, "/kind").to_owned();
        let name = text(&document, "/metadata/name").to_owned();
        let supported = ["Service", "Ingress", "NetworkPolicy", "Namespace", "ConfigMap"];
        let Some(resource) = resource_by_kind(&kind).filter(|_| supported.contains(&kind.as_str())) else {
            return Reply::fail(
                1,
                format!(
                    "{out}error: resource mapping not found for name: \"{name}\" namespace: \"{}\" from \"{source}\": no matches for kind \"{kind}\" in version \"{}\"\nensure CRDs are installed first",
                    text(&document, "/metadata/namespace"),
                    text(&document, "/apiVersion")
                ),
            );
        };
        if name.is_empty() {
            return Reply::fail(
                1,
                format!("{out}error: error when retrieving current configuration of: resource name may not be empty"),
            );
        }
        let namespace = match object_namespace(&document, resource, args) {
            Ok(ns) => ns,
            Err(reply) => return reply,
        };
        if resource.namespaced && !ctx.world.namespace_exists(&namespace) {
            return Reply::fail(
                1,
                format!(
                    "{out}Error from server (NotFound): error when creating \"{source}\": namespaces \"{namespace}\" not found"
                ),
            );
        }
        let mut object = document.clone();
        if resource.namespaced {
            object["metadata"]["namespace"] = json!(namespace);
        }
        let label = format!("{}/{name}", qualified(resource));
        let stored = ctx.world.find(&kind, &namespace, &name).cloned();
        let now = ctx.now;
        let verb = match (kind.as_str(), stored) {
            ("Service", None) => {
                if let Some(meta) = object["metadata"].as_object_mut() {
                    for field in
                        ["uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink"]
                    {
                        meta.remove(field);
                    }
                }
                if let Err(reply) = validate_service(ctx, &object, None) {
                    return Reply { stdout: out, ..reply };
                }
                let plan = lb_plan(ctx, &namespace, &name);
                ctx.world.create_service(object, Some(plan), now);
                "created"
            }
            ("Service", Some(stored)) => {
                let updated = merge_service_update(&stored, &object);
                match store_service_update(ctx, &stored, updated) {
                    Ok(true) => "configured",
                    Ok(false) => "unchanged",
                    Err(reply) => return Reply { stdout: out, ..reply },
                }
            }
            ("Namespace", None) => {
                ctx.world.ensure_namespace(&name, now);
                "created"
            }
            (_, None) => {
                object["metadata"]["uid"] = json!(ctx.world.new_uid());
                object["metadata"]["resourceVersion"] = json!(ctx.world.next_version());
                object["metadata"]["creationTimestamp"] = json!(crate::world::k8s_time(now));
                if kind == "Ingress" {
                    object["metadata"]["generation"] = json!(1);
                }
                ctx.world.objects.push(object);
                "created"
            }
            (_, Some(stored)) => {
                let mut updated = stored.clone();
                for field in ["spec", "data"] {
                    if !object[field].is_null() {
                        updated[field] = object[field].clone();
                    }
                }
                copy_metadata(&mut updated, &object);
                if sorted(&updated) == sorted(&stored) {
                    "unchanged"
                } else {
                    if let Some(slot) = ctx.world.find_mut(&kind, &namespace, &name) {
                        *slot = updated;
                    }
                    "configured"
                }
            }
        };
        printed.push((resource, namespace.clone(), name.clone()));
        out.push_str(&format!("{label} {verb}\n"));
    }
    match args.value("--output") {
        None => Reply::ok(out),
        Some("name") => {
            Reply::ok(printed.iter().map(|(r, _, n)| format!("{}/{n}\n", qualified(*r))).collect::<String>())
        }
        Some(_) => {
            let items: Vec<Value> = printed
                .iter()
                .filter_map(|(r, ns, n)| {
                    objects_of(ctx, *r, Some(ns)).into_iter().find(|o| text(o, "/metadata/name") == n)
                })
                .collect();
            let resource = printed.first().map(|p| p.0).unwrap_or(RESOURCES[0].1);
            match print(ctx, resource, items, printed.len() == 1, args) {
                Ok(out) => Reply::ok(out),
                Err(reply) => reply,
            }
        }
    }
}

fn delete(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let mut wanted: Vec<(Resource, String, String)> = Vec::new();
    if let Some(source) = args.value("--filename") {
        let documents = match read_manifests(source) {
            Ok(d) => d,
            Err(reply) => return reply,
        };
        for document in documents {
            let Some(resource) = resource_by_kind(text(&document, "/kind")) else {
                return Reply::fail(
                    1,
                    format!("error: resource mapping not found for kind \"{}\"", text(&document, "/kind")),
                );
            };
            let namespace = match object_namespace(&document, resource, args) {
                Ok(ns) => ns,
                Err(reply) => return reply,
            };
            wanted.push((resource, namespace, text(&document, "/metadata/name").to_owned()));
        }
    } else {
        let (resource, names) = match targets(&args.positionals) {
            Ok(t) => t,
            Err(_) if args.positionals.is_empty() => {
                return Reply::fail(1, "error: You must provide one or more resources by argument or filename.");
            }
            Err(reply) => return reply,
        };
        if names.is_empty() {
            return Reply::fail(1, "error: resource(s) were provided, but no name was specified");
        }
        let namespace = if resource.namespaced { namespace(args).to_owned() } else { String::new() };
        wanted.extend(names.into_iter().map(|n| (resource, namespace.clone(), n)));
    }
    let mut reply = Reply::ok("");
    for (resource, namespace, name) in wanted {
        if !["Service", "Ingress", "NetworkPolicy", "ConfigMap"].contains(&resource.kind) {
            return Reply::fail(1, format!("azsim: deleting {} is not simulated", resource.plural));
        }
        match ctx.world.remove(resource.kind, &namespace, &name) {
            Some(_) => reply.stdout.push_str(&format!("{} \"{name}\" deleted\n", qualified(resource))),
            None if args.switch("--ignore-not-found") => {}
            None => {
                reply.stderr.push_str(&format!("{}\n", not_found(resource, &name)));
                reply.code = 1;
            }
        }
    }
    reply
}

/// RFC 7386 merge patch; `strategic` also merges lists of ports by `port` (the Service's patch strategy).
fn merge_patch(target: &mut Value, patch: &Value, strategic: bool) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (key, value) in fields {
                if value.is_null() {
                    target.as_object_mut().map(|t| t.remove(key));
                } else if strategic && key == "ports" && value.is_array() && target[key].is_array() {
                    for port in value.as_array().into_iter().flatten() {
                        let existing = target[key]
                            .as_array_mut()
                            .and_then(|ports| ports.iter_mut().find(|p| p["port"] == port["port"]));
                        match existing {
                            Some(slot) => merge_patch(slot, port, strategic),
                            None => {
                                if let Some(ports) = target[key].as_array_mut() {
                                    ports.push(port.clone());
                                }
                            }
                        }
                    }
                } else {
                    merge_patch(&mut target[key], value, strategic);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// RFC 6902 JSON patch (add, replace, remove, test).
fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    for operation in operations.as_array().ok_or("the patch must be a JSON array of operations")? {
        let op = operation["op"].as_str().unwrap_or_default();
        let path = operation["path"].as_str().unwrap_or_default();
        let (parent_path, last) = path.rsplit_once('/').ok_or(format!("invalid path {path:?}"))?;
        let last = last.replace("~1", "/").replace("~0", "~");
        match op {
            "test" => {
                if target.pointer(path) != Some(&operation["value"]) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            "remove" | "replace" | "add" => {
                let parent = target.pointer_mut(parent_path).ok_or(format!("doc is missing path: \"{path}\""))?;
                match parent {
                    Value::Object(map) => {
                        if op != "add" && !map.contains_key(&last) {
                            return Err(format!("doc is missing key: {path}"));
                        }
                        if op == "remove" {
                            map.remove(&last);
                        } else {
                            map.insert(last, operation["value"].clone());
                        }
                    }
                    Value::Array(items) => {
                        let index = if last == "-" {
                            items.len()
                        } else {
                            last.parse().map_err(|_| format!("invalid index in {path}"))?
                        };
                        match op {
                            "remove" if index < items.len() => {
                                items.remove(index);
                            }
                            "replace" if index < items.len() => items[index] = operation["value"].clone(),
                            "add" if index <= items.len() => items.insert(index, operation["value"].clone()),
                            _ => return Err(format!("index out of range in {path}")),
                        }
                    }
                    _ => return Err(format!("doc is missing path: \"{path}\"")),
                }
            }
            other => return Err(format!("unsupported operation {other:?}")),
        }
    }
    Ok(())
}

fn patch(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let (resource, names) = match targets(&args.positionals) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let [name] = names.as_slice() else {
        return Reply::fail(1, "error: exactly one NAME is required, got ".to_owned() + &names.len().to_string());
    };
    let Some(patch_text) = args.value("--patch") else {
        return Reply::fail(1, "error: must specify --patch or --patch-file containing the contents of the patch");
    };
    let patch_type = args.value("--type").unwrap_or("strategic");
    if !["strategic", "merge", "json"].contains(&patch_type) {
        return Reply::fail(1, format!("error: --type must be one of [json merge strategic], not \"{patch_type}\""));
    }
    let patch: Value = match serde_saphyr::from_str(patch_text) {
        Ok(p) => p,
        Err(e) => return Reply::fail(1, format!("error: unable to parse \"{patch_text}\": {e}")),
    };
    let namespace = if resource.namespaced { namespace(args).to_owned() } else { String::new() };
    let Some(stored) = ctx.world.find(resource.kind, &namespace, name).cloned() else {
        return Reply::fail(1, not_found(resource, name));
    };
    if resource.kind != "Service" {
        return Reply::fail(1, format!("azsim: patching {} is not simulated", resource.plural));
    }
    let mut updated = stored.clone();
    if patch_type == "json" {
        if let Err(message) = json_patch(&mut updated, &patch) {
            return Reply::fail(1, format!("The request is invalid: {message}"));
        }
    } else {
        merge_patch(&mut updated, &patch, patch_type == "strategic");
    }
    let label = format!("{}/{name}", qualified(resource));
    match store_service_update(ctx, &stored, updated) {
        Ok(true) => {}
        Ok(false) => return Reply::ok(format!("{label} patched (no change)\n")),
        Err(reply) => return reply,
    }
    match args.value("--output") {
        Some(_) => {
            let items = objects_of(ctx, resource, Some(&namespace))
                .into_iter()
                .filter(|o| text(o, "/metadata/name") == name)
                .collect();
            match print(ctx, resource, items, true, args) {
                Ok(out) => Reply::ok(out),
                Err(reply) => reply,
            }
        }
        None => Reply::ok(format!("{label} patched\n")),
    }
}

fn wait(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let Some(condition) = args.value("--for") else {
        return Reply::fail(
            1,
            "error: --for must be set to one of: delete, condition=condition-name[=condition-value] or jsonpath='{JSONPath expression}'=[JSONPath value]",
        );
    };
    let (resource, names) = match targets(&args.positionals) {
        Ok(t) => t,
        Err(reply) => return reply,
    };
    let namespace = if resource.namespaced { Some(namespace(args).to_owned()) } else { None };
    let selector = args.value("--selector").unwrap_or_default().to_owned();
    let now = ctx.now;
    if resource.kind == "Service" {
        // Waiting long enough lets every pending allocation that has an address finish.
        let wanted = names.clone();
        let ns = namespace.clone();
        ctx.world.settle_services(
            |n, name| ns.as_deref().is_none_or(|s| s == n) && (wanted.is_empty() || wanted.iter().any(|w| w == name)),
            now,
        );
    }
    let mut candidates = objects_of(ctx, resource, namespace.as_deref());
    if !names.is_empty() {
        for name in &names {
            if !candidates.iter().any(|c| text(c, "/metadata/name") == name) {
                return Reply::fail(1, not_found(resource, name));
            }
        }
        candidates.retain(|c| names.iter().any(|n| n == text(c, "/metadata/name")));
    } else if !selector.is_empty() {
        let mut kept = Vec::new();
        for candidate in candidates {
            match label_matches(&selector, &candidate["metadata"]["labels"]) {
                Ok(true) => kept.push(candidate),
                Ok(false) => {}
                Err(reply) => return reply,
            }
        }
        candidates = kept;
    } else if !args.switch("--all") {
        return Reply::fail(1, "error: resource(s) were provided, but no name was specified");
    }
    if candidates.is_empty() {
        return Reply::fail(1, "error: no matching resources found");
    }
    let mut reply = Reply::ok("");
    for candidate in candidates {
        let met =
            if let Some(wanted) = condition.strip_prefix("condition=") {
                let (kind, value) = wanted.split_once('=').unwrap_or((wanted, "True"));
                candidate["status"]["conditions"].as_array().into_iter().flatten().any(|c| {
                    text(c, "/type").eq_ignore_ascii_case(kind) && text(c, "/status").eq_ignore_ascii_case(value)
                })
            } else if let Some(expression) = condition.strip_prefix("jsonpath=") {
                let expression = expression.trim_matches('\'');
                let (path, value) = match expression.rfind('}') {
                    Some(end) => (&expression[..=end], expression[end + 1..].strip_prefix('=')),
                    None => return Reply::fail(1, format!("error: unrecognized condition: \"{condition}\"")),
                };
                match jsonpath(path, &candidate) {
                    Ok(found) => value.map_or(!found.is_empty() && found != "[]" && found != "{}", |v| found == v),
                    Err(e) => return Reply::fail(1, format!("error: {e}")),
                }
            } else if condition == "delete" {
                return Reply::fail(
                    1,
                    "azsim: --for=delete is not simulated: `kubectl delete` returns once the object is gone",
                );
            } else {
                return Reply::fail(1, format!("error: unrecognized condition: \"{condition}\""));
            };
        let label = format!("{}/{}", resource.kind.to_lowercase(), text(&candidate, "/metadata/name"));
        if met {
            reply.stdout.push_str(&format!("{label} condition met\n"));
        } else {
            let message = format!(
                "error: timed out waiting for the condition on {}/{}",
                resource.plural,
                text(&candidate, "/metadata/name")
            );
            return Reply { stdout: reply.stdout, ..Reply::fail(1, message) };
        }
    }
    reply
}

fn create_namespace(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let name = args.positionals[0].clone();
    if ctx.world.namespace_exists(&name) {
        return Reply::fail(1, format!("Error from server (AlreadyExists): namespaces \"{name}\" already exists"));
    }
    let now = ctx.now;
    ctx.world.ensure_namespace(&name, now);
    Reply::ok(format!("namespace/{name} created\n"))
}

fn version(ctx: &mut Ctx<'_>, args: &Args) -> Reply {
    let server = format!("v{}", ctx.world.scenario.cluster.kubernetes_version);
    let info = |v: &str| json!({"gitVersion": v, "major": "1", "minor": v.split('.').nth(1).unwrap_or_default(), "platform": "linux/amd64"});
    let mut document = json!({"clientVersion": info(&server), "kustomizeVersion": "v5.4.2"});
    if !args.switch("--client") {
        document["serverVersion"] = info(&server);
    }
    match args.value("--output") {
        Some("json") => Reply::ok(format!("{}\n", json_indented(&sorted(&document), 2))),
        Some("yaml") => Reply::ok(yaml(&document)),
        Some(other) => Reply::fail(1, format!("error: --output must be 'yaml' or 'json', not \"{other}\"")),
        None => {
            let mut out = format!("Client Version: {server}\nKustomize Version: v5.4.2\n");
            if !args.switch("--client") {
                out.push_str(&format!("Server Version: {server}\n"));
            }
            Reply::ok(out)
        }
    }
}

/// The kubectl part of `azsim commands`.
pub fn describe() -> Vec<(String, &'static str)> {
    COMMANDS
        .iter()
        .map(|c| (format!("{} {}", Tool::Kubectl.name(), crate::describe_command(c.path, c.flags)), c.summary))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386_and_ports_merge_by_port() {
        let mut service =
            json!({"spec": {"externalTrafficPolicy": "Local", "ports": [{"port": 80, "nodePort": 1}], "x": 1}});
        merge_patch(&mut service, &json!({"spec": {"externalTrafficPolicy": "Cluster", "x": null}}), false);
        assert_eq!(
            service,
            json!({"spec": {"externalTrafficPolicy": "Cluster", "ports": [{"port": 80, "nodePort": 1}]}})
        );
        merge_patch(&mut service, &json!({"spec": {"ports": [{"port": 80, "appProtocol": "http"}]}}), true);
        assert_eq!(service["spec"]["ports"], json!([{"port": 80, "nodePort": 1, "appProtocol": "http"}]));
    }

    #[test]
    fn json_patch_operations() {
        let mut value = json!({"spec": {"a": 1, "list": [1, 2]}});
        json_patch(&mut value, &json!([{"op": "replace", "path": "/spec/a", "value": 2}, {"op": "remove", "path": "/spec/list/0"}, {"op": "add", "path": "/spec/b", "value": true}]))
            .expect("applies");
        assert_eq!(value, json!({"spec": {"a": 2, "list": [2], "b": true}}));
        assert!(json_patch(&mut value, &json!([{"op": "remove", "path": "/spec/zzz"}])).is_err());
    }

    #[test]
    fn selectors() {
        let labels = json!({"app": "web", "tier": "front"});
        assert_eq!(label_matches("app=web,tier!=back", &labels).ok(), Some(true));
        assert_eq!(label_matches("app==db", &labels).ok(), Some(false));
        assert_eq!(label_matches("tier", &labels).ok(), Some(true));
        assert_eq!(label_matches("!tier", &labels).ok(), Some(false));
    }
}
