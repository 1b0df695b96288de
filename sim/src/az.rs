//! `az`: the command table and the handlers. Output is what azure-cli prints
//! (flattened resources, no `properties` wrapper), shaped after the Azure CLI
//! and REST references quoted in shared/research/azure-domain.md. Errors use
//! azure-cli's wording and exit codes: 2 for the command line, 3 for a missing
//! resource, 1 for any other service error.

use serde_json::{Value, json};

use crate::Ctx;
use crate::cli::{Args, Command, Flag, Reply, Tool, many, one, parse_az, required, switch};
use crate::format::{AZ_OUTPUTS, az_query, az_render};
use crate::pcap;
use crate::world::{CaptureSession, CustomRule, StaticIp, azure_time, text};

/// What an az handler returns: a result to print (after `--query` and `-o`), or nothing.
type AzResult = Result<Option<Value>, Reply>;
type Handler = fn(&mut Ctx<'_>, &Args) -> AzResult;

/// Flags every az command accepts.
pub const GLOBALS: &[Flag] = &[
    one(&["--output", "-o"]),
    one(&["--query"]),
    one(&["--subscription"]),
    switch(&["--only-show-errors"]),
    switch(&["--debug"]),
    switch(&["--verbose"]),
];

const RG: Flag = one(&["--resource-group", "-g"]);
const RG_REQ: Flag = required(&["--resource-group", "-g"]);
const NAME: Flag = one(&["--name", "-n"]);
const NAME_REQ: Flag = required(&["--name", "-n"]);
const IDS: Flag = many(&["--ids"]);
const LOCATION_REQ: Flag = required(&["--location", "-l"]);

/// Every az command line the simulator knows.
pub const COMMANDS: &[Command<Handler>] = &[
    Command {
        path: &["account", "show"],
        flags: &[NAME],
        positionals: (0, 0),
        summary: "the subscription",
        run: account_show,
    },
    Command {
        path: &["aks", "show"],
        flags: &[RG, NAME, IDS],
        positionals: (0, 0),
        summary: "the AKS cluster",
        run: aks_show,
    },
    Command {
        path: &["aks", "nodepool", "show"],
        flags: &[RG_REQ, required(&["--cluster-name"]), NAME_REQ],
        positionals: (0, 0),
        summary: "one agent pool",
        run: nodepool_show,
    },
    Command {
        path: &["aks", "nodepool", "list"],
        flags: &[RG_REQ, required(&["--cluster-name"])],
        positionals: (0, 0),
        summary: "the agent pools",
        run: nodepool_list,
    },
    Command {
        path: &["policy", "assignment", "list"],
        flags: &[one(&["--scope"]), RG, switch(&["--disable-scope-strict-match"])],
        positionals: (0, 0),
        summary: "policy assignments (subscription scope: --scope /subscriptions/SUB)",
        run: policy_assignment_list,
    },
    Command {
        path: &["network", "public-ip", "list"],
        flags: &[RG],
        positionals: (0, 0),
        summary: "public IPs",
        run: public_ip_list,
    },
    Command {
        path: &["network", "public-ip", "show"],
        flags: &[RG, NAME, IDS],
        positionals: (0, 0),
        summary: "one public IP (ddosSettings)",
        run: public_ip_show,
    },
    Command {
        path: &["network", "public-ip", "create"],
        flags: &[
            RG_REQ,
            NAME_REQ,
            one(&["--sku"]),
            one(&["--allocation-method"]),
            one(&["--location", "-l"]),
            one(&["--version"]),
            many(&["--zone", "-z"]),
            many(&["--tags"]),
        ],
        positionals: (0, 0),
        summary: "reserve a static public IP (output wrapped in publicIp)",
        run: public_ip_create,
    },
    Command {
        path: &["network", "public-ip", "ddos-protection", "show"],
        flags: &[RG, NAME, IDS],
        positionals: (0, 0),
        summary: "DDoS protection status of a public IP",
        run: public_ip_ddos_show,
    },
    Command {
        path: &["network", "vnet", "list"],
        flags: &[RG],
        positionals: (0, 0),
        summary: "virtual networks",
        run: vnet_list,
    },
    Command {
        path: &["network", "vnet", "show"],
        flags: &[RG, NAME, IDS],
        positionals: (0, 0),
        summary: "one virtual network (DDoS, subnets)",
        run: vnet_show,
    },
    Command {
        path: &["network", "vnet", "subnet", "show"],
        flags: &[RG, one(&["--vnet-name"]), NAME, IDS],
        positionals: (0, 0),
        summary: "one subnet (NSG, route table, serviceEndpoints, serviceEndpointPolicies)",
        run: subnet_show,
    },
    Command {
        path: &["network", "vnet", "subnet", "list"],
        flags: &[RG_REQ, required(&["--vnet-name"])],
        positionals: (0, 0),
        summary: "subnets of a virtual network",
        run: subnet_list,
    },
    Command {
        path: &["network", "nsg", "list"],
        flags: &[RG],
        positionals: (0, 0),
        summary: "network security groups",
        run: nsg_list,
    },
    Command {
        path: &["network", "nsg", "show"],
        flags: &[RG, NAME, IDS],
        positionals: (0, 0),
        summary: "one NSG with its rules",
        run: nsg_show,
    },
    Command {
        path: &["network", "nsg", "rule", "list"],
        flags: &[RG_REQ, required(&["--nsg-name"]), switch(&["--include-default"])],
        positionals: (0, 0),
        summary: "an NSG's rules (--include-default adds the default rules)",
        run: nsg_rule_list,
    },
    Command {
        path: &["network", "nsg", "rule", "show"],
        flags: &[RG_REQ, required(&["--nsg-name"]), NAME_REQ],
        positionals: (0, 0),
        summary: "one NSG rule",
        run: nsg_rule_show,
    },
    Command {
        path: &["network", "nsg", "rule", "create"],
        flags: &[
            RG_REQ,
            required(&["--nsg-name"]),
            NAME_REQ,
            required(&["--priority"]),
            one(&["--direction"]),
            one(&["--access"]),
            one(&["--protocol"]),
            many(&["--source-address-prefixes"]),
            many(&["--source-port-ranges"]),
            many(&["--destination-address-prefixes"]),
            many(&["--destination-port-ranges"]),
            one(&["--description"]),
            switch(&["--no-wait"]),
        ],
        positionals: (0, 0),
        summary: "add a rule (custom subnet NSG only: the AKS NIC NSG is not to be edited)",
        run: nsg_rule_create,
    },
    Command {
        path: &["network", "nsg", "rule", "delete"],
        flags: &[RG_REQ, required(&["--nsg-name"]), NAME_REQ, switch(&["--no-wait"])],
        positionals: (0, 0),
        summary: "remove a rule (prints nothing; a missing rule is not an error)",
        run: nsg_rule_delete,
    },
    Command {
        path: &["network", "lb", "list"],
        flags: &[RG],
        positionals: (0, 0),
        summary: "load balancers",
        run: lb_list,
    },
    Command {
        path: &["network", "lb", "show"],
        flags: &[RG, NAME, IDS],
        positionals: (0, 0),
        summary: "the load balancer (frontends, rules, probes, pools)",
        run: lb_show,
    },
    Command {
        path: &["network", "lb", "rule", "list"],
        flags: &[RG_REQ, required(&["--lb-name"])],
        positionals: (0, 0),
        summary: "load-balancing rules",
        run: lb_rule_list,
    },
    Command {
        path: &["network", "lb", "probe", "list"],
        flags: &[RG_REQ, required(&["--lb-name"])],
        positionals: (0, 0),
        summary: "health probes",
        run: lb_probe_list,
    },
    Command {
        path: &["network", "lb", "frontend-ip", "list"],
        flags: &[RG_REQ, required(&["--lb-name"])],
        positionals: (0, 0),
        summary: "frontend IP configurations",
        run: lb_frontend_list,
    },
    Command {
        path: &["network", "lb", "address-pool", "list"],
        flags: &[RG_REQ, required(&["--lb-name"])],
        positionals: (0, 0),
        summary: "backend address pools",
        run: lb_pool_list,
    },
    Command {
        path: &["network", "nic", "list-effective-nsg"],
        flags: &[RG, NAME, IDS],
        positionals: (0, 0),
        summary: "standalone NICs only: a scale-set NIC is not found (use run-configuration-diagnostic)",
        run: nic_list_effective_nsg,
    },
    Command {
        path: &["network", "watcher", "list"],
        flags: &[],
        positionals: (0, 0),
        summary: "network watchers",
        run: watcher_list,
    },
    Command {
        path: &["network", "watcher", "run-configuration-diagnostic"],
        flags: &[
            required(&["--resource"]),
            RG,
            one(&["--resource-type", "-t"]),
            one(&["--parent"]),
            one(&["--direction"]),
            one(&["--protocol"]),
            one(&["--source"]),
            one(&["--destination"]),
            one(&["--port"]),
            one(&["--queries"]),
        ],
        positionals: (0, 0),
        summary: "NSG diagnostics for a flow to a VM or scale-set NIC (subnet NSG then NIC NSG)",
        run: run_configuration_diagnostic,
    },
    Command {
        path: &["network", "watcher", "packet-capture", "create"],
        flags: &[
            RG_REQ,
            NAME_REQ,
            one(&["--target"]),
            one(&["--target-type"]),
            one(&["--vm"]),
            many(&["--include"]),
            many(&["--exclude"]),
            one(&["--storage-account"]),
            one(&["--storage-path"]),
            one(&["--file-path"]),
            one(&["--filters"]),
            one(&["--time-limit"]),
            one(&["--capture-limit"]),
            one(&["--capture-size"]),
            switch(&["--no-wait"]),
        ],
        positionals: (0, 0),
        summary: "start a capture (--target VMSS --target-type AzureVMSS)",
        run: capture_create,
    },
    Command {
        path: &["network", "watcher", "packet-capture", "show-status"],
        flags: &[LOCATION_REQ, NAME_REQ],
        positionals: (0, 0),
        summary: "packetCaptureStatus: NotStarted, Running, Stopped",
        run: capture_show_status,
    },
    Command {
        path: &["network", "watcher", "packet-capture", "show"],
        flags: &[LOCATION_REQ, NAME_REQ],
        positionals: (0, 0),
        summary: "the capture (storageLocation.storagePath)",
        run: capture_show,
    },
    Command {
        path: &["network", "watcher", "packet-capture", "stop"],
        flags: &[LOCATION_REQ, NAME_REQ],
        positionals: (0, 0),
        summary: "stop (prints nothing); the .cap is then in storage",
        run: capture_stop,
    },
    Command {
        path: &["network", "watcher", "packet-capture", "delete"],
        flags: &[LOCATION_REQ, NAME_REQ],
        positionals: (0, 0),
        summary: "delete the session (the blob stays)",
        run: capture_delete,
    },
    Command {
        path: &["network", "watcher", "packet-capture", "list"],
        flags: &[LOCATION_REQ],
        positionals: (0, 0),
        summary: "capture sessions",
        run: capture_list,
    },
    Command {
        path: &["network", "manager", "list-effective-security-admin-rule"],
        flags: &[RG_REQ, required(&["--virtual-network-name"]), one(&["--skip-token"])],
        positionals: (0, 0),
        summary: "Virtual Network Manager admin rules on the VNet (none)",
        run: avnm_admin_rules,
    },
    Command {
        path: &["network", "route-table", "list"],
        flags: &[RG],
        positionals: (0, 0),
        summary: "route tables (none)",
        run: route_table_list,
    },
    Command {
        path: &["network", "route-table", "route", "list"],
        flags: &[RG_REQ, required(&["--route-table-name"])],
        positionals: (0, 0),
        summary: "routes of a route table (there are none: not found)",
        run: route_list,
    },
    Command { path: &["vmss", "list"], flags: &[RG], positionals: (0, 0), summary: "scale sets", run: vmss_list },
    Command {
        path: &["vmss", "list-instances"],
        flags: &[RG_REQ, NAME_REQ],
        positionals: (0, 0),
        summary: "scale-set instances",
        run: vmss_list_instances,
    },
    Command {
        path: &["vmss", "list-instance-public-ips"],
        flags: &[RG_REQ, NAME_REQ],
        positionals: (0, 0),
        summary: "instance public IPs (AKS nodes have none)",
        run: vmss_public_ips,
    },
    Command {
        path: &["vmss", "nic", "list"],
        flags: &[RG_REQ, required(&["--vmss-name"])],
        positionals: (0, 0),
        summary: "scale-set NICs",
        run: vmss_nic_list,
    },
    Command {
        path: &["vmss", "nic", "list-vm-nics"],
        flags: &[RG_REQ, required(&["--vmss-name"]), required(&["--instance-id"])],
        positionals: (0, 0),
        summary: "the NICs of one instance (NSG, subnet, backend pools)",
        run: vmss_vm_nics,
    },
    Command {
        path: &["vmss", "extension", "list"],
        flags: &[RG_REQ, required(&["--vmss-name"])],
        positionals: (0, 0),
        summary: "scale-set extensions",
        run: vmss_extension_list,
    },
    Command {
        path: &["vmss", "extension", "set"],
        flags: &[RG_REQ, required(&["--vmss-name"]), NAME_REQ, required(&["--publisher"]), one(&["--version"])],
        positionals: (0, 0),
        summary: "add an extension (NetworkWatcherAgentLinux)",
        run: vmss_extension_set,
    },
    Command {
        path: &["storage", "account", "list"],
        flags: &[RG],
        positionals: (0, 0),
        summary: "storage accounts",
        run: storage_account_list,
    },
    Command {
        path: &["storage", "account", "show"],
        flags: &[RG, NAME, IDS],
        positionals: (0, 0),
        summary: "one storage account",
        run: storage_account_show,
    },
    Command {
        path: &["storage", "blob", "download"],
        flags: &[
            one(&["--blob-url"]),
            one(&["--container-name", "-c"]),
            NAME,
            required(&["--file", "-f"]),
            one(&["--account-name"]),
            one(&["--auth-mode"]),
            switch(&["--overwrite"]),
            switch(&["--no-progress"]),
        ],
        positionals: (0, 0),
        summary: "download a capture blob to a local file",
        run: blob_download,
    },
    Command {
        path: &["monitor", "metrics", "list"],
        flags: &[
            required(&["--resource"]),
            many(&["--metric", "--metrics"]),
            one(&["--interval"]),
            many(&["--aggregation"]),
            one(&["--start-time"]),
            one(&["--end-time"]),
            one(&["--offset"]),
            one(&["--filter"]),
        ],
        positionals: (0, 0),
        summary: "LB DipAvailability/VipAvailability, public IP IfUnderDDoSAttack",
        run: metrics_list,
    },
    Command {
        path: &["monitor", "activity-log", "list"],
        flags: &[
            RG,
            one(&["--resource-id"]),
            one(&["--start-time"]),
            one(&["--end-time"]),
            one(&["--offset"]),
            one(&["--status"]),
            one(&["--correlation-id"]),
            one(&["--max-events"]),
        ],
        positionals: (0, 0),
        summary: "activity log (no failed writes in these scenarios)",
        run: activity_log_list,
    },
    Command {
        path: &["support", "services", "list"],
        flags: &[],
        positionals: (0, 0),
        summary: "support services",
        run: support_services,
    },
    Command {
        path: &["support", "services", "problem-classifications", "list"],
        flags: &[required(&["--service-name"])],
        positionals: (0, 0),
        summary: "problem classifications of a service",
        run: support_classifications,
    },
    Command {
        path: &["support", "in-subscription", "tickets", "create"],
        flags: TICKET_FLAGS,
        positionals: (0, 0),
        summary: "open a ticket (recorded, never sent)",
        run: ticket_create,
    },
    Command {
        path: &["support", "in-subscription", "tickets", "show"],
        flags: &[required(&["--ticket-name"])],
        positionals: (0, 0),
        summary: "one ticket",
        run: ticket_show,
    },
    Command {
        path: &["support", "in-subscription", "tickets", "list"],
        flags: &[one(&["--filter"])],
        positionals: (0, 0),
        summary: "tickets",
        run: ticket_list,
    },
    Command {
        path: &["support", "tickets", "create"],
        flags: TICKET_FLAGS,
        positionals: (0, 0),
        summary: "legacy group: open a ticket",
        run: ticket_create,
    },
    Command {
        path: &["support", "tickets", "show"],
        flags: &[required(&["--ticket-name"])],
        positionals: (0, 0),
        summary: "legacy group: one ticket",
        run: ticket_show,
    },
    Command {
        path: &["support", "tickets", "list"],
        flags: &[one(&["--filter"])],
        positionals: (0, 0),
        summary: "legacy group: tickets",
        run: ticket_list,
    },
];

const TICKET_FLAGS: &[Flag] = &[
    required(&["--ticket-name"]),
    required(&["--title"]),
    required(&["--description"]),
    required(&["--problem-classification"]),
    required(&["--severity"]),
    required(&["--contact-first-name"]),
    required(&["--contact-last-name"]),
    required(&["--contact-method"]),
    required(&["--contact-email"]),
    required(&["--contact-timezone"]),
    required(&["--contact-country"]),
    required(&["--contact-language"]),
    one(&["--contact-phone-number"]),
    many(&["--contact-additional-emails"]),
    one(&["--start-time"]),
    one(&["--require-24-by-7-response"]),
    one(&["--technical-resource"]),
    one(&["--diagnostic-consent"]),
    one(&["--secondary-consent"]),
    one(&["--file-workspace"]),
];

/// Runs one az command line.
pub fn run(ctx: &mut Ctx<'_>, tokens: &[String]) -> (Reply, bool) {
    let (command, args) = match parse_az(COMMANDS, GLOBALS, tokens) {
        Ok(parsed) => parsed,
        Err(reply) => return (reply, false),
    };
    let output = args.value("--output").unwrap_or("json").to_lowercase();
    if !AZ_OUTPUTS.contains(&output.as_str()) {
        let choices = AZ_OUTPUTS.iter().map(|o| format!("'{o}'")).collect::<Vec<_>>().join(", ");
        let reply =
            Reply::fail(2, format!("ERROR: argument --output/-o: invalid choice: '{output}' (choose from {choices})"));
        return (reply, true);
    }
    if let Some(subscription) = args.value("--subscription") {
        let s = &ctx.world.scenario.subscription;
        if !subscription.eq_ignore_ascii_case(&s.id) && !subscription.eq_ignore_ascii_case(&s.name) {
            let reply = Reply::fail(
                1,
                format!("ERROR: Subscription '{subscription}' not found. Check the spelling and casing and try again."),
            );
            return (reply, true);
        }
    }
    let result = match (command.run)(ctx, &args) {
        Ok(result) => result,
        Err(reply) => return (reply, true),
    };
    let Some(mut value) = result else { return (Reply::ok(""), true) };
    if let Some(query) = args.value("--query") {
        value = match az_query(&value, query) {
            Ok(value) => value,
            Err(message) => {
                return (
                    Reply::fail(if message.starts_with("argument") { 2 } else { 1 }, format!("ERROR: {message}")),
                    true,
                );
            }
        };
    }
    (Reply::ok(az_render(&value, &output)), true)
}

// ---- errors ----

fn service_error(code: i32, error_code: &str, message: &str) -> Reply {
    Reply::fail(code, format!("ERROR: ({error_code}) {message}\nCode: {error_code}\nMessage: {message}"))
}

fn not_found(resource_group: &str, resource_type: &str, name: &str) -> Reply {
    service_error(
        3,
        "ResourceNotFound",
        &format!(
            "The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
        ),
    )
}

fn usage(message: &str) -> Reply {
    Reply::fail(2, format!("ERROR: {message}"))
}

/// The resource group as the scenario spells it, or ResourceGroupNotFound.
fn resource_group(ctx: &Ctx<'_>, name: &str) -> Result<String, Reply> {
    let s = &ctx.world.scenario;
    [
        s.cluster.resource_group.as_str(),
        s.cluster.node_resource_group.as_str(),
        "NetworkWatcherRG",
        s.capture.storage_resource_group.as_str(),
    ]
    .into_iter()
    .find(|rg| rg.eq_ignore_ascii_case(name))
    .map(str::to_owned)
    .ok_or_else(|| service_error(3, "ResourceGroupNotFound", &format!("Resource group '{name}' could not be found.")))
}

/// `-g RG -n NAME` or `--ids ID`: the resource group and name addressed.
fn addressed(ctx: &Ctx<'_>, args: &Args) -> Result<(String, String), Reply> {
    if let Some(id) = args.value("--ids") {
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        let group = parts.iter().position(|p| p.eq_ignore_ascii_case("resourceGroups")).and_then(|i| parts.get(i + 1));
        let (Some(group), Some(name)) = (group, parts.last()) else {
            return Err(usage(&format!("argument --ids: invalid resource ID '{id}'")));
        };
        return Ok((resource_group(ctx, group)?, (*name).to_owned()));
    }
    match (args.value("--resource-group"), args.value("--name")) {
        (Some(group), Some(name)) => Ok((resource_group(ctx, group)?, name.to_owned())),
        _ => Err(usage("the following arguments are required: --resource-group/-g, --name/-n")),
    }
}

fn list_in(ctx: &Ctx<'_>, args: &Args, items: Vec<Value>) -> AzResult {
    match args.value("--resource-group") {
        Some(group) => {
            let group = resource_group(ctx, group)?;
            Ok(Some(Value::Array(
                items.into_iter().filter(|i| text(i, "/resourceGroup").eq_ignore_ascii_case(&group)).collect(),
            )))
        }
        None => Ok(Some(Value::Array(items))),
    }
}

// ---- account, aks, policy ----

fn account_show(ctx: &mut Ctx<'_>, _args: &Args) -> AzResult {
    let s = &ctx.world.scenario.subscription;
    Ok(Some(json!({
        "environmentName": "AzureCloud", "homeTenantId": s.tenant_id, "id": s.id, "isDefault": true,
        "managedByTenants": [], "name": s.name, "state": "Enabled", "tenantId": s.tenant_id,
        "user": {"name": s.user, "type": "user"}
    })))
}

fn agent_pool(ctx: &Ctx<'_>) -> Value {
    let c = &ctx.world.scenario.cluster;
    json!({
        "count": 1, "currentOrchestratorVersion": c.kubernetes_version, "enableAutoScaling": false, "enableFips": false,
        "enableNodePublicIp": false, "kubeletDiskType": "OS", "maxPods": 30, "mode": "System", "name": c.node_pool,
        "nodeImageVersion": "AKSUbuntu-2204gen2containerd-202505.14.0", "orchestratorVersion": c.kubernetes_version,
        "osDiskSizeGb": 128, "osDiskType": "Ephemeral", "osSku": "Ubuntu", "osType": "Linux", "powerState": {"code": "Running"},
        "provisioningState": "Succeeded", "type": "VirtualMachineScaleSets", "vmSize": c.vm_size, "vnetSubnetId": ctx.world.subnet_id()
    })
}

fn cluster(ctx: &Ctx<'_>, group: &str, name: &str) -> Result<Value, Reply> {
    let world = &ctx.world;
    let c = &world.scenario.cluster;
    if !group.eq_ignore_ascii_case(&c.resource_group) || name != c.name {
        return Err(not_found(group, "Microsoft.ContainerService/managedClusters", name));
    }
    let outbound = world.public_ips().into_iter().next().map(|p| p["id"].clone()).unwrap_or(Value::Null);
    let mut pool = agent_pool(ctx);
    if let Some(map) = pool.as_object_mut() {
        map.remove("kubeletDiskType");
    }
    Ok(json!({
        "agentPoolProfiles": [pool],
        "azurePortalFqdn": format!("{}-dns-4f3c2a1b.portal.hcp.{}.azmk8s.io", c.name, c.location),
        "currentKubernetesVersion": c.kubernetes_version,
        "dnsPrefix": format!("{}-dns", c.name),
        "enableRbac": true,
        "fqdn": format!("{}-dns-4f3c2a1b.hcp.{}.azmk8s.io", c.name, c.location),
        "id": world.resource_id(&c.resource_group, "Microsoft.ContainerService/managedClusters", &c.name),
        "identity": {"principalId": "22222222-2222-2222-2222-222222222222", "tenantId": world.scenario.subscription.tenant_id, "type": "SystemAssigned"},
        "kubernetesVersion": c.kubernetes_version,
        "location": c.location,
        "name": c.name,
        "networkProfile": {
            "dnsServiceIp": "10.0.0.10", "ipFamilies": ["IPv4"],
            "loadBalancerProfile": {"backendPoolType": "nodeIPConfiguration", "effectiveOutboundIPs": [{"id": outbound, "resourceGroup": c.node_resource_group}], "managedOutboundIPs": {"count": 1}},
            "loadBalancerSku": "standard", "networkDataplane": "azure", "networkPlugin": "azure", "outboundType": "loadBalancer",
            "serviceCidr": "10.0.0.0/16", "serviceCidrs": ["10.0.0.0/16"]
        },
        "nodeResourceGroup": c.node_resource_group,
        "powerState": {"code": "Running"},
        "provisioningState": "Succeeded",
        "resourceGroup": c.resource_group,
        "sku": {"name": "Base", "tier": "Free"},
        "type": "Microsoft.ContainerService/ManagedClusters"
    }))
}

fn aks_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let (group, name) = addressed(ctx, args)?;
    cluster(ctx, &group, &name).map(Some)
}

