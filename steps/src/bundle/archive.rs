//! Assembling a bundle's files (redacted, within the size cap) and writing
//! them as a directory and a `.zip` of it, each under a temporary name first
//! and renamed into place once synced: a bundle is there whole or not at all.

use chrono::{DateTime, Datelike, Timelike, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::config::{BundleConfig, FileSource};
use super::redact::{Counts, Redactor, Style, looks_binary};
use super::report::{self, FilesNote, RunTree};

/// A file of the bundle, redacted.
pub struct BundleFile {
    /// Inside the bundle (`diagnostics/events.jsonl`).
    pub path: String,
    pub bytes: Vec<u8>,
    /// Where it came from on the operator's machine, when it is a file there.
    pub source: Option<String>,
    pub redactions: Counts,
}

/// Everything a bundle holds, ready to write.
pub struct Contents {
    pub name: String,
    /// SUMMARY.md first, then the rest; manifest.json apart.
    pub files: Vec<BundleFile>,
    pub manifest: Vec<u8>,
    pub redactions: u64,
    pub left_out: usize,
}

/// A file that is wanted, before it is read.
struct Wanted {
    path: String,
    what: Origin,
    /// A packet capture: redacted keeping its length.
    capture: bool,
}

enum Origin {
    /// Made here and redacted as it was made.
    Generated(Vec<u8>, Counts),
    File {
        path: PathBuf,
        sha256: Option<String>,
    },
}

/// What a bundle is made from.
pub struct Inputs<'a> {
    pub config: &'a BundleConfig,
    pub tree: &'a RunTree,
    pub store_dir: &'a Path,
    /// Relative paths in the configuration and in step outputs are relative to it.
    pub working_dir: &'a Path,
    pub redactor: &'a Redactor,
    pub name: &'a str,
    pub created_at: DateTime<Utc>,
    pub version: &'a str,
}

