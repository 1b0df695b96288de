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
