//! Output formats as the real CLIs print them: az's `--query` (JMESPath) and
//! `-o json|jsonc|yaml|yamlc|tsv|table|none` (knack: JSON with sorted keys and
//! 2-space indent), kubectl's `-o json` (sorted keys, 4-space indent), `-o yaml`
//! (sorted keys), `-o name` and `-o jsonpath=...`.

use serde_json::{Map, Value};

/// The `-o` values az accepts.
pub const AZ_OUTPUTS: &[&str] = &["json", "jsonc", "yaml", "yamlc", "table", "tsv", "none"];

/// Recursively sorts object keys (knack's `sort_keys=True`; kubectl prints maps sorted too).
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                out.insert(key.clone(), sorted(&map[key]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// JSON with the given indent width.
pub fn json_indented(value: &Value, indent: usize) -> String {
    let mut out = Vec::new();
    let indent = " ".repeat(indent);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Serializing a Value into a Vec cannot fail.
    if serde::Serialize::serialize(value, &mut serializer).is_err() {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// YAML with sorted keys.
pub fn yaml(value: &Value) -> String {
    serde_saphyr::to_string(&sorted(value)).unwrap_or_else(|e| format!("# cannot render YAML: {e}\n"))
}

/// Applies az's `--query`. Errors read as azure-cli prints them.
pub fn az_query(value: &Value, query: &str) -> Result<Value, String> {
    let expression = jmespath::compile(query)
        .map_err(|e| format!("argument --query: invalid jmespath_type value: '{query}'\n{e}"))?;
    let result = expression.search(value).map_err(|e| format!("Invalid jmespath query supplied for `--query`: {e}"))?;
    serde_json::to_value(&*result).map_err(|e| format!("Invalid jmespath query supplied for `--query`: {e}"))
}

/// Renders an az result in an output format (already validated against [`AZ_OUTPUTS`]).
pub fn az_render(value: &Value, output: &str) -> String {
    if value.is_null() && output != "json" && output != "jsonc" {
        return String::new();
    }
    match output {
        "yaml" | "yamlc" => yaml(value),
        "tsv" => tsv(value),
        "table" => table(value),
        "none" => String::new(),
        _ => format!("{}\n", json_indented(&sorted(value), 2)),
    }
}

fn tsv_cell(value: &Value) -> String {
    match value {
        Value::Array(items) => items.len().to_string(),
        Value::Object(_) => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        Value::Number(n) => n.to_string(),
    }
}

/// knack's `_TsvOutput`: one row per list item; an object's values in key order; a top-level boolean in lowercase.
fn tsv(value: &Value) -> String {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut out = String::new();
    for row in rows {
        match row {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push_str(&keys.iter().map(|k| tsv_cell(&map[*k])).collect::<Vec<_>>().join("\t"));
            }
            Value::Array(items) => out.push_str(&items.iter().map(tsv_cell).collect::<Vec<_>>().join("\t")),
            Value::Bool(b) => out.push_str(&b.to_string()),
            other => out.push_str(&tsv_cell(other)),
        }
        out.push('\n');
    }
    out
}

/// knack's `_TableOutput` without a table transformer: scalar fields (not id/type/etag), capitalised headers.
fn table(value: &Value) -> String {
    let rows: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut headers: Vec<String> = Vec::new();
    let mut cells: Vec<Vec<(String, String)>> = Vec::new();
    for row in rows {
        let mut line = Vec::new();
        match row {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                for key in keys {
                    let cell = &map[key];
                    if ["id", "type", "etag"].contains(&key.as_str())
                        || cell.is_null()
                        || cell.is_object()
                        || cell.is_array()
                    {
                        continue;
                    }
                    let mut header = key.clone();
                    if let Some(first) = header.get(..1) {
                        header = format!("{}{}", first.to_uppercase(), &header[1..]);
                    }
                    line.push((header, tsv_cell(cell)));
                }
            }
            other => line.push(("Result".to_owned(), tsv_cell(other))),
        }
        for (header, _) in &line {
            if !headers.contains(header) {
                headers.push(header.clone());
            }
        }
        cells.push(line);
    }
    if headers.is_empty() {
        return String::new();
    }
    let widths: Vec<usize> = headers
        .iter()
        .map(|h| {
            cells
                .iter()
                .flat_map(|l| l.iter().filter(|(k, _)| k == h).map(|(_, v)| v.len()))
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |values: Vec<String>| -> String {
        values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_owned()
            + "\n"
    };
    out.push_str(&line(headers.clone()));
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for row in cells {
        out.push_str(&line(
            headers
                .iter()
                .map(|h| row.iter().find(|(k, _)| k == h).map(|(_, v)| v.clone()).unwrap_or_default())
                .collect(),
        ));
    }
    out
}

/// kubectl's JSONPath templates, the subset runbooks use: text with `{.field.sub[0].x}`,
/// `{.items[*].metadata.name}` and `{range .items[*]}...{end}`. Missing fields print nothing.
pub fn jsonpath(template: &str, value: &Value) -> Result<String, String> {
    let template = template.trim_matches('\'');
    let mut out = String::new();
    render(template, value, &mut out)?;
    Ok(out)
}

fn render(template: &str, value: &Value, out: &mut String) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&unescape(&rest[..open]));
        let close = rest[open..].find('}').ok_or_else(|| format!("unclosed action in template {template:?}"))? + open;
        let action = rest[open + 1..close].trim();
        rest = &rest[close + 1..];
        if let Some(path) = action.strip_prefix("range ") {
            let end = rest.find("{end}").ok_or_else(|| "error parsing jsonpath: range without {end}".to_owned())?;
            let body = &rest[..end];
            rest = &rest[end + "{end}".len()..];
            for item in select(value, path.trim())? {
                render(body, &item, out)?;
            }
        } else if action == "end" {
            return Err("error parsing jsonpath: not in range, nothing to end".to_owned());
        } else if let Some(literal) = action.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
            out.push_str(&unescape(literal));
        } else {
            let items = select(value, action)?;
            let texts: Vec<String> = items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            out.push_str(&texts.join(" "));
        }
    }
    out.push_str(&unescape(rest));
    Ok(())
}

