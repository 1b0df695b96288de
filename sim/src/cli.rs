//! Command tables and the two argument grammars: argparse as `az` uses it, and
//! pflag/cobra as `kubectl` and `helm` use it. A command line that does not
//! match a table entry is refused the way the real CLI refuses it, and the
//! simulator adds the full command line to stderr so that a typo is easy to find.

use std::fmt::Write as _;

/// The simulated programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Az,
    Kubectl,
    Helm,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Az => "az",
            Tool::Kubectl => "kubectl",
            Tool::Helm => "helm",
        }
    }

    pub fn from_name(name: &str) -> Option<Tool> {
        match name {
            "az" => Some(Tool::Az),
            "kubectl" => Some(Tool::Kubectl),
            "helm" => Some(Tool::Helm),
            _ => None,
        }
    }
}

/// How many values a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// No value (`--wait`; pflag also accepts `--wait=true|false`).
    Switch,
    /// One value; given twice, the last wins.
    One,
    /// argparse `nargs='+'`: every following token up to the next option (`--ports 80 443`).
    Many,
    /// A real flag the simulator refuses, with the reason.
    Unsupported(&'static str),
}

/// One flag: its names (long first, as the CLI's help prints them), arity and whether it is required.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub names: &'static [&'static str],
    pub arity: Arity,
    pub required: bool,
}

impl Flag {
    /// The name the handlers look a flag up by: its first (long) name.
    pub fn canonical(&self) -> &'static str {
        self.names[0]
    }

    fn display(&self) -> String {
        self.names.join("/")
    }
}

/// A switch.
pub const fn switch(names: &'static [&'static str]) -> Flag {
    Flag { names, arity: Arity::Switch, required: false }
}

/// An optional flag with one value.
pub const fn one(names: &'static [&'static str]) -> Flag {
    Flag { names, arity: Arity::One, required: false }
}

/// A required flag with one value.
pub const fn required(names: &'static [&'static str]) -> Flag {
    Flag { names, arity: Arity::One, required: true }
}

/// An optional flag with one or more values.
pub const fn many(names: &'static [&'static str]) -> Flag {
    Flag { names, arity: Arity::Many, required: false }
}

/// A real flag the simulator does not implement.
pub const fn unsupported(names: &'static [&'static str], reason: &'static str) -> Flag {
    Flag { names, arity: Arity::Unsupported(reason), required: false }
}

/// One entry of a command table: the subcommand path, its flags and how many positional arguments it takes.
pub struct Command<H: 'static> {
    pub path: &'static [&'static str],
    pub flags: &'static [Flag],
    pub positionals: (usize, usize),
    pub summary: &'static str,
    pub run: H,
}

/// What a simulated command answers: its output streams and exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Reply {
    pub fn ok(stdout: impl Into<String>) -> Reply {
        Reply { stdout: stdout.into(), stderr: String::new(), code: 0 }
    }

    pub fn fail(code: i32, stderr: impl Into<String>) -> Reply {
        let mut stderr = stderr.into();
        if !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        Reply { stdout: String::new(), stderr, code }
    }

    /// Appends the simulator's note naming the full command line (only on refusals of the command line).
    pub fn with_command_line(mut self, tool: Tool, tokens: &[String]) -> Reply {
        let _ = writeln!(self.stderr, "azsim: command line not simulated: {}", command_line(tool, tokens));
        self
    }
}

/// The command line as a shell would show it.
pub fn command_line(tool: Tool, tokens: &[String]) -> String {
    let mut line = tool.name().to_owned();
    for token in tokens {
        line.push(' ');
        line.push_str(&shell_quote(token));
    }
    line
}

fn shell_quote(token: &str) -> String {
    let plain = !token.is_empty() && token.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+^".contains(c));
    if plain { token.to_owned() } else { format!("'{}'", token.replace('\'', r"'\''")) }
}

