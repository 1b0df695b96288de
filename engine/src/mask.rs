//! Masking of secret values: every text the engine writes or shows passes through a [`Masker`].

/// What a masked secret is replaced with.
pub const MASK: &str = "***";

/// Replaces the values of a run's secrets with `***`.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// Longest first, so a secret that contains another is masked whole.
    values: Vec<String>,
}

impl Masker {
    /// A masker for these secret values; empty values are ignored (they would match everywhere).
    pub fn new(values: impl IntoIterator<Item = String>) -> Masker {
        let mut values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        // A secret is also recognisable in its JSON-escaped form (quotes, backslashes, newlines).
        let escaped: Vec<String> = values
            .iter()
            .filter_map(|v| serde_json::to_string(v).ok())
            .map(|quoted| quoted[1..quoted.len() - 1].to_owned())
            .filter(|e| !values.contains(e))
            .collect();
        values.extend(escaped);
        Masker { values }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every secret value replaced.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for value in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), MASK);
            }
        }
        out
    }

    /// Bytes with every secret value replaced (output of processes need not be UTF-8).
    pub fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for value in &self.values {
            out = replace_bytes(&out, value.as_bytes(), MASK.as_bytes());
        }
        out
    }

    /// Outputs (of a step or a run) with every value masked; their names come from the workflow.
    pub fn mask_outputs(
        &self,
        outputs: &serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Map<String, serde_json::Value> {
        outputs.iter().map(|(name, value)| (name.clone(), self.mask_json(value))).collect()
    }

    /// Every string (and object key) in a JSON value masked.
    pub fn mask_json(&self, value: &serde_json::Value) -> serde_json::Value {
        if self.values.is_empty() {
            return value.clone();
        }
        match value {
            serde_json::Value::String(s) => serde_json::Value::String(self.mask(s)),
            serde_json::Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(|v| self.mask_json(v)).collect())
            }
            serde_json::Value::Object(map) => {
                serde_json::Value::Object(map.iter().map(|(k, v)| (self.mask(k), self.mask_json(v))).collect())
            }
            other => other.clone(),
        }
    }
}

fn replace_bytes(haystack: &[u8], needle: &[u8], replacement: &[u8]) -> Vec<u8> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return haystack.to_vec();
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(replacement);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_text_bytes_and_json() {
        let m = Masker::new(["hunter2".to_owned(), "hunter2-long".to_owned(), String::new()]);
        assert_eq!(m.mask("pw=hunter2-long and hunter2"), "pw=*** and ***");
        assert_eq!(m.mask_bytes(b"xhunter2x\xff"), b"x***x\xff".to_vec());
        assert_eq!(m.mask_json(&json!({"a": ["hunter2"], "hunter2": 1})), json!({"a": ["***"], "***": 1}));
        assert_eq!(Masker::new([]).mask("hunter2"), "hunter2");
    }

    #[test]
    fn masks_the_json_escaped_form() {
        let m = Masker::new(["a\"b".to_owned()]);
        assert_eq!(m.mask(r#"{"k":"a\"b"}"#), r#"{"k":"***"}"#);
    }
}
