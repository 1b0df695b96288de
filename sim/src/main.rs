//! The `azsim` binary: `az`, `kubectl` or `helm` when invoked under that name
//! (a symlink), else `azsim az|kubectl|helm ARGS`, `azsim init`, `azsim install`,
//! `azsim commands` and `azsim scenarios`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use runbook_sim::scenario::{BUILT_IN, built_in_tree, leaf_keys};
use runbook_sim::{Reply, SimError, Tool};

/// Exit code for the simulator's own failures (no state, unreadable state, bad setup).
const SIM_FAILURE: u8 = 125;

const USAGE: &str = "usage:
  azsim init --scenario NAME --state DIR [--set key=value]...   write a scenario's initial state
  azsim install DIR                                             symlink az, kubectl and helm to azsim in DIR
  azsim az|kubectl|helm ARGS...                                 run a simulated command (state: $AZSIM_STATE)
  azsim commands                                                every command line the simulator knows
  azsim scenarios                                               the scenarios and their --set keys";

fn main() -> ExitCode {
    let mut argv = std::env::args();
    let program = argv.next().unwrap_or_default();
    let args: Vec<String> = argv.collect();
    let name = Path::new(&program).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    let result = match Tool::from_name(&name) {
        Some(tool) => simulate(tool, &args),
        None => azsim(&args),
    };
    match result {
        Ok(reply) => {
            let _ = std::io::stdout().write_all(reply.stdout.as_bytes());
            let _ = std::io::stderr().write_all(reply.stderr.as_bytes());
            ExitCode::from(u8::try_from(reply.code).unwrap_or(1))
        }
        Err(error) => {
            eprintln!("azsim: {error}");
            ExitCode::from(SIM_FAILURE)
        }
    }
}

fn simulate(tool: Tool, args: &[String]) -> Result<Reply, SimError> {
    let dir = runbook_sim::state_dir_from_env()?;
    runbook_sim::invoke(tool, args, &dir)
}

fn azsim(args: &[String]) -> Result<Reply, SimError> {
    let Some(command) = args.first() else { return Err(SimError::Usage(USAGE.to_owned())) };
    if let Some(tool) = Tool::from_name(command) {
        return simulate(tool, &args[1..]);
    }
    match command.as_str() {
        "init" => init(&args[1..]),
        "install" => install(&args[1..]),
        "commands" => Ok(Reply::ok(
            runbook_sim::command_table()
                .into_iter()
                .map(|(line, summary)| format!("{line}\n    {summary}\n"))
                .collect::<String>(),
        )),
        "scenarios" => {
            let mut out = String::new();
            for (name, _) in BUILT_IN {
                out.push_str(&format!("{name}\n"));
            }
            if let Some(tree) = built_in_tree("healthy") {
                out.push_str("\n--set keys:\n");
                for key in leaf_keys(&tree) {
                    out.push_str(&format!("  {key}\n"));
                }
            }
            Ok(Reply::ok(out))
        }
        "-h" | "--help" | "help" => Ok(Reply::ok(format!("{USAGE}\n"))),
        other => Err(SimError::Usage(format!("unknown command `{other}`\n{USAGE}"))),
    }
}

fn init(args: &[String]) -> Result<Reply, SimError> {
    let (mut scenario, mut state, mut overrides) = (None, None, Vec::new());
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let mut value =
            || rest.next().cloned().ok_or_else(|| SimError::Usage(format!("{flag} needs a value\n{USAGE}")));
        match flag.as_str() {
            "--scenario" => scenario = Some(value()?),
            "--state" => state = Some(PathBuf::from(value()?)),
            "--set" => overrides.push(value()?),
            other => return Err(SimError::Usage(format!("unknown flag `{other}` for init\n{USAGE}"))),
        }
    }
    let scenario = scenario.ok_or_else(|| SimError::Usage(format!("init needs --scenario NAME\n{USAGE}")))?;
    let state = match state {
        Some(dir) => dir,
        None => runbook_sim::state_dir_from_env()?,
    };
    let world = runbook_sim::init(&state, &scenario, &overrides)?;
    let frontend = &world.scenario.frontend;
    let address = world.used_addresses.first().cloned().unwrap_or_default();
    Ok(Reply::ok(format!(
        "azsim: scenario {scenario} in {}: {}/{} is at {address}\nexport AZSIM_STATE={}\n",
        state.display(),
        frontend.namespace,
        frontend.name,
        state.display()
    )))
}

fn install(args: &[String]) -> Result<Reply, SimError> {
    let [dir] = args else { return Err(SimError::Usage(format!("install needs one DIR\n{USAGE}"))) };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).map_err(|e| SimError::Io { path: dir.clone(), source: e })?;
    let exe = std::env::current_exe().map_err(|e| SimError::Io { path: PathBuf::from("/proc/self/exe"), source: e })?;
    let mut out = String::new();
    for tool in ["az", "kubectl", "helm"] {
        let link = dir.join(tool);
        match std::fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(SimError::Io { path: link, source: e }),
            _ => {}
        }
        std::os::unix::fs::symlink(&exe, &link).map_err(|e| SimError::Io { path: link.clone(), source: e })?;
        out.push_str(&format!("{} -> {}\n", link.display(), exe.display()));
    }
    Ok(Reply::ok(out))
}