/// Parsed flags and positional arguments of one command line.
#[derive(Debug, Default, Clone)]
pub struct Args {
    pub positionals: Vec<String>,
    values: Vec<(&'static str, String)>,
    switches: Vec<(&'static str, bool)>,
}

impl Args {
    /// The last value given for a flag (by canonical name).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// Every value given for a flag, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.values.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// Whether a switch was given (and not as `=false`).
    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().rev().find(|(n, _)| *n == name).is_some_and(|(_, on)| *on)
    }

    /// Whether a flag was given at all.
    pub fn given(&self, name: &str) -> bool {
        self.values.iter().any(|(n, _)| *n == name) || self.switches.iter().any(|(n, _)| *n == name)
    }
}

fn find_flag<'f>(flags: impl Iterator<Item = &'f Flag>, name: &str) -> Option<&'f Flag> {
    flags.into_iter().find(|f| f.names.contains(&name))
}

/// Parses an `az` command line (argparse rules, as azure-cli configures them).
pub fn parse_az<'t, H>(
    table: &'t [Command<H>],
    globals: &'static [Flag],
    tokens: &[String],
) -> Result<(&'t Command<H>, Args), Reply> {
    let refuse = |message: String| Reply::fail(2, format!("ERROR: {message}")).with_command_line(Tool::Az, tokens);
    let mut path: Vec<&str> = Vec::new();
    let mut rest = tokens;
    while let Some(token) = rest.first() {
        if token.starts_with('-') {
            break;
        }
        let prefix_known = table
            .iter()
            .any(|c| c.path.len() > path.len() && c.path[..path.len()] == path[..] && c.path[path.len()] == token);
        if !prefix_known {
            if table.iter().any(|c| c.path == path.as_slice()) {
                break; // a complete command followed by a stray word: an unrecognized argument below
            }
            return Err(refuse(format!("'{token}' is misspelled or not recognized by the system.")));
        }
        path.push(token);
        rest = &rest[1..];
    }
    let Some(command) = table.iter().find(|c| c.path == path.as_slice()) else {
        let group = if path.is_empty() { "az".to_owned() } else { format!("az {}", path.join(" ")) };
        return Err(Reply::fail(2, format!("azsim: `{group}` is a command group; the simulator prints no help"))
            .with_command_line(Tool::Az, tokens));
    };
    let mut args = Args::default();
    let mut unrecognized: Vec<String> = Vec::new();
    let mut index = 0;
    while index < rest.len() {
        let token = &rest[index];
        index += 1;
        if !token.starts_with('-') || token == "-" {
            unrecognized.push(token.clone());
            continue;
        }
        let (name, inline) = match token.split_once('=') {
            Some((name, value)) if token.starts_with("--") => (name, Some(value.to_owned())),
            _ => (token.as_str(), None),
        };
        let Some(flag) = find_flag(command.flags.iter().chain(globals.iter()), name) else {
            unrecognized.push(token.clone());
            while index < rest.len() && !rest[index].starts_with('-') {
                unrecognized.push(rest[index].clone());
                index += 1;
            }
            continue;
        };
        match flag.arity {
            Arity::Unsupported(reason) => {
                return Err(Reply::fail(2, format!("azsim: {name} is not simulated: {reason}"))
                    .with_command_line(Tool::Az, tokens));
            }
            Arity::Switch => {
                if inline.is_some() {
                    return Err(refuse(format!(
                        "argument {}: ignored explicit argument '{}'",
                        flag.display(),
                        inline.unwrap_or_default()
                    )));
                }
                args.switches.push((flag.canonical(), true));
            }
            Arity::One => {
                let value = match inline {
                    Some(value) => value,
                    None if index < rest.len() && !looks_like_option(&rest[index]) => {
                        index += 1;
                        rest[index - 1].clone()
                    }
                    None => return Err(refuse(format!("argument {}: expected one argument", flag.display()))),
                };
                args.values.retain(|(n, _)| *n != flag.canonical());
                args.values.push((flag.canonical(), value));
            }
            Arity::Many => {
                let mut taken = Vec::new();
                if let Some(value) = inline {
                    taken.push(value);
                }
                while index < rest.len() && !looks_like_option(&rest[index]) {
                    taken.push(rest[index].clone());
                    index += 1;
                }
                if taken.is_empty() {
                    return Err(refuse(format!("argument {}: expected at least one argument", flag.display())));
                }
                args.values.retain(|(n, _)| *n != flag.canonical());
                args.values.extend(taken.into_iter().map(|v| (flag.canonical(), v)));
            }
        }
    }
    if !unrecognized.is_empty() {
        return Err(refuse(format!("unrecognized arguments: {}", unrecognized.join(" "))));
    }
    let missing: Vec<String> =
        command.flags.iter().filter(|f| f.required && !args.given(f.canonical())).map(Flag::display).collect();
    if !missing.is_empty() {
        return Err(refuse(format!("the following arguments are required: {}", missing.join(", "))));
    }
    Ok((command, args))
}