fn nodepool_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let group = resource_group(ctx, args.value("--resource-group").unwrap_or_default())?;
    let name = args.value("--cluster-name").unwrap_or_default();
    cluster(ctx, &group, name)?;
    let mut pool = agent_pool(ctx);
    pool["id"] = json!(format!(
        "{}/agentPools/{}",
        ctx.world.resource_id(&group, "Microsoft.ContainerService/managedClusters", name),
        ctx.world.scenario.cluster.node_pool
    ));
    pool["resourceGroup"] = json!(group);
    pool["type"] = json!("Microsoft.ContainerService/managedClusters/agentPools");
    Ok(Some(json!([pool])))
}

fn nodepool_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let pools = nodepool_list(ctx, args)?.unwrap_or_default();
    let name = args.value("--name").unwrap_or_default();
    pools.as_array().and_then(|p| p.iter().find(|p| p["name"] == name)).cloned().map(Some).ok_or_else(|| {
        not_found(
            args.value("--resource-group").unwrap_or_default(),
            &format!(
                "Microsoft.ContainerService/managedClusters/{}/agentPools",
                args.value("--cluster-name").unwrap_or_default()
            ),
            name,
        )
    })
}

fn policy_assignment_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let s = &ctx.world.scenario;
    let subscription_scope = format!("/subscriptions/{}", s.subscription.id);
    let scope = match (args.value("--scope"), args.value("--resource-group")) {
        (Some(_), Some(_)) => return Err(usage("usage error: --scope and --resource-group are mutually exclusive")),
        (Some(scope), None) => scope.trim_end_matches('/').to_owned(),
        (None, Some(group)) => format!("{subscription_scope}/resourceGroups/{}", resource_group(ctx, group)?),
        (None, None) => subscription_scope.clone(),
    };
    let inherited = args.switch("--disable-scope-strict-match");
    let visible = scope.eq_ignore_ascii_case(&subscription_scope)
        || (inherited && scope.to_lowercase().starts_with(&format!("{}/", subscription_scope.to_lowercase())));
    let assignments: Vec<Value> = if !visible {
        Vec::new()
    } else {
        s.policy_assignments
            .iter()
            .map(|a| {
                json!({
                    "description": null, "displayName": a.display_name, "enforcementMode": a.enforcement_mode,
                    "id": format!("{subscription_scope}/providers/Microsoft.Authorization/policyAssignments/{}", a.name),
                    "metadata": {"assignedBy": "Security Center"}, "name": a.name, "nonComplianceMessages": [], "notScopes": [],
                    "parameters": {}, "policyDefinitionId": a.policy_definition_id, "scope": subscription_scope,
                    "type": "Microsoft.Authorization/policyAssignments"
                })
            })
            .collect()
    };
    Ok(Some(Value::Array(assignments)))
}

