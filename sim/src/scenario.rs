//! Scenarios: the facts of the simulated subscription and cluster, and how they behave
//! when a runbook acts on them. Four are built in (sim/scenarios/*.yaml); `--set key=value`
//! overrides any leaf of the file before it is read.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SimError;

/// The built-in scenarios, by name, with their YAML source.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("healthy", include_str!("../scenarios/healthy.yaml")),
    ("ingress-fixes", include_str!("../scenarios/ingress-fixes.yaml")),
    ("recreate-fixes", include_str!("../scenarios/recreate-fixes.yaml")),
    ("nothing-fixes", include_str!("../scenarios/nothing-fixes.yaml")),
];

/// Which pool a LoadBalancer Service takes its address from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An address where the demo serves a frontend answering 200.
    Healthy,
    /// An address where the demo reproduces the incident: ping answers, TCP times out.
    Broken,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub addresses: Addresses,
    pub subscription: Subscription,
    pub cluster: Cluster,
    pub network: Network,
    pub frontend: Frontend,
    pub load_balancer: LoadBalancer,
    pub capture: Capture,
    pub metrics: Metrics,
    pub policy_assignments: Vec<PolicyAssignment>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Addresses {
    pub healthy: Vec<String>,
    pub broken: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub user: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    pub resource_group: String,
    pub node_resource_group: String,
    pub location: String,
    pub kubernetes_version: String,
    pub node_pool: String,
    pub vmss: String,
    pub node_name: String,
    pub node_ip: String,
    pub vm_size: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub vnet: String,
    pub vnet_prefix: String,
    pub subnet: String,
    pub subnet_prefix: String,
    pub subnet_nsg: String,
    pub nic_nsg: String,
    pub ddos_protection: bool,
    pub service_endpoints: Vec<String>,
    pub outbound_ip: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frontend {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub role: Role,
    pub port_http: u16,
    pub port_https: u16,
    pub target_port_http: u16,
    pub target_port_https: u16,
    pub node_port_http: u16,
    pub node_port_https: u16,
    pub health_check_node_port: u16,
    pub external_traffic_policy: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    pub ingress_role: Role,
    pub ingress_pending_polls: u32,
    pub recreated_role: Role,
    pub recreated_pending_polls: u32,
    pub other_role: Role,
    pub other_pending_polls: u32,
    pub patch_moves_address: bool,
    pub static_address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    pub packets_at_node: bool,
    pub not_started_polls: u32,
    pub storage_account: String,
    pub storage_resource_group: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    pub dip_availability: f64,
    pub vip_availability: f64,
    pub under_ddos_attack: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyAssignment {
    pub name: String,
    pub display_name: String,
    pub policy_definition_id: String,
    pub enforcement_mode: String,
}

impl Scenario {
    /// Loads a built-in scenario and applies `key=value` overrides (dotted paths to existing leaves).
    pub fn load(name: &str, overrides: &[String]) -> Result<Scenario, SimError> {
        let Some((_, source)) = BUILT_IN.iter().find(|(known, _)| *known == name) else {
            return Err(SimError::UnknownScenario {
                name: name.to_owned(),
                known: BUILT_IN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            });
        };
        let mut tree: Value = serde_saphyr::from_str(source)
            .map_err(|e| SimError::Scenario { name: name.to_owned(), message: e.to_string() })?;
        for assignment in overrides {
            apply_override(&mut tree, assignment)?;
        }
        let scenario: Scenario = serde_json::from_value(tree)
            .map_err(|e| SimError::Scenario { name: name.to_owned(), message: e.to_string() })?;
        scenario.check()?;
        Ok(scenario)
    }

    /// The pool of a role.
    pub fn pool(&self, role: Role) -> &[String] {
        match role {
            Role::Healthy => &self.addresses.healthy,
            Role::Broken => &self.addresses.broken,
        }
    }

    fn check(&self) -> Result<(), SimError> {
        let mut problems = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for address in self.addresses.healthy.iter().chain(&self.addresses.broken) {
            if address.parse::<std::net::Ipv4Addr>().is_err() {
                problems.push(format!("address `{address}` is not an IPv4 address"));
            }
            if !seen.insert(address) {
                problems.push(format!("address `{address}` is in the pools twice"));
            }
        }
        if self.pool(self.frontend.role).is_empty() {
            problems.push("the frontend's pool is empty".to_owned());
        }
        for (what, ip) in [
            ("cluster.node_ip", &self.cluster.node_ip),
            ("load_balancer.static_address", &self.load_balancer.static_address),
        ] {
            if ip.parse::<std::net::Ipv4Addr>().is_err() {
                problems.push(format!("{what} `{ip}` is not an IPv4 address"));
            }
        }
        if !["Local", "Cluster"].contains(&self.frontend.external_traffic_policy.as_str()) {
            problems.push("frontend.external_traffic_policy must be Local or Cluster".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SimError::Scenario { name: self.name.clone(), message: problems.join("; ") })
        }
    }
}

/// Every overridable key of a scenario, as dotted paths (for `azsim scenarios` and error messages).
pub fn leaf_keys(tree: &Value) -> Vec<String> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&path, child, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut out = Vec::new();
    walk("", tree, &mut out);
    out
}

/// The YAML source of a built-in scenario parsed as a tree, for listing its keys.
pub fn built_in_tree(name: &str) -> Option<Value> {
    let (_, source) = BUILT_IN.iter().find(|(known, _)| *known == name)?;
    serde_saphyr::from_str(source).ok()
}

/// `a.b.c=value`: the leaf must exist; the value is read as the leaf's current type
/// (a list of strings is written comma-separated).
fn apply_override(tree: &mut Value, assignment: &str) -> Result<(), SimError> {
    let bad = |message: String| SimError::Override { assignment: assignment.to_owned(), message };
    let Some((key, raw)) = assignment.split_once('=') else {
        return Err(bad("expected key=value".to_owned()));
    };
    let known = leaf_keys(tree);
    let mut node = &mut *tree;
    for part in key.split('.') {
        node = match node {
            Value::Object(map) if map.contains_key(part) => map.get_mut(part).ok_or_else(|| bad(String::new()))?,
            _ => return Err(bad(format!("no such key; the keys are: {}", known.join(", ")))),
        };
    }
    let replacement = match &*node {
        Value::Object(_) => return Err(bad("the key names a section, not a value".to_owned())),
        Value::String(_) => Value::String(raw.to_owned()),
        Value::Bool(_) => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("expected true or false".to_owned())),
        },
        Value::Number(_) => {
            let number: serde_json::Number = raw.parse().map_err(|_| bad("expected a number".to_owned()))?;
            Value::Number(number)
        }
        Value::Array(_) => Value::Array(
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.to_owned())).collect(),
        ),
        Value::Null => Value::String(raw.to_owned()),
    };
    *node = replacement;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_loads() {
        for (name, _) in BUILT_IN {
            let scenario = Scenario::load(name, &[]).expect("scenario loads");
            assert_eq!(scenario.name, *name);
            assert_eq!(scenario.cluster.name, "mini-xdr-aks");
        }
    }

    #[test]
    fn overrides_replace_leaves_by_their_type() {
        let scenario = Scenario::load(
            "ingress-fixes",
            &[
                "addresses.healthy=127.0.1.1, 127.0.1.2".to_owned(),
                "load_balancer.ingress_pending_polls=3".to_owned(),
                "capture.packets_at_node=false".to_owned(),
                "frontend.port_http=8080".to_owned(),
            ],
        )
        .expect("overrides apply");
        assert_eq!(scenario.addresses.healthy, vec!["127.0.1.1", "127.0.1.2"]);
        assert_eq!(scenario.load_balancer.ingress_pending_polls, 3);
        assert!(!scenario.capture.packets_at_node);
        assert_eq!(scenario.frontend.port_http, 8080);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        for bad in ["frontend.prot_http=1", "frontend=1", "capture.packets_at_node=maybe", "nokey"] {
            let error = Scenario::load("healthy", &[bad.to_owned()]).expect_err(bad);
            assert!(error.to_string().contains(bad.split('=').next().unwrap_or(bad)), "{error}");
        }
        assert!(Scenario::load("sunny", &[]).is_err());
    }
}
