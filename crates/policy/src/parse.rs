//! Parsing and validating a policy document's TOML into a [`PolicyDocument`], every error
//! with its line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use x0t_types::{DeviceClass, PqProfile, Tag};

use crate::PolicyError;
use crate::flow::{Endpoint, Protocol};

use crate::document::*;

impl PolicyDocument {
    /// Parses and validates a TOML policy document. Errors carry the line and column.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(PolicyError::TooLarge {
                size: text.len(),
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        let lines = LineIndex::new(text);
        let raw: RawDocument = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |span| lines.position(span.start));
            PolicyError::Invalid {
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        Validator { lines }.document(raw)
    }
}

/// Where each line of a document starts: positions cost a binary search, not a scan from the
/// top (which made a 1,000-rule document take 100 ms to validate).
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts[line - 1];
        let column = self
            .text
            .get(start..offset.min(self.text.len()))
            .map_or(1, |prefix| prefix.chars().count() + 1);
        (line, column)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    version: Spanned<i64>,
    #[serde(default)]
    profiles: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    segments: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    groups: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    pq: BTreeMap<String, Spanned<String>>,
    #[serde(default, rename = "rule")]
    rules: Vec<Spanned<RawRule>>,
    #[serde(default, rename = "test")]
    tests: Vec<Spanned<RawTest>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    name: Option<Spanned<String>>,
    action: Spanned<String>,
    src: Spanned<toml::Value>,
    dst: Spanned<toml::Value>,
    #[serde(default)]
    ports: Option<Spanned<toml::Value>>,
    #[serde(default)]
    #[allow(dead_code)] // documentation for humans; accepted and kept in the source text
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    #[serde(default)]
    name: Option<Spanned<String>>,
    src: Spanned<String>,
    dst: Spanned<String>,
    #[serde(default)]
    port: Option<Spanned<i64>>,
    #[serde(default)]
    proto: Option<Spanned<String>>,
    expect: Spanned<String>,
    #[serde(default)]
    rule: Option<Spanned<String>>,
}

struct Validator<'a> {
    lines: LineIndex<'a>,
}

