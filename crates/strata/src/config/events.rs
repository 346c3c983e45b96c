//! Event rules: what each event invalidates, as written ([`EventRule`]) and compiled
//! ([`Rules`]): templates parsed, namespaces and cascade targets checked, each event's
//! parameters resolved through its cascades, cycles refused with their path. How rules are
//! written is in the [`config`](crate::config) docs; why they work this way is in
//! docs/design.md ("Event rules"). Checking at load means emitting walks a finite, acyclic
//! graph and always ends.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::key::{escape_into, glob_escape_into};

/// What an event invalidates, as written under `[events."NAME"]`. Every template may use
/// `{param}` placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EventRule {
    /// The parameters the event takes; when given, every placeholder must be among them.
    #[serde(default)]
    pub params: Option<Vec<String>>,
    /// Namespaces where `keys`, `prefixes` and `patterns` apply; every namespace if empty.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Keys to drop.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Key prefixes to drop everything under.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Glob patterns (Redis `MATCH` syntax) to drop the matching keys of.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Tags to invalidate (in every namespace: tags are store-wide).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Events to emit next, with the same parameters.
    #[serde(default)]
    pub cascade: Vec<String>,
}

/// A string with `{param}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Param(String),
}

/// How a parameter's value is written into a template.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Escape {
    /// As one key part.
    Key,
    /// As one key part inside a glob pattern.
    Glob,
    /// As it is.
    Raw,
}

impl Template {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                            _ => {
                                return Err(
                                    "a placeholder is {name}, with letters, digits and '_' \
                                     ({{ and }} write braces)"
                                        .into(),
                                )
                            }
                        }
                    }
                    if name.is_empty() {
                        return Err("empty placeholder {}".into());
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Param(name));
                }
                '}' => return Err("unmatched '}' (write }} for a brace)".into()),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Self { pieces })
    }

    fn params(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Param(name) => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }

    /// The template with `params` substituted, or the name of the first missing parameter.
    pub(crate) fn render(
        &self,
        params: &BTreeMap<String, String>,
        escape: Escape,
    ) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Param(name) => {
                    let value = params.get(name).ok_or_else(|| name.clone())?;
                    match escape {
                        Escape::Raw => out.push_str(value),
                        Escape::Key => escape_into(value, &mut out),
                        Escape::Glob => {
                            let mut part = String::new();
                            escape_into(value, &mut part);
                            glob_escape_into(&part, &mut out);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One event's rule, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rule {
    /// Every parameter the event needs: declared, used, and its cascades'.
    pub(crate) params: BTreeSet<String>,
    /// The parameters declared, if any.
    declared: Option<Vec<String>>,
    /// Where keys, prefixes and patterns apply; empty for every namespace.
    pub(crate) namespaces: Vec<String>,
    pub(crate) keys: Vec<Template>,
    pub(crate) prefixes: Vec<Template>,
    pub(crate) patterns: Vec<Template>,
    pub(crate) tags: Vec<Template>,
    pub(crate) cascade: Vec<String>,
}

/// Every event's rule, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rules {
    pub(crate) events: BTreeMap<String, Rule>,
}

fn field(event: &str, name: &str) -> String {
    format!("events.{event:?}.{name}")
}

fn invalid(field: String, value: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        value: value.into(),
        reason: reason.into(),
    }
}

impl Rules {
    /// Compiles and checks `events` against the namespaces that exist.
    pub(crate) fn compile(
        events: &BTreeMap<String, EventRule>,
        namespaces: &BTreeSet<String>,
    ) -> Result<Self, ConfigError> {
        let mut rules = BTreeMap::new();
        for (name, raw) in events {
            if name.is_empty() {
                return Err(invalid("events".into(), "", "an event needs a name"));
            }
            let templates = |what: &str, list: &[String]| -> Result<Vec<Template>, ConfigError> {
                list.iter()
                    .map(|t| Template::parse(t).map_err(|r| invalid(field(name, what), t, r)))
                    .collect()
            };
            for ns in &raw.namespaces {
                if !namespaces.contains(ns) {
                    return Err(invalid(
                        field(name, "namespaces"),
                        ns,
                        "no such namespace (configure it under [namespaces])",
                    ));
                }
            }
            for target in &raw.cascade {
                if !events.contains_key(target) {
                    return Err(invalid(field(name, "cascade"), target, "no such event"));
                }
            }
            let rule = Rule {
                params: BTreeSet::new(),
                declared: raw.params.clone(),
                namespaces: raw.namespaces.clone(),
                keys: templates("keys", &raw.keys)?,
                prefixes: templates("prefixes", &raw.prefixes)?,
                patterns: templates("patterns", &raw.patterns)?,
                tags: templates("tags", &raw.tags)?,
                cascade: raw.cascade.clone(),
            };
            rules.insert(name.clone(), rule);
        }
        let mut rules = Rules { events: rules };
        let order = rules.check_cycles()?;
        rules.resolve_params(events, &order)?;
        Ok(rules)
    }

