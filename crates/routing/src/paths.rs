//! Link costs, best paths (Dijkstra over the links both ends report) and path switching.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use x0t_types::NodeId;

use crate::{DEAD_LOSS_PERMILLE, LinkMeasure, LinkStateDb};

/// What every relay hop adds, in microseconds: a relay spends CPU and a queue on each
/// packet, and on near-equal paths the direct one should win.
pub const HOP_COST_MICROS: u64 = 200;

/// The floor of a link's round trip in the metric (microseconds): below it, measurement
/// noise would decide.
const MIN_RTT_MICROS: u64 = 20;

/// The cost of the link between two nodes from both ends' measurements, or `None` when it
/// is unusable (either end reports half or more of its probes lost). The worse of the two
/// round trips and losses counts: a link is as good as its worse direction, and one end
/// cannot make a link look better than the other end sees it. Each 1 % of loss adds 20 %
/// to the round trip (5 % loss doubles it: TCP over a lossy link slows far more than its
/// delay says), plus [`HOP_COST_MICROS`].
pub fn link_cost(a_to_b: &LinkMeasure, b_to_a: &LinkMeasure) -> Option<u64> {
    let loss = a_to_b.loss_permille.max(b_to_a.loss_permille);
    if loss >= DEAD_LOSS_PERMILLE {
        return None;
    }
    let rtt = u64::from(a_to_b.rtt_micros.max(b_to_a.rtt_micros)).max(MIN_RTT_MICROS);
    Some(rtt * (1_000 + 20 * u64::from(loss)) / 1_000 + HOP_COST_MICROS)
}

/// The usable links, both ways, as adjacency lists ordered by neighbour id.
struct Graph {
    edges: BTreeMap<NodeId, Vec<(NodeId, u64)>>,
}

impl Graph {
    fn build(db: &LinkStateDb) -> Self {
        let mut edges: BTreeMap<NodeId, Vec<(NodeId, u64)>> = BTreeMap::new();
        for state in db.states() {
            for link in &state.links {
                // Both ends must report the link: a node cannot invent links to others.
                let Some(back) = db
                    .get(&link.neighbor)
                    .and_then(|s| s.links.iter().find(|l| l.neighbor == state.origin))
                else {
                    continue;
                };
                if let Some(cost) = link_cost(link, back) {
                    edges
                        .entry(state.origin)
                        .or_default()
                        .push((link.neighbor, cost));
                }
            }
        }
        for list in edges.values_mut() {
            list.sort();
        }
        Self { edges }
    }

    fn cost(&self, from: &NodeId, to: &NodeId) -> Option<u64> {
        self.edges
            .get(from)?
            .iter()
            .find(|(n, _)| n == to)
            .map(|(_, c)| *c)
    }
}

/// The best way to one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The first node on the path (the destination itself when direct).
    pub next_hop: NodeId,
    /// The nodes after this one, ending with the destination.
    pub path: Vec<NodeId>,
    /// The sum of the links' costs.
    pub cost: u64,
}

impl Route {
    /// How many relays the path goes through.
    pub fn relays(&self) -> usize {
        self.path.len().saturating_sub(1)
    }
}

/// The best route from one node to every node it can reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    routes: BTreeMap<NodeId, Route>,
}

impl Routes {
    /// The route to `destination`, if it is reachable.
    pub fn get(&self, destination: &NodeId) -> Option<&Route> {
        self.routes.get(destination)
    }

    /// Every reachable node and its route.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &Route)> {
        self.routes.iter()
    }

    /// How many nodes are reachable.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether nothing is reachable.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Best paths from `me` over the links in `db` that both ends report. Only nodes for which
/// `may_relay` holds are used in the middle of a path (every node may be a destination).
/// Ties go to fewer hops, then to the path found through lower node ids, so every node
/// computes the same routes from the same states.
pub fn routes(me: NodeId, db: &LinkStateDb, may_relay: impl Fn(&NodeId) -> bool) -> Routes {
    best_routes(me, &Graph::build(db), may_relay)
}

fn best_routes(me: NodeId, graph: &Graph, may_relay: impl Fn(&NodeId) -> bool) -> Routes {
    // (cost, hops) and the predecessor of each settled or frontier node.
    let mut best: BTreeMap<NodeId, ((u64, usize), NodeId)> = BTreeMap::new();
    let mut heap = BinaryHeap::new();
    heap.push(Reverse(((0u64, 0usize), me)));
    let mut settled = std::collections::BTreeSet::new();
    while let Some(Reverse(((cost, hops), node))) = heap.pop() {
        if !settled.insert(node) {
            continue;
        }
        if node != me && !may_relay(&node) {
            continue; // reachable, but no path goes through it
        }
        for (next, link) in graph.edges.get(&node).into_iter().flatten() {
            if *next == me || settled.contains(next) {
                continue;
            }
            let candidate = (cost.saturating_add(*link), hops + 1);
            let better = best.get(next).is_none_or(|(known, _)| candidate < *known);
            if better {
                best.insert(*next, (candidate, node));
                heap.push(Reverse((candidate, *next)));
            }
        }
    }
    let mut routes = BTreeMap::new();
    for (destination, ((cost, _), _)) in &best {
        let mut path = vec![*destination];
        let mut at = *destination;
        while let Some((_, previous)) = best.get(&at) {
            if *previous == me {
                break;
            }
            path.push(*previous);
            at = *previous;
        }
        path.reverse();
        routes.insert(
            *destination,
            Route {
                next_hop: path[0],
                path,
                cost: *cost,
            },
        );
    }
    Routes { routes }
}

