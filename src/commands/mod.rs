//! The commands: one table from command to handler ([`dispatch`]), and one module per command
//! or family of commands, each depending on the shared `context`, never on this table.
//!
//! The same table runs a command started here (`main`) and one served to another process
//! over the store's socket (`remote`). A handler that needs the store asks `Context::app` for
//! it before anything else; the others (validate, schema, completions, man, graph of a file,
//! bench) never open it, so they work while another process holds it, or without any store.

mod answer;
mod bench;
mod bundle;
mod daemon;
mod demo;
mod generate;
mod graph;
mod inspect;
mod integrity;
mod run;
mod validate;

use anyhow::Result;

use crate::context::Context;
use crate::flags::Command;

/// Runs one command and returns its exit code.
pub async fn dispatch(command: Command, context: &mut Context) -> Result<u8> {
    match command {
        Command::Validate { paths } => Ok(validate::validate(context, &paths)),
        Command::Run(args) => run::start(context, args).await,
        Command::Resume(args) => run::resume(context, args).await,
        Command::Status { run_id, json } => inspect::status(context, &run_id, json).await,
        Command::Runs { workflow, status, json } => {
            inspect::runs(context, workflow.as_deref(), status.as_deref(), json).await
        }
        Command::Events { run_id, json: _ } => inspect::events(context, &run_id).await,
        Command::Logs { run_id, step, attempt } => inspect::logs(context, &run_id, step.as_deref(), attempt).await,
        Command::Graph { target, format } => graph::graph(context, &target, format).await,
        Command::Approve { run_id, step, comment } => answer::approve(context, &run_id, &step, comment).await,
        Command::Reject { run_id, step, comment } => answer::reject(context, &run_id, &step, comment).await,
        Command::Ack { run_id, comment } => answer::acknowledge(context, &run_id, comment).await,
        Command::Cancel { run_id } => answer::cancel(context, &run_id).await,
        Command::Verify { run_id, json } => integrity::verify(context, run_id.as_deref(), json).await,
        Command::Prune { older_than, keep_failed, dry_run, json } => {
            integrity::prune(context, older_than, keep_failed, dry_run, json).await
        }
        Command::Bundle { run_id, out, email } => bundle::bundle(context, &run_id, out, email).await,
        Command::Daemon(args) => daemon::daemon(context, args).await,
        Command::Schedules { json } => daemon::schedules(context, json).await,
        Command::Demo { scenario, json } => demo::demo(context, &scenario, json).await,
        Command::Bench { json, quick } => bench::bench(context, json, quick).await,
        Command::Schema => Ok(generate::schema(context)),
        Command::Completions { shell } => Ok(generate::completions(context, shell)),
        Command::Man { out } => generate::man(context, out.as_deref()),
    }
}
