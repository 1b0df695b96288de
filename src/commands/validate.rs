//! `runbook validate`: every workflow file, every problem; no store.

use runbook_engine::load::load_file;
use std::path::PathBuf;

use crate::context::Context;
use crate::exit;

/// Checks the files (and the `*.yaml`, `*.yml` of directories); exit 2 when any is invalid.
pub fn validate(context: &Context, paths: &[PathBuf]) -> u8 {
    let term = &context.term;
    let mut files = Vec::new();
    for path in paths {
        let path = match &context.caller.environment.dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.clone(),
        };
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&path)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                        .collect()
                })
                .unwrap_or_default();
            found.sort();
            files.extend(found);
        } else {
            files.push(path);
        }
    }
    let mut invalid = 0;
    for file in &files {
        match load_file(file, context.registry()) {
            Ok(loaded) => term.out(format!("{}: ok ({} steps)", file.display(), loaded.workflow.steps.len())),
            Err(diagnostics) => {
                invalid += 1;
                term.err(diagnostics.to_string());
            }
        }
    }
    if invalid > 0 {
        term.err(format!("{invalid} of {} workflow files are invalid", files.len()));
        exit::INVALID
    } else {
        exit::OK
    }
}
