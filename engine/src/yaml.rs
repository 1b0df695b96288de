//! A YAML document as a tree of nodes that remember where they were written.
//!
//! Workflows are read into this tree first and validated by hand, so that
//! validation can report every problem with its line and column instead of
//! stopping at the first one as a serde derive would.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

use crate::diag::Position;

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub position: Position,
}

/// The kinds of YAML value a workflow may contain.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    /// Keys in document order, each with its own position.
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub position: Position,
}

impl Value {
    /// A word for the kind of value, for messages ("a string", "a list").
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::String(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The value as plain JSON, dropping positions.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => serde_json::Value::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => {
                serde_json::Value::Object(entries.iter().map(|(k, v)| (k.name.clone(), v.to_json())).collect())
            }
        }
    }

    /// Scalars as text the way a user would write them (`80`, `true`, `x`); None for lists and maps.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Null => Some(String::new()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::String(s) => Some(s.clone()),
            Value::Seq(_) | Value::Map(_) => None,
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: Position,
    pub message: String,
}

/// Parses one YAML document into a [`Node`] tree.
pub fn parse(source: &str) -> Result<Node, SyntaxError> {
    // YAML 1.2 booleans only: `no`, `on` and `y` stay text (an input named `n`, `default: no`).
    let options = serde_saphyr::options! { strict_booleans: true };
    match serde_saphyr::from_str_with_options::<Spanned<Value>>(source, options) {
        Ok(spanned) => Ok(Node { position: position_of(&spanned.referenced), value: spanned.value }),
        Err(error) => {
            let position = error.location().map_or(Position::new(1, 1), |l| position_of(&l));
            let message = error.without_snippet().to_string();
            Err(SyntaxError { position, message: clean_message(&message) })
        }
    }
}

fn position_of(location: &serde_saphyr::Location) -> Position {
    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    Position::new(clamp(location.line()), clamp(location.column()))
}

/// serde-saphyr appends " at line L column C" to its messages; the diagnostic
/// prints the position itself, so the suffix would only repeat it.
fn clean_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    let trimmed = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    let trimmed = trimmed.strip_prefix("error: ").unwrap_or(trimmed);
    // Advice meant for programs using the parser, not for people writing workflows.
    if let Some(key) = trimmed.strip_prefix("duplicate mapping key: ") {
        let key = key.split(',').next().unwrap_or(key).trim();
        return format!("duplicate key `{key}`: each key appears once in a mapping");
    }
    if trimmed.starts_with("multiple YAML documents") {
        return "a workflow file holds one YAML document; remove the `---` separator and what follows, or split the file".to_owned();
    }
    let trimmed = match trimmed.strip_prefix("line ") {
        // "line 4 column 10: message"
        Some(rest) => rest.split_once(": ").map_or(trimmed, |(_, m)| m),
        None => trimmed,
    };
    format!("invalid YAML: {trimmed}")
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }
    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Value, E> {
        i64::try_from(u).map(Value::Int).map_err(|_| E::custom(format!("integer {u} is too large")))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(Node { position: position_of(&item.referenced), value: item.value });
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<KeyText>>()? {
            let value = map.next_value::<Spanned<Value>>()?;
            entries.push((
                Key { name: key.value.0, position: position_of(&key.referenced) },
                Node { position: position_of(&value.referenced), value: value.value },
            ));
        }
        Ok(Value::Map(entries))
    }
}

/// A mapping key: YAML allows any scalar as a key; workflows use text, so
/// `80:` and `true:` are read as the text they were written as.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<KeyText, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(KeyText(s)),
            Value::Int(i) => Ok(KeyText(i.to_string())),
            Value::Bool(b) => Ok(KeyText(b.to_string())),
            Value::Float(f) => Ok(KeyText(f.to_string())),
            Value::Null => Ok(KeyText(String::new())),
            Value::Seq(_) | Value::Map(_) => Err(serde::de::Error::custom("a mapping key must be a scalar")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_those_of_the_source() {
        let node = parse("name: x\nsteps:\n  - id: a\n    run: echo\n").expect("valid yaml");
        let Value::Map(entries) = &node.value else { panic!("not a map") };
        assert_eq!(entries[1].0.name, "steps");
        assert_eq!(entries[1].0.position, Position::new(2, 1));
        let Value::Seq(steps) = &entries[1].1.value else { panic!("not a seq") };
        let Value::Map(step) = &steps[0].value else { panic!("not a map") };
        assert_eq!(step[1].0.position, Position::new(4, 5));
        assert_eq!(step[1].1.position, Position::new(4, 10));
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let error = parse("steps: [a, b\nname: x\n").expect_err("invalid yaml");
        assert!(error.position.line >= 1, "{error:?}");
        assert!(error.message.starts_with("invalid YAML"), "{error:?}");
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let error = parse("name: a\nname: b\n").expect_err("duplicate key");
        assert_eq!(error.position.line, 2, "{error:?}");
    }
}
