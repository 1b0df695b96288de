//! Redaction: the declared secrets' values (masked as the engine's Masker
//! does, `***`) and credentials that commonly appear in cloud CLI output,
//! found by pattern and replaced with `[REDACTED:kind]`, counted per kind.
//!
//! A pattern with a group named `secret` replaces only that group, so
//! `AccountKey=` stays readable and only the key goes. Binary files (packet
//! captures) are redacted with `*` of the same length, which keeps their
//! record lengths, and so the file, valid.

use regex::bytes::{Captures, Regex};
use runbook_engine::mask::MASK;
use std::collections::BTreeMap;

use super::config::Pattern;

/// The built-in patterns: kind and regular expression.
const BUILT_IN: &[(&str, &str)] = &[
    ("private_key", r"(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?-----END [A-Z0-9 ]*PRIVATE KEY-----"),
    ("storage_account_key", r"(?i)AccountKey\s*=\s*(?P<secret>[A-Za-z0-9+/]{20,}={0,2})"),
    // A bare 88-character key (as `az storage account keys list` prints it).
    ("storage_account_key", r"(?:^|[^A-Za-z0-9+/=])(?P<secret>[A-Za-z0-9+/]{86}==)(?:$|[^A-Za-z0-9+/=])"),
    ("sas_signature", r"(?i)\bsig=(?P<secret>[A-Za-z0-9%+/=_-]{4,})"),
    ("bearer_token", r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    ("connection_string_password", r"(?i)\b(?:password|pwd)\s*=\s*(?P<secret>[^;\x22'\s&]+)"),
    ("client_secret", r#"(?i)"?\bclient_?secret"?\s*[:=]\s*"?(?P<secret>[^\s"',;&}]+)"#),
    ("password_field", r#"(?i)"(?:password|passwd)"\s*:\s*"(?P<secret>[^"]+)""#),
];

/// The kind counted for a declared secret's value.
pub const SECRET_KIND: &str = "secret";

/// How a match is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `***` for secrets, `[REDACTED:kind]` for patterns: text files.
    Labelled,
    /// `*` repeated to the same length: binary files keep their layout.
    SameLength,
}

/// Redactions per kind.
pub type Counts = BTreeMap<String, u64>;

/// The secrets and patterns of one bundle.
#[derive(Debug, Clone)]
pub struct Redactor {
    /// Every secret value (and its JSON-escaped form), longest first, as one alternation.
    secrets: Option<Regex>,
    patterns: Vec<(String, Regex)>,
}

impl Redactor {
    /// A redactor for these secret values and the workflow's extra patterns (checked at load time).
    pub fn new(secret_values: &[String], extra: &[Pattern]) -> Result<Redactor, String> {
        let mut values: Vec<String> = secret_values.iter().filter(|v| !v.is_empty()).cloned().collect();
        let escaped: Vec<String> = values
            .iter()
            .filter_map(|v| serde_json::to_string(v).ok())
            .map(|quoted| quoted[1..quoted.len() - 1].to_owned())
            .collect();
        values.extend(escaped);
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        let secrets = if values.is_empty() {
            None
        } else {
            let alternation = values.iter().map(|v| regex::escape(v)).collect::<Vec<_>>().join("|");
            Some(Regex::new(&alternation).map_err(|e| format!("cannot match the secrets' values: {e}"))?)
        };
        let mut patterns = Vec::new();
        for (kind, source) in BUILT_IN {
            let regex = Regex::new(source).map_err(|e| format!("built-in pattern `{kind}`: {e}"))?;
            patterns.push(((*kind).to_owned(), regex));
        }
        for pattern in extra {
            let regex = Regex::new(&pattern.regex)
                .map_err(|e| format!("redaction pattern `{}` is not a regular expression: {e}", pattern.regex))?;
            patterns.push((pattern.kind.clone(), regex));
        }
        Ok(Redactor { secrets, patterns })
    }

    /// `bytes` redacted, with the number of redactions per kind.
    pub fn redact(&self, bytes: &[u8], style: Style) -> (Vec<u8>, Counts) {
        let mut counts = Counts::new();
        let mut out = bytes.to_vec();
        if let Some(secrets) = &self.secrets {
            let mut n = 0u64;
            out = secrets
                .replace_all(&out, |caps: &Captures<'_>| {
                    n += 1;
                    match style {
                        Style::Labelled => MASK.as_bytes().to_vec(),
                        Style::SameLength => vec![b'*'; caps[0].len()],
                    }
                })
                .into_owned();
            if n > 0 {
                counts.insert(SECRET_KIND.to_owned(), n);
            }
        }
        for (kind, regex) in &self.patterns {
            let mut n = 0u64;
            let replaced = regex.replace_all(&out, |caps: &Captures<'_>| {
                let whole = caps.get(0).map_or((0, 0), |m| (m.start(), m.end()));
                let (start, end) = caps.name("secret").map_or(whole, |m| (m.start(), m.end()));
                let all = &caps[0];
                let secret = &all[start - whole.0..end - whole.0];
                // Already redacted (an extra pattern overlapping a built-in one): leave it, count nothing.
                if secret.windows(10).any(|w| w == b"[REDACTED:") || secret.iter().all(|b| *b == b'*') {
                    return all.to_vec();
                }
                n += 1;
                let mut replacement = all[..start - whole.0].to_vec();
                match style {
                    Style::Labelled => replacement.extend_from_slice(format!("[REDACTED:{kind}]").as_bytes()),
                    Style::SameLength => replacement.extend(std::iter::repeat_n(b'*', secret.len())),
                }
                replacement.extend_from_slice(&all[end - whole.0..]);
                replacement
            });
            if n > 0 {
                out = replaced.into_owned();
                *counts.entry(kind.clone()).or_default() += n;
            }
        }
        (out, counts)
    }

    /// A JSON value with every string (and key) redacted one by one, so that
    /// a pattern can never reach across a quote and the result stays JSON.
    pub fn redact_json(&self, value: &serde_json::Value, counts: &mut Counts) -> serde_json::Value {
        match value {
            serde_json::Value::String(s) => serde_json::Value::String(self.redact_counted(s, counts)),
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(|v| self.redact_json(v, counts)).collect())
            }
            serde_json::Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (key, v) in map {
                    let key = self.redact_counted(key, counts);
                    let v = self.redact_json(v, counts);
                    out.insert(key, v);
                }
                serde_json::Value::Object(out)
            }
            other => other.clone(),
        }
    }

    fn redact_counted(&self, text: &str, counts: &mut Counts) -> String {
        let (bytes, found) = self.redact(text.as_bytes(), Style::Labelled);
        for (kind, n) in found {
            *counts.entry(kind).or_default() += n;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Text redacted (for the email and messages).
    pub fn redact_text(&self, text: &str) -> String {
        let (bytes, _) = self.redact(text.as_bytes(), Style::Labelled);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Whether bytes look binary (a NUL in the first 8 KiB): they are redacted with [`Style::SameLength`].
pub fn looks_binary(bytes: &[u8]) -> bool {
    bytes.iter().take(8192).any(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYm==";

    #[track_caller]
    fn check(input: &str, expected: &str, kinds: &[(&str, u64)]) {
        let redactor = Redactor::new(
            &["hunter2".to_owned()],
            &[Pattern { kind: "custom".to_owned(), regex: "(?i)token=\\S+".to_owned() }],
        )
        .expect("valid");
        let (out, counts) = redactor.redact(input.as_bytes(), Style::Labelled);
        assert_eq!(String::from_utf8_lossy(&out), expected);
        let expected_counts: Counts = kinds.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect();
        assert_eq!(counts, expected_counts);
    }

    #[test]
    fn redacts_what_cloud_clis_print() {
        assert_eq!(KEY.len(), 88);
        check("nothing here", "nothing here", &[]);
        check("pw hunter2 and \"hunter2\"", "pw *** and \"***\"", &[("secret", 2)]);
        check(
            &format!("DefaultEndpointsProtocol=https;AccountName=x;AccountKey={KEY};EndpointSuffix=core"),
            "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=[REDACTED:storage_account_key];EndpointSuffix=core",
            &[("storage_account_key", 1)],
        );
        check(
            &format!("{{\"value\": \"{KEY}\"}}"),
            "{\"value\": \"[REDACTED:storage_account_key]\"}",
            &[("storage_account_key", 1)],
        );
        check(
            "https://a.blob.core.windows.net/c?sv=2022-11-02&se=2026&sig=abcDEF%2B123%3D",
            "https://a.blob.core.windows.net/c?sv=2022-11-02&se=2026&sig=[REDACTED:sas_signature]",
            &[("sas_signature", 1)],
        );
        check(
            "Authorization: Bearer abc.def-ghi_jkl",
            "Authorization: Bearer [REDACTED:bearer_token]",
            &[("bearer_token", 1)],
        );
        check(
            "{\"accessToken\": \"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl\"}",
            "{\"accessToken\": \"[REDACTED:jwt]\"}",
            &[("jwt", 1)],
        );
        check(
            "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabc\n-----END RSA PRIVATE KEY-----\nb",
            "a\n[REDACTED:private_key]\nb",
            &[("private_key", 1)],
        );
        check(
            "Server=db;User Id=sa;Password=S3cr3t!;",
            "Server=db;User Id=sa;Password=[REDACTED:connection_string_password];",
            &[("connection_string_password", 1)],
        );
        check(
            "{\"clientSecret\": \"abc~123\"}",
            "{\"clientSecret\": \"[REDACTED:client_secret]\"}",
            &[("client_secret", 1)],
        );
        check("{\"password\": \"p w\"}", "{\"password\": \"[REDACTED:password_field]\"}", &[("password_field", 1)]);
        check("token=abc123 ", "[REDACTED:custom] ", &[("custom", 1)]);
        // An extra pattern over what a built-in one already redacted counts nothing.
        check("token=[REDACTED:x]", "token=[REDACTED:x]", &[]);
    }

    #[test]
    fn json_stays_json() {
        let redactor =
            Redactor::new(&[], &[Pattern { kind: "custom".to_owned(), regex: "note=\\S+".to_owned() }]).expect("valid");
        let mut counts = Counts::new();
        let value = serde_json::json!({"redact": ["note=\\S+"], "text": "a note=x\nb", "n": 1});
        let out = redactor.redact_json(&value, &mut counts);
        assert_eq!(out, serde_json::json!({"redact": ["[REDACTED:custom]"], "text": "a [REDACTED:custom]\nb", "n": 1}));
        assert_eq!(counts.get("custom"), Some(&2));
    }

    #[test]
    fn binary_files_keep_their_length() {
        let redactor = Redactor::new(&["hunter2".to_owned()], &[]).expect("valid");
        let input = b"\xd4\xc3\xb2\xa1\x00hunter2\x00pwd=abc;";
        let (out, counts) = redactor.redact(input, Style::SameLength);
        assert_eq!(out.len(), input.len());
        assert_eq!(&out[..], b"\xd4\xc3\xb2\xa1\x00*******\x00pwd=***;");
        assert_eq!(counts.get("secret"), Some(&1));
        assert!(looks_binary(input));
        assert!(!looks_binary(b"text"));
    }
}