// ---- public IPs ----

fn find_public_ip(ctx: &Ctx<'_>, group: &str, name: &str) -> Result<Value, Reply> {
    ctx.world
        .public_ips()
        .into_iter()
        .find(|p| p["name"] == name && text(p, "/resourceGroup").eq_ignore_ascii_case(group))
        .ok_or_else(|| not_found(group, "Microsoft.Network/publicIPAddresses", name))
}

fn public_ip_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    observe_load_balancer(ctx);
    let items = ctx.world.public_ips();
    list_in(ctx, args, items)
}

fn public_ip_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    observe_load_balancer(ctx);
    let (group, name) = addressed(ctx, args)?;
    find_public_ip(ctx, &group, &name).map(Some)
}

fn public_ip_ddos_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let (group, name) = addressed(ctx, args)?;
    let pip = find_public_ip(ctx, &group, &name)?;
    let protected = ctx.world.scenario.network.ddos_protection;
    let mut status = json!({
        "isWorkloadProtected": if protected { "True" } else { "False" },
        "publicIpAddress": pip["ipAddress"], "publicIpAddressId": pip["id"]
    });
    if protected {
        status["ddosProtectionPlanId"] = json!(ctx.world.resource_id(
            ctx.world.cluster_rg(),
            "Microsoft.Network/ddosProtectionPlans",
            "mini-xdr-ddos-plan"
        ));
    }
    Ok(Some(status))
}

