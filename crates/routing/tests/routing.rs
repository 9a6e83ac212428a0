//! The routing core without a network: scenarios from the issue (a diamond losing a relay, a
//! degraded path, forged and replayed states), the switch margin, and best paths against a
//! plain Floyd–Warshall model on random graphs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use proptest::prelude::*;
use x0t_routing::{
    Accepted, HOP_COST_MICROS, LinkMeasure, LinkState, LinkStateDb, MAX_LINKS, RoutingError,
    Switch, link_cost, link_views, path_cost, routes, stable_routes,
};
use x0t_types::NodeId;

fn node(i: u8) -> NodeId {
    NodeId::from_bytes([i; 32])
}

const A: u8 = 1;
const B: u8 = 2;
const C: u8 = 3;
const D: u8 = 4;

fn measure(to: u8, rtt_micros: u32, loss_permille: u16) -> LinkMeasure {
    LinkMeasure {
        neighbor: node(to),
        rtt_micros,
        loss_permille,
    }
}

fn state(origin: u8, sequence: u64, links: Vec<LinkMeasure>) -> LinkState {
    LinkState {
        origin: node(origin),
        sequence,
        links,
    }
}

/// A database where each listed link is reported by both ends with the same figures.
fn symmetric(links: &[(u8, u8, u32, u16)]) -> LinkStateDb {
    let mut by_origin: std::collections::BTreeMap<u8, Vec<LinkMeasure>> = Default::default();
    for &(a, b, rtt, loss) in links {
        by_origin.entry(a).or_default().push(measure(b, rtt, loss));
        by_origin.entry(b).or_default().push(measure(a, rtt, loss));
    }
    let mut db = LinkStateDb::new();
    for (origin, links) in by_origin {
        assert_eq!(db.accept(state(origin, 1, links), 0), Ok(Accepted::Newer));
    }
    db
}

fn everyone(_: &NodeId) -> bool {
    true
}

#[test]
fn the_diamond_goes_around_a_dead_relay() {
    // A–B–C and A–D–C, no A–C; B is the faster way.
    let mut db = symmetric(&[
        (A, B, 1_000, 0),
        (B, C, 1_000, 0),
        (A, D, 2_000, 0),
        (D, C, 2_000, 0),
    ]);
    let before = routes(node(A), &db, everyone);
    let to_c = before.get(&node(C)).unwrap();
    assert_eq!(to_c.next_hop, node(B));
    assert_eq!(to_c.path, vec![node(B), node(C)]);
    assert_eq!(to_c.relays(), 1);
    assert_eq!(to_c.cost, 2 * (1_000 + HOP_COST_MICROS));
    // B dies: its neighbours stop listing it (and its own state ages out).
    db.accept(state(A, 2, vec![measure(D, 2_000, 0)]), 10)
        .unwrap();
    db.accept(state(C, 2, vec![measure(D, 2_000, 0)]), 10)
        .unwrap();
    assert_eq!(
        path_cost(node(A), &to_c.path, &db, everyone),
        None,
        "the old path is broken"
    );
    let after = routes(node(A), &db, everyone);
    assert_eq!(after.get(&node(C)).unwrap().path, vec![node(D), node(C)]);
    assert!(Switch::default().should_switch(None, after.get(&node(C)).unwrap()));
    // B is no longer reachable at all (C still lists nothing to it, A neither).
    assert!(after.get(&node(B)).is_none());
}

