//! The reference evaluator: the policy's semantics written as plainly as possible, one rule
//! after another, groups looked up as they are met, no index and no cache. The
//! compiled [`crate::Policy`] must agree with it on every flow (property-tested) and is
//! benchmarked against it.

use x0t_types::Tag;

use crate::{Action, Endpoint, Flow, PolicyDocument, Rule, Selector, Verdict};

/// Decides `flow` under `document` by scanning every rule.
pub fn decide(document: &PolicyDocument, flow: &Flow) -> Verdict {
    let matches = |rule: &Rule| {
        side_matches(document, &rule.src, &flow.src)
            && side_matches(document, &rule.dst, &flow.dst)
            && (rule.ports.is_empty()
                || rule
                    .ports
                    .iter()
                    .any(|p| p.matches(flow.protocol, flow.port)))
    };
    // Deny beats allow: the first matching deny decides, wherever it is.
    for (index, rule) in document.rules.iter().enumerate() {
        if rule.action == Action::Deny && matches(rule) {
            return Verdict::Denied { rule: index };
        }
    }
    let allows: Vec<usize> = document
        .rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| rule.action == Action::Allow && matches(rule))
        .map(|(index, _)| index)
        .collect();
    let Some(&first) = allows.first() else {
        return Verdict::NoRuleMatched;
    };
    if let Some(segments) = &document.segments {
        let shared: Vec<&Tag> = flow
            .src
            .tags
            .intersection(&flow.dst.tags)
            .filter(|tag| segments.contains(tag))
            .collect();
        if let Some(segment) = shared.first() {
            let names_on_both_sides = |rule: &Rule, tag: &Tag| {
                let named = |side: &[Selector]| side.contains(&Selector::Tag(tag.clone()));
                named(&rule.src) && named(&rule.dst)
            };
            return allows
                .iter()
                .find(|&&index| {
                    shared
                        .iter()
                        .any(|tag| names_on_both_sides(&document.rules[index], tag))
                })
                .map_or_else(
                    || Verdict::EastWest {
                        segment: (*segment).clone(),
                    },
                    |&rule| Verdict::Allowed { rule },
                );
        }
    }
    Verdict::Allowed { rule: first }
}

fn side_matches(document: &PolicyDocument, selectors: &[Selector], endpoint: &Endpoint) -> bool {
    selectors
        .iter()
        .any(|selector| selector_matches(document, selector, endpoint))
}

/// Whether one selector names `endpoint` (groups expanded).
pub fn selector_matches(
    document: &PolicyDocument,
    selector: &Selector,
    endpoint: &Endpoint,
) -> bool {
    match selector {
        Selector::Any => true,
        Selector::Tag(tag) => endpoint.tags.contains(tag),
        Selector::Class(class) => endpoint.class == Some(*class),
        Selector::Node(node) => endpoint.node == Some(*node),
        Selector::Group(group) => document.groups.get(group).is_some_and(|members| {
            members
                .iter()
                .any(|member| selector_matches(document, member, endpoint))
        }),
    }
}