fn public_ip_create(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let group = resource_group(ctx, args.value("--resource-group").unwrap_or_default())?;
    let name = args.value("--name").unwrap_or_default().to_owned();
    let sku = args.value("--sku").unwrap_or("Standard");
    if !sku.eq_ignore_ascii_case("standard") {
        return Err(usage(&format!(
            "argument --sku: invalid choice: '{sku}': the simulated cluster's load balancer is Standard"
        )));
    }
    if !ctx.world.static_ips.iter().any(|s| s.name == name) {
        let address = ctx.world.scenario.load_balancer.static_address.clone();
        ctx.world.static_ips.push(StaticIp {
            name: name.clone(),
            resource_group: group.clone(),
            address,
            sku: "Standard".to_owned(),
        });
    }
    let pip = find_public_ip(ctx, &group, &name)?;
    Ok(Some(json!({"publicIp": pip})))
}

// ---- virtual network ----

fn vnet(ctx: &Ctx<'_>) -> Value {
    let world = &ctx.world;
    let n = &world.scenario.network;
    let vnet_id = world.resource_id(world.cluster_rg(), "Microsoft.Network/virtualNetworks", &n.vnet);
    let mut value = json!({
        "addressSpace": {"addressPrefixes": [n.vnet_prefix]},
        "enableDdosProtection": n.ddos_protection,
        "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
        "id": vnet_id, "location": world.scenario.cluster.location, "name": n.vnet, "provisioningState": "Succeeded",
        "resourceGroup": world.cluster_rg(), "resourceGuid": "0c5e2d7f-1a3b-4c6d-8e9f-0a1b2c3d4e5f",
        "subnets": [subnet(ctx)], "type": "Microsoft.Network/virtualNetworks", "virtualNetworkPeerings": []
    });
    if n.ddos_protection {
        value["ddosProtectionPlan"] = json!({"id": world.resource_id(world.cluster_rg(), "Microsoft.Network/ddosProtectionPlans", "mini-xdr-ddos-plan"), "resourceGroup": world.cluster_rg()});
    }
    value
}

fn subnet(ctx: &Ctx<'_>) -> Value {
    let world = &ctx.world;
    let n = &world.scenario.network;
    let endpoints: Vec<Value> = n
        .service_endpoints
        .iter()
        .map(
            |s| json!({"locations": [world.scenario.cluster.location], "provisioningState": "Succeeded", "service": s}),
        )
        .collect();
    json!({
        "addressPrefix": n.subnet_prefix,
        "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
        "id": world.subnet_id(),
        "ipConfigurations": [{"id": world.ipconfig_id().to_uppercase(), "resourceGroup": world.node_rg()}],
        "name": n.subnet,
        "networkSecurityGroup": {"id": world.nsg_id(&n.subnet_nsg), "resourceGroup": world.cluster_rg()},
        "privateEndpointNetworkPolicies": "Disabled",
        "privateLinkServiceNetworkPolicies": "Enabled",
        "provisioningState": "Succeeded",
        "resourceGroup": world.cluster_rg(),
        "serviceEndpoints": endpoints,
        "type": "Microsoft.Network/virtualNetworks/subnets"
    })
}

fn vnet_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let items = vec![vnet(ctx)];
    list_in(ctx, args, items)
}

fn vnet_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let (group, name) = addressed(ctx, args)?;
    let value = vnet(ctx);
    if value["name"] != name.as_str() || !group.eq_ignore_ascii_case(ctx.world.cluster_rg()) {
        return Err(not_found(&group, "Microsoft.Network/virtualNetworks", &name));
    }
    Ok(Some(value))
}

fn subnet_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let n = ctx.world.scenario.network.clone();
    let (group, vnet_name, name) = if let Some(id) = args.value("--ids") {
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        let at = |key: &str| {
            parts
                .iter()
                .position(|p| p.eq_ignore_ascii_case(key))
                .and_then(|i| parts.get(i + 1))
                .map(|s| (*s).to_owned())
        };
        match (at("resourceGroups"), at("virtualNetworks"), at("subnets")) {
            (Some(g), Some(v), Some(s)) => (resource_group(ctx, &g)?, v, s),
            _ => return Err(usage(&format!("argument --ids: invalid resource ID '{id}'"))),
        }
    } else {
        match (args.value("--resource-group"), args.value("--vnet-name"), args.value("--name")) {
            (Some(g), Some(v), Some(s)) => (resource_group(ctx, g)?, v.to_owned(), s.to_owned()),
            _ => {
                return Err(usage("the following arguments are required: --resource-group/-g, --vnet-name, --name/-n"));
            }
        }
    };
    if vnet_name != n.vnet || !group.eq_ignore_ascii_case(ctx.world.cluster_rg()) {
        return Err(not_found(&group, "Microsoft.Network/virtualNetworks", &vnet_name));
    }
    if name != n.subnet {
        return Err(not_found(&group, &format!("Microsoft.Network/virtualNetworks/{vnet_name}/subnets"), &name));
    }
    Ok(Some(subnet(ctx)))
}

fn subnet_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let group = resource_group(ctx, args.value("--resource-group").unwrap_or_default())?;
    let vnet_name = args.value("--vnet-name").unwrap_or_default();
    if vnet_name != ctx.world.scenario.network.vnet || !group.eq_ignore_ascii_case(ctx.world.cluster_rg()) {
        return Err(not_found(&group, "Microsoft.Network/virtualNetworks", vnet_name));
    }
    Ok(Some(json!([subnet(ctx)])))
}

// ---- NSGs ----

fn nsg_named(ctx: &Ctx<'_>, group: &str, name: &str) -> Result<String, Reply> {
    ctx.world
        .nsg_names()
        .into_iter()
        .find(|n| n == name && ctx.world.nsg_resource_group(n).eq_ignore_ascii_case(group))
        .ok_or_else(|| not_found(group, "Microsoft.Network/networkSecurityGroups", name))
}

fn nsg_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    observe_load_balancer(ctx);
    let items = ctx.world.nsg_names().iter().map(|n| ctx.world.nsg(n)).collect();
    list_in(ctx, args, items)
}

fn nsg_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    observe_load_balancer(ctx);
    let (group, name) = addressed(ctx, args)?;
    let nsg = nsg_named(ctx, &group, &name)?;
    Ok(Some(ctx.world.nsg(&nsg)))
}

fn nsg_from_args(ctx: &Ctx<'_>, args: &Args) -> Result<String, Reply> {
    let group = resource_group(ctx, args.value("--resource-group").unwrap_or_default())?;
    nsg_named(ctx, &group, args.value("--nsg-name").unwrap_or_default())
}

fn nsg_rule_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    observe_load_balancer(ctx);
    let nsg = nsg_from_args(ctx, args)?;
    let mut rules = ctx.world.security_rules(&nsg);
    if args.switch("--include-default") {
        rules.extend(ctx.world.default_rules(&nsg));
    }
    Ok(Some(Value::Array(rules)))
}

fn nsg_rule_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let nsg = nsg_from_args(ctx, args)?;
    let name = args.value("--name").unwrap_or_default();
    ctx.world.security_rules(&nsg).into_iter().find(|r| r["name"] == name).map(Some).ok_or_else(|| {
        not_found(
            ctx.world.nsg_resource_group(&nsg),
            &format!("Microsoft.Network/networkSecurityGroups/{nsg}/securityRules"),
            name,
        )
    })
}