/// argparse treats `-5` as a value (negative number) and `-x`/`--x` as an option.
fn looks_like_option(token: &str) -> bool {
    token.starts_with('-') && token.len() > 1 && !token[1..].starts_with(|c: char| c.is_ascii_digit())
}

/// Parses a `kubectl` or `helm` command line (pflag rules: flags anywhere, `--x=v`, `-xv`, `--` ends flags).
pub fn parse_pflag<'t, H>(
    tool: Tool,
    table: &'t [Command<H>],
    globals: &'static [Flag],
    tokens: &[String],
) -> Result<(&'t Command<H>, Args), Reply> {
    let prefix = if tool == Tool::Helm { "Error" } else { "error" };
    let every_flag = || table.iter().flat_map(|c| c.flags.iter()).chain(globals.iter());
    // First pass: the words that are not flags or flag values, to find the subcommand (as cobra's Find does).
    let mut words: Vec<&str> = Vec::new();
    let mut index = 0;
    while index < tokens.len() {
        let token = tokens[index].as_str();
        index += 1;
        if token == "--" {
            words.extend(tokens[index..].iter().map(String::as_str));
            break;
        }
        if let Some(long) = token.strip_prefix("--") {
            if !long.contains('=') && find_flag(every_flag(), token).is_some_and(|f| takes_value(f.arity)) {
                index += 1;
            }
        } else if token.starts_with('-') && token.len() > 1 {
            let short = &token[..2];
            if token.len() == 2 && find_flag(every_flag(), short).is_some_and(|f| takes_value(f.arity)) {
                index += 1;
            }
        } else {
            words.push(token);
        }
    }
    let mut path: Vec<&str> = Vec::new();
    for word in &words {
        let extends = table
            .iter()
            .any(|c| c.path.len() > path.len() && c.path[..path.len()] == path[..] && c.path[path.len()] == *word);
        if !extends {
            break;
        }
        path.push(word);
    }
    let Some(command) = table.iter().find(|c| c.path == path.as_slice()) else {
        let parent =
            if path.is_empty() { tool.name().to_owned() } else { format!("{} {}", tool.name(), path.join(" ")) };
        let message = match words.get(path.len()) {
            Some(word) => format!("{prefix}: unknown command \"{word}\" for \"{parent}\""),
            None => format!("azsim: `{parent}` needs a subcommand; the simulator prints no help"),
        };
        let hint = if tool == Tool::Helm { format!("\nRun '{parent} --help' for usage.") } else { String::new() };
        return Err(Reply::fail(1, format!("{message}{hint}")).with_command_line(tool, tokens));
    };
    let usage = format!("See '{} {} --help' for usage.", tool.name(), command.path.join(" "));
    let refuse = |message: String| {
        let text = if tool == Tool::Kubectl {
            format!("{prefix}: {message}\n{usage}")
        } else {
            format!("{prefix}: {message}")
        };
        Reply::fail(1, text).with_command_line(tool, tokens)
    };
    let flags = || command.flags.iter().chain(globals.iter());
    let mut args = Args::default();
    let mut path_left: &[&str] = command.path;
    let mut index = 0;
    while index < tokens.len() {
        let token = &tokens[index];
        index += 1;
        if token == "--" {
            args.positionals.extend(tokens[index..].iter().cloned());
            break;
        }
        let (flag, display, inline) = if let Some(long) = token.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let Some(flag) = find_flag(flags(), &format!("--{name}")) else {
                return Err(refuse(format!("unknown flag: --{name}")));
            };
            (flag, format!("--{name}"), inline)
        } else if token.starts_with('-') && token.len() > 1 {
            let letter = &token[1..2];
            let Some(flag) = find_flag(flags(), &format!("-{letter}")) else {
                return Err(refuse(format!("unknown shorthand flag: '{letter}' in {token}")));
            };
            let attached = &token[2..];
            let inline = if attached.is_empty() {
                None
            } else {
                Some(attached.strip_prefix('=').unwrap_or(attached).to_owned())
            };
            (flag, format!("'{letter}' in {token}"), inline)
        } else {
            if let Some((first, more)) = path_left.split_first()
                && first == token
            {
                path_left = more;
                continue;
            }
            args.positionals.push(token.clone());
            continue;
        };
        match flag.arity {
            Arity::Unsupported(reason) => {
                return Err(Reply::fail(1, format!("azsim: {} is not simulated: {reason}", flag.canonical()))
                    .with_command_line(tool, tokens));
            }
            Arity::Switch => {
                let on = match inline.as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(other) => {
                        return Err(refuse(format!(
                            "invalid argument \"{other}\" for \"{}\" flag: strconv.ParseBool: parsing \"{other}\": invalid syntax",
                            flag.names.join(", ")
                        )));
                    }
                };
                args.switches.push((flag.canonical(), on));
            }
            Arity::One | Arity::Many => {
                let value = match inline {
                    Some(value) => value,
                    None if index < tokens.len() => {
                        index += 1;
                        tokens[index - 1].clone()
                    }
                    None => return Err(refuse(format!("flag needs an argument: {display}"))),
                };
                args.values.push((flag.canonical(), value));
            }
        }
    }
    let (min, max) = command.positionals;
    if args.positionals.len() > max && min == max && max == 0 {
        return Err(refuse(format!(
            "unknown command \"{}\" for \"{} {}\"",
            args.positionals[0],
            tool.name(),
            command.path.join(" ")
        )));
    }
    Ok((command, args))
}

