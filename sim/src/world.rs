//! The simulated world: the scenario, the Kubernetes objects, and everything the
//! CLIs have changed. Azure's view of the load balancer, public IPs and the
//! AKS-managed NSG rules is derived from the LoadBalancer Services on every
//! read, the way cloud-provider-azure reconciles them; so a deleted Service's
//! frontend, rules, probe and public IP disappear, and a recreated Service gets
//! new ones (named after its new UID) once its address is assigned.
//!
//! Address life cycle of a LoadBalancer Service:
//! created → pending (`pending_polls` reads show no IP) → assigned (the next
//! unused address of its role's pool, or its static public IP) → released on delete.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::scenario::{Role, Scenario};

/// The whole mutable state, saved as JSON between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    pub scenario: Scenario,
    /// Invocations so far (the simulated clock for names and counters).
    pub invocations: u64,
    /// Source of UIDs, cluster IPs, node ports and resource versions.
    pub serial: u64,
    pub created_at: String,
    /// Every address ever handed out; none is handed out twice.
    pub used_addresses: Vec<String>,
    /// Kubernetes objects (Namespace, Node, Pod, Service, Ingress, NetworkPolicy, ConfigMap), as the API server holds them.
    pub objects: Vec<Value>,
    pub events: Vec<Value>,
    pub allocations: Vec<Allocation>,
    /// NSG rules created with `az network nsg rule create`, by NSG name.
    pub custom_rules: Vec<CustomRule>,
    pub static_ips: Vec<StaticIp>,
    pub helm_repos: Vec<HelmRepo>,
    pub helm_repos_updated: bool,
    pub releases: Vec<Release>,
    pub captures: Vec<CaptureSession>,
    pub blobs: Vec<Blob>,
    pub tickets: Vec<Value>,
    pub vmss_extensions: Vec<String>,
}

/// The address of one LoadBalancer Service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Allocation {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// None: no address is left in the pool (or the static IP does not exist): pending for ever.
    pub address: Option<String>,
    pub pending_polls: u32,
    /// The name of a static public IP the Service references (annotation `azure-pip-name`).
    pub static_ip: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomRule {
    pub nsg: String,
    pub rule: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StaticIp {
    pub name: String,
    pub resource_group: String,
    pub address: String,
    pub sku: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelmRepo {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub revision: u32,
    pub status: String,
    pub chart: String,
    pub chart_version: String,
    pub app_version: String,
    pub values: Value,
    pub first_deployed: String,
    pub last_deployed: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptureSession {
    pub name: String,
    pub target: String,
    pub target_type: String,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub storage_id: Option<String>,
    pub storage_path: Option<String>,
    pub file_path: Option<String>,
    pub filters: Value,
    pub time_limit: u64,
    pub capture_limit: u64,
    pub capture_size: u64,
    pub started_at: String,
    pub status_polls: u32,
    pub stopped: bool,
}

/// A blob in the simulated storage account; its bytes are a file under the state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Blob {
    pub url: String,
    pub file: String,
}

/// RFC 3339 with a `Z`, to the second (Kubernetes timestamps).
pub fn k8s_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 with a `Z` and 7 fractional digits (Azure timestamps).
pub fn azure_time(at: DateTime<Utc>) -> String {
    format!("{}.{:07}Z", at.format("%Y-%m-%dT%H:%M:%S"), at.timestamp_subsec_nanos() / 100)
}

/// The `kind/namespace/name` key of an object.
pub fn object_key(object: &Value) -> (String, String, String) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&object["kind"]), text(&object["metadata"]["namespace"]), text(&object["metadata"]["name"]))
}