/// The cost of following `path` from `me` over the links in `db` now, or `None` when a link
/// on it is gone or dead (or a relay on it may no longer relay).
pub fn path_cost(
    me: NodeId,
    path: &[NodeId],
    db: &LinkStateDb,
    may_relay: impl Fn(&NodeId) -> bool,
) -> Option<u64> {
    cost_along(me, path, &Graph::build(db), may_relay)
}

fn cost_along(
    me: NodeId,
    path: &[NodeId],
    graph: &Graph,
    may_relay: impl Fn(&NodeId) -> bool,
) -> Option<u64> {
    let mut at = me;
    let mut total = 0u64;
    for (i, next) in path.iter().enumerate() {
        if i > 0 && !may_relay(&at) {
            return None;
        }
        total = total.saturating_add(graph.cost(&at, next)?);
        at = *next;
    }
    Some(total)
}

/// When to leave the path in use for a better one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    /// A new path must cost this many percent less than the current one: two near-equal
    /// paths must not flap with every measurement.
    pub margin_percent: u64,
}

impl Default for Switch {
    fn default() -> Self {
        Self { margin_percent: 20 }
    }
}

impl Switch {
    /// Whether to move to `best`, given what the current path costs now (`None`: it is
    /// broken, or there is none). A broken path is always left; a working one only for a
    /// path cheaper by the margin.
    pub fn should_switch(&self, current_cost: Option<u64>, best: &Route) -> bool {
        match current_cost {
            None => true,
            Some(current) => {
                u128::from(best.cost) * u128::from(100 + self.margin_percent)
                    < u128::from(current) * 100
            }
        }
    }
}

/// The routes to use next, given the ones in use: for each destination the best path,
/// unless the path in use still works and the best is not cheaper by `switch`'s margin
/// (then the path in use stays, at what it costs now). Destinations no longer reachable
/// are gone. This is what keeps two near-equal paths from flapping while a broken one is
/// left at once.
pub fn stable_routes(
    me: NodeId,
    db: &LinkStateDb,
    in_use: &Routes,
    switch: Switch,
    may_relay: impl Fn(&NodeId) -> bool,
) -> Routes {
    let graph = Graph::build(db);
    let best = best_routes(me, &graph, &may_relay);
    let mut chosen = BTreeMap::new();
    for (destination, route) in best.routes {
        let kept = in_use.get(&destination).and_then(|current| {
            let cost = cost_along(me, &current.path, &graph, &may_relay);
            (!switch.should_switch(cost, &route)).then(|| Route {
                cost: cost.unwrap_or(u64::MAX),
                ..current.clone()
            })
        });
        chosen.insert(destination, kept.unwrap_or(route));
    }
    Routes { routes: chosen }
}

/// One link as the link states describe it: each end's measurement, if it reports one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkView {
    /// The lower node id of the two.
    pub a: NodeId,
    /// The higher.
    pub b: NodeId,
    /// What `a` measured towards `b`, if `a` reports the link.
    pub a_to_b: Option<LinkMeasure>,
    /// What `b` measured towards `a`, if `b` reports the link.
    pub b_to_a: Option<LinkMeasure>,
    /// Its cost when both ends report it and it is usable ([`link_cost`]).
    pub cost: Option<u64>,
}

/// Every link any state mentions, once per pair, ordered by (a, b): a map of the mesh for
/// people (a link only one end reports is shown, and is not routed over).
pub fn link_views(db: &LinkStateDb) -> Vec<LinkView> {
    let mut pairs: BTreeMap<(NodeId, NodeId), LinkView> = BTreeMap::new();
    for state in db.states() {
        for link in &state.links {
            let (a, b) = if state.origin < link.neighbor {
                (state.origin, link.neighbor)
            } else {
                (link.neighbor, state.origin)
            };
            let view = pairs.entry((a, b)).or_insert(LinkView {
                a,
                b,
                a_to_b: None,
                b_to_a: None,
                cost: None,
            });
            if state.origin == a {
                view.a_to_b = Some(*link);
            } else {
                view.b_to_a = Some(*link);
            }
        }
    }
    pairs
        .into_values()
        .map(|mut view| {
            view.cost = match (&view.a_to_b, &view.b_to_a) {
                (Some(there), Some(back)) => link_cost(there, back),
                _ => None,
            };
            view
        })
        .collect()
}