impl Validator<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        self.lines.position(offset)
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> PolicyError {
        let (line, column) = self.position(span.start);
        PolicyError::Invalid {
            line,
            column,
            message: message.into(),
        }
    }

    fn line(&self, span: &Range<usize>) -> usize {
        self.position(span.start).0
    }

    fn document(&self, raw: RawDocument) -> Result<PolicyDocument, PolicyError> {
        if *raw.version.get_ref() != POLICY_VERSION {
            return Err(self.error(
                raw.version.span(),
                format!(
                    "policy version {} is not supported; this release reads version {POLICY_VERSION}",
                    raw.version.get_ref()
                ),
            ));
        }

        let mut profiles = Vec::new();
        if let Some(names) = &raw.profiles {
            for name in names.get_ref() {
                let profile = BuiltinProfile::ALL
                    .into_iter()
                    .find(|p| p.name() == name)
                    .ok_or_else(|| {
                        self.error(
                            names.span(),
                            format!(
                                "unknown profile {name:?}; built-in profiles: robot-to-server, deny-east-west"
                            ),
                        )
                    })?;
                if !profiles.contains(&profile) {
                    profiles.push(profile);
                }
            }
        }

        let segments =
            match (
                &raw.segments,
                profiles.contains(&BuiltinProfile::DenyEastWest),
            ) {
                (Some(list), false) => {
                    return Err(self.error(
                        list.span(),
                        "`segments` only applies with profiles = [\"deny-east-west\"]",
                    ));
                }
                (Some(list), true) => {
                    let mut tags = BTreeSet::new();
                    for name in list.get_ref() {
                        tags.insert(Tag::new(name.as_str()).map_err(|e| {
                            self.error(list.span(), format!("segment {name:?}: {e}"))
                        })?);
                    }
                    if tags.is_empty() {
                        return Err(self.error(
                            list.span(),
                            "`segments` is empty; leave it out to make every tag a segment",
                        ));
                    }
                    Some(Segments::Only(tags))
                }
                (None, true) => Some(Segments::EveryTag),
                (None, false) => None,
            };

        if raw.groups.len() > MAX_GROUPS {
            return Err(PolicyError::Invalid {
                line: 1,
                column: 1,
                message: format!("{} groups; at most {MAX_GROUPS}", raw.groups.len()),
            });
        }
        let mut groups = BTreeMap::new();
        for (name, members) in &raw.groups {
            check_name("group", name).map_err(|m| self.error(members.span(), m))?;
            let selectors =
                self.selector_list(members.span(), members.get_ref().iter().map(String::as_str))?;
            if let Some(nested) = selectors.iter().find(|s| matches!(s, Selector::Group(_))) {
                return Err(self.error(
                    members.span(),
                    format!("group {name:?} contains {nested}; groups cannot contain groups"),
                ));
            }
            groups.insert(name.clone(), selectors);
        }

        let mut pq = BTreeMap::new();
        for (class, profile) in &raw.pq {
            let class: DeviceClass = class
                .parse()
                .map_err(|e| self.error(profile.span(), format!("[pq] key: {e}")))?;
            let value =
                parse_pq_profile(profile.get_ref()).map_err(|m| self.error(profile.span(), m))?;
            pq.insert(class, value);
        }

        let mut rules = Vec::new();
        let mut names = BTreeSet::new();
        for (n, raw_rule) in raw.rules.iter().enumerate() {
            let rule = self.rule(n, raw_rule, &groups)?;
            if !names.insert(rule.name.clone()) {
                return Err(self.error(
                    raw_rule.span(),
                    format!(
                        "two rules are named {:?}; rule names must be unique",
                        rule.name
                    ),
                ));
            }
            rules.push(rule);
        }
        for profile in &profiles {
            rules.extend(profile.rules());
        }
        if rules.len() > MAX_RULES {
            return Err(PolicyError::Invalid {
                line: 1,
                column: 1,
                message: format!("{} rules; at most {MAX_RULES}", rules.len()),
            });
        }

        if raw.tests.len() > MAX_TESTS {
            return Err(PolicyError::Invalid {
                line: 1,
                column: 1,
                message: format!("{} tests; at most {MAX_TESTS}", raw.tests.len()),
            });
        }
        let mut tests = Vec::new();
        for (n, raw_test) in raw.tests.iter().enumerate() {
            tests.push(self.test(n, raw_test, &names)?);
        }

        Ok(PolicyDocument {
            groups,
            profiles,
            segments,
            pq,
            rules,
            tests,
        })
    }

    /// A rule's or test's name as given, or `<kind> #N` (1-based).
    fn name(
        &self,
        kind: &str,
        given: Option<&Spanned<String>>,
        n: usize,
    ) -> Result<String, PolicyError> {
        match given {
            Some(name) => {
                check_name(kind, name.get_ref()).map_err(|m| self.error(name.span(), m))?;
                Ok(name.get_ref().clone())
            }
            None => Ok(format!("{kind} #{}", n + 1)),
        }
    }

    /// `allow` or `deny` (a rule's `action`, a test's `expect`).
    fn action(&self, field: &str, value: &Spanned<String>) -> Result<Action, PolicyError> {
        match value.get_ref().as_str() {
            "allow" => Ok(Action::Allow),
            "deny" => Ok(Action::Deny),
            other => Err(self.error(
                value.span(),
                format!("{field} {other:?}; expected \"allow\" or \"deny\""),
            )),
        }
    }

    fn selector_list<'s>(
        &self,
        span: Range<usize>,
        items: impl Iterator<Item = &'s str>,
    ) -> Result<Vec<Selector>, PolicyError> {
        let mut selectors = Vec::new();
        for item in items {
            if selectors.len() == MAX_SELECTORS {
                return Err(self.error(span, format!("more than {MAX_SELECTORS} selectors")));
            }
            let selector = item
                .parse::<Selector>()
                .map_err(|m| self.error(span.clone(), m))?;
            if !selectors.contains(&selector) {
                selectors.push(selector);
            }
        }
        if selectors.is_empty() {
            return Err(self.error(
                span,
                "an empty selector list matches nothing; use \"*\" for every node",
            ));
        }
        Ok(selectors)
    }

    /// A string or an array of strings.
    fn strings<'v>(
        &self,
        value: &'v Spanned<toml::Value>,
        field: &str,
    ) -> Result<Vec<&'v str>, PolicyError> {
        match value.get_ref() {
            toml::Value::String(s) => Ok(vec![s.as_str()]),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str().ok_or_else(|| {
                        self.error(value.span(), format!("`{field}` entries must be strings"))
                    })
                })
                .collect(),
            _ => Err(self.error(
                value.span(),
                format!("`{field}` must be a string or an array of strings"),
            )),
        }
    }

    fn rule(
        &self,
        n: usize,
        raw: &Spanned<RawRule>,
        groups: &BTreeMap<String, Vec<Selector>>,
    ) -> Result<Rule, PolicyError> {
        let line = self.line(&raw.span());
        let rule = raw.get_ref();
        let name = self.name("rule", rule.name.as_ref(), n)?;
        let action = self.action("action", &rule.action)?;
        let side =
            |value: &Spanned<toml::Value>, field: &str| -> Result<Vec<Selector>, PolicyError> {
                let selectors =
                    self.selector_list(value.span(), self.strings(value, field)?.into_iter())?;
                for selector in &selectors {
                    if let Selector::Group(group) = selector
                        && !groups.contains_key(group)
                    {
                        return Err(self.error(
                            value.span(),
                            format!("unknown group {group:?}; define it under [groups]"),
                        ));
                    }
                }
                Ok(selectors)
            };
        let src = side(&rule.src, "src")?;
        let dst = side(&rule.dst, "dst")?;
        let mut ports = Vec::new();
        if let Some(value) = &rule.ports {
            let items = self.strings(value, "ports")?;
            if items.len() > MAX_PORT_RANGES {
                return Err(self.error(
                    value.span(),
                    format!("more than {MAX_PORT_RANGES} port ranges"),
                ));
            }
            if items.is_empty() {
                return Err(self.error(
                    value.span(),
                    "`ports` is empty; leave it out for every port",
                ));
            }
            for item in items {
                ports.push(
                    item.parse::<PortRange>()
                        .map_err(|m| self.error(value.span(), m))?,
                );
            }
        }
        Ok(Rule {
            name,
            action,
            src,
            dst,
            ports,
            origin: RuleOrigin::Document { line },
        })
    }

    fn test(
        &self,
        n: usize,
        raw: &Spanned<RawTest>,
        rule_names: &BTreeSet<String>,
    ) -> Result<PolicyTest, PolicyError> {
        let line = self.line(&raw.span());
        let test = raw.get_ref();
        let name = self.name("test", test.name.as_ref(), n)?;
        let endpoint = |value: &Spanned<String>| {
            value
                .get_ref()
                .parse::<Endpoint>()
                .map_err(|m| self.error(value.span(), m))
        };
        let protocol = match &test.proto {
            Some(proto) => proto
                .get_ref()
                .parse::<Protocol>()
                .map_err(|m| self.error(proto.span(), m))?,
            None => Protocol::Tcp,
        };
        let port = match (&test.port, protocol) {
            (None, Protocol::Icmp) => 0,
            (None, _) => return Err(self.error(raw.span(), "a tcp or udp test needs a `port`")),
            (Some(port), _) => u16::try_from(*port.get_ref())
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| self.error(port.span(), "port must be 1-65535"))?,
        };
        let expect = self.action("expect", &test.expect)?;
        let rule = match &test.rule {
            Some(rule) => {
                let known = rule_names.contains(rule.get_ref())
                    || BuiltinProfile::ALL
                        .iter()
                        .any(|p| p.name() == rule.get_ref())
                    || rule.get_ref() == crate::DEFAULT_DENY;
                if !known {
                    return Err(self.error(
                        rule.span(),
                        format!(
                            "test names rule {:?}, which the document does not have",
                            rule.get_ref()
                        ),
                    ));
                }
                Some(rule.get_ref().clone())
            }
            None => None,
        };
        Ok(PolicyTest {
            name,
            line,
            src: endpoint(&test.src)?,
            dst: endpoint(&test.dst)?,
            protocol,
            port,
            expect,
            rule,
        })
    }
}

/// Accepts a profile name (`standard`, `constrained`) or its algorithms
/// (`ml-kem-768+ml-dsa-65`, `ml-kem-512+ml-dsa-44`).
fn parse_pq_profile(text: &str) -> Result<PqProfile, String> {
    match text {
        "ml-kem-768+ml-dsa-65" => Ok(PqProfile::Standard),
        "ml-kem-512+ml-dsa-44" => Ok(PqProfile::Constrained),
        other => other.parse::<PqProfile>().map_err(|_| {
            format!(
                "unknown PQ profile {other:?}; expected standard (ml-kem-768+ml-dsa-65) or constrained (ml-kem-512+ml-dsa-44)"
            )
        }),
    }
}