/// A string field of a JSON value, or "".
pub fn text<'v>(value: &'v Value, pointer: &str) -> &'v str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// 32 hex digits derived from a text (stable names such as `k8s-azure-lb_allow_IPv4_<hash>`).
pub fn hash_hex(input: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in input.bytes() {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut hex = String::new();
    while hex.len() < 32 {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 29;
        hex.push_str(&format!("{h:016x}"));
    }
    hex.truncate(32);
    hex
}

/// The frontend IP configuration name cloud-provider-azure gives a Service: `a` + UID without dashes, 32 characters.
pub fn frontend_name(uid: &str) -> String {
    let mut name = format!("a{}", uid.replace('-', ""));
    name.truncate(32);
    name
}

/// A Service port as the load balancer sees it.
#[derive(Debug, Clone)]
pub struct LbPort {
    pub port: u64,
    pub node_port: u64,
    pub app_protocol: String,
}

/// A LoadBalancer Service that has its address: one frontend of the LB.
#[derive(Debug, Clone)]
pub struct LbService {
    pub namespace: String,
    pub name: String,
    pub frontend: String,
    pub address: String,
    pub pip_name: String,
    pub pip_resource_group: String,
    pub local: bool,
    pub health_check_node_port: u64,
    pub probe_path: Option<String>,
    pub source_ranges: Vec<String>,
    pub ports: Vec<LbPort>,
}

impl World {
    /// The initial world of a scenario: the cluster as the incident report describes it.
    pub fn new(scenario: Scenario, now: DateTime<Utc>) -> World {
        let mut world = World {
            scenario,
            invocations: 0,
            serial: 1000,
            created_at: k8s_time(now),
            used_addresses: Vec::new(),
            objects: Vec::new(),
            events: Vec::new(),
            allocations: Vec::new(),
            custom_rules: Vec::new(),
            static_ips: Vec::new(),
            helm_repos: Vec::new(),
            helm_repos_updated: false,
            releases: Vec::new(),
            captures: Vec::new(),
            blobs: Vec::new(),
            tickets: Vec::new(),
            vmss_extensions: vec!["vmssCSE".to_owned(), "AKSLinuxBilling".to_owned()],
        };
        world.seed(now);
        world
    }

    fn seed(&mut self, now: DateTime<Utc>) {
        let s = self.scenario.clone();
        for namespace in ["default", "kube-system", "kube-public", "kube-node-lease", s.frontend.namespace.as_str()] {
            self.put_namespace(namespace, now);
        }
        let cluster = &s.cluster;
        let provider_id = format!(
            "azure:///subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}/virtualMachines/0",
            s.subscription.id,
            cluster.node_resource_group.to_lowercase(),
            cluster.vmss
        );
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": cluster.node_name,
                "uid": self.new_uid(),
                "resourceVersion": self.next_version(),
                "creationTimestamp": self.created_at,
                "labels": {
                    "agentpool": cluster.node_pool,
                    "kubernetes.azure.com/agentpool": cluster.node_pool,
                    "kubernetes.azure.com/cluster": cluster.node_resource_group,
                    "kubernetes.azure.com/mode": "system",
                    "kubernetes.io/hostname": cluster.node_name,
                    "kubernetes.io/os": "linux",
                    "node.kubernetes.io/instance-type": cluster.vm_size,
                    "topology.kubernetes.io/region": cluster.location,
                    "topology.kubernetes.io/zone": "0"
                }
            },
            "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"], "providerID": provider_id},
            "status": {
                "addresses": [
                    {"address": cluster.node_ip, "type": "InternalIP"},
                    {"address": cluster.node_name, "type": "Hostname"}
                ],
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}
                ],
                "nodeInfo": {"kubeletVersion": format!("v{}", cluster.kubernetes_version), "kubeProxyVersion": format!("v{}", cluster.kubernetes_version), "osImage": "Ubuntu 22.04.5 LTS", "containerRuntimeVersion": "containerd://1.7.27-1", "operatingSystem": "linux", "architecture": "amd64"}
            }
        });
        self.objects.push(node);
        let f = &s.frontend;
        let app = |name: &str| json!({"app": name});
        for (index, suffix) in ["7d9c6b5f4-2xk8p", "7d9c6b5f4-9lq4z"].iter().enumerate() {
            let pod = self.pod(
                &f.namespace,
                &format!("{}-{suffix}", f.name),
                app(&f.name),
                &format!("10.244.0.{}", 12 + index),
                "mini-xdr/frontend:1.4.2",
                &[("http", f.target_port_http), ("https", f.target_port_https)],
                now,
            );
            self.objects.push(pod);
        }
        let backend = self.pod(
            &f.namespace,
            "mini-xdr-backend-5f7b8c9d6-wq2rt",
            app("mini-xdr-backend"),
            "10.244.0.21",
            "mini-xdr/backend:1.4.2",
            &[("http", 8000)],
            now,
        );
        self.objects.push(backend);
        let kube_proxy = self.pod(
            "kube-system",
            "kube-proxy-7xk2q",
            json!({"component": "kube-proxy"}),
            &cluster.node_ip,
            "mcr.microsoft.com/oss/kubernetes/kube-proxy:v1.31.5",
            &[],
            now,
        );
        self.objects.push(kube_proxy);
        let kubernetes = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}]}
        });
        self.create_service(kubernetes, None, now);
        let dns = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.10", "selector": {"k8s-app": "kube-dns"},
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}, {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}
        });
        self.create_service(dns, None, now);
        let backend_service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "mini-xdr-backend", "namespace": f.namespace},
            "spec": {"type": "ClusterIP", "selector": {"app": "mini-xdr-backend"},
                     "ports": [{"name": "http", "port": 8000, "protocol": "TCP", "targetPort": 8000}]}
        });
        self.create_service(backend_service, None, now);
        let mut frontend = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {
                "name": f.name, "namespace": f.namespace, "uid": f.uid,
                "labels": {"app": f.name}
            },
            "spec": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": f.external_traffic_policy,
                "selector": {"app": f.name},
                "ports": [
                    {"name": "http", "port": f.port_http, "protocol": "TCP", "targetPort": f.target_port_http, "nodePort": f.node_port_http},
                    {"name": "https", "port": f.port_https, "protocol": "TCP", "targetPort": f.target_port_https, "nodePort": f.node_port_https}
                ]
            }
        });
        if f.external_traffic_policy == "Local" {
            frontend["spec"]["healthCheckNodePort"] = json!(f.health_check_node_port);
        }
        self.create_service(frontend, Some((f.role, 0)), now);
    }

    fn put_namespace(&mut self, name: &str, _now: DateTime<Utc>) {
        let namespace = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": self.new_uid(), "resourceVersion": self.next_version(),
                         "creationTimestamp": self.created_at, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}
        });
        self.objects.push(namespace);
    }

    /// Creates a namespace unless it exists.
    pub fn ensure_namespace(&mut self, name: &str, now: DateTime<Utc>) {
        if !self.namespace_exists(name) {
            self.put_namespace(name, now);
        }
    }

    pub fn namespace_exists(&self, name: &str) -> bool {
        self.find("Namespace", "", name).is_some()
    }

    #[allow(clippy::too_many_arguments)]
    pub fn pod(
        &mut self,
        namespace: &str,
        name: &str,
        labels: Value,
        ip: &str,
        image: &str,
        ports: &[(&str, u16)],
        now: DateTime<Utc>,
    ) -> Value {
        let node = self.scenario.cluster.node_name.clone();
        let host_ip = self.scenario.cluster.node_ip.clone();
        let container = name.rsplitn(3, '-').last().unwrap_or(name).to_owned();
        let ports: Vec<Value> =
            ports.iter().map(|(n, p)| json!({"name": n, "containerPort": p, "protocol": "TCP"})).collect();
        let started = k8s_time(now);
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": self.new_uid(), "resourceVersion": self.next_version(),
                         "creationTimestamp": started, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": container, "image": image, "ports": ports}]},
            "status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": host_ip, "startTime": started,
                "conditions": [
                    {"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"},
                    {"type": "ContainersReady", "status": "True"}, {"type": "PodScheduled", "status": "True"}
                ],
                "containerStatuses": [{"name": container, "image": image, "ready": true, "started": true, "restartCount": 0,
                                       "state": {"running": {"startedAt": started}}}]
            }
        })
    }

    /// A fresh, deterministic UID.
    pub fn new_uid(&mut self) -> String {
        self.serial += 1;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ self.serial.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut hex = String::new();
        while hex.len() < 32 {
            h ^= h >> 33;
            h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 29;
            hex.push_str(&format!("{h:016x}"));
        }
        format!("{}-{}-4{}-8{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
    }

    pub fn next_version(&mut self) -> String {
        self.serial += 1;
        self.serial.to_string()
    }

    pub fn find(&self, kind: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.iter().find(|o| object_key(o) == (kind.to_owned(), namespace.to_owned(), name.to_owned()))
    }

    pub fn find_mut(&mut self, kind: &str, namespace: &str, name: &str) -> Option<&mut Value> {
        self.objects.iter_mut().find(|o| object_key(o) == (kind.to_owned(), namespace.to_owned(), name.to_owned()))
    }

    /// Objects of a kind, in one namespace or all.
    pub fn list(&self, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|o| o["kind"] == kind && namespace.is_none_or(|ns| text(o, "/metadata/namespace") == ns))
            .cloned()
            .collect()
    }

    pub fn remove(&mut self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let position = self
            .objects
            .iter()
            .position(|o| object_key(o) == (kind.to_owned(), namespace.to_owned(), name.to_owned()))?;
        let removed = self.objects.remove(position);
        if kind == "Service" {
            self.allocations.retain(|a| !(a.namespace == namespace && a.name == name));
        }
        Some(removed)
    }

    fn used_ports(&self) -> Vec<u64> {
        let mut used = Vec::new();
        for service in self.objects.iter().filter(|o| o["kind"] == "Service") {
            for port in service["spec"]["ports"].as_array().into_iter().flatten() {
                used.extend(port["nodePort"].as_u64());
            }
            used.extend(service["spec"]["healthCheckNodePort"].as_u64());
        }
        used
    }

    /// A free node port (also used for health-check node ports).
    pub fn next_node_port(&mut self) -> u64 {
        let used = self.used_ports();
        let mut candidate = 30000 + (self.serial * 7919) % 2700;
        while used.contains(&candidate) {
            candidate += 1;
        }
        self.serial += 1;
        candidate
    }

    fn next_cluster_ip(&mut self) -> String {
        let used: Vec<String> =
            self.list("Service", None).iter().map(|s| text(s, "/spec/clusterIP").to_owned()).collect();
        loop {
            self.serial += 1;
            let candidate = format!("10.0.{}.{}", (self.serial / 250) % 250 + 1, self.serial % 250 + 2);
            if !used.contains(&candidate) {
                return candidate;
            }
        }
    }

    /// Creates a Service as the API server does (defaults, cluster IP, node ports), records an
    /// event, and for type LoadBalancer starts the address allocation (`role` and pending reads).
    pub fn create_service(&mut self, mut service: Value, lb: Option<(Role, u32)>, now: DateTime<Utc>) -> Value {
        let namespace = text(&service, "/metadata/namespace").to_owned();
        let name = text(&service, "/metadata/name").to_owned();
        if text(&service, "/metadata/uid").is_empty() {
            service["metadata"]["uid"] = json!(self.new_uid());
        }
        service["metadata"]["resourceVersion"] = json!(self.next_version());
        service["metadata"]["creationTimestamp"] = json!(k8s_time(now));
        let spec = service["spec"].as_object_mut().map(std::mem::take).unwrap_or_default();
        let mut spec = Value::Object(spec);
        if spec["type"].is_null() {
            spec["type"] = json!("ClusterIP");
        }
        let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_owned();
        if spec["clusterIP"].is_null() {
            spec["clusterIP"] = json!(self.next_cluster_ip());
        }
        spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
        spec["internalTrafficPolicy"] = spec.get("internalTrafficPolicy").cloned().unwrap_or(json!("Cluster"));
        if spec["sessionAffinity"].is_null() {
            spec["sessionAffinity"] = json!("None");
        }
        if let Some(ports) = spec["ports"].as_array_mut() {
            for port in ports.iter_mut() {
                if port["protocol"].is_null() {
                    port["protocol"] = json!("TCP");
                }
                if port["targetPort"].is_null() {
                    port["targetPort"] = port["port"].clone();
                }
            }
        }
        if kind == "LoadBalancer" || kind == "NodePort" {
            let count = spec["ports"].as_array().map_or(0, Vec::len);
            for index in 0..count {
                if spec["ports"][index]["nodePort"].is_null() {
                    let port = self.next_node_port();
                    spec["ports"][index]["nodePort"] = json!(port);
                }
            }
            if spec["externalTrafficPolicy"].is_null() {
                spec["externalTrafficPolicy"] = json!("Cluster");
            }
            if kind == "LoadBalancer" {
                spec["allocateLoadBalancerNodePorts"] = json!(true);
            }
            if spec["externalTrafficPolicy"] == "Local" && spec["healthCheckNodePort"].is_null() {
                let port = self.next_node_port();
                spec["healthCheckNodePort"] = json!(port);
            }
        }
        service["spec"] = spec;
        service["status"] = json!({"loadBalancer": {}});
        let uid = text(&service, "/metadata/uid").to_owned();
        self.objects.push(service.clone());
        if kind == "LoadBalancer" {
            let (role, pending) =
                lb.unwrap_or((self.scenario.load_balancer.other_role, self.scenario.load_balancer.other_pending_polls));
            self.event(&namespace, &name, &uid, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer", now);
            let static_ip = service["metadata"]["annotations"]["service.beta.kubernetes.io/azure-pip-name"]
                .as_str()
                .map(str::to_owned);
            let address = match &static_ip {
                Some(pip) => self.static_ips.iter().find(|s| &s.name == pip).map(|s| s.address.clone()),
                None => self.take_address(role),
            };
            if address.is_none() {
                let message = match &static_ip {
                    Some(pip) => format!("Error syncing load balancer: failed to ensure load balancer: user supplied IP Address {pip} was not found"),
                    None => "Error syncing load balancer: failed to ensure load balancer: the simulator's address pool is exhausted".to_owned(),
                };
                self.event(&namespace, &name, &uid, "Warning", "SyncLoadBalancerFailed", &message, now);
            }
            self.allocations.push(Allocation { namespace, name, uid, address, pending_polls: pending, static_ip });
            self.sync_load_balancers(now);
        }
        self.find("Service", text(&service, "/metadata/namespace"), text(&service, "/metadata/name"))
            .cloned()
            .unwrap_or(service)
    }

    /// The next unused address of a role's pool, marked used.
    pub fn take_address(&mut self, role: Role) -> Option<String> {
        let address = self.scenario.pool(role).iter().find(|a| !self.used_addresses.contains(a))?.clone();
        self.used_addresses.push(address.clone());
        Some(address)
    }

    /// Appends a Service event.
    #[allow(clippy::too_many_arguments)]
    pub fn event(
        &mut self,
        namespace: &str,
        service: &str,
        uid: &str,
        kind: &str,
        reason: &str,
        message: &str,
        now: DateTime<Utc>,
    ) {
        self.serial += 1;
        let at = k8s_time(now);
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{service}.{:016x}", self.serial * 0x1f3d_5b79), "namespace": namespace,
                         "uid": self.new_uid(), "resourceVersion": self.next_version(), "creationTimestamp": at},
            "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": service, "namespace": namespace, "uid": uid},
            "reason": reason, "message": message, "type": kind, "count": 1,
            "firstTimestamp": at, "lastTimestamp": at,
            "source": {"component": "service-controller"}, "reportingComponent": "service-controller", "reportingInstance": ""
        });
        self.events.push(event);
    }

    /// One read of the given LoadBalancer Services: each pending one comes one read closer to its address.
    /// This read still sees the state before it: a Service created with `pending_polls: 2` shows no
    /// address to the first two reads and its address to the third.
    pub fn poll_services(&mut self, matches: impl Fn(&str, &str) -> bool, now: DateTime<Utc>) {
        self.sync_load_balancers(now);
        for allocation in self.allocations.iter_mut().filter(|a| matches(&a.namespace, &a.name)) {
            allocation.pending_polls = allocation.pending_polls.saturating_sub(1);
        }
    }

    /// Finishes the allocation of the given Services at once (a `kubectl wait` / `helm --wait` that waits long enough).
    pub fn settle_services(&mut self, matches: impl Fn(&str, &str) -> bool, now: DateTime<Utc>) {
        for allocation in self.allocations.iter_mut().filter(|a| matches(&a.namespace, &a.name)) {
            allocation.pending_polls = 0;
        }
        self.sync_load_balancers(now);
    }

    /// Writes each assigned address into its Service's `status.loadBalancer`.
    pub fn sync_load_balancers(&mut self, now: DateTime<Utc>) {
        let ready: Vec<(String, String, String, String)> = self
            .allocations
            .iter()
            .filter(|a| a.pending_polls == 0)
            .filter_map(|a| Some((a.namespace.clone(), a.name.clone(), a.uid.clone(), a.address.clone()?)))
            .collect();
        for (namespace, name, uid, address) in ready {
            let Some(service) = self.find_mut("Service", &namespace, &name) else { continue };
            if service["status"]["loadBalancer"]["ingress"][0]["ip"] == address.as_str() {
                continue;
            }
            service["status"] = json!({"loadBalancer": {"ingress": [{"ip": address, "ipMode": "VIP"}]}});
            self.event(&namespace, &name, &uid, "Normal", "EnsuredLoadBalancer", "Ensured load balancer", now);
        }
    }

    /// The Services that have a frontend on the load balancer.
    pub fn lb_services(&self) -> Vec<LbService> {
        let mut out = Vec::new();
        for service in self.objects.iter().filter(|o| o["kind"] == "Service" && o["spec"]["type"] == "LoadBalancer") {
            let Some(address) = service["status"]["loadBalancer"]["ingress"][0]["ip"].as_str() else { continue };
            let namespace = text(service, "/metadata/namespace").to_owned();
            let name = text(service, "/metadata/name").to_owned();
            let frontend = frontend_name(text(service, "/metadata/uid"));
            let static_ip = self.static_ips.iter().find(|s| s.address == address);
            let (pip_name, pip_resource_group) = match static_ip {
                Some(pip) => (pip.name.clone(), pip.resource_group.clone()),
                None => (format!("kubernetes-{frontend}"), self.scenario.cluster.node_resource_group.clone()),
            };
            let annotations = &service["metadata"]["annotations"];
            out.push(LbService {
                namespace,
                name,
                frontend,
                address: address.to_owned(),
                pip_name,
                pip_resource_group,
                local: service["spec"]["externalTrafficPolicy"] == "Local",
                health_check_node_port: service["spec"]["healthCheckNodePort"].as_u64().unwrap_or(0),
                probe_path: annotations["service.beta.kubernetes.io/azure-load-balancer-health-probe-request-path"]
                    .as_str()
                    .map(str::to_owned),
                source_ranges: service["spec"]["loadBalancerSourceRanges"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
                ports: service["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| LbPort {
                        port: p["port"].as_u64().unwrap_or(0),
                        node_port: p["nodePort"].as_u64().unwrap_or(0),
                        app_protocol: p["appProtocol"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect(),
            });
        }
        out
    }

    /// `/subscriptions/SUB/resourceGroups/RG/providers/TYPE/NAME`.
    pub fn resource_id(&self, resource_group: &str, provider_type: &str, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{resource_group}/providers/{provider_type}/{name}",
            self.scenario.subscription.id
        )
    }

    pub fn node_rg(&self) -> &str {
        &self.scenario.cluster.node_resource_group
    }

    pub fn cluster_rg(&self) -> &str {
        &self.scenario.cluster.resource_group
    }

    fn lb_id(&self) -> String {
        self.resource_id(self.node_rg(), "Microsoft.Network/loadBalancers", "kubernetes")
    }

    /// The outbound frontend's name (a GUID, as AKS names it).
    fn outbound_frontend(&self) -> String {
        let h = hash_hex(&format!("outbound/{}", self.scenario.cluster.name));
        format!("{}-{}-4{}-9{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
    }

    pub fn vmss_id(&self) -> String {
        self.resource_id(self.node_rg(), "Microsoft.Compute/virtualMachineScaleSets", &self.scenario.cluster.vmss)
    }

    pub fn nic_id(&self) -> String {
        format!("{}/virtualMachines/0/networkInterfaces/{}", self.vmss_id(), self.scenario.cluster.vmss)
    }

    pub fn ipconfig_id(&self) -> String {
        format!("{}/ipConfigurations/ipconfig1", self.nic_id())
    }

    pub fn subnet_id(&self) -> String {
        format!(
            "{}/subnets/{}",
            self.resource_id(self.cluster_rg(), "Microsoft.Network/virtualNetworks", &self.scenario.network.vnet),
            self.scenario.network.subnet
        )
    }

    pub fn nsg_id(&self, name: &str) -> String {
        let rg = if name == self.scenario.network.nic_nsg { self.node_rg() } else { self.cluster_rg() };
        self.resource_id(rg, "Microsoft.Network/networkSecurityGroups", name)
    }

    /// `az network lb show -g NRG -n kubernetes`, flattened as the CLI prints it.
    pub fn load_balancer(&self) -> Value {
        let lb_id = self.lb_id();
        let child =
            |kind: &str, name: &str| json!({"id": format!("{lb_id}/{kind}/{name}"), "resourceGroup": self.node_rg()});
        let outbound = self.outbound_frontend();
        let mut frontends = vec![json!({
            "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
            "id": format!("{lb_id}/frontendIPConfigurations/{outbound}"),
            "name": outbound,
            "outboundRules": [child("outboundRules", "aksOutboundRule")],
            "privateIPAllocationMethod": "Dynamic",
            "provisioningState": "Succeeded",
            "publicIPAddress": {"id": self.resource_id(self.node_rg(), "Microsoft.Network/publicIPAddresses", &outbound), "resourceGroup": self.node_rg()},
            "resourceGroup": self.node_rg(),
            "type": "Microsoft.Network/loadBalancers/frontendIPConfigurations"
        })];
        let mut rules = Vec::new();
        let mut probes = Vec::new();
        for service in self.lb_services() {
            let fe = &service.frontend;
            let rule_names: Vec<String> = service.ports.iter().map(|p| format!("{fe}-TCP-{}", p.port)).collect();
            frontends.push(json!({
                "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
                "id": format!("{lb_id}/frontendIPConfigurations/{fe}"),
                "loadBalancingRules": rule_names.iter().map(|r| child("loadBalancingRules", r)).collect::<Vec<_>>(),
                "name": fe,
                "privateIPAllocationMethod": "Dynamic",
                "provisioningState": "Succeeded",
                "publicIPAddress": {"id": self.resource_id(&service.pip_resource_group, "Microsoft.Network/publicIPAddresses", &service.pip_name), "resourceGroup": service.pip_resource_group},
                "resourceGroup": self.node_rg(),
                "type": "Microsoft.Network/loadBalancers/frontendIPConfigurations"
            }));
            let local_probe = format!("{fe}-TCP-{}", service.health_check_node_port);
            if service.local {
                probes.push(json!({
                    "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
                    "id": format!("{lb_id}/probes/{local_probe}"),
                    "intervalInSeconds": 5, "loadBalancingRules": rule_names.iter().map(|r| child("loadBalancingRules", r)).collect::<Vec<_>>(),
                    "name": local_probe, "numberOfProbes": 2, "port": service.health_check_node_port, "probeThreshold": 2,
                    "protocol": "Http", "provisioningState": "Succeeded", "requestPath": "/healthz", "resourceGroup": self.node_rg(),
                    "type": "Microsoft.Network/loadBalancers/probes"
                }));
            }
            for (port, rule) in service.ports.iter().zip(&rule_names) {
                let probe_name = if service.local { local_probe.clone() } else { rule.clone() };
                if !service.local {
                    let http = matches!(port.app_protocol.as_str(), "http" | "https") || service.probe_path.is_some();
                    let mut probe = json!({
                        "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
                        "id": format!("{lb_id}/probes/{rule}"), "intervalInSeconds": 5,
                        "loadBalancingRules": [child("loadBalancingRules", rule)], "name": rule, "numberOfProbes": 2,
                        "port": port.node_port, "probeThreshold": 2, "protocol": if http { "Http" } else { "Tcp" },
                        "provisioningState": "Succeeded", "resourceGroup": self.node_rg(), "type": "Microsoft.Network/loadBalancers/probes"
                    });
                    if http {
                        probe["requestPath"] = json!(service.probe_path.clone().unwrap_or_else(|| "/".to_owned()));
                    }
                    probes.push(probe);
                }
                rules.push(json!({
                    "backendAddressPool": child("backendAddressPools", "kubernetes"),
                    "backendAddressPools": [child("backendAddressPools", "kubernetes")],
                    "backendPort": port.port, "disableOutboundSnat": true, "enableFloatingIP": true, "enableTcpReset": true,
                    "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
                    "frontendIPConfiguration": child("frontendIPConfigurations", fe), "frontendPort": port.port,
                    "id": format!("{lb_id}/loadBalancingRules/{rule}"), "idleTimeoutInMinutes": 4, "loadDistribution": "Default",
                    "name": rule, "probe": child("probes", &probe_name), "protocol": "Tcp", "provisioningState": "Succeeded",
                    "resourceGroup": self.node_rg(), "type": "Microsoft.Network/loadBalancers/loadBalancingRules"
                }));
            }
        }
        let member = json!({"id": self.ipconfig_id(), "resourceGroup": self.node_rg()});
        json!({
            "backendAddressPools": [
                {"backendIPConfigurations": [member.clone()], "etag": "W/\"00000000-0000-0000-0000-000000000001\"", "id": format!("{lb_id}/backendAddressPools/aksOutboundBackendPool"),
                 "name": "aksOutboundBackendPool", "outboundRules": [child("outboundRules", "aksOutboundRule")], "provisioningState": "Succeeded",
                 "resourceGroup": self.node_rg(), "type": "Microsoft.Network/loadBalancers/backendAddressPools"},
                {"backendIPConfigurations": [member], "etag": "W/\"00000000-0000-0000-0000-000000000001\"", "id": format!("{lb_id}/backendAddressPools/kubernetes"),
                 "loadBalancingRules": rules.iter().map(|r| json!({"id": r["id"].clone(), "resourceGroup": self.node_rg()})).collect::<Vec<_>>(),
                 "name": "kubernetes", "provisioningState": "Succeeded", "resourceGroup": self.node_rg(), "type": "Microsoft.Network/loadBalancers/backendAddressPools"}
            ],
            "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
            "frontendIPConfigurations": frontends,
            "id": lb_id,
            "inboundNatPools": [],
            "inboundNatRules": [],
            "loadBalancingRules": rules,
            "location": self.scenario.cluster.location,
            "name": "kubernetes",
            "outboundRules": [{
                "allocatedOutboundPorts": 0, "backendAddressPool": child("backendAddressPools", "aksOutboundBackendPool"),
                "enableTcpReset": true, "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
                "frontendIPConfigurations": [child("frontendIPConfigurations", &outbound)],
                "id": format!("{lb_id}/outboundRules/aksOutboundRule"), "idleTimeoutInMinutes": 30, "name": "aksOutboundRule",
                "protocol": "All", "provisioningState": "Succeeded", "resourceGroup": self.node_rg(), "type": "Microsoft.Network/loadBalancers/outboundRules"
            }],
            "probes": probes,
            "provisioningState": "Succeeded",
            "resourceGroup": self.node_rg(),
            "resourceGuid": "3b7c1f0e-6a2d-4e8b-9f10-2c4d6e8fa0b1",
            "sku": {"name": "Standard", "tier": "Regional"},
            "tags": {"aks-managed-cluster-name": self.scenario.cluster.name, "aks-managed-cluster-rg": self.cluster_rg()},
            "type": "Microsoft.Network/loadBalancers"
        })
    }

    /// Every public IP: the outbound one, one per LoadBalancer Service frontend, and the static ones created by az.
    pub fn public_ips(&self) -> Vec<Value> {
        let lb_id = self.lb_id();
        let location = &self.scenario.cluster.location;
        let pip = |rg: &str, name: &str, address: &str, frontend: Option<&str>, tags: Value| {
            let mut value = json!({
                "ddosSettings": {"protectionMode": "VirtualNetworkInherited"},
                "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
                "id": self.resource_id(rg, "Microsoft.Network/publicIPAddresses", name),
                "idleTimeoutInMinutes": 4, "ipAddress": address, "ipTags": [], "location": location, "name": name,
                "provisioningState": "Succeeded", "publicIPAddressVersion": "IPv4", "publicIPAllocationMethod": "Static",
                "resourceGroup": rg, "resourceGuid": "9d1e7a42-5b3c-4f60-8e21-7a9b0c1d2e3f",
                "sku": {"name": "Standard", "tier": "Regional"}, "tags": tags,
                "type": "Microsoft.Network/publicIPAddresses", "zones": ["1", "2", "3"]
            });
            if let Some(frontend) = frontend {
                value["ipConfiguration"] = json!({"id": format!("{lb_id}/frontendIPConfigurations/{frontend}"), "resourceGroup": self.node_rg()});
            }
            value
        };
        let outbound = self.outbound_frontend();
        let mut out = vec![pip(
            self.node_rg(),
            &outbound,
            &self.scenario.network.outbound_ip,
            Some(&outbound),
            json!({"aks-managed-type": "aks-slb-managed-outbound-ip"}),
        )];
        let services = self.lb_services();
        for service in &services {
            if self.static_ips.iter().any(|s| s.name == service.pip_name) {
                continue;
            }
            out.push(pip(
                self.node_rg(),
                &service.pip_name,
                &service.address,
                Some(&service.frontend),
                json!({"k8s-azure-cluster-name": "kubernetes", "k8s-azure-service": format!("{}/{}", service.namespace, service.name)}),
            ));
        }
        for static_ip in &self.static_ips {
            let frontend = services.iter().find(|s| s.address == static_ip.address).map(|s| s.frontend.as_str());
            out.push(pip(&static_ip.resource_group, &static_ip.name, &static_ip.address, frontend, json!({})));
        }
        out
    }

    /// The default rules Azure puts in every NSG.
    pub fn default_rules(&self, nsg: &str) -> Vec<Value> {
        let id = self.nsg_id(nsg);
        let rule = |name: &str,
                    priority: u32,
                    direction: &str,
                    access: &str,
                    source: &str,
                    destination: &str,
                    description: &str| {
            json!({
                "access": access, "description": description, "destinationAddressPrefix": destination, "destinationAddressPrefixes": [],
                "destinationPortRange": "*", "destinationPortRanges": [], "direction": direction, "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
                "id": format!("{id}/defaultSecurityRules/{name}"), "name": name, "priority": priority, "protocol": "*",
                "provisioningState": "Succeeded", "resourceGroup": if nsg == self.scenario.network.nic_nsg { self.node_rg() } else { self.cluster_rg() },
                "sourceAddressPrefix": source, "sourceAddressPrefixes": [], "sourcePortRange": "*", "sourcePortRanges": [],
                "type": "Microsoft.Network/networkSecurityGroups/defaultSecurityRules"
            })
        };
        vec![
            rule(
                "AllowVnetInBound",
                65000,
                "Inbound",
                "Allow",
                "VirtualNetwork",
                "VirtualNetwork",
                "Allow inbound traffic from all VMs in VNET",
            ),
            rule(
                "AllowAzureLoadBalancerInBound",
                65001,
                "Inbound",
                "Allow",
                "AzureLoadBalancer",
                "*",
                "Allow inbound traffic from azure load balancer",
            ),
            rule("DenyAllInBound", 65500, "Inbound", "Deny", "*", "*", "Deny all inbound traffic"),
            rule(
                "AllowVnetOutBound",
                65000,
                "Outbound",
                "Allow",
                "VirtualNetwork",
                "VirtualNetwork",
                "Allow outbound traffic from all VMs to all VMs in VNET",
            ),
            rule(
                "AllowInternetOutBound",
                65001,
                "Outbound",
                "Allow",
                "*",
                "Internet",
                "Allow outbound traffic from all VMs to Internet",
            ),
            rule("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*", "Deny all outbound traffic"),
        ]
    }

    /// A security rule in the CLI's flattened shape (one prefix → `…Prefix`, several → `…Prefixes`).
    #[allow(clippy::too_many_arguments)]
    pub fn security_rule(
        &self,
        nsg: &str,
        name: &str,
        priority: u64,
        direction: &str,
        access: &str,
        protocol: &str,
        sources: &[String],
        source_ports: &[String],
        destinations: &[String],
        destination_ports: &[String],
        description: Option<&str>,
    ) -> Value {
        let mut rule = Map::new();
        let mut plural = |singular: &str, values: &[String]| {
            if values.len() == 1 {
                rule.insert(singular.to_owned(), json!(values[0]));
                rule.insert(format!("{singular}es").replace("Rangees", "Ranges"), json!([]));
            } else {
                rule.insert(format!("{singular}es").replace("Rangees", "Ranges"), json!(values));
            }
        };
        plural("sourceAddressPrefix", sources);
        plural("sourcePortRange", source_ports);
        plural("destinationAddressPrefix", destinations);
        plural("destinationPortRange", destination_ports);
        let rg = if nsg == self.scenario.network.nic_nsg { self.node_rg() } else { self.cluster_rg() };
        for (key, value) in [
            ("access", json!(access)),
            ("direction", json!(direction)),
            ("etag", json!("W/\"00000000-0000-0000-0000-000000000001\"")),
            ("id", json!(format!("{}/securityRules/{name}", self.nsg_id(nsg)))),
            ("name", json!(name)),
            ("priority", json!(priority)),
            ("protocol", json!(protocol)),
            ("provisioningState", json!("Succeeded")),
            ("resourceGroup", json!(rg)),
            ("type", json!("Microsoft.Network/networkSecurityGroups/securityRules")),
        ] {
            rule.insert(key.to_owned(), value);
        }
        if let Some(description) = description {
            rule.insert("description".to_owned(), json!(description));
        }
        Value::Object(rule)
    }

    /// The security rules of an NSG (not the defaults): scenario rules, AKS rules for the NIC NSG, and custom ones.
    pub fn security_rules(&self, nsg: &str) -> Vec<Value> {
        let network = &self.scenario.network;
        let mut rules = Vec::new();
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        if nsg == network.subnet_nsg {
            rules.push(self.security_rule(
                nsg,
                "allow-web-inbound",
                200,
                "Inbound",
                "Allow",
                "Tcp",
                &strings(&["Internet"]),
                &strings(&["*"]),
                &strings(&["*"]),
                &strings(&["80", "443"]),
                Some("web traffic to the cluster subnet"),
            ));
        }
        if nsg == network.nic_nsg {
            for (index, service) in self.lb_services().iter().enumerate() {
                let sources = if service.source_ranges.is_empty() {
                    vec!["Internet".to_owned()]
                } else {
                    service.source_ranges.clone()
                };
                let ports: Vec<String> = service.ports.iter().map(|p| p.port.to_string()).collect();
                let name = format!(
                    "k8s-azure-lb_allow_IPv4_{}",
                    hash_hex(&format!("{}/{}", service.frontend, service.address))
                );
                rules.push(self.security_rule(
                    nsg,
                    &name,
                    500 + index as u64,
                    "Inbound",
                    "Allow",
                    "Tcp",
                    &sources,
                    &strings(&["*"]),
                    std::slice::from_ref(&service.address),
                    &ports,
                    None,
                ));
            }
        }
        rules.extend(self.custom_rules.iter().filter(|r| r.nsg == nsg).map(|r| r.rule.clone()));
        rules
    }

    pub fn nsg_names(&self) -> Vec<String> {
        vec![self.scenario.network.subnet_nsg.clone(), self.scenario.network.nic_nsg.clone()]
    }

    pub fn nsg_resource_group(&self, nsg: &str) -> &str {
        if nsg == self.scenario.network.nic_nsg { self.node_rg() } else { self.cluster_rg() }
    }

    /// `az network nsg show`.
    pub fn nsg(&self, name: &str) -> Value {
        let network = &self.scenario.network;
        let mut nsg = json!({
            "defaultSecurityRules": self.default_rules(name),
            "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
            "id": self.nsg_id(name),
            "location": self.scenario.cluster.location,
            "name": name,
            "provisioningState": "Succeeded",
            "resourceGroup": self.nsg_resource_group(name),
            "resourceGuid": "6f0d1c2b-3a49-4e5f-8a7b-9c0d1e2f3a4b",
            "securityRules": self.security_rules(name),
            "type": "Microsoft.Network/networkSecurityGroups"
        });
        if name == network.subnet_nsg {
            nsg["subnets"] = json!([{"id": self.subnet_id(), "resourceGroup": self.cluster_rg()}]);
        } else {
            nsg["networkInterfaces"] = json!([{"id": self.nic_id(), "resourceGroup": self.node_rg()}]);
            nsg["tags"] = json!({"aks-managed-cluster-name": self.scenario.cluster.name, "aks-managed-cluster-rg": self.cluster_rg()});
        }
        nsg
    }

    /// NSG diagnostics for one flow: the subnet NSG then the NIC NSG (inbound), first matching rule by priority.
    pub fn evaluate_flow(&self, direction: &str, protocol: &str, source: &str, destination: &str, port: &str) -> Value {
        let network = &self.scenario.network;
        let order = if direction == "Inbound" {
            [network.subnet_nsg.clone(), network.nic_nsg.clone()]
        } else {
            [network.nic_nsg.clone(), network.subnet_nsg.clone()]
        };
        let mut evaluated = Vec::new();
        let mut overall = "Allow";
        for nsg in order {
            let mut rules: Vec<Value> = self
                .security_rules(&nsg)
                .into_iter()
                .chain(self.default_rules(&nsg))
                .filter(|r| r["direction"] == direction)
                .collect();
            rules.sort_by_key(|r| r["priority"].as_u64().unwrap_or(u64::MAX));
            let mut results = Vec::new();
            let mut matched = None;
            for rule in &rules {
                let protocol_matched = matches!(text(rule, "/protocol"), "*" | "Any")
                    || text(rule, "/protocol").eq_ignore_ascii_case(protocol);
                let source_matched =
                    prefixes(rule, "sourceAddressPrefix").iter().any(|p| prefix_matches(p, source, network));
                let destination_matched =
                    prefixes(rule, "destinationAddressPrefix").iter().any(|p| prefix_matches(p, destination, network));
                let port_matched = port_ranges(rule).iter().any(|r| port_matches(r, port));
                results.push(json!({
                    "destinationMatched": destination_matched, "destinationPortMatched": port_matched, "name": rule["name"],
                    "protocolMatched": protocol_matched, "sourceMatched": source_matched, "sourcePortMatched": true
                }));
                if protocol_matched && source_matched && destination_matched && port_matched {
                    matched = Some(rule.clone());
                    break;
                }
            }
            let (rule_name, action) = match &matched {
                Some(rule) => (text(rule, "/name").to_owned(), text(rule, "/access").to_owned()),
                None => ("DenyAllInBound".to_owned(), "Deny".to_owned()),
            };
            if action == "Deny" {
                overall = "Deny";
            }
            let applied_to = if nsg == network.subnet_nsg { self.subnet_id() } else { self.nic_id() };
            evaluated.push(json!({
                "appliedTo": applied_to, "matchedRule": {"action": action, "ruleName": rule_name},
                "networkSecurityGroupId": self.nsg_id(&nsg), "rulesEvaluationResult": results
            }));
        }
        json!({"securityRuleAccessResult": overall, "evaluatedNetworkSecurityGroups": evaluated})
    }
}

fn prefixes(rule: &Value, singular: &str) -> Vec<String> {
    let mut out: Vec<String> = rule[format!("{singular}es")]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    if let Some(one) = rule[singular].as_str() {
        out.push(one.to_owned());
    }
    out
}

fn port_ranges(rule: &Value) -> Vec<String> {
    let mut out: Vec<String> = rule["destinationPortRanges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    if let Some(one) = rule["destinationPortRange"].as_str() {
        out.push(one.to_owned());
    }
    out
}

fn parse_ipv4(text: &str) -> Option<u32> {
    text.parse::<std::net::Ipv4Addr>().ok().map(u32::from)
}

fn in_cidr(cidr: &str, ip: u32) -> bool {
    let (base, bits) = cidr.split_once('/').unwrap_or((cidr, "32"));
    let (Some(base), Ok(bits)) = (parse_ipv4(base), bits.parse::<u32>()) else { return false };
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits.min(32)) };
    base & mask == ip & mask
}