fn unescape(text: &str) -> String {
    text.replace("\\n", "\n").replace("\\t", "\t")
}

fn select(value: &Value, path: &str) -> Result<Vec<Value>, String> {
    let path = path.strip_prefix('$').unwrap_or(path);
    let mut current = vec![value.clone()];
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let key = &after[..end];
            rest = &after[end..];
            if key.is_empty() {
                continue;
            }
            current = current.iter().filter_map(|v| v.get(key).cloned()).collect();
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or_else(|| format!("error parsing jsonpath {path:?}: unterminated array"))?;
            let index = &after[..end];
            rest = &after[end + 1..];
            current = match index {
                "*" => current.iter().flat_map(|v| v.as_array().cloned().unwrap_or_default()).collect(),
                filter if filter.starts_with("?(") && filter.ends_with(')') => {
                    let test = &filter[2..filter.len() - 1];
                    let (field, wanted, equal) = match test.split_once("!=") {
                        Some((f, v)) => (f, v, false),
                        None => match test.split_once("==") {
                            Some((f, v)) => (f, v, true),
                            None => {
                                return Err(format!("error parsing jsonpath {path:?}: unsupported filter {test:?}"));
                            }
                        },
                    };
                    let field = field.trim().strip_prefix('@').unwrap_or(field.trim());
                    let wanted = wanted.trim().trim_matches(|c| c == '"' || c == '\'');
                    current
                        .iter()
                        .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                        .filter(|item| {
                            let found = select(item, field).ok().and_then(|f| f.into_iter().next());
                            let text = match found {
                                Some(Value::String(s)) => s,
                                Some(other) => other.to_string(),
                                None => String::new(),
                            };
                            (text == wanted) == equal
                        })
                        .collect()
                }
                n => {
                    let n: i64 =
                        n.parse().map_err(|_| format!("error parsing jsonpath {path:?}: unsupported index {n:?}"))?;
                    current
                        .iter()
                        .filter_map(|v| {
                            let items = v.as_array()?;
                            let at = if n < 0 { items.len() as i64 + n } else { n };
                            items.get(usize::try_from(at).ok()?).cloned()
                        })
                        .collect()
                }
            };
        } else {
            return Err(format!("error parsing jsonpath {path:?}: unexpected {rest:?}"));
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn az_json_sorts_keys_with_two_spaces() {
        assert_eq!(
            az_render(&json!({"b": 1, "a": {"d": 2, "c": 3}}), "json"),
            "{\n  \"a\": {\n    \"c\": 3,\n    \"d\": 2\n  },\n  \"b\": 1\n}\n"
        );
    }

    #[test]
    fn az_tsv_is_knacks() {
        assert_eq!(az_render(&json!("MC_rg"), "tsv"), "MC_rg\n");
        assert_eq!(az_render(&json!([{"b": true, "a": "x", "l": [1, 2]}]), "tsv"), "x\tTrue\t2\n");
        assert_eq!(az_render(&json!(false), "tsv"), "false\n");
        assert_eq!(az_render(&Value::Null, "tsv"), "");
    }

    #[test]
    fn az_query_uses_jmespath() {
        let value = json!([{"ipAddress": "1.2.3.4", "name": "a"}, {"ipAddress": "5.6.7.8", "name": "b"}]);
        assert_eq!(az_query(&value, "[?ipAddress=='5.6.7.8'] | [0].name"), Ok(json!("b")));
        assert!(az_query(&value, "[?").is_err());
    }

    #[test]
    fn kubectl_jsonpath_subset() {
        let svc =
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}, "items": [{"n": "a"}, {"n": "b"}]});
        assert_eq!(jsonpath("{.status.loadBalancer.ingress[0].ip}", &svc), Ok("1.2.3.4".to_owned()));
        assert_eq!(jsonpath("{.items[*].n}", &svc), Ok("a b".to_owned()));
        assert_eq!(jsonpath("{range .items[*]}{.n}{\"\\n\"}{end}", &svc), Ok("a\nb\n".to_owned()));
        assert_eq!(jsonpath("{.status.missing}", &svc), Ok(String::new()));
        let node = json!({"status": {"addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "10.0.0.4"}]}});
        assert_eq!(
            jsonpath(r#"{.status.addresses[?(@.type=="InternalIP")].address}"#, &node),
            Ok("10.0.0.4".to_owned())
        );
        assert_eq!(jsonpath("{.status.addresses[?(@.type!='InternalIP')].address}", &node), Ok("n".to_owned()));
        assert_eq!(jsonpath("{.status.loadBalancer.ingress}", &svc), Ok("[{\"ip\":\"1.2.3.4\"}]".to_owned()));
    }
}
