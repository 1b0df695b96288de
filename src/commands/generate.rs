//! What is generated from the command line's own definition: shell completion
//! scripts (clap_complete) and man pages (clap_mangen), and the workflow
//! file's JSON Schema (see `schema`). Generated on demand, so that they always
//! match the binary that prints them. No store.

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use std::path::Path;

use crate::context::Context;
use crate::exit;
use crate::flags::Cli;

/// `runbook completions SHELL`: the script on stdout.
pub fn completions(context: &Context, shell: clap_complete::Shell) -> u8 {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "runbook", &mut script);
    context.term.out_bytes(&script);
    exit::OK
}

/// `runbook man [--out DIR]`: runbook(1) on stdout, or every page written into DIR.
pub fn man(context: &Context, out: Option<&Path>) -> Result<u8> {
    let term = &context.term;
    let command = Cli::command();
    let Some(dir) = out else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page).context("cannot render the man page")?;
        term.out_bytes(&page);
        return Ok(exit::OK);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the man page directory {}", dir.display()))?;
    clap_mangen::generate_to(command, dir).with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.starts_with("runbook") && name.ends_with(".1"))
        .collect();
    pages.sort();
    term.out(format!(
        "wrote {} man pages into {}; read one with `man -l {}`",
        pages.len(),
        dir.display(),
        dir.join("runbook.1").display()
    ));
    Ok(exit::OK)
}

/// `runbook schema`: the workflow file's JSON Schema on stdout.
pub fn schema(context: &Context) -> u8 {
    context.term.out(crate::schema::workflow_schema_json().trim_end());
    exit::OK
}
