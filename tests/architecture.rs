//! Architecture invariants: the dependency direction between the crates, checked on their
//! manifests; the shape of the binary's modules and of the engine, checked on their sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace crates each crate may depend on.
const ALLOWED: &[(&str, &[&str])] =
    &[("storage", &[]), ("engine", &["runbook-storage"]), ("steps", &["runbook-engine"]), ("sim", &[])];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn crates_depend_only_in_the_allowed_direction() {
    for (krate, allowed) in ALLOWED {
        let manifest = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).expect("read manifest");
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
    let dir = root().join("engine/src/state");
    for entry in std::fs::read_dir(&dir).expect("read state module").flatten() {
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

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read source directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The module path of a file of the binary: `src/main.rs` is the crate root (`""`),
/// `src/commands/mod.rs` and `src/commands.rs` are `commands`, `src/commands/run.rs` is `commands::run`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src").with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|last| last == "mod" || last == "main") {
        parts.pop();
    }
    parts.join("::")
}

/// A module's source without comments, so that a path named in a doc comment is no reference,
/// and without its unit tests (`#[cfg(test)] mod tests { use super::*; }` is the module's own).
fn code_of(source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let tests = lines.windows(2).position(|pair| {
        pair[0].trim() == "#[cfg(test)]"
            && pair[1].trim_start().starts_with("mod ")
            && pair[1].trim_end().ends_with('{')
    });
    lines[..tests.unwrap_or(lines.len())]
        .iter()
        .map(|line| match line.find("//") {
            // `//` inside a string literal (a URL) is rare in these files; cutting it drops nothing we look for.
            Some(at) => &line[..at],
            None => *line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first identifiers of the paths that follow `prefix` (`crate::`, `super::`, `child::`) in `code`:
/// `crate::a::b` gives `a`; `crate::{a::b, c}` gives `a` and `c`; `crate::f(...)` gives `f`.
fn names_after(code: &str, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(found) = code[from..].find(prefix) {
        let at = from + found;
        from = at + prefix.len();
        // `x::crate::` or `other_name::` is not this prefix.
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_' || bytes[at - 1] == b':') {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                    _ => {}
                }
                if depth == 0 && c != ',' && c != '{' && c != '}' {
                    item.push(c);
                }
            }
            items.push(item);
            for item in items {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

/// The modules of `src/` and, for each, the modules it refers to by `crate::`, `super::` or a
/// child module's name. A reference to an item (not a module) is one to the module that holds it.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files = rust_files(src);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(src, f)).collect();
    let join = |parent: &str, name: &str| if parent.is_empty() { name.to_owned() } else { format!("{parent}::{name}") };
    let parent_of = |module: &str| module.rsplit_once("::").map_or(String::new(), |(parent, _)| parent.to_owned());
    let mut graph = BTreeMap::new();
    for file in &files {
        let module = module_of(src, file);
        let code = code_of(&std::fs::read_to_string(file).expect("read source"));
        let mut uses = BTreeSet::new();
        let mut target = |base: &str, name: &str| {
            let candidate = join(base, name);
            let to = if modules.contains(&candidate) { candidate } else { base.to_owned() };
            if to != module {
                uses.insert(to);
            }
        };
        for name in names_after(&code, "crate::") {
            target("", &name);
        }
        for name in names_after(&code, "super::") {
            target(&parent_of(&module), &name);
        }
        // A parent reaches its child modules by their bare names (`run::handle`).
        for child in modules.iter().filter(|m| !m.is_empty() && parent_of(m) == module && **m != module) {
            let name = child.rsplit("::").next().unwrap_or(child);
            if !names_after(&code, &format!("{name}::")).is_empty() {
                uses.insert(child.clone());
            }
        }
        graph.insert(module, uses);
    }
    graph
}

/// A cycle in the graph, as the modules along it (the first repeated at the end), if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        OnPath,
        Done,
    }
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        marks.insert(node.to_owned(), Mark::OnPath);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::Unseen) {
                Mark::OnPath => {
                    let start = path.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Mark::Unseen => {
                    if let Some(cycle) = visit(next, graph, marks, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::Unseen) == Mark::Unseen
            && let Some(cycle) = visit(node, graph, &mut marks, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn the_module_graph_reader_sees_paths_groups_and_cycles() {
    assert_eq!(names_after("use crate::context::{App, Caller};", "crate::"), ["context"]);
    assert_eq!(names_after("use crate::{context::App, term::{Frame, Term}};", "crate::"), ["context", "term"]);
    assert_eq!(names_after("let x = crate::exit::code(r); a::crate::b", "crate::"), ["exit"]);
    assert_eq!(names_after("use super::inspect::status_json;", "super::"), ["inspect"]);
    assert_eq!(names_after("my_run::x(); run::handle()", "run::"), ["handle"]);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("".to_owned(), BTreeSet::from(["a".to_owned()])),
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(find_cycle(&graph), Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()]));
}

/// The binary's modules depend on each other in one direction: `main` and the socket server on
/// the command table, the table on the commands, the commands on the shared context; never back.
#[test]
fn the_binary_has_no_import_circle() {
    let graph = module_graph(&root().join("src"));
    assert!(graph.contains_key("") && graph.len() > 5, "the module graph of src/ was not read: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        let names: Vec<String> =
            cycle.iter().map(|m| if m.is_empty() { "main".to_owned() } else { m.clone() }).collect();
        panic!(
            "the modules of src/ import each other in a circle: {} (see docs/ARCHITECTURE.md, src/)",
            names.join(" → ")
        );
    }
}

/// The engine knows no concrete step kind: whatever depends on a kind is asked of the `StepKind`
/// the CLI registered, never decided by comparing a step's kind with a name.
#[test]
fn the_engine_knows_no_step_kind_by_name() {
    let patterns = [
        r#"kind\s*[!=]=\s*""#,
        r#""[a-z_]+"\s*[!=]=\s*[a-z_.]*kind\b"#,
        r#"kind\.as_str\(\)\s*[!=]="#,
        r#"matches!\([^)]*kind[^)]*,\s*""#,
        r#"registry[a-z_().]*\.get\(\s*""#,
    ]
    .map(|p| regex::Regex::new(p).expect("valid pattern"));
    // A `match` on a kind whose arms are string literals.
    let match_on_kind = regex::Regex::new(r"\bmatch\s+[a-z_.&*]*kind\b(\.as_str\(\))?").expect("valid pattern");
    let string_arm = regex::Regex::new(r#"^\s*"[a-z_]+"\s*(\|[^=]*)?=>"#).expect("valid pattern");
    let src = root().join("engine/src");
    let mut found = Vec::new();
    for file in rust_files(&src) {
        if file.ends_with("testkit.rs") {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).expect("read source"));
        let lines: Vec<&str> = code.lines().collect();
        let mut in_kind_match = None;
        for (number, line) in lines.iter().enumerate() {
            let place =
                format!("{}:{}: {}", file.strip_prefix(root()).unwrap_or(&file).display(), number + 1, line.trim());
            if patterns.iter().any(|p| p.is_match(line)) {
                found.push(place.clone());
            }
            if match_on_kind.is_match(line) {
                in_kind_match = Some(line.len() - line.trim_start().len());
            } else if let Some(indent) = in_kind_match {
                let this_indent = line.len() - line.trim_start().len();
                if !line.trim().is_empty() && this_indent <= indent {
                    in_kind_match = None;
                } else if string_arm.is_match(line) {
                    found.push(place);
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the engine compares a step's kind with a name (it knows no step kind; ask the StepKind instead):\n{}",
        found.join("\n")
    );
}
