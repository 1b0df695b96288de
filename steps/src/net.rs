//! What the network kinds (`http`, `tcp`, `ping`) share: reading their
//! configuration mapping the same way at validation and at execution, host and
//! duration values, and the TLS crypto provider.
//!
//! Each kind describes its keys once, as a function that applies one key's
//! value to the probe being built. `runbook validate` calls it for every value
//! written literally, reporting problems at their line; values that are
//! templates can only be judged once rendered, so `execute` renders the whole
//! configuration and calls the same function again, failing the step with the
//! same message when a rendered value is bad.

use runbook_engine::diag::did_you_mean;
use runbook_engine::duration::{format_duration, parse_duration};
use runbook_engine::step::{ConfigCheck, StepRequest};
use runbook_engine::yaml::{Node, Value};
use std::time::{Duration, Instant};

/// Applies one key's value to a probe under construction; `Err` says what is wrong with the value.
pub(crate) type ApplyKey<P> = fn(&mut P, &str, &serde_json::Value) -> Result<(), String>;

/// The keys of one kind's mapping.
pub(crate) struct Keys<P> {
    /// The kind's name, for messages (`tcp`).
    pub kind: &'static str,
    /// Every key the mapping may have.
    pub known: &'static [&'static str],
    /// Keys without a default.
    pub required: &'static [&'static str],
    /// The key a plain string stands for (`ping: HOST` is `ping: { host: HOST }`), if any.
    pub shorthand: Option<&'static str>,
    pub apply: ApplyKey<P>,
}

impl<P: Default> Keys<P> {
    /// Checks the configuration as written and returns it as a mapping for the model.
    pub(crate) fn check(&self, config: &Node, check: &mut ConfigCheck<'_>) -> serde_json::Value {
        let entries = match (&config.value, self.shorthand) {
            (Value::Map(entries), _) => entries,
            (Value::String(_), Some(key)) => {
                self.check_value(key, config, check);
                let mut map = serde_json::Map::new();
                map.insert(key.to_owned(), config.to_json());
                return serde_json::Value::Object(map);
            }
            (other, shorthand) => {
                let expected = match shorthand {
                    Some(key) => format!("a mapping (or a string: the `{key}`)"),
                    None => "a mapping".to_owned(),
                };
                check.error(
                    config.position,
                    "",
                    format!(
                        "expected {expected} with keys {}, found {}",
                        self.known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                        other.kind_name()
                    ),
                );
                return config.to_json();
            }
        };
        for (key, value) in entries {
            if !self.known.contains(&key.name.as_str()) {
                let hint = match did_you_mean(&key.name, self.known.iter().copied()) {
                    Some(suggestion) => format!(" (did you mean `{suggestion}`?)"),
                    None => format!("; `{}` takes {}", self.kind, self.known.join(", ")),
                };
                check.error(key.position, &key.name, format!("unknown key `{}`{hint}", key.name));
                continue;
            }
            self.check_value(&key.name, value, check);
        }
        for required in self.required {
            if !entries.iter().any(|(k, _)| k.name == *required) {
                check.error(config.position, "", format!("missing key `{required}`: a `{}` step needs it", self.kind));
            }
        }
        config.to_json()
    }

    fn check_value(&self, key: &str, value: &Node, check: &mut ConfigCheck<'_>) {
        let json = value.to_json();
        if has_template(&json) {
            // Judged once rendered, when the step runs.
            return;
        }
        if let Err(message) = (self.apply)(&mut P::default(), key, &json) {
            check.error(value.position, key, message);
        }
    }

    /// Renders the configuration's templates and builds the probe; `Err` is the step's error.
    pub(crate) fn probe(&self, request: &StepRequest) -> Result<P, String> {
        let rendered = render(request, &request.config).map_err(|message| format!("{}: {message}", self.kind))?;
        let map = match rendered {
            serde_json::Value::Object(map) => map,
            serde_json::Value::String(text) if self.shorthand.is_some() => {
                let mut map = serde_json::Map::new();
                map.insert(self.shorthand.unwrap_or_default().to_owned(), serde_json::Value::String(text));
                map
            }
            _ => return Err(format!("the `{}` configuration is not a mapping", self.kind)),
        };
        let mut probe = P::default();
        for (key, value) in &map {
            (self.apply)(&mut probe, key, value).map_err(|message| format!("{} `{key}`: {message}", self.kind))?;
        }
        for required in self.required {
            if !map.contains_key(*required) {
                return Err(format!("{}: missing key `{required}`", self.kind));
            }
        }
        Ok(probe)
    }
}

/// Whether a configuration value holds a template anywhere.
fn has_template(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains("{{") || s.contains("{%"),
        serde_json::Value::Array(items) => items.iter().any(has_template),
        serde_json::Value::Object(map) => map.values().any(has_template),
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => false,
    }
}

