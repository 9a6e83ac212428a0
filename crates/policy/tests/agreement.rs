//! The compiled engine agrees with the reference evaluator: 10,000 random policies, 16 random
//! flows each (160,000 decisions), on every verdict detail (action, deciding rule, segment).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use x0t_policy::{
    Action, Endpoint, Flow, Policy, PolicyDocument, PortRange, Protocol, ProtocolSet, Rule,
    RuleOrigin, Segments, Selector, reference,
};
use x0t_types::{DeviceClass, NodeId, Tag};

const TAGS: [&str; 5] = ["a", "b", "c", "d", "e"];

fn tag(i: usize) -> Tag {
    Tag::new(TAGS[i]).expect("valid tag")
}

fn node(i: u8) -> NodeId {
    NodeId::from_bytes([i; 32])
}

fn class() -> impl Strategy<Value = DeviceClass> {
    prop::sample::select(DeviceClass::ALL.to_vec())
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop::sample::select(Protocol::ALL.to_vec())
}

/// A selector other than a group.
fn plain_selector() -> impl Strategy<Value = Selector> {
    prop_oneof![
        1 => Just(Selector::Any),
        5 => (0..TAGS.len()).prop_map(|i| Selector::Tag(tag(i))),
        2 => class().prop_map(Selector::Class),
        1 => (0u8..3).prop_map(|i| Selector::Node(node(i))),
    ]
}

fn selector(groups: usize) -> BoxedStrategy<Selector> {
    if groups == 0 {
        plain_selector().boxed()
    } else {
        prop_oneof![
            6 => plain_selector(),
            1 => (0..groups).prop_map(|g| Selector::Group(format!("g{g}"))),
        ]
        .boxed()
    }
}

fn port_range() -> impl Strategy<Value = PortRange> {
    (
        prop::sample::select(vec![
            ProtocolSet::ALL,
            ProtocolSet::TCP_UDP,
            ProtocolSet::only(Protocol::Tcp),
            ProtocolSet::only(Protocol::Udp),
            ProtocolSet::only(Protocol::Icmp),
        ]),
        1u16..12,
        0u16..6,
    )
        .prop_map(|(protocols, first, len)| PortRange {
            protocols,
            first,
            last: first + len,
        })
}

fn rule(
    groups: usize,
) -> impl Strategy<Value = (Action, Vec<Selector>, Vec<Selector>, Vec<PortRange>)> {
    (
        prop::bool::weighted(0.3),
        prop::collection::vec(selector(groups), 1..4),
        prop::collection::vec(selector(groups), 1..4),
        prop::collection::vec(port_range(), 0..3),
    )
        .prop_map(|(deny, src, dst, ports)| {
            let action = if deny { Action::Deny } else { Action::Allow };
            (action, src, dst, ports)
        })
}

fn segments() -> impl Strategy<Value = Option<Segments>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Segments::EveryTag)),
        1 => prop::collection::btree_set(0..TAGS.len(), 1..3)
            .prop_map(|s| Some(Segments::Only(s.into_iter().map(tag).collect()))),
    ]
}

fn document() -> impl Strategy<Value = PolicyDocument> {
    (0usize..3)
        .prop_flat_map(|groups| {
            (
                prop::collection::vec(prop::collection::vec(plain_selector(), 1..4), groups),
                prop::collection::vec(rule(groups), 0..16),
                segments(),
            )
        })
        .prop_map(|(groups, rules, segments)| PolicyDocument {
            groups: groups
                .into_iter()
                .enumerate()
                .map(|(i, members)| (format!("g{i}"), members))
                .collect::<BTreeMap<_, _>>(),
            profiles: Vec::new(),
            segments,
            pq: BTreeMap::new(),
            rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, (action, src, dst, ports))| Rule {
                    name: format!("r{i}"),
                    action,
                    src,
                    dst,
                    ports,
                    origin: RuleOrigin::Document { line: i + 1 },
                })
                .collect(),
            tests: Vec::new(),
        })
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (
        prop::option::weighted(0.5, 0u8..4),
        prop::option::weighted(0.8, class()),
        prop::collection::btree_set(0..TAGS.len(), 0..4),
    )
        .prop_map(|(n, class, tags)| Endpoint {
            node: n.map(node),
            class,
            tags: tags.into_iter().map(tag).collect::<BTreeSet<_>>(),
        })
}

fn flow() -> impl Strategy<Value = Flow> {
    (endpoint(), endpoint(), protocol(), 1u16..20).prop_map(|(src, dst, protocol, port)| Flow {
        src,
        dst,
        protocol,
        port,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn compiled_engine_agrees_with_reference(
        document in document(),
        flows in prop::collection::vec(flow(), 16),
    ) {
        let policy = Policy::compile(document.clone());
        for flow in &flows {
            let expected = reference::decide(&document, flow);
            prop_assert_eq!(policy.decide(flow), expected.clone(), "flow {:?}", flow);
            // The explanation names the same decision.
            let explained = policy.explain(flow, 1);
            prop_assert_eq!(explained.allowed, expected.allowed());
        }
    }
}

/// A hand-built case of every verdict kind, so the generator above is known to reach them.
#[test]
fn generator_reaches_every_verdict_kind() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut kinds = BTreeSet::new();
    for _ in 0..2_000 {
        let document = document().new_tree(&mut runner).expect("tree").current();
        let flow = flow().new_tree(&mut runner).expect("tree").current();
        kinds.insert(match reference::decide(&document, &flow) {
            x0t_policy::Verdict::Allowed { .. } => "allowed",
            x0t_policy::Verdict::Denied { .. } => "denied",
            x0t_policy::Verdict::EastWest { .. } => "east-west",
            x0t_policy::Verdict::NoRuleMatched => "default",
        });
    }
    assert_eq!(kinds.len(), 4, "reached only {kinds:?}");
}