fn is_virtual_network(ip: u32, network: &crate::scenario::Network) -> bool {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", network.vnet_prefix.as_str()]
        .iter()
        .any(|c| in_cidr(c, ip))
}

/// Whether a rule's address prefix (`*`, a service tag, a CIDR or an address) covers a flow's address.
fn prefix_matches(prefix: &str, address: &str, network: &crate::scenario::Network) -> bool {
    const LB_PROBE: u32 = 0xa83f_8110; // 168.63.129.16
    if prefix == "*" || prefix == "Any" {
        return true;
    }
    let Some(ip) = parse_ipv4(address.split('/').next().unwrap_or(address)) else {
        // A query with `*` or a tag matches only rules for any address.
        return prefix == "Internet" && (address == "*" || address == "Internet");
    };
    match prefix {
        "Internet" => !is_virtual_network(ip, network) && ip != LB_PROBE,
        "VirtualNetwork" => is_virtual_network(ip, network),
        "AzureLoadBalancer" => ip == LB_PROBE,
        cidr => in_cidr(cidr, ip),
    }
}

fn port_matches(range: &str, port: &str) -> bool {
    if range == "*" || port == "*" {
        return true;
    }
    let Ok(port) = port.parse::<u32>() else { return false };
    match range.split_once('-') {
        Some((low, high)) => {
            low.parse::<u32>().is_ok_and(|l| l <= port) && high.parse::<u32>().is_ok_and(|h| port <= h)
        }
        None => range.parse::<u32>() == Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn world(name: &str) -> World {
        World::new(Scenario::load(name, &[]).expect("scenario"), Utc::now())
    }

    #[test]
    fn the_frontend_starts_with_its_address_and_lb_rules() {
        let world = world("nothing-fixes");
        let frontend = world.find("Service", "mini-xdr", "mini-xdr-frontend").expect("frontend");
        assert_eq!(frontend["status"]["loadBalancer"]["ingress"][0]["ip"], "127.0.0.20");
        assert_eq!(frontend["spec"]["healthCheckNodePort"], 32600);
        let lb = world.load_balancer();
        let rules: Vec<&str> = lb["loadBalancingRules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| r["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(rules, ["a5c2b7e4e0d8c4a619f2b3f1a9d7c6b2-TCP-80", "a5c2b7e4e0d8c4a619f2b3f1a9d7c6b2-TCP-443"]);
        assert_eq!(lb["probes"][0]["port"], 32600);
        assert_eq!(lb["probes"][0]["requestPath"], "/healthz");
        assert_eq!(lb["loadBalancingRules"][0]["enableFloatingIP"], true);
    }

    #[test]
    fn nsg_evaluation_follows_priority_and_floating_ip() {
        let world = world("nothing-fixes");
        let to_lb = world.evaluate_flow("Inbound", "TCP", "203.0.113.25", "127.0.0.20", "80");
        assert_eq!(to_lb["securityRuleAccessResult"], "Allow", "{to_lb}");
        let to_node = world.evaluate_flow("Inbound", "TCP", "203.0.113.25", "10.224.0.4", "80");
        assert_eq!(to_node["securityRuleAccessResult"], "Deny", "{to_node}");
        assert_eq!(to_node["evaluatedNetworkSecurityGroups"][1]["matchedRule"]["ruleName"], "DenyAllInBound");
    }

    #[test]
    fn prefixes_ports_and_tags_match_like_azure() {
        let scenario = Scenario::load("healthy", &[]).expect("scenario");
        let network = &scenario.network;
        assert!(prefix_matches("Internet", "203.0.113.25", network));
        assert!(!prefix_matches("Internet", "10.1.2.3", network));
        assert!(prefix_matches("203.0.113.0/24", "203.0.113.25", network));
        assert!(!prefix_matches("203.0.113.26/32", "203.0.113.25", network));
        assert!(prefix_matches("AzureLoadBalancer", "168.63.129.16", network));
        assert!(port_matches("80-85", "83") && !port_matches("80-85", "86") && port_matches("*", "1"));
    }
}