/// Renders every string of a configuration value. A string that is a single
/// `{{ expression }}` keeps the expression's type (`port: "{{ inputs.port }}"`
/// is a number when the input is an `int`).
fn render(request: &StepRequest, value: &serde_json::Value) -> Result<serde_json::Value, String> {
    Ok(match value {
        serde_json::Value::String(source) if source.contains("{{") || source.contains("{%") => request
            .templates
            .eval_value(source, &request.context)
            .map_err(|problem| format!("cannot render `{source}`: {problem}"))?,
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(|item| render(request, item)).collect::<Result<_, _>>()?)
        }
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter().map(|(k, v)| Ok((k.clone(), render(request, v)?))).collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// A scalar as text: strings as they are, numbers and booleans as written.
pub(crate) fn text(value: &serde_json::Value) -> Result<String, String> {
    match value {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        serde_json::Value::Null => Err("expected a value, found nothing".to_owned()),
        serde_json::Value::Array(_) => Err("expected a string, found a list".to_owned()),
        serde_json::Value::Object(_) => Err("expected a string, found a mapping".to_owned()),
    }
}

/// A host name or address to connect to. Brackets around an IPv6 address are
/// dropped; a leading `-` is refused, so a rendered input can never pass for an
/// option of the system `ping`.
pub(crate) fn host(value: &serde_json::Value) -> Result<String, String> {
    let written = text(value)?;
    let trimmed = written.trim();
    let host = trimmed.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(trimmed);
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    if host.starts_with('-') {
        return Err(format!("`{host}` is not a host name or address"));
    }
    if let Some(bad) = host.chars().find(|c| c.is_whitespace() || c.is_control() || "/?#@".contains(*c)) {
        return Err(format!(
            "`{host}` is not a host name or address (it contains {bad:?}); write the name or address alone"
        ));
    }
    Ok(host.to_owned())
}

/// A duration longer than zero (`500ms`, `5s`).
pub(crate) fn duration(value: &serde_json::Value) -> Result<Duration, String> {
    let written = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => {
            return Err(format!("`{n}` has no unit: write `{n}s` for seconds or `{n}ms` for milliseconds"));
        }
        other => return Err(text(other).err().unwrap_or_else(|| "expected a duration like 5s".to_owned())),
    };
    let parsed = parse_duration(&written)?;
    if parsed.is_zero() {
        return Err(format!("`{written}` is zero: a probe needs time to get an answer"));
    }
    Ok(parsed)
}

/// `true` or `false`, also as the text a template renders.
pub(crate) fn boolean(value: &serde_json::Value) -> Result<bool, String> {
    match value {
        serde_json::Value::Bool(b) => Ok(*b),
        serde_json::Value::String(s) if s.trim() == "true" => Ok(true),
        serde_json::Value::String(s) if s.trim() == "false" => Ok(false),
        other => Err(format!("expected true or false, found `{}`", text(other).unwrap_or_default())),
    }
}

/// A whole number in `range`, also as the text a template renders.
pub(crate) fn whole_number(value: &serde_json::Value, range: std::ops::RangeInclusive<u64>) -> Result<u64, String> {
    let number = match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let shown = text(value).unwrap_or_else(|_| "this".to_owned());
    match number {
        Some(n) if range.contains(&n) => Ok(n),
        Some(_) => Err(format!("{shown} is out of range: use {} to {}", range.start(), range.end())),
        None => Err(format!("`{shown}` is not a whole number ({} to {})", range.start(), range.end())),
    }
}

/// A TCP port, 1 to 65535.
pub(crate) fn port(value: &serde_json::Value) -> Result<u16, String> {
    let number = whole_number(value, 1..=65535)
        .map_err(|_| format!("`{}` is not a port: use 1 to 65535", text(value).unwrap_or_default()))?;
    u16::try_from(number).map_err(|_| "the port is out of range".to_owned())
}

/// Whole milliseconds since `started`, for `elapsed_ms` outputs.
pub(crate) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A duration the way workflows write it, for messages.
pub(crate) fn shown(duration: Duration) -> String {
    format_duration(duration)
}

/// Installs ring as the process's rustls crypto provider, once. reqwest is built
/// with `rustls-no-provider` and panics when it finds none; whoever installs
/// first wins, so a provider installed elsewhere in the process is kept.
pub(crate) fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Whether `error` or one of its sources is the OS error `code`.
pub(crate) fn has_os_error(error: &(dyn std::error::Error + 'static), code: i32) -> bool {
    sources(error).any(|e| e.downcast_ref::<std::io::Error>().and_then(std::io::Error::raw_os_error) == Some(code))
}

/// `error` and every error beneath it.
pub(crate) fn sources<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    let mut next = Some(error);
    std::iter::from_fn(move || {
        let current = next?;
        // An io::Error that wraps another error reports it through `get_ref`, not always through `source`.
        next = current
            .source()
            .or_else(|| current.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).map(|e| e as _));
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hosts() {
        assert_eq!(host(&json!("127.0.0.1")), Ok("127.0.0.1".to_owned()));
        assert_eq!(host(&json!("[::1]")), Ok("::1".to_owned()));
        assert_eq!(host(&json!(" example.test ")), Ok("example.test".to_owned()));
        assert!(host(&json!("-f")).is_err(), "an option for ping is refused");
        assert!(host(&json!("")).is_err());
        assert!(host(&json!("a b")).is_err());
        assert!(host(&json!("http://x/")).is_err());
        assert!(host(&json!([1])).is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(port(&json!(80)), Ok(80));
        assert_eq!(port(&json!("443")), Ok(443));
        assert!(port(&json!(0)).is_err());
        assert!(port(&json!(65536)).is_err());
        assert!(port(&json!("http")).expect_err("an error").contains("`http` is not a port"));
        assert!(port(&json!(-1)).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration(&json!("250ms")), Ok(Duration::from_millis(250)));
        assert!(duration(&json!(5)).expect_err("an error").contains("`5s`"));
        assert!(duration(&json!("0s")).is_err());
        assert!(duration(&json!("5 parsecs")).is_err());
    }

    #[test]
    fn booleans() {
        assert_eq!(boolean(&json!(false)), Ok(false));
        assert_eq!(boolean(&json!("true")), Ok(true));
        assert!(boolean(&json!("yes")).is_err());
    }

    #[test]
    fn os_errors_are_found_beneath_wrappers() {
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        let wrapped = std::io::Error::other(refused);
        assert!(has_os_error(&wrapped, libc::ECONNREFUSED));
        assert!(!has_os_error(&wrapped, libc::ETIMEDOUT));
    }
}