    /// Depth-first search over cascades; a back edge is a cycle, reported with its path.
    /// Returns the events in post-order: every event after all it cascades into.
    fn check_cycles(&self) -> Result<Vec<String>, ConfigError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut order = Vec::with_capacity(self.events.len());
        let mut marks: BTreeMap<&str, Mark> = self
            .events
            .keys()
            .map(|k| (k.as_str(), Mark::New))
            .collect();
        for start in self.events.keys() {
            if marks[start.as_str()] != Mark::New {
                continue;
            }
            // An explicit stack of (event, next cascade to look at), so depth costs no
            // native stack.
            let mut path: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
            marks.insert(start, Mark::OnPath);
            while let Some((event, next)) = path.last_mut() {
                let cascade = &self.events[*event].cascade;
                if *next == cascade.len() {
                    marks.insert(event, Mark::Done);
                    order.push(event.to_string());
                    path.pop();
                    continue;
                }
                let target = cascade[*next].as_str();
                *next += 1;
                match marks[target] {
                    Mark::Done => {}
                    Mark::New => {
                        marks.insert(target, Mark::OnPath);
                        path.push((target, 0));
                    }
                    Mark::OnPath => {
                        let from = path.iter().position(|(e, _)| *e == target).unwrap_or(0);
                        let mut cycle: Vec<&str> = path[from..].iter().map(|(e, _)| *e).collect();
                        cycle.push(target);
                        let origin = path.last().map_or(target, |(e, _)| *e);
                        return Err(invalid(
                            field(origin, "cascade"),
                            target,
                            format!("cascades form a cycle: {}", cycle.join(" -> ")),
                        ));
                    }
                }
            }
        }
        Ok(order)
    }

    /// Computes each event's parameters (declared, used by its templates, and its cascades')
    /// in `order` (cascade targets first, so no recursion), then checks them against what
    /// each event declares.
    fn resolve_params(
        &mut self,
        raw: &BTreeMap<String, EventRule>,
        order: &[String],
    ) -> Result<(), ConfigError> {
        for name in order {
            let rule = &self.events[name];
            let mut params: BTreeSet<String> =
                [&rule.keys, &rule.prefixes, &rule.patterns, &rule.tags]
                    .into_iter()
                    .flatten()
                    .flat_map(Template::params)
                    .map(str::to_owned)
                    .collect();
            // Declared parameters are the event's signature: required even if unused.
            params.extend(rule.declared.iter().flatten().cloned());
            for target in &rule.cascade {
                params.extend(self.events[target].params.iter().cloned());
            }
            if let Some(rule) = self.events.get_mut(name) {
                rule.params = params;
            }
        }
        for (name, rule) in &self.events {
            if let Some(declared) = &raw[name].params {
                if let Some(missing) = rule.params.iter().find(|p| !declared.contains(p)) {
                    return Err(invalid(
                        field(name, "params"),
                        declared.join(", "),
                        format!("does not declare {missing:?}, which the event's rules use"),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn templates_substitute_and_escape() {
        let t = Template::parse("user::{id}::*").unwrap();
        let p = params(&[("id", "4*2:")]);
        assert_eq!(t.render(&p, Escape::Key).unwrap(), "user::4*2%3A::*");
        assert_eq!(t.render(&p, Escape::Glob).unwrap(), "user::4\\*2%3A::*");
        assert_eq!(t.render(&p, Escape::Raw).unwrap(), "user::4*2:::*");
        assert_eq!(t.render(&params(&[]), Escape::Raw).unwrap_err(), "id");
        assert_eq!(
            Template::parse("{{x}}")
                .unwrap()
                .render(&p, Escape::Raw)
                .unwrap(),
            "{x}"
        );
        assert!(Template::parse("{").is_err());
        assert!(Template::parse("a}").is_err());
        assert!(Template::parse("{}").is_err());
        assert!(Template::parse("{a b}").is_err());
    }
}
