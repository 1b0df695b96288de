//! Architecture invariants: the dependency direction between the crates, checked on their manifests.

use std::path::Path;

/// The workspace crates each crate may depend on.
const ALLOWED: &[(&str, &[&str])] =
    &[("storage", &[]), ("engine", &["runbook-storage"]), ("steps", &["runbook-engine"]), ("sim", &[])];

#[test]
fn crates_depend_only_in_the_allowed_direction() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (krate, allowed) in ALLOWED {
        let manifest = std::fs::read_to_string(root.join(krate).join("Cargo.toml")).expect("read manifest");
        let mut section = String::new();
        for line in manifest.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            if !section.contains("dependencies") {
                continue;
            }
            let Some(name) = line.split(['=', '.', ' ']).next() else { continue };
            if name.starts_with("runbook-") {
                assert!(
                    allowed.contains(&name),
                    "{krate} depends on {name} in {section}: forbidden (see docs/ARCHITECTURE.md, Architecture Invariants)"
                );
            }
        }
    }
}

#[test]
fn the_state_machine_does_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("engine/src/state");
    for entry in std::fs::read_dir(&root).expect("read state module").flatten() {
        let source = std::fs::read_to_string(entry.path()).expect("read source");
        for forbidden in
            ["tokio", "std::fs", "std::net", "std::process", "Utc::now", "SystemTime", "Instant::now", "rand::"]
        {
            assert!(
                !source.contains(forbidden),
                "{} uses `{forbidden}`: apply and decide must stay pure",
                entry.path().display()
            );
        }
    }
}