/// Collects, reads, redacts and caps the bundle's files, and writes SUMMARY.md and the manifest.
pub fn assemble(inputs: &Inputs<'_>) -> Contents {
    let Inputs { config, tree, store_dir, working_dir, redactor, name, created_at, version } = *inputs;
    let mut wanted = Vec::new();
    let mut missing: Vec<(String, String)> = Vec::new();
    let mut taken_paths: Vec<String> = Vec::new();

    for (file_name, source) in &config.files {
        let path = format!("diagnostics/{file_name}");
        match source {
            FileSource::Step { step, stream } => match tree.last_result(step) {
                Some(result) => match result.artifacts.iter().find(|a| a.name == *stream) {
                    Some(artifact) => wanted.push(Wanted {
                        path: path.clone(),
                        what: Origin::File {
                            path: store_dir.join(&artifact.path),
                            sha256: Some(artifact.sha256.clone()),
                        },
                        capture: false,
                    }),
                    None => missing.push((
                        path.clone(),
                        format!(
                            "step `{step}` (run {}, attempt {}) kept no `{stream}` output",
                            result.run.run_id, result.attempt
                        ),
                    )),
                },
                None => missing
                    .push((path.clone(), format!("no result of step `{step}` in run {} or its child runs", tree.root))),
            },
            FileSource::Path(file) => {
                let full = resolve(working_dir, file);
                if full.is_file() {
                    wanted.push(Wanted {
                        path: path.clone(),
                        what: Origin::File { path: full, sha256: None },
                        capture: false,
                    });
                } else {
                    missing.push((path.clone(), format!("no file {}", full.display())));
                }
            }
        }
        taken_paths.push(path);
    }

    let mut captures: Vec<PathBuf> = Vec::new();
    for step in &config.captures_from {
        let Some(result) = tree.last_result(step) else {
            missing.push((
                format!("diagnostics/captures ({step})"),
                format!("no result of step `{step}` in run {} or its child runs", tree.root),
            ));
            continue;
        };
        let before = captures.len();
        for value in result.outputs.values() {
            for text in strings(value) {
                let full = resolve(working_dir, text);
                let plausible = Path::new(text).is_absolute() || text.contains('/') || is_capture_name(text);
                if plausible && full.is_file() && !captures.contains(&full) {
                    captures.push(full);
                }
            }
        }
        for artifact in result.artifacts.iter().filter(|a| a.name != "stdout" && a.name != "stderr") {
            captures.push(store_dir.join(&artifact.path));
        }
        if captures.len() == before {
            missing.push((
                format!("diagnostics/captures ({step})"),
                format!("step `{step}` (run {}) named no capture file that exists", result.run.run_id),
            ));
        }
    }
    for file in &config.captures {
        let full = resolve(working_dir, file);
        if full.is_file() {
            if !captures.contains(&full) {
                captures.push(full);
            }
        } else {
            missing.push((format!("diagnostics/captures ({file})"), format!("no file {}", full.display())));
        }
    }
    for capture in captures {
        let base =
            capture.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "capture".to_owned());
        let path = unique(&mut taken_paths, format!("diagnostics/captures/{base}"));
        wanted.push(Wanted { path, what: Origin::File { path: capture, sha256: None }, capture: true });
    }

    let mut event_redactions = Counts::new();
    let events = report::events_jsonl(tree, redactor, &mut event_redactions);
    wanted.push(Wanted {
        path: unique(&mut taken_paths, "diagnostics/events.jsonl".to_owned()),
        what: Origin::Generated(events, event_redactions),
        capture: false,
    });

    for run in &tree.runs {
        for (_, event) in &run.events {
            use runbook_engine::event::EventKind;
            let (step, attempt, artifacts) = match &event.kind {
                EventKind::StepSucceeded { step, attempt, artifacts, .. }
                | EventKind::StepFailed { step, attempt, artifacts, .. }
                | EventKind::StepPolled { step, attempt, artifacts, .. } => (step, attempt, artifacts),
                _ => continue,
            };
            for artifact in artifacts.iter().filter(|a| a.size > 0) {
                let path = format!(
                    "diagnostics/steps/run-{}-{}/{step}.{attempt}.{}.txt",
                    run.run_id, run.state.workflow.name, artifact.name
                );
                let path = unique(&mut taken_paths, path);
                wanted.push(Wanted {
                    path,
                    what: Origin::File { path: store_dir.join(&artifact.path), sha256: Some(artifact.sha256.clone()) },
                    capture: false,
                });
            }
        }
    }

    let mut files = Vec::new();
    let mut left_out: Vec<(String, u64, String)> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut total = 0u64;
    for item in wanted {
        let (source, size_on_disk) = match &item.what {
            Origin::Generated(bytes, _) => (None, bytes.len() as u64),
            Origin::File { path, .. } => match std::fs::metadata(path) {
                Ok(meta) => (Some(path.display().to_string()), meta.len()),
                Err(error) => {
                    missing.push((item.path, format!("cannot read {}: {error}", path.display())));
                    continue;
                }
            },
        };
        let where_it_is = || source.clone().unwrap_or_else(|| format!("`runbook events` of runs {}", run_list(tree)));
        if total + size_on_disk > config.max_bytes {
            left_out.push((item.path, size_on_disk, where_it_is()));
            continue;
        }
        let (bytes, redactions) = match item.what {
            Origin::Generated(bytes, counts) => (bytes, counts),
            Origin::File { path, sha256 } => match std::fs::read(&path) {
                Ok(bytes) => {
                    if let Some(expected) = sha256
                        && hex::encode(Sha256::digest(&bytes)) != expected
                    {
                        warnings.push(format!(
                            "{} does not match the checksum recorded in the run's events (included as it is now)",
                            path.display()
                        ));
                    }
                    let style = if item.capture || looks_binary(&bytes) { Style::SameLength } else { Style::Labelled };
                    redactor.redact(&bytes, style)
                }
                Err(error) => {
                    missing.push((item.path, format!("cannot read {}: {error}", path.display())));
                    continue;
                }
            },
        };
        if total + bytes.len() as u64 > config.max_bytes {
            left_out.push((item.path, size_on_disk, where_it_is()));
            continue;
        }
        total += bytes.len() as u64;
        files.push(BundleFile { path: item.path, bytes, source, redactions });
    }

    let redactions_so_far: u64 = files.iter().flat_map(|f| f.redactions.values()).sum();
    let note = FilesNote {
        name,
        created_at,
        version,
        files: files.len() + 1,
        redactions: redactions_so_far,
        left_out: &left_out,
        missing: &missing,
    };
    let summary = report::summary_markdown(config, tree, &note);
    let (summary, summary_redactions) = redactor.redact(summary.as_bytes(), Style::Labelled);
    files.insert(
        0,
        BundleFile { path: "SUMMARY.md".to_owned(), bytes: summary, source: None, redactions: summary_redactions },
    );

    let redactions: u64 = files.iter().flat_map(|f| f.redactions.values()).sum();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for file in &files {
        for (kind, n) in &file.redactions {
            *by_kind.entry(kind.clone()).or_default() += n;
        }
    }
    let manifest = serde_json::json!({
        "bundle": name,
        "run_id": tree.root.get(),
        "runs": tree.runs.iter().map(|run| serde_json::json!({
            "run_id": run.run_id.get(),
            "workflow": run.state.workflow.name,
            "status": run.state.status.as_str(),
            "parent": run.state.parent.as_ref().map(|p| serde_json::json!({"run_id": p.run_id.get(), "step": p.step})),
        })).collect::<Vec<_>>(),
        "engine_version": version,
        "created_at": report::utc(created_at),
        "max_bytes": config.max_bytes,
        "files": files.iter().map(|file| serde_json::json!({
            "path": file.path,
            "size": file.bytes.len(),
            "sha256": hex::encode(Sha256::digest(&file.bytes)),
            "redactions": file.redactions.values().sum::<u64>(),
            "redacted": file.redactions,
            "source": file.source,
        })).collect::<Vec<_>>(),
        "left_out": left_out.iter().map(|(path, size, source)| serde_json::json!({
            "path": path, "size": size, "source": source, "reason": "over the bundle's size cap (max_bytes)",
        })).collect::<Vec<_>>(),
        "missing": missing.iter().map(|(path, reason)| serde_json::json!({"path": path, "reason": reason})).collect::<Vec<_>>(),
        "redactions": {"total": redactions, "by_kind": by_kind},
        "warnings": warnings,
    });
    let manifest = redactor.redact_json(&manifest, &mut Counts::new());
    let manifest = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    Contents { name: name.to_owned(), files, manifest, redactions, left_out: left_out.len() }
}