fn nsg_rule_create(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let nsg = nsg_from_args(ctx, args)?;
    let name = args.value("--name").unwrap_or_default().to_owned();
    let priority_text = args.value("--priority").unwrap_or_default();
    let Ok(priority) = priority_text.parse::<u64>() else {
        return Err(usage(&format!("argument --priority: invalid int value: '{priority_text}'")));
    };
    let choice = |flag: &str, default: &str, choices: &[&str]| -> Result<String, Reply> {
        let value = args.value(flag).unwrap_or(default);
        choices.iter().find(|c| c.eq_ignore_ascii_case(value)).map(|c| (*c).to_owned()).ok_or_else(|| {
            let listed = choices.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(", ");
            usage(&format!("argument {flag}: invalid choice: '{value}' (choose from {listed})"))
        })
    };
    let direction = choice("--direction", "Inbound", &["Inbound", "Outbound"])?;
    let access = choice("--access", "Allow", &["Allow", "Deny"])?;
    let protocol = choice("--protocol", "*", &["*", "Ah", "Esp", "Icmp", "Tcp", "Udp"])?;
    if !(100..=4096).contains(&priority) {
        return Err(service_error(
            1,
            "SecurityRuleInvalidPriority",
            &format!("Security rule has invalid Priority. Value provided: {priority} Allowed range 100-4096."),
        ));
    }
    let values = |flag: &str, default: &str| -> Vec<String> {
        let given = args.values(flag);
        if given.is_empty() { vec![default.to_owned()] } else { given.into_iter().map(str::to_owned).collect() }
    };
    if let Some(conflict) = ctx
        .world
        .security_rules(&nsg)
        .iter()
        .find(|r| r["priority"] == priority && r["direction"] == direction.as_str() && r["name"] != name.as_str())
    {
        return Err(service_error(
            1,
            "SecurityRuleConflict",
            &format!(
                "Security rule {name} conflicts with rule {}. Rules cannot have the same Priority and Direction. To learn more, see aka.ms/nsgrules.",
                text(conflict, "/name")
            ),
        ));
    }
    let rule = ctx.world.security_rule(
        &nsg,
        &name,
        priority,
        &direction,
        &access,
        &protocol,
        &values("--source-address-prefixes", "*"),
        &values("--source-port-ranges", "*"),
        &values("--destination-address-prefixes", "*"),
        &values("--destination-port-ranges", "80"),
        args.value("--description"),
    );
    ctx.world.custom_rules.retain(|r| !(r.nsg == nsg && r.rule["name"] == name.as_str()));
    ctx.world.custom_rules.push(CustomRule { nsg, rule: rule.clone() });
    Ok(if args.switch("--no-wait") { None } else { Some(rule) })
}

fn nsg_rule_delete(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let nsg = nsg_from_args(ctx, args)?;
    let name = args.value("--name").unwrap_or_default();
    ctx.world.custom_rules.retain(|r| !(r.nsg == nsg && r.rule["name"] == name));
    Ok(None)
}

// ---- load balancer ----

/// A read of the load balancer or public IPs counts as one read of every pending LoadBalancer Service.
fn observe_load_balancer(ctx: &mut Ctx<'_>) {
    let now = ctx.now;
    ctx.world.poll_services(|_, _| true, now);
}

fn the_lb(ctx: &mut Ctx<'_>, group: &str, name: &str) -> Result<Value, Reply> {
    observe_load_balancer(ctx);
    if name != "kubernetes" || !group.eq_ignore_ascii_case(ctx.world.node_rg()) {
        return Err(not_found(group, "Microsoft.Network/loadBalancers", name));
    }
    Ok(ctx.world.load_balancer())
}

fn lb_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    observe_load_balancer(ctx);
    let items = vec![ctx.world.load_balancer()];
    list_in(ctx, args, items)
}

fn lb_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let (group, name) = addressed(ctx, args)?;
    the_lb(ctx, &group, &name).map(Some)
}

fn lb_part(ctx: &mut Ctx<'_>, args: &Args, part: &str) -> AzResult {
    let group = resource_group(ctx, args.value("--resource-group").unwrap_or_default())?;
    let lb = the_lb(ctx, &group, args.value("--lb-name").unwrap_or_default())?;
    Ok(Some(lb[part].clone()))
}

fn lb_rule_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    lb_part(ctx, args, "loadBalancingRules")
}

fn lb_probe_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    lb_part(ctx, args, "probes")
}

fn lb_frontend_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    lb_part(ctx, args, "frontendIPConfigurations")
}

fn lb_pool_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    lb_part(ctx, args, "backendAddressPools")
}

fn nic_list_effective_nsg(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    // The command addresses Microsoft.Network/networkInterfaces only; AKS node NICs belong to the scale set.
    let (group, name) = addressed(ctx, args)?;
    Err(not_found(&group, "Microsoft.Network/networkInterfaces", &name))
}

// ---- network watcher ----

const WATCHER_RG: &str = "NetworkWatcherRG";

fn watcher_name(ctx: &Ctx<'_>) -> String {
    format!("NetworkWatcher_{}", ctx.world.scenario.cluster.location)
}

fn watcher_list(ctx: &mut Ctx<'_>, _args: &Args) -> AzResult {
    let name = watcher_name(ctx);
    Ok(Some(json!([{
        "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
        "id": ctx.world.resource_id(WATCHER_RG, "Microsoft.Network/networkWatchers", &name),
        "location": ctx.world.scenario.cluster.location, "name": name, "provisioningState": "Succeeded",
        "resourceGroup": WATCHER_RG, "type": "Microsoft.Network/networkWatchers"
    }])))
}

fn run_configuration_diagnostic(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    observe_load_balancer(ctx);
    let resource = args.value("--resource").unwrap_or_default();
    let target = if resource.starts_with("/subscriptions/") {
        if args.given("--resource-group") || args.given("--resource-type") || args.given("--parent") {
            return Err(usage(
                "usage error: --resource ID | --resource NAME --resource-type TYPE --resource-group NAME [--parent PATH]",
            ));
        }
        resource.to_owned()
    } else {
        let (Some(group), Some(kind)) = (args.value("--resource-group"), args.value("--resource-type")) else {
            return Err(usage(
                "usage error: --resource ID | --resource NAME --resource-type TYPE --resource-group NAME [--parent PATH]",
            ));
        };
        let namespace =
            if args.given("--parent") || kind == "virtualMachines" { "Microsoft.Compute" } else { "Microsoft.Network" };
        let parent = args.value("--parent").map(|p| format!("{p}/")).unwrap_or_default();
        ctx.world.resource_id(group, &format!("{namespace}/{parent}{kind}"), resource)
    };
    if args.given("--queries") {
        return Err(Reply::fail(
            2,
            "azsim: --queries is not simulated: give --direction, --protocol, --source, --destination and --port",
        ));
    }
    let query: Vec<&str> = ["--direction", "--protocol", "--source", "--destination", "--port"]
        .iter()
        .filter_map(|f| args.value(f))
        .collect();
    if query.len() != 5 {
        return Err(usage(
            "usage error: --queries JSON | --destination DEST --source SRC --direction DIR --port PORT --protocol PROTOCOL",
        ));
    }
    let (direction, protocol, source, destination, port) = (query[0], query[1], query[2], query[3], query[4]);
    if !["Inbound", "Outbound"].contains(&direction) {
        return Err(usage(&format!(
            "argument --direction: invalid choice: '{direction}' (choose from 'Inbound', 'Outbound')"
        )));
    }
    if !["TCP", "UDP"].contains(&protocol) {
        return Err(usage(&format!("argument --protocol: invalid choice: '{protocol}' (choose from 'TCP', 'UDP')")));
    }
    let world = &ctx.world;
    if !target.eq_ignore_ascii_case(&world.nic_id()) && !target.eq_ignore_ascii_case(&world.vmss_id()) {
        let (rg, name) = (
            target
                .split('/')
                .skip_while(|p| !p.eq_ignore_ascii_case("resourceGroups"))
                .nth(1)
                .unwrap_or_default()
                .to_owned(),
            target.rsplit('/').next().unwrap_or_default().to_owned(),
        );
        let kind = target
            .split("/providers/")
            .nth(1)
            .and_then(|p| p.rsplit_once('/'))
            .map(|(k, _)| k.to_owned())
            .unwrap_or_default();
        return Err(not_found(&rg, &kind, &name));
    }
    let result = world.evaluate_flow(direction, protocol, source, destination, port);
    Ok(Some(json!({"results": [{
        "networkSecurityGroupResult": result,
        "profile": {"destination": destination, "destinationPort": port, "direction": direction, "protocol": protocol, "source": source}
    }]})))
}

fn capture_id(ctx: &Ctx<'_>, name: &str) -> String {
    format!(
        "{}/packetCaptures/{name}",
        ctx.world.resource_id(WATCHER_RG, "Microsoft.Network/networkWatchers", &watcher_name(ctx))
    )
}

fn capture_json(ctx: &Ctx<'_>, session: &CaptureSession) -> Value {
    let mut value = json!({
        "bytesToCapturePerPacket": session.capture_size,
        "etag": "W/\"00000000-0000-0000-0000-000000000001\"",
        "filters": session.filters,
        "id": capture_id(ctx, &session.name),
        "name": session.name,
        "provisioningState": "Succeeded",
        "resourceGroup": WATCHER_RG,
        "scope": {"exclude": session.exclude, "include": session.include},
        "target": session.target,
        "targetType": session.target_type,
        "timeLimitInSeconds": session.time_limit,
        "totalBytesPerSession": session.capture_limit
    });
    let mut location = serde_json::Map::new();
    if let Some(id) = &session.storage_id {
        location.insert("storageId".to_owned(), json!(id));
    }
    if let Some(path) = &session.storage_path {
        location.insert("storagePath".to_owned(), json!(path));
    }
    if let Some(path) = &session.file_path {
        location.insert("filePath".to_owned(), json!(path));
    }
    value["storageLocation"] = Value::Object(location);
    value
}

fn check_location(ctx: &Ctx<'_>, args: &Args) -> Result<(), Reply> {
    let location = args.value("--location").unwrap_or_default();
    if location.eq_ignore_ascii_case(&ctx.world.scenario.cluster.location) {
        Ok(())
    } else {
        Err(not_found(WATCHER_RG, "Microsoft.Network/networkWatchers", &format!("NetworkWatcher_{location}")))
    }
}