#[test]
fn a_degraded_path_loses_to_a_clean_one_and_a_dead_link_is_unusable() {
    // Direct A–C over a bad link (100 ms, 5 % loss) against A–B–C on clean 1 ms links.
    let db = symmetric(&[(A, C, 100_000, 50), (A, B, 1_000, 0), (B, C, 1_000, 0)]);
    let r = routes(node(A), &db, everyone);
    assert_eq!(r.get(&node(C)).unwrap().next_hop, node(B));
    // The cost model in numbers: 5 % loss doubles the round trip.
    assert_eq!(
        link_cost(&measure(C, 100_000, 50), &measure(A, 100_000, 50)),
        Some(200_000 + HOP_COST_MICROS)
    );
    assert_eq!(
        link_cost(&measure(C, 1_000, 0), &measure(A, 1_000, 0)),
        Some(1_000 + HOP_COST_MICROS)
    );
    // Loss alone (no extra delay) is enough to prefer the clean relay path.
    let lossy = symmetric(&[(A, C, 1_000, 50), (A, B, 500, 0), (B, C, 500, 0)]);
    assert_eq!(
        routes(node(A), &lossy, everyone)
            .get(&node(C))
            .unwrap()
            .next_hop,
        node(B)
    );
    assert_eq!(
        link_cost(&measure(C, 1_000, 500), &measure(A, 1_000, 0)),
        None
    );
    // Half the probes lost on the only path: C is unreachable.
    let dead = symmetric(&[(A, C, 1_000, 600)]);
    assert!(routes(node(A), &dead, everyone).get(&node(C)).is_none());
    // A clean direct link beats a relay of the same total round trip (the hop cost).
    let tie = symmetric(&[(A, C, 2_000, 0), (A, B, 1_000, 0), (B, C, 1_000, 0)]);
    assert_eq!(
        routes(node(A), &tie, everyone)
            .get(&node(C))
            .unwrap()
            .next_hop,
        node(C)
    );
}

#[test]
fn one_sided_claims_make_no_link() {
    // A claims a link to C; C does not list A. The route goes through B.
    let mut db = symmetric(&[(A, B, 1_000, 0), (B, C, 1_000, 0)]);
    db.accept(
        state(A, 2, vec![measure(B, 1_000, 0), measure(C, 10, 0)]),
        0,
    )
    .unwrap();
    assert_eq!(
        routes(node(A), &db, everyone)
            .get(&node(C))
            .unwrap()
            .next_hop,
        node(B)
    );
    // And the worse direction counts when both report.
    assert_eq!(
        link_cost(&measure(B, 10, 0), &measure(A, 5_000, 0)),
        link_cost(&measure(B, 5_000, 0), &measure(A, 10, 0))
    );
}

#[test]
fn replayed_stale_and_malformed_states_change_nothing() {
    let mut db = symmetric(&[(A, B, 1_000, 0)]);
    db.accept(state(B, 5, vec![measure(A, 1_000, 0)]), 0)
        .unwrap();
    let before = routes(node(A), &db, everyone);
    // A replay of an older state (it would have cut A–B) is ignored.
    assert_eq!(db.accept(state(B, 4, vec![]), 1), Ok(Accepted::Stale));
    assert_eq!(db.accept(state(B, 5, vec![]), 1), Ok(Accepted::Duplicate));
    assert_eq!(routes(node(A), &db, everyone), before);
    assert_eq!(db.sequence(&node(B)), Some(5));
    // Malformed: a link to itself, a neighbour twice, too many links.
    assert!(matches!(
        db.accept(state(B, 9, vec![measure(B, 1, 0)]), 1),
        Err(RoutingError::Malformed { .. })
    ));
    assert!(matches!(
        db.accept(state(B, 9, vec![measure(A, 1, 0), measure(A, 2, 0)]), 1),
        Err(RoutingError::Malformed { .. })
    ));
    let many = (0..=MAX_LINKS)
        .map(|i| LinkMeasure {
            neighbor: NodeId::from_bytes([
                (i % 250) as u8,
                (i / 250) as u8,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
                9,
            ]),
            rtt_micros: 1,
            loss_permille: 0,
        })
        .collect();
    assert!(matches!(
        db.accept(state(B, 9, many), 1),
        Err(RoutingError::TooManyLinks { .. })
    ));
    assert_eq!(db.sequence(&node(B)), Some(5));
    assert_eq!(routes(node(A), &db, everyone), before);
}

#[test]
fn nodes_that_may_not_relay_are_destinations_only() {
    let db = symmetric(&[(A, B, 1_000, 0), (B, C, 1_000, 0)]);
    let no_b = |n: &NodeId| *n != node(B);
    let r = routes(node(A), &db, no_b);
    assert!(r.get(&node(B)).is_some());
    assert!(r.get(&node(C)).is_none());
    let path = [node(B), node(C)];
    assert!(path_cost(node(A), &path, &db, no_b).is_none());
    assert!(path_cost(node(A), &path, &db, everyone).is_some());
}