fn run_list(tree: &RunTree) -> String {
    tree.runs.iter().map(|r| r.run_id.to_string()).collect::<Vec<_>>().join(", ")
}

fn strings(value: &serde_json::Value) -> Vec<&str> {
    match value {
        serde_json::Value::String(s) => vec![s.as_str()],
        serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    }
}

fn is_capture_name(text: &str) -> bool {
    let lower = text.trim().to_ascii_lowercase();
    [".pcap", ".pcapng", ".cap"].iter().any(|ext| lower.ends_with(ext))
}

fn resolve(working_dir: &Path, file: &str) -> PathBuf {
    let path = Path::new(file.trim());
    if path.is_absolute() { path.to_path_buf() } else { working_dir.join(path) }
}

/// `path`, or `path` with `-2`, `-3` before its extension when taken.
fn unique(taken: &mut Vec<String>, path: String) -> String {
    let mut candidate = path.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = match path.rsplit_once('.') {
            Some((stem, ext)) if !stem.ends_with('/') && !stem.is_empty() => format!("{stem}-{n}.{ext}"),
            _ => format!("{path}-{n}"),
        };
        n += 1;
    }
    taken.push(candidate.clone());
    candidate
}

/// A bundle on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub directory: PathBuf,
    pub archive: PathBuf,
    pub sha256: String,
    pub size: u64,
}

/// The directory and archive of a complete bundle named `name` in `out`, if both are there.
pub fn existing(out: &Path, name: &str) -> Option<Written> {
    let directory = out.join(name);
    let archive = out.join(format!("{name}.zip"));
    if !directory.join("manifest.json").is_file() || !archive.is_file() {
        return None;
    }
    let bytes = std::fs::read(&archive).ok()?;
    Some(Written { directory, archive, sha256: hex::encode(Sha256::digest(&bytes)), size: bytes.len() as u64 })
}