fn find_capture(ctx: &Ctx<'_>, args: &Args) -> Result<usize, Reply> {
    check_location(ctx, args)?;
    let name = args.value("--name").unwrap_or_default();
    ctx.world.captures.iter().position(|c| c.name == name).ok_or_else(|| {
        not_found(WATCHER_RG, &format!("Microsoft.Network/networkWatchers/{}/packetCaptures", watcher_name(ctx)), name)
    })
}

fn capture_create(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let group = resource_group(ctx, args.value("--resource-group").unwrap_or_default())?;
    let name = args.value("--name").unwrap_or_default().to_owned();
    let target_type = args.value("--target-type").unwrap_or("AzureVM");
    if !["AzureVM", "AzureVMSS"].contains(&target_type) {
        return Err(usage(&format!(
            "argument --target-type: invalid choice: '{target_type}' (choose from 'AzureVM', 'AzureVMSS')"
        )));
    }
    let target = match (target_type, args.value("--target"), args.value("--vm")) {
        ("AzureVMSS", Some(target), _) => target.to_owned(),
        ("AzureVMSS", None, _) => {
            return Err(Reply::fail(
                2,
                "azsim: --target-type AzureVMSS reads --target, not --vm: give --target VMSS_NAME_OR_ID",
            ));
        }
        (_, _, Some(vm)) | (_, Some(vm), None) => {
            return Err(not_found(&group, "Microsoft.Compute/virtualMachines", vm.rsplit('/').next().unwrap_or(vm)));
        }
        (_, None, None) => {
            return Err(usage("usage error: --vm NAME_OR_ID | --target NAME_OR_ID --target-type AzureVMSS"));
        }
    };
    let vmss = &ctx.world.scenario.cluster.vmss;
    let target_name = target.rsplit('/').next().unwrap_or(&target);
    if target_name != vmss || !group.eq_ignore_ascii_case(ctx.world.node_rg()) {
        return Err(not_found(&group, "Microsoft.Compute/virtualMachineScaleSets", target_name));
    }
    let (storage, file_path) = (args.value("--storage-account"), args.value("--file-path"));
    if storage.is_none() && file_path.is_none() || storage.is_none() && args.given("--storage-path") {
        return Err(usage(
            "usage error: --storage-account NAME_OR_ID [--storage-path PATH] [--file-path PATH] | --file-path PATH",
        ));
    }
    if let Some(path) = file_path
        && !path.ends_with(".cap")
    {
        return Err(usage("usage error: --file-path PATH must end with the '*.cap' extension"));
    }
    let filters = match args.value("--filters") {
        Some(text) => {
            serde_json::from_str::<Value>(text).map_err(|e| usage(&format!("argument --filters: invalid JSON: {e}")))?
        }
        None => json!([]),
    };
    let number = |flag: &str, default: u64| -> Result<u64, Reply> {
        args.value(flag).map_or(Ok(default), |v| {
            v.parse().map_err(|_| usage(&format!("argument {flag}: invalid int value: '{v}'")))
        })
    };
    let time_limit = number("--time-limit", 18_000)?;
    if time_limit > 18_000 {
        return Err(usage("argument --time-limit: the value must be between 0 and 18000"));
    }
    let started = ctx.now;
    let world = &ctx.world;
    let storage_id = storage.map(|account| {
        if account.starts_with("/subscriptions/") {
            account.to_owned()
        } else {
            world.resource_id(
                &world.scenario.capture.storage_resource_group,
                "Microsoft.Storage/storageAccounts",
                account,
            )
        }
    });
    let storage_path = storage_id.as_ref().map(|id| {
        let account = id.rsplit('/').next().unwrap_or_default();
        let base = args
            .value("--storage-path")
            .map(|p| p.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("https://{account}.blob.core.windows.net/network-watcher-logs"));
        format!(
            "{base}/subscriptions/{}/resourcegroups/{}/providers/microsoft.compute/virtualmachinescalesets/{}/{}/packetcapture_{}.cap",
            world.scenario.subscription.id,
            world.node_rg().to_lowercase(),
            vmss,
            started.format("%Y/%m/%d"),
            started.format("%H_%M_%S_%3f")
        )
    });
    let session = CaptureSession {
        name: name.clone(),
        target: world.vmss_id(),
        target_type: target_type.to_owned(),
        include: args.values("--include").into_iter().map(str::to_owned).collect(),
        exclude: args.values("--exclude").into_iter().map(str::to_owned).collect(),
        storage_id,
        storage_path,
        file_path: file_path.map(str::to_owned),
        filters,
        time_limit,
        capture_limit: number("--capture-limit", 1_073_741_824)?,
        capture_size: number("--capture-size", 0)?,
        started_at: azure_time(started),
        status_polls: 0,
        stopped: false,
    };
    let value = capture_json(ctx, &session);
    ctx.world.captures.retain(|c| c.name != name);
    ctx.world.captures.push(session);
    Ok(if args.switch("--no-wait") { None } else { Some(value) })
}

fn capture_show_status(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let index = find_capture(ctx, args)?;
    let not_started = ctx.world.scenario.capture.not_started_polls;
    let id = capture_id(ctx, &ctx.world.captures[index].name);
    let session = &mut ctx.world.captures[index];
    session.status_polls += 1;
    let mut status = json!({
        "captureStartTime": session.started_at, "id": id, "name": session.name, "packetCaptureError": []
    });
    if session.stopped {
        status["packetCaptureStatus"] = json!("Stopped");
        status["stopReason"] = json!("StoppedByUser");
    } else if session.status_polls <= not_started {
        status["packetCaptureStatus"] = json!("NotStarted");
    } else {
        status["packetCaptureStatus"] = json!("Running");
    }
    Ok(Some(status))
}

fn capture_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let index = find_capture(ctx, args)?;
    Ok(Some(capture_json(ctx, &ctx.world.captures[index])))
}

fn capture_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    check_location(ctx, args)?;
    Ok(Some(Value::Array(ctx.world.captures.iter().map(|c| capture_json(ctx, c)).collect())))
}

/// Writes the capture file: empty, or the client's unanswered SYNs when the scenario lets packets reach the node.
fn capture_bytes(ctx: &Ctx<'_>, session: &CaptureSession) -> Vec<u8> {
    if !ctx.world.scenario.capture.packets_at_node {
        return pcap::capture(&[]);
    }
    let frontend = &ctx.world.scenario.frontend;
    let server = ctx
        .world
        .find("Service", &frontend.namespace, &frontend.name)
        .and_then(|s| s["status"]["loadBalancer"]["ingress"][0]["ip"].as_str().map(str::to_owned))
        .or_else(|| ctx.world.used_addresses.first().cloned())
        .unwrap_or_default();
    let filter = session.filters.get(0).cloned().unwrap_or_default();
    let client = text(&filter, "/remoteIPAddress").parse().unwrap_or(std::net::Ipv4Addr::new(203, 0, 113, 25));
    let port = text(&filter, "/localPort")
        .split([';', '-'])
        .find_map(|p| p.trim().parse::<u16>().ok())
        .unwrap_or(frontend.port_http);
    let start = u32::try_from(ctx.now.timestamp()).unwrap_or(0);
    pcap::capture(&[pcap::Attempt {
        client,
        server: server.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST),
        port,
        start,
    }])
}

fn capture_stop(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let index = find_capture(ctx, args)?;
    if ctx.world.captures[index].stopped {
        return Ok(None);
    }
    let session = ctx.world.captures[index].clone();
    let bytes = capture_bytes(ctx, &session);
    if let Some(url) = &session.storage_path {
        let file = format!("blobs/{}.cap", session.name.replace(['/', '\\'], "_"));
        let path = ctx.dir.join(&file);
        write_file(&path, &bytes)?;
        ctx.world.blobs.retain(|b| &b.url != url);
        ctx.world.blobs.push(crate::world::Blob { url: url.clone(), file });
    }
    if let Some(node_path) = &session.file_path {
        // The node's file system lives under the state directory.
        let path = ctx.dir.join("node").join(node_path.trim_start_matches('/'));
        write_file(&path, &bytes)?;
    }
    ctx.world.captures[index].stopped = true;
    Ok(None)
}

fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), Reply> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Reply::fail(1, format!("ERROR: [Errno 5] {e}: '{}'", parent.display())))?;
    }
    std::fs::write(path, bytes).map_err(|e| Reply::fail(1, format!("ERROR: [Errno 5] {e}: '{}'", path.display())))
}

fn capture_delete(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let index = find_capture(ctx, args)?;
    ctx.world.captures.remove(index);
    Ok(None)
}

fn avnm_admin_rules(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let group = resource_group(ctx, args.value("--resource-group").unwrap_or_default())?;
    let vnet_name = args.value("--virtual-network-name").unwrap_or_default();
    if vnet_name != ctx.world.scenario.network.vnet || !group.eq_ignore_ascii_case(ctx.world.cluster_rg()) {
        return Err(not_found(&group, "Microsoft.Network/virtualNetworks", vnet_name));
    }
    Ok(Some(json!({"value": []})))
}

fn route_table_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    list_in(ctx, args, Vec::new())
}

fn route_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let group = resource_group(ctx, args.value("--resource-group").unwrap_or_default())?;
    Err(not_found(&group, "Microsoft.Network/routeTables", args.value("--route-table-name").unwrap_or_default()))
}

// ---- scale set ----

