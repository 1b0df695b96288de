//! Store upkeep: `runbook verify` (checksums, seqs, folds, projections, artifacts) and
//! `runbook prune` (whole trees of old finished runs); the work is `runbook_engine::integrity`.

use anyhow::{Result, anyhow};
use chrono::Utc;
use runbook_engine::integrity::{PruneOptions, plural};

use crate::context::{Context, parse_run};
use crate::exit::{self, UsageError};

/// `runbook verify [RUN] [--json]`: a line per problem and exit 1, or a one-line summary and exit 0.
pub async fn verify(context: &mut Context, run_id: Option<&str>, json: bool) -> Result<u8> {
    let app = context.app().await?;
    let term = &context.term;
    let only = run_id.map(parse_run).transpose()?;
    let report = runbook_engine::integrity::verify(app.journal(), app.registry(), only)?;
    if json {
        term.out(serde_json::to_string_pretty(&report)?);
    } else {
        for problem in &report.problems {
            term.out(problem.to_string());
        }
        term.out(report.summary());
    }
    Ok(if report.problems.is_empty() { exit::OK } else { exit::FAILED })
}

/// `runbook prune --older-than DUR [--keep-failed] [--dry-run] [--json]`: removes old finished
/// runs whole and says what it freed.
pub async fn prune(
    context: &mut Context,
    older_than: std::time::Duration,
    keep_failed: bool,
    dry_run: bool,
    json: bool,
) -> Result<u8> {
    let app = context.app().await?;
    let term = &context.term;
    let cutoff = chrono::Duration::from_std(older_than)
        .ok()
        .and_then(|age| Utc::now().checked_sub_signed(age))
        .ok_or_else(|| anyhow!(UsageError("--older-than reaches back before the calendar starts".to_owned())))?;
    let options = PruneOptions { cutoff, keep_failed, dry_run };
    let is_executing = |run| app.is_executing(run);
    let report = runbook_engine::integrity::prune(app.journal(), &options, &is_executing)?;
    if json {
        term.out(serde_json::to_string_pretty(&report)?);
        return Ok(exit::OK);
    }
    for kept in &report.kept {
        term.out(format!("kept run {}: {}", kept.run_id, kept.reason));
    }
    let verb = if dry_run { "would prune" } else { "pruned" };
    let leftovers = match report.leftovers {
        0 => String::new(),
        n => format!(", and {} of an interrupted prune", plural(n, "leftover")),
    };
    if report.runs.is_empty() {
        term.out(format!(
            "nothing to prune: no finished run to remove ended before {}{leftovers}",
            cutoff.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    } else {
        let ids: Vec<String> = report.runs.iter().map(ToString::to_string).collect();
        term.out(format!(
            "{verb} {} ({}): {}, {} of artifacts{leftovers}",
            plural(report.runs.len() as u64, "run"),
            ids.join(", "),
            plural(report.events, "event"),
            human_bytes(report.artifact_bytes),
        ));
    }
    Ok(exit::OK)
}

/// Bytes for people: `512 bytes`, `12.3 KiB`, `4.0 MiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