#[test]
fn a_path_is_left_for_a_clearly_better_one_only() {
    let db = symmetric(&[
        (A, B, 1_000, 0),
        (B, C, 1_000, 0),
        (A, D, 1_100, 0),
        (D, C, 1_100, 0),
    ]);
    let best = routes(node(A), &db, everyone)
        .get(&node(C))
        .unwrap()
        .clone();
    assert_eq!(best.next_hop, node(B));
    let via_d = path_cost(node(A), &[node(D), node(C)], &db, everyone);
    // On D, B's path is only ~8 % cheaper: stay.
    assert!(!Switch::default().should_switch(via_d, &best));
    // Twice as expensive: move.
    assert!(Switch::default().should_switch(via_d.map(|c| c * 2), &best));
    // Broken: move at once.
    assert!(Switch::default().should_switch(None, &best));
}

#[test]
fn routes_in_use_stay_until_broken_or_clearly_beaten() {
    let on = |rtt_b: u32, rtt_d: u32| {
        symmetric(&[
            (A, B, rtt_b, 0),
            (B, C, rtt_b, 0),
            (A, D, rtt_d, 0),
            (D, C, rtt_d, 0),
        ])
    };
    let first = stable_routes(
        node(A),
        &on(1_000, 1_100),
        &Default::default(),
        Switch::default(),
        everyone,
    );
    assert_eq!(first.get(&node(C)).unwrap().next_hop, node(B));
    // D becomes slightly better: B's path stays, at what it costs now.
    let db = on(1_100, 1_000);
    let second = stable_routes(node(A), &db, &first, Switch::default(), everyone);
    let kept = second.get(&node(C)).unwrap();
    assert_eq!(kept.next_hop, node(B));
    assert_eq!(
        Some(kept.cost),
        path_cost(node(A), &kept.path, &db, everyone)
    );
    // D becomes much better: move.
    let third = stable_routes(
        node(A),
        &on(3_000, 1_000),
        &second,
        Switch::default(),
        everyone,
    );
    assert_eq!(third.get(&node(C)).unwrap().next_hop, node(D));
    // D dies: back to B at once, though B is worse than the path in use was.
    let fourth = stable_routes(
        node(A),
        &symmetric(&[(A, B, 3_000, 0), (B, C, 3_000, 0), (A, D, 1_000, 0)]),
        &third,
        Switch::default(),
        everyone,
    );
    assert_eq!(fourth.get(&node(C)).unwrap().next_hop, node(B));
    // Unreachable destinations are gone.
    let fifth = stable_routes(
        node(A),
        &symmetric(&[(A, B, 1_000, 0)]),
        &fourth,
        Switch::default(),
        everyone,
    );
    assert!(fifth.get(&node(C)).is_none());
    assert_eq!(fifth.get(&node(B)).unwrap().next_hop, node(B));
}

#[test]
fn link_views_pair_both_ends_and_show_one_sided_claims() {
    let mut db = symmetric(&[(A, B, 1_000, 0), (B, C, 2_000, 600)]);
    // D claims a link to A that A does not report.
    db.accept(state(D, 1, vec![measure(A, 500, 0)]), 0).unwrap();
    let views = link_views(&db);
    let pairs: Vec<(NodeId, NodeId)> = views.iter().map(|v| (v.a, v.b)).collect();
    assert_eq!(
        pairs,
        vec![(node(A), node(B)), (node(A), node(D)), (node(B), node(C))]
    );
    assert_eq!(views[0].cost, Some(1_000 + HOP_COST_MICROS));
    assert!(views[0].a_to_b.is_some() && views[0].b_to_a.is_some());
    // One-sided: shown, never costed.
    assert!(views[1].a_to_b.is_none() && views[1].b_to_a.is_some());
    assert_eq!(views[1].cost, None);
    // Dead (60 % loss): both ends report it, no cost.
    assert_eq!(views[2].cost, None);
}