fn vmss_json(ctx: &Ctx<'_>) -> Value {
    let world = &ctx.world;
    let c = &world.scenario.cluster;
    let lb = world.resource_id(world.node_rg(), "Microsoft.Network/loadBalancers", "kubernetes");
    let extensions: Vec<Value> = world
        .vmss_extensions
        .iter()
        .map(|e| json!({"name": e, "provisioningState": "Succeeded", "typeHandlerVersion": "1.0"}))
        .collect();
    json!({
        "id": world.vmss_id(), "location": c.location, "name": c.vmss, "orchestrationMode": "Uniform", "overprovision": false,
        "provisioningState": "Succeeded", "resourceGroup": world.node_rg(),
        "sku": {"capacity": 1, "name": c.vm_size, "tier": "Standard"},
        "tags": {"aks-managed-createOperationID": "8f2d1c3b-4a5e-4f60-9b7c-1d2e3f4a5b6c", "aks-managed-poolName": c.node_pool, "aks-managed-orchestrator": format!("Kubernetes:{}", c.kubernetes_version)},
        "type": "Microsoft.Compute/virtualMachineScaleSets", "uniqueId": "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
        "upgradePolicy": {"mode": "Manual"},
        "virtualMachineProfile": {
            "extensionProfile": {"extensions": extensions},
            "networkProfile": {"networkInterfaceConfigurations": [{
                "enableAcceleratedNetworking": true, "enableIPForwarding": true, "name": c.vmss, "primary": true,
                "networkSecurityGroup": {"id": world.nsg_id(&world.scenario.network.nic_nsg), "resourceGroup": world.node_rg()},
                "ipConfigurations": [{"name": "ipconfig1", "primary": true, "privateIPAddressVersion": "IPv4",
                    "subnet": {"id": world.subnet_id(), "resourceGroup": world.cluster_rg()},
                    "loadBalancerBackendAddressPools": [
                        {"id": format!("{lb}/backendAddressPools/kubernetes"), "resourceGroup": world.node_rg()},
                        {"id": format!("{lb}/backendAddressPools/aksOutboundBackendPool"), "resourceGroup": world.node_rg()}
                    ]}]
            }]},
            "osProfile": {"adminUsername": "azureuser", "computerNamePrefix": format!("{}", c.node_name.trim_end_matches(char::is_numeric))}
        }
    })
}

fn check_vmss(ctx: &Ctx<'_>, group: &str, name: &str) -> Result<(), Reply> {
    let group = resource_group(ctx, group)?;
    if name != ctx.world.scenario.cluster.vmss || !group.eq_ignore_ascii_case(ctx.world.node_rg()) {
        return Err(not_found(&group, "Microsoft.Compute/virtualMachineScaleSets", name));
    }
    Ok(())
}

fn vmss_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let items = vec![vmss_json(ctx)];
    list_in(ctx, args, items)
}

fn vmss_list_instances(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    check_vmss(ctx, args.value("--resource-group").unwrap_or_default(), args.value("--name").unwrap_or_default())?;
    let world = &ctx.world;
    let c = &world.scenario.cluster;
    Ok(Some(json!([{
        "id": format!("{}/virtualMachines/0", world.vmss_id()), "instanceId": "0", "latestModelApplied": true,
        "location": c.location, "name": format!("{}_0", c.vmss),
        "networkProfile": {"networkInterfaces": [{"id": world.nic_id(), "primary": true, "resourceGroup": world.node_rg()}]},
        "osProfile": {"adminUsername": "azureuser", "computerName": c.node_name},
        "provisioningState": "Succeeded", "resourceGroup": world.node_rg(),
        "sku": {"name": c.vm_size, "tier": "Standard"}, "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
        "vmId": "4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8"
    }])))
}

fn vmss_public_ips(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    check_vmss(ctx, args.value("--resource-group").unwrap_or_default(), args.value("--name").unwrap_or_default())?;
    Ok(Some(json!([])))
}

fn vm_nic(ctx: &Ctx<'_>) -> Value {
    let world = &ctx.world;
    let c = &world.scenario.cluster;
    let lb = world.resource_id(world.node_rg(), "Microsoft.Network/loadBalancers", "kubernetes");
    json!({
        "dnsSettings": {"appliedDnsServers": [], "dnsServers": []},
        "enableAcceleratedNetworking": true, "enableIPForwarding": true,
        "id": world.nic_id(),
        "ipConfigurations": [{
            "id": world.ipconfig_id(),
            "loadBalancerBackendAddressPools": [
                {"id": format!("{lb}/backendAddressPools/kubernetes"), "resourceGroup": world.node_rg()},
                {"id": format!("{lb}/backendAddressPools/aksOutboundBackendPool"), "resourceGroup": world.node_rg()}
            ],
            "name": "ipconfig1", "primary": true, "privateIPAddress": c.node_ip, "privateIPAddressVersion": "IPv4",
            "privateIPAllocationMethod": "Dynamic", "provisioningState": "Succeeded", "resourceGroup": world.node_rg(),
            "subnet": {"id": world.subnet_id(), "resourceGroup": world.cluster_rg()}
        }],
        "macAddress": "00-0D-3A-5E-21-07",
        "name": c.vmss,
        "networkSecurityGroup": {"id": world.nsg_id(&world.scenario.network.nic_nsg), "resourceGroup": world.node_rg()},
        "primary": true, "provisioningState": "Succeeded", "resourceGroup": world.node_rg(),
        "type": "Microsoft.Network/networkInterfaces",
        "virtualMachine": {"id": format!("{}/virtualMachines/0", world.vmss_id()), "resourceGroup": world.node_rg()}
    })
}

fn vmss_nic_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    check_vmss(ctx, args.value("--resource-group").unwrap_or_default(), args.value("--vmss-name").unwrap_or_default())?;
    Ok(Some(json!([vm_nic(ctx)])))
}

fn vmss_vm_nics(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let group = args.value("--resource-group").unwrap_or_default();
    let vmss = args.value("--vmss-name").unwrap_or_default();
    check_vmss(ctx, group, vmss)?;
    let instance = args.value("--instance-id").unwrap_or_default();
    if instance != "0" {
        return Err(not_found(
            group,
            &format!("Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines"),
            instance,
        ));
    }
    Ok(Some(json!([vm_nic(ctx)])))
}

fn vmss_extension_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    check_vmss(ctx, args.value("--resource-group").unwrap_or_default(), args.value("--vmss-name").unwrap_or_default())?;
    Ok(Some(vmss_json(ctx)["virtualMachineProfile"]["extensionProfile"]["extensions"].clone()))
}

fn vmss_extension_set(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    check_vmss(ctx, args.value("--resource-group").unwrap_or_default(), args.value("--vmss-name").unwrap_or_default())?;
    let name = args.value("--name").unwrap_or_default().to_owned();
    if !ctx.world.vmss_extensions.contains(&name) {
        ctx.world.vmss_extensions.push(name);
    }
    Ok(Some(vmss_json(ctx)))
}

// ---- storage ----

fn storage_account(ctx: &Ctx<'_>) -> Value {
    let world = &ctx.world;
    let c = &world.scenario.capture;
    json!({
        "id": world.resource_id(&c.storage_resource_group, "Microsoft.Storage/storageAccounts", &c.storage_account),
        "kind": "StorageV2", "location": world.scenario.cluster.location, "name": c.storage_account,
        "primaryEndpoints": {"blob": format!("https://{}.blob.core.windows.net/", c.storage_account)},
        "provisioningState": "Succeeded", "resourceGroup": c.storage_resource_group,
        "sku": {"name": "Standard_LRS", "tier": "Standard"}, "type": "Microsoft.Storage/storageAccounts"
    })
}

fn storage_account_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let items = vec![storage_account(ctx)];
    list_in(ctx, args, items)
}

fn storage_account_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let name = args
        .value("--name")
        .map(str::to_owned)
        .or_else(|| args.value("--ids").and_then(|i| i.rsplit('/').next()).map(str::to_owned));
    let Some(name) = name else { return Err(usage("the following arguments are required: --name/-n")) };
    if name != ctx.world.scenario.capture.storage_account {
        let group =
            args.value("--resource-group").unwrap_or(&ctx.world.scenario.capture.storage_resource_group).to_owned();
        return Err(not_found(&group, "Microsoft.Storage/storageAccounts", &name));
    }
    Ok(Some(storage_account(ctx)))
}

fn blob_download(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let url = match (
        args.value("--blob-url"),
        args.value("--container-name"),
        args.value("--name"),
        args.value("--account-name"),
    ) {
        (Some(url), _, _, _) => url.to_owned(),
        (None, Some(container), Some(name), Some(account)) => {
            format!("https://{account}.blob.core.windows.net/{container}/{name}")
        }
        _ => return Err(usage("usage error: --blob-url URL | --account-name NAME --container-name NAME --name NAME")),
    };
    let Some(blob) = ctx.world.blobs.iter().find(|b| b.url == url) else {
        return Err(Reply::fail(3, "ERROR: The specified blob does not exist.\nErrorCode:BlobNotFound"));
    };
    let destination = std::path::PathBuf::from(args.value("--file").unwrap_or_default());
    if destination.exists() && !args.switch("--overwrite") {
        return Err(Reply::fail(
            1,
            format!(
                "ERROR: The specified file already exists. Please set --overwrite to be True to overwrite the existing file: {}",
                destination.display()
            ),
        ));
    }
    let source = ctx.dir.join(&blob.file);
    let bytes = std::fs::read(&source).map_err(|e| Reply::fail(1, format!("ERROR: {e}: '{}'", source.display())))?;
    write_file(&destination, &bytes)?;
    let name = url.splitn(5, '/').nth(4).unwrap_or_default().to_owned();
    let container = name.split('/').next().unwrap_or_default().to_owned();
    Ok(Some(json!({
        "container": container, "content": "", "deleted": false, "metadata": {},
        "name": name.split_once('/').map(|(_, n)| n).unwrap_or(&name),
        "properties": {"blobType": "BlockBlob", "contentLength": bytes.len(), "contentSettings": {"contentType": "application/octet-stream"},
                       "lastModified": azure_time(ctx.now)},
        "snapshot": null
    })))
}

