//! A small typed model of the Alloy configuration syntax, and its printer.
//!
//! Alloy's syntax is not YAML, so the config is built as blocks and attributes
//! and printed here; references to other components are typed (`Ref`), never
//! pasted strings.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Value>),
    /// An object literal `{ key = value, ... }`, keys kept in the given order.
    Object(Vec<(String, Value)>),
    /// A reference to another component's export, e.g. `loki.write.cloud.receiver`.
    Ref(Vec<String>),
    /// A standard-library call, e.g. `sys.env("NODE_NAME")`.
    Call(String, Vec<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Self {
        Value::Str(s.into())
    }
    pub fn reference(path: &str) -> Self {
        Value::Ref(path.split('.').map(str::to_string).collect())
    }
    pub fn env(var: &str) -> Self {
        Value::Call("sys.env".into(), vec![Value::str(var)])
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Block {
    /// Block name, e.g. `loki.write` or `endpoint`.
    pub name: String,
    pub label: Option<String>,
    pub attrs: Vec<(String, Value)>,
    pub blocks: Vec<Block>,
}

impl Block {
    pub fn new(name: &str, label: Option<&str>) -> Self {
        Block { name: name.into(), label: label.map(Into::into), ..Default::default() }
    }
    pub fn attr(mut self, key: &str, value: Value) -> Self {
        self.attrs.push((key.into(), value));
        self
    }
    pub fn block(mut self, b: Block) -> Self {
        self.blocks.push(b);
        self
    }
    /// The reference to one of this block's exports: `<name>.<label>.<export>`.
    pub fn export(&self, export: &str) -> Value {
        let mut path: Vec<String> = self.name.split('.').map(str::to_string).collect();
        path.extend(self.label.clone());
        path.push(export.into());
        Value::Ref(path)
    }
}

/// Print a whole config file.
pub fn print(blocks: &[Block]) -> String {
    let mut out = String::new();
    for (i, b) in blocks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        print_block(&mut out, b, 0);
    }
    out
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn print_block(out: &mut String, b: &Block, level: usize) {
    indent(out, level);
    out.push_str(&b.name);
    if let Some(label) = &b.label {
        out.push(' ');
        out.push_str(&quote(label));
    }
    if b.attrs.is_empty() && b.blocks.is_empty() {
        out.push_str(" {}\n");
        return;
    }
    out.push_str(" {\n");
    let width = b.attrs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &b.attrs {
        indent(out, level + 1);
        let _ = write!(out, "{k:width$} = ");
        print_value(out, v, level + 1);
        out.push('\n');
    }
    for (i, child) in b.blocks.iter().enumerate() {
        if i > 0 || !b.attrs.is_empty() {
            out.push('\n');
        }
        print_block(out, child, level + 1);
    }
    indent(out, level);
    out.push_str("}\n");
}

fn print_value(out: &mut String, v: &Value, level: usize) {
    match v {
        Value::Str(s) => out.push_str(&quote(s)),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        Value::List(items) => print_separated(out, "[", items, "]", level),
        Value::Object(fields) => {
            if fields.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{\n");
            for (k, v) in fields {
                indent(out, level + 1);
                let _ = write!(out, "{} = ", quote(k));
                print_value(out, v, level + 1);
                out.push_str(",\n");
            }
            indent(out, level);
            out.push('}');
        }
        Value::Ref(path) => out.push_str(&path.join(".")),
        Value::Call(f, args) => {
            out.push_str(f);
            print_separated(out, "(", args, ")", level);
        }
    }
}

/// `open a, b, c close` on one line: list items and call arguments.
fn print_separated(out: &mut String, open: &str, items: &[Value], close: &str, level: usize) {
    out.push_str(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        print_value(out, item, level);
    }
    out.push_str(close);
}

/// An Alloy string literal (Go-style escapes).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_blocks_attributes_and_references() {
        let write = Block::new("loki.write", Some("cloud"))
            .block(Block::new("endpoint", None).attr("url", Value::str("http://a/b")));
        let src = Block::new("loki.source.file", Some("pods"))
            .attr("targets", Value::List(vec![Value::Object(vec![("__path__".into(), Value::str("/var/log/*.log"))])]))
            .attr("forward_to", Value::List(vec![write.export("receiver")]));
        let text = print(&[src, write]);
        assert_eq!(
            text,
            "loki.source.file \"pods\" {\n  targets    = [{\n    \"__path__\" = \"/var/log/*.log\",\n  }]\n  forward_to = [loki.write.cloud.receiver]\n}\n\nloki.write \"cloud\" {\n  endpoint {\n    url = \"http://a/b\"\n  }\n}\n"
        );
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