fn takes_value(arity: Arity) -> bool {
    matches!(arity, Arity::One | Arity::Many)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLOBALS: &[Flag] = &[one(&["--output", "-o"]), one(&["--query"])];
    const SHOW: &[Flag] = &[required(&["--resource-group", "-g"]), required(&["--name", "-n"])];
    const RULE: &[Flag] = &[required(&["--nsg-name"]), many(&["--destination-port-ranges"]), switch(&["--no-wait"])];
    const TABLE: &[Command<()>] = &[
        Command { path: &["network", "lb", "show"], flags: SHOW, positionals: (0, 0), summary: "", run: () },
        Command { path: &["network", "nsg", "rule", "create"], flags: RULE, positionals: (0, 0), summary: "", run: () },
    ];

    fn tokens(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[track_caller]
    fn az_error(line: &str, expected: &str) {
        let error = parse_az(TABLE, GLOBALS, &tokens(line)).err().expect("refused");
        assert_eq!(error.code, 2);
        assert!(error.stderr.starts_with(expected), "{}", error.stderr);
        assert!(error.stderr.contains(&format!("az {line}")), "{}", error.stderr);
    }

    #[test]
    fn az_accepts_known_lines() {
        let (command, args) =
            parse_az(TABLE, GLOBALS, &tokens("network lb show -g rg --name=lb -o json")).expect("parses");
        assert_eq!(command.path, ["network", "lb", "show"]);
        assert_eq!(args.value("--resource-group"), Some("rg"));
        assert_eq!(args.value("--name"), Some("lb"));
        assert_eq!(args.value("--output"), Some("json"));
        let (_, args) = parse_az(
            TABLE,
            GLOBALS,
            &tokens("network nsg rule create --nsg-name n --destination-port-ranges 80 443 --no-wait"),
        )
        .expect("parses");
        assert_eq!(args.values("--destination-port-ranges"), ["80", "443"]);
        assert!(args.switch("--no-wait"));
    }

    #[test]
    fn az_refuses_like_argparse() {
        az_error("network lb shw -g rg -n lb", "ERROR: 'shw' is misspelled or not recognized by the system.");
        az_error("netwrk lb show", "ERROR: 'netwrk' is misspelled");
        az_error("network lb show -g rg -n lb --frobnicate 3", "ERROR: unrecognized arguments: --frobnicate 3");
        az_error("network lb show -g rg", "ERROR: the following arguments are required: --name/-n");
        az_error("network lb show -g rg -n", "ERROR: argument --name/-n: expected one argument");
        az_error("network lb show -g rg -n lb extra", "ERROR: unrecognized arguments: extra");
        az_error("network lb", "azsim: `az network lb` is a command group");
    }

    const KGLOBALS: &[Flag] = &[one(&["--namespace", "-n"])];
    const GET: &[Flag] = &[one(&["--output", "-o"]), switch(&["--all-namespaces", "-A"])];
    const KTABLE: &[Command<()>] = &[
        Command { path: &["get"], flags: GET, positionals: (1, 2), summary: "", run: () },
        Command { path: &["repo", "add"], flags: &[], positionals: (2, 2), summary: "", run: () },
    ];

    #[test]
    fn pflag_accepts_flags_anywhere() {
        let (command, args) =
            parse_pflag(Tool::Kubectl, KTABLE, KGLOBALS, &tokens("-n mini-xdr get svc -ojson frontend"))
                .expect("parses");
        assert_eq!(command.path, ["get"]);
        assert_eq!(args.positionals, ["svc", "frontend"]);
        assert_eq!(args.value("--output"), Some("json"));
        assert_eq!(args.value("--namespace"), Some("mini-xdr"));
        let (_, args) =
            parse_pflag(Tool::Kubectl, KTABLE, KGLOBALS, &tokens("get svc -A --output=yaml")).expect("parses");
        assert!(args.switch("--all-namespaces"));
        assert_eq!(args.value("--output"), Some("yaml"));
    }

    #[test]
    fn pflag_refuses_like_cobra() {
        let error = parse_pflag(Tool::Kubectl, KTABLE, KGLOBALS, &tokens("gett svc")).err().expect("refused");
        assert_eq!(error.code, 1);
        assert!(error.stderr.starts_with("error: unknown command \"gett\" for \"kubectl\""), "{}", error.stderr);
        assert!(error.stderr.contains("kubectl gett svc"));
        let error = parse_pflag(Tool::Kubectl, KTABLE, KGLOBALS, &tokens("get svc --watch")).err().expect("refused");
        assert!(
            error.stderr.starts_with("error: unknown flag: --watch\nSee 'kubectl get --help' for usage."),
            "{}",
            error.stderr
        );
        let error = parse_pflag(Tool::Helm, KTABLE, KGLOBALS, &tokens("repo ad x y")).err().expect("refused");
        assert!(error.stderr.starts_with("Error: unknown command \"ad\" for \"helm repo\""), "{}", error.stderr);
        let error = parse_pflag(Tool::Kubectl, KTABLE, KGLOBALS, &tokens("get svc -n")).err().expect("refused");
        assert!(error.stderr.starts_with("error: flag needs an argument: 'n' in -n"), "{}", error.stderr);
    }
}