// ---- monitor ----

fn metrics_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let resource = args.value("--resource").unwrap_or_default().to_owned();
    let world = &ctx.world;
    let metrics = &world.scenario.metrics;
    let lb_id = world.resource_id(world.node_rg(), "Microsoft.Network/loadBalancers", "kubernetes");
    let pip =
        world.public_ips().into_iter().find(|p| p["id"].as_str().is_some_and(|id| id.eq_ignore_ascii_case(&resource)));
    let (namespace, known): (&str, &[(&str, &str, &str, f64)]) = if resource.eq_ignore_ascii_case(&lb_id) {
        (
            "Microsoft.Network/loadBalancers",
            &[
                ("DipAvailability", "Health Probe Status", "Percent", metrics.dip_availability),
                ("VipAvailability", "Data Path Availability", "Percent", metrics.vip_availability),
            ],
        )
    } else if pip.is_some() {
        (
            "Microsoft.Network/publicIPAddresses",
            &[("IfUnderDDoSAttack", "Under DDoS attack or not", "Count", metrics.under_ddos_attack)],
        )
    } else {
        let name = resource.rsplit('/').next().unwrap_or_default().to_owned();
        return Err(not_found("", "resource", &name));
    };
    let requested = args.values("--metric");
    let mut values = Vec::new();
    for name in requested.iter().flat_map(|m| m.split(',')) {
        let Some((metric, display, unit, value)) = known.iter().find(|(n, ..)| n.eq_ignore_ascii_case(name.trim()))
        else {
            return Err(service_error(
                1,
                "BadRequest",
                &format!(
                    "Failed to find metric configuration for provider: {namespace}, resource Id: {resource}, metric: {name}"
                ),
            ));
        };
        let aggregation = if *unit == "Count" { "maximum" } else { "average" };
        let points: Vec<Value> = (0..5)
            .map(|minute| {
                let at = ctx.now - chrono::Duration::minutes(5 - minute);
                json!({"timeStamp": format!("{}", at.format("%Y-%m-%dT%H:%M:00+00:00")), aggregation: value})
            })
            .collect();
        values.push(json!({
            "id": format!("{resource}/providers/Microsoft.Insights/metrics/{metric}"), "name": {"localizedValue": display, "value": metric},
            "resourceGroup": world.node_rg(), "timeseries": [{"data": points, "metadatavalues": []}],
            "type": "Microsoft.Insights/metrics", "unit": unit
        }));
    }
    Ok(Some(json!({
        "cost": 0, "interval": args.value("--interval").unwrap_or("PT1M"), "namespace": namespace,
        "resourceregion": world.scenario.cluster.location,
        "timespan": format!("{}/{}", (ctx.now - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"), ctx.now.format("%Y-%m-%dT%H:%M:%SZ")),
        "value": values
    })))
}

fn activity_log_list(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    if let Some(group) = args.value("--resource-group") {
        resource_group(ctx, group)?;
    }
    Ok(Some(json!([])))
}

// ---- support ----

const SUPPORT_SERVICES: &[(&str, &str, &str)] = &[
    ("7b29574f-b855-9dec-9b08-fe4aeaa3bbc0", "Load Balancer", "MICROSOFT.NETWORK/LOADBALANCERS"),
    ("5a3a423f-8667-9095-1770-0a554a934512", "Kubernetes Service (AKS)", "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS"),
    ("e7c01763-5374-faf0-d1ac-1719f8da4612", "IP Services", "MICROSOFT.NETWORK/PUBLICIPADDRESSES"),
    ("b25271d3-6431-dfbc-5f12-5693326809b3", "Virtual Network", "MICROSOFT.NETWORK/VIRTUALNETWORKS"),
    ("e9e31931-21fa-d50a-e6e7-e37d5d784591", "Virtual Machine Scale Sets", "MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS"),
];

fn support_services(_ctx: &mut Ctx<'_>, _args: &Args) -> AzResult {
    Ok(Some(Value::Array(
        SUPPORT_SERVICES
            .iter()
            .map(|(id, name, kind)| {
                json!({"displayName": name, "id": format!("/providers/Microsoft.Support/services/{id}"), "name": id,
                       "resourceTypes": [kind], "type": "Microsoft.Support/services"})
            })
            .collect(),
    )))
}

/// Problem classifications: the simulator's own placeholder IDs (the real ones must be listed at run time).
fn classifications(service: &str) -> Vec<Value> {
    let names = [
        "Connectivity / Cannot connect to the frontend IP",
        "Health probe / Backend marked unhealthy",
        "Configuration / Rules and NAT",
    ];
    names
        .iter()
        .enumerate()
        .map(|(index, display)| {
            let id = format!("{}-0000-4000-8000-00000000000{index}", &service[..8]);
            json!({"displayName": display, "id": format!("/providers/Microsoft.Support/services/{service}/problemClassifications/{id}"),
                   "name": id, "type": "Microsoft.Support/services/problemClassifications"})
        })
        .collect()
}

fn support_classifications(_ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let service = args.value("--service-name").unwrap_or_default();
    if !SUPPORT_SERVICES.iter().any(|(id, ..)| *id == service) {
        return Err(not_found("", "Microsoft.Support/services", service));
    }
    Ok(Some(Value::Array(classifications(service))))
}

fn ticket_create(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let get = |flag: &str| args.value(flag).unwrap_or_default().to_owned();
    let severity = get("--severity");
    if !["minimal", "moderate", "critical", "highestcriticalimpact"].contains(&severity.as_str()) {
        return Err(usage(&format!(
            "argument --severity: invalid choice: '{severity}' (choose from 'minimal', 'moderate', 'critical', 'highestcriticalimpact')"
        )));
    }
    let method = get("--contact-method");
    if !["email", "phone"].contains(&method.as_str()) {
        return Err(usage(&format!(
            "argument --contact-method: invalid choice: '{method}' (choose from 'email', 'phone')"
        )));
    }
    let classification = get("--problem-classification");
    let service = classification.split('/').skip_while(|p| *p != "services").nth(1).unwrap_or_default().to_owned();
    let known = SUPPORT_SERVICES.iter().find(|(id, ..)| *id == service);
    let Some((service_id, service_name, _)) =
        known.filter(|_| classifications(&service).iter().any(|c| c["id"] == classification.as_str()))
    else {
        return Err(Reply::fail(
            1,
            "ERROR: Problem classification id is invalid. Please use 'az support services problem-classifications list' to get the most recent set of problem classification ids.",
        ));
    };
    let subscription = &ctx.world.scenario.subscription.id;
    let name = get("--ticket-name");
    let created = azure_time(ctx.now);
    let expires = azure_time(ctx.now + chrono::Duration::hours(4));
    let mut ticket = json!({
        "advancedDiagnosticConsent": args.value("--diagnostic-consent").unwrap_or("No"),
        "contactDetails": {
            "additionalEmailAddresses": args.values("--contact-additional-emails"),
            "country": get("--contact-country"), "firstName": get("--contact-first-name"), "lastName": get("--contact-last-name"),
            "preferredContactMethod": method, "preferredSupportLanguage": get("--contact-language"),
            "preferredTimeZone": get("--contact-timezone"), "primaryEmailAddress": get("--contact-email")
        },
        "createdDate": created,
        "description": get("--description"),
        "id": format!("/subscriptions/{subscription}/providers/Microsoft.Support/supportTickets/{name}"),
        "name": name,
        "problemClassificationDisplayName": classifications(&service).into_iter().find(|c| c["id"] == classification.as_str()).map(|c| c["displayName"].clone()).unwrap_or_default(),
        "problemClassificationId": classification,
        "problemStartTime": args.value("--start-time").map(str::to_owned).unwrap_or_else(|| created.clone()),
        "require24X7Response": args.value("--require-24-by-7-response") == Some("true"),
        "serviceDisplayName": service_name,
        "serviceId": format!("/providers/Microsoft.Support/services/{service_id}"),
        "serviceLevelAgreement": {"expirationTime": expires, "slaMinutes": 240, "startTime": created},
        "severity": severity,
        "status": "Open",
        "supportTicketId": format!("25{:014}", ctx.world.invocations * 7919 + ctx.world.tickets.len() as u64),
        "title": get("--title"),
        "type": "Microsoft.Support/supportTickets"
    });
    if let Some(resource) = args.value("--technical-resource") {
        ticket["technicalTicketDetails"] = json!({"resourceId": resource});
    }
    ctx.world.tickets.push(ticket.clone());
    Ok(Some(ticket))
}

fn ticket_show(ctx: &mut Ctx<'_>, args: &Args) -> AzResult {
    let name = args.value("--ticket-name").unwrap_or_default();
    ctx.world
        .tickets
        .iter()
        .find(|t| t["name"] == name)
        .cloned()
        .map(Some)
        .ok_or_else(|| not_found("", "Microsoft.Support/supportTickets", name))
}

fn ticket_list(ctx: &mut Ctx<'_>, _args: &Args) -> AzResult {
    Ok(Some(Value::Array(ctx.world.tickets.clone())))
}

/// The az part of `azsim commands`.
pub fn describe() -> Vec<(String, &'static str)> {
    COMMANDS
        .iter()
        .map(|c| (format!("{} {}", Tool::Az.name(), crate::describe_command(c.path, c.flags)), c.summary))
        .collect()
}
