//! Command-line flags, as clap parses them; turned into a resolved context in `main`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "runbook", version, about = "Run incident runbooks as durable, resumable step graphs")]
pub struct Cli {
    /// The store directory [default: $RUNBOOK_STORE, else $XDG_DATA_HOME/runbook, else ~/.local/share/runbook]
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,

    /// Where workflow names are looked up
    #[arg(long, global = true, value_name = "DIR", default_value = "workflows")]
    pub workflows: PathBuf,

    /// Diagnostic log format on stderr (levels with RUST_LOG, default warn)
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Check workflow files; exit 2 when any is invalid
    Validate {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Run a workflow (a path, or a name in --workflows)
    Run(RunArgs),
    /// Go on with an interrupted, failed or needs-attention run
    Resume(ResumeArgs),
    /// Show a run and its steps
    Status {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// List runs, newest first
    Runs {
        #[arg(long, value_name = "NAME")]
        workflow: Option<String>,
        #[arg(long, value_name = "S")]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print a run's events, one JSON object per line
    Events {
        run_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Print what steps wrote to stdout and stderr (secrets masked)
    Logs {
        run_id: String,
        step: Option<String>,
        #[arg(long, value_name = "N")]
        attempt: Option<u32>,
    },
    /// Stop a run and mark it cancelled
    Cancel { run_id: String },
    /// Rehearse the LoadBalancer incident end to end against a simulated cluster
    Demo {
        /// healthy, ingress-fixes, recreate-fixes or nothing-fixes
        #[arg(long, value_name = "NAME", default_value = "nothing-fixes")]
        scenario: String,
        /// Print {run_id, status, bundle} instead of progress lines
        #[arg(long)]
        json: bool,
    },
    /// Answer yes to a run's `approval` step
    Approve {
        run_id: String,
        step: String,
        #[arg(long, value_name = "C")]
        comment: Option<String>,
    },
    /// Answer no to a run's `approval` step (the step fails)
    Reject {
        run_id: String,
        step: String,
        #[arg(long, value_name = "C")]
        comment: Option<String>,
    },
    /// Acknowledge an escalated run
    Ack {
        run_id: String,
        #[arg(long, value_name = "C")]
        comment: Option<String>,
    },
    /// Check the store: every record's checksum, seq continuity, every run's fold, the run index and child links
    Verify {
        /// Check only this run (and the child links to and from it)
        run_id: Option<String>,
        /// Print {runs, events, problems: [{run, seq, problem}]}
        #[arg(long)]
        json: bool,
    },
    /// Remove finished runs that ended before now minus DUR: events, index entries, child links, artifacts
    Prune {
        /// How old a finished run must be, like 30d or 12h
        #[arg(long, value_name = "DUR", value_parser = parse_duration_flag)]
        older_than: std::time::Duration,
        /// Keep failed runs (and the runs they belong with)
        #[arg(long)]
        keep_failed: bool,
        /// Report what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write an escalation bundle for a run (and email it, or the bundle whose email failed, with --email)
    Bundle {
        run_id: String,
        /// Where to write a new bundle [default: the bundle step's `out`, else STORE/bundles]
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Email the bundle (settings: RUNBOOK_SMTP_URL, RUNBOOK_MAIL_FROM, RUNBOOK_MAIL_TO, ...)
        #[arg(long)]
        email: bool,
    },
    /// Measure the engine on the store's disk: durable steps, group commit, shell steps, replay, memory, bytes
    Bench {
        /// Print one JSON object of numbers
        #[arg(long)]
        json: bool,
        /// Smaller counts: checks that every phase works, in seconds (the figures mean little)
        #[arg(long)]
        quick: bool,
    },
    /// Draw the step graph of a workflow, or of a run with its steps coloured by status
    Graph {
        /// A workflow (a path, or a name in --workflows) or a run id
        #[arg(value_name = "WORKFLOW|RUN_ID")]
        target: String,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Fire the workflows' schedules and execute runs, resuming interrupted ones at start, until SIGTERM
    Daemon(DaemonArgs),
    /// List each schedule entry: its next fire times, last run and outcome, and why it is paused
    Schedules {
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of workflow files (docs/workflow.schema.json), for editors
    Schema,
    /// Print a completion script for a shell: bash, zsh, fish, elvish or powershell
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages: runbook(1) and one page per command
    Man {
        /// Write runbook.1, runbook-run.1, ... into DIR; without it, print runbook(1)
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// How `runbook graph` writes the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// A Mermaid flowchart (Markdown, mermaid.live)
    Mermaid,
    /// Graphviz (`dot -Tsvg`)
    Dot,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    pub workflow: String,
    /// An input, key=value (repeatable; overrides --inputs-file)
    #[arg(short = 'i', long = "input", value_name = "KEY=VALUE")]
    pub inputs: Vec<String>,
    /// Inputs from a YAML file: a mapping of input names to values
    #[arg(long, value_name = "FILE")]
    pub inputs_file: Option<std::path::PathBuf>,
    /// Print the final status as JSON instead of progress lines
    #[arg(long)]
    pub json: bool,
}

/// `runbook daemon`: durations are written as in workflows (`30s`, `5m`, `1h`).
#[derive(Debug, Clone, Args)]
pub struct DaemonArgs {
    /// On SIGTERM/SIGINT, how long running steps may go on before the runs are interrupted (resumably)
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration_flag)]
    pub grace: std::time::Duration,
    /// Prune finished runs older than this, every --prune-every
    #[arg(long, value_name = "DUR", value_parser = parse_duration_flag)]
    pub prune_older_than: Option<std::time::Duration>,
    /// How often to prune with --prune-older-than
    #[arg(long, value_name = "DUR", default_value = "1h", value_parser = parse_duration_flag)]
    pub prune_every: std::time::Duration,
    /// With --prune-older-than: keep failed runs (and the runs they belong with)
    #[arg(long)]
    pub prune_keep_failed: bool,
    /// How often to look for changed workflow files (0s: only on SIGHUP)
    #[arg(long, value_name = "DUR", default_value = "2s", value_parser = parse_duration_flag)]
    pub watch_every: std::time::Duration,
}

fn parse_duration_flag(text: &str) -> Result<std::time::Duration, String> {
    runbook_engine::duration::parse_duration(text)
}

#[derive(Debug, Clone, Args)]
pub struct ResumeArgs {
    pub run_id: String,
    /// Run again a step that was started but not finished
    #[arg(long, value_name = "STEP")]
    pub rerun: Vec<String>,
    /// Treat a step that was started but not finished as skipped
    #[arg(long, value_name = "STEP")]
    pub skip: Vec<String>,
    #[arg(long)]
    pub json: bool,
}