#[test]
fn silent_origins_expire_but_this_node_stays() {
    let mut db = symmetric(&[(A, B, 1_000, 0)]);
    assert_eq!(db.len(), 2);
    db.accept(state(B, 2, vec![measure(A, 1_000, 0)]), 5_000)
        .unwrap();
    assert_eq!(db.expire(6_000, 3_000, &node(A)), Vec::<NodeId>::new());
    assert_eq!(db.expire(9_000, 3_000, &node(A)), vec![node(B)]);
    assert_eq!(db.expire(99_000, 3_000, &node(A)), Vec::<NodeId>::new());
    assert_eq!(db.len(), 1);
    assert!(db.remove(&node(A)));
    assert!(db.is_empty());
}

/// Floyd–Warshall over the same links, intermediates limited to relays: the model.
fn model(n: usize, links: &[Link], relay: &[bool]) -> Vec<Vec<Option<u64>>> {
    let mut d = vec![vec![None; n]; n];
    for (i, row) in d.iter_mut().enumerate() {
        row[i] = Some(0);
    }
    for &(a, b, rtt, loss) in links {
        let m = |to: usize| measure(to as u8 + 1, rtt, loss);
        if let Some(c) = link_cost(&m(b), &m(a)) {
            for (x, y) in [(a, b), (b, a)] {
                d[x][y] = Some(d[x][y].map_or(c, |old: u64| old.min(c)));
            }
        }
    }
    for k in 0..n {
        if !relay[k] {
            continue;
        }
        for i in 0..n {
            for j in 0..n {
                if let (Some(x), Some(y)) = (d[i][k], d[k][j])
                    && d[i][j].is_none_or(|z| x + y < z)
                {
                    d[i][j] = Some(x + y);
                }
            }
        }
    }
    d
}

/// A link between two node indexes: round trip (µs) and loss (‰), the same both ways.
type Link = (usize, usize, u32, u16);

fn graph() -> impl Strategy<Value = (usize, Vec<Link>, Vec<bool>)> {
    (2usize..9).prop_flat_map(|n| {
        let link = (0..n, 0..n, 1u32..50_000, prop_oneof![Just(0u16), 0u16..700]);
        (
            Just(n),
            prop::collection::vec(link, 0..24),
            prop::collection::vec(prop::bool::weighted(0.8), n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn best_paths_match_the_model((n, raw, relay) in graph()) {
        // One link per pair (the first listed), no self links.
        let mut seen = std::collections::BTreeSet::new();
        let links: Vec<_> = raw
            .into_iter()
            .filter(|&(a, b, _, _)| a != b && seen.insert((a.min(b), a.max(b))))
            .collect();
        let as_u8: Vec<(u8, u8, u32, u16)> = links
            .iter()
            .map(|&(a, b, r, l)| (a as u8 + 1, b as u8 + 1, r, l))
            .collect();
        let db = symmetric(&as_u8);
        let expected = model(n, &links, &relay);
        let may_relay = |id: &NodeId| relay[usize::from(id.as_bytes()[0]) - 1];
        for (source, expected) in expected.iter().enumerate() {
            let r = routes(node(source as u8 + 1), &db, may_relay);
            for (destination, want) in expected.iter().enumerate() {
                if destination == source {
                    continue;
                }
                let got = r.get(&node(destination as u8 + 1));
                prop_assert_eq!(got.map(|g| g.cost), *want);
                if let Some(route) = got {
                    // The path is real and costs what it says.
                    prop_assert_eq!(route.path.last(), Some(&node(destination as u8 + 1)));
                    prop_assert_eq!(route.next_hop, route.path[0]);
                    prop_assert_eq!(
                        path_cost(node(source as u8 + 1), &route.path, &db, may_relay),
                        Some(route.cost)
                    );
                }
            }
            // Same states, other arrival order: same routes.
            let mut reversed = LinkStateDb::new();
            let mut states: Vec<LinkState> = db.states().cloned().collect();
            states.reverse();
            for s in states {
                reversed.accept(s, 0).unwrap();
            }
            prop_assert_eq!(routes(node(source as u8 + 1), &reversed, may_relay), r);
        }
    }
}