/// Writes the directory `out/NAME` and the archive `out/NAME.zip`, each
/// under a `.tmp-` name first, synced, then renamed.
pub fn write(out: &Path, contents: &Contents, created_at: DateTime<Utc>) -> Result<Written, String> {
    let name = &contents.name;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create the bundle directory {}: {e}", out.display()))?;
    let directory = out.join(name);
    let archive = out.join(format!("{name}.zip"));

    let temporary = out.join(format!(".tmp-{name}"));
    if temporary.exists() {
        std::fs::remove_dir_all(&temporary)
            .map_err(|e| format!("cannot remove the leftover {}: {e}", temporary.display()))?;
    }
    let mut entries: Vec<(&str, &[u8])> = Vec::new();
    entries.push(("manifest.json", &contents.manifest));
    for file in &contents.files {
        entries.push((file.path.as_str(), &file.bytes));
    }
    std::fs::create_dir_all(&temporary).map_err(|e| format!("cannot create {}: {e}", temporary.display()))?;
    let mut directories = vec![temporary.clone()];
    for (path, bytes) in &entries {
        let target = temporary.join(path);
        if let Some(parent) = target.parent()
            && !directories.iter().any(|d| d == parent)
        {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            directories.push(parent.to_path_buf());
        }
        write_synced(&target, bytes)?;
    }
    for dir in &directories {
        sync_dir(dir)?;
    }
    // A directory without its archive is what a crash between the two renames leaves: replace it.
    if directory.exists() {
        std::fs::remove_dir_all(&directory).map_err(|e| format!("cannot replace {}: {e}", directory.display()))?;
    }
    std::fs::rename(&temporary, &directory)
        .map_err(|e| format!("cannot move {} to {}: {e}", temporary.display(), directory.display()))?;
    sync_dir(out)?;

    let zip = zip_bytes(name, &entries, created_at)?;
    let sha256 = hex::encode(Sha256::digest(&zip));
    let temporary_archive = out.join(format!(".tmp-{name}.zip"));
    write_synced(&temporary_archive, &zip)?;
    std::fs::rename(&temporary_archive, &archive)
        .map_err(|e| format!("cannot move {} to {}: {e}", temporary_archive.display(), archive.display()))?;
    sync_dir(out)?;
    // Checked right after reading back: what is recorded is what is on disk.
    let on_disk = std::fs::read(&archive).map_err(|e| format!("cannot read back {}: {e}", archive.display()))?;
    if hex::encode(Sha256::digest(&on_disk)) != sha256 {
        return Err(format!("{} does not read back as written", archive.display()));
    }
    Ok(Written { directory, archive, sha256, size: zip.len() as u64 })
}

fn zip_bytes(name: &str, entries: &[(&str, &[u8])], created_at: DateTime<Utc>) -> Result<Vec<u8>, String> {
    use zip::write::SimpleFileOptions;
    let modified = zip::DateTime::from_date_and_time(
        u16::try_from(created_at.year()).unwrap_or(1980),
        u8::try_from(created_at.month()).unwrap_or(1),
        u8::try_from(created_at.day()).unwrap_or(1),
        u8::try_from(created_at.hour()).unwrap_or(0),
        u8::try_from(created_at.minute()).unwrap_or(0),
        u8::try_from(created_at.second()).unwrap_or(0),
    )
    .unwrap_or_default();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let problem = |e: zip::result::ZipError| format!("cannot write the archive of bundle {name}: {e}");
    for (path, bytes) in entries {
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(modified)
            .unix_permissions(0o644)
            .large_file(bytes.len() as u64 >= u64::from(u32::MAX));
        writer.start_file(format!("{name}/{path}"), options).map_err(problem)?;
        writer.write_all(bytes).map_err(|e| format!("cannot write the archive of bundle {name}: {e}"))?;
    }
    let cursor = writer.finish().map_err(problem)?;
    Ok(cursor.into_inner())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut file = std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.sync_all().map_err(|e| format!("cannot sync {}: {e}", path.display()))
}

fn sync_dir(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| format!("cannot sync the directory {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_paths_get_a_number_before_the_extension() {
        let mut taken = Vec::new();
        assert_eq!(unique(&mut taken, "captures/a.pcap".to_owned()), "captures/a.pcap");
        assert_eq!(unique(&mut taken, "captures/a.pcap".to_owned()), "captures/a-2.pcap");
        assert_eq!(unique(&mut taken, "captures/a.pcap".to_owned()), "captures/a-3.pcap");
        assert_eq!(unique(&mut taken, "x".to_owned()), "x");
        assert_eq!(unique(&mut taken, "x".to_owned()), "x-2");
    }

    #[test]
    fn writes_a_directory_and_an_archive_atomically() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let contents = Contents {
            name: "incident-run-1-20260126T080000Z".to_owned(),
            files: vec![BundleFile {
                path: "diagnostics/a.txt".to_owned(),
                bytes: b"hello".to_vec(),
                source: None,
                redactions: Counts::new(),
            }],
            manifest: b"{}".to_vec(),
            redactions: 0,
            left_out: 0,
        };
        let written = write(dir.path(), &contents, Utc::now()).expect("written");
        assert_eq!(std::fs::read(written.directory.join("diagnostics/a.txt")).expect("file"), b"hello");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".tmp-")), "{names:?}");
        let mut archive = zip::ZipArchive::new(std::fs::File::open(&written.archive).expect("zip")).expect("opens");
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut archive.by_name("incident-run-1-20260126T080000Z/diagnostics/a.txt").expect("entry"),
            &mut text,
        )
        .expect("read");
        assert_eq!(text, "hello");
        assert_eq!(existing(dir.path(), &contents.name), Some(written));
    }
}
