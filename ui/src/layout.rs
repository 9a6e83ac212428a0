//! Force-directed placement of the topology graph (Fruchterman–Reingold): nodes push each
//! other apart, links pull their ends together, a weak pull to the centre keeps separate
//! components on screen, and a cooling temperature bounds each step. Pure and deterministic
//! (start positions come from a hash of the node id), so the same graph always looks the
//! same and the tests can run natively. A graph that changes keeps its previous positions
//! and is only nudged, so a live update does not reshuffle the picture.

use std::collections::BTreeMap;

/// A position in the drawing, in the same units as [`Bounds`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Horizontal, left to right.
    pub x: f64,
    /// Vertical, top to bottom.
    pub y: f64,
}

/// The drawing area.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

/// Iterations for a graph placed from scratch.
pub const FULL_ITERATIONS: usize = 220;
/// Iterations when most nodes already have a position (a live update).
pub const WARM_ITERATIONS: usize = 40;
/// Nodes beyond this many are placed without the pairwise push (it costs n² per step);
/// the console shows at most this many anyway.
pub const MAX_NODES: usize = 2_000;

/// Places `nodes` joined by `links` (pairs of indexes into `nodes`; others are ignored),
/// starting from `previous` where a node has a position there.
pub fn place(
    nodes: &[String],
    links: &[(usize, usize)],
    previous: &BTreeMap<String, Point>,
    bounds: Bounds,
) -> BTreeMap<String, Point> {
    let n = nodes.len();
    if n == 0 {
        return BTreeMap::new();
    }
    let margin = 24.0_f64.min(bounds.width / 4.0).min(bounds.height / 4.0);
    let (w, h) = (bounds.width - 2.0 * margin, bounds.height - 2.0 * margin);
    let centre = Point {
        x: bounds.width / 2.0,
        y: bounds.height / 2.0,
    };
    let links: Vec<(usize, usize)> = links
        .iter()
        .copied()
        .filter(|&(a, b)| a < n && b < n && a != b)
        .collect();
    let mut neighbours = vec![Vec::new(); n];
    for &(a, b) in &links {
        neighbours[a].push(b);
        neighbours[b].push(a);
    }

    // Start: the previous position, else next to an already placed neighbour, else a point
    // on a circle chosen by the id's hash.
    let mut pos: Vec<Option<Point>> = nodes.iter().map(|id| previous.get(id).copied()).collect();
    // Mostly known already (a live update): nudge, don't reshuffle.
    let warm = 2 * pos.iter().filter(|p| p.is_some()).count() >= n && !previous.is_empty();
    let mut order: Vec<usize> = (0..n).collect();
    // Placed neighbours first, so a new node lands next to its links.
    order.sort_by_key(|&i| std::cmp::Reverse(neighbours[i].len()));
    for &i in &order {
        if pos[i].is_some() {
            continue;
        }
        let hash = fnv(&nodes[i]);
        let angle = (hash % 3_600) as f64 / 3_600.0 * std::f64::consts::TAU;
        let near = neighbours[i].iter().find_map(|&j| pos[j]);
        pos[i] = Some(match near {
            Some(p) => Point {
                x: p.x + 20.0 * angle.cos(),
                y: p.y + 20.0 * angle.sin(),
            },
            None => {
                let radius =
                    0.35 * w.min(h) * (0.6 + 0.4 * ((hash >> 12) % 1_000) as f64 / 1_000.0);
                Point {
                    x: centre.x + radius * angle.cos(),
                    y: centre.y + radius * angle.sin(),
                }
            }
        });
    }
    let mut pos: Vec<Point> = pos.into_iter().map(|p| p.unwrap_or(centre)).collect();

    let k = 0.8 * ((w * h) / n as f64).sqrt();
    let (iterations, mut temperature) = if warm {
        (WARM_ITERATIONS, w.min(h) / 60.0)
    } else {
        (FULL_ITERATIONS, w.min(h) / 8.0)
    };
    let cooling = temperature / (iterations as f64 + 1.0);
    let mut shift = vec![Point { x: 0.0, y: 0.0 }; n];
    for _ in 0..iterations {
        shift.iter_mut().for_each(|s| *s = Point { x: 0.0, y: 0.0 });
        if n <= MAX_NODES {
            for a in 0..n {
                for b in (a + 1)..n {
                    let (dx, dy) = apart(pos[a], pos[b], a, b);
                    let d2 = dx * dx + dy * dy;
                    let f = k * k / d2; // (k²/d) / d: the push along the unit vector
                    shift[a].x += dx * f;
                    shift[a].y += dy * f;
                    shift[b].x -= dx * f;
                    shift[b].y -= dy * f;
                }
            }
        }
        for &(a, b) in &links {
            let (dx, dy) = apart(pos[a], pos[b], a, b);
            let d = (dx * dx + dy * dy).sqrt();
            let f = d / k; // (d²/k) / d
            shift[a].x -= dx * f;
            shift[a].y -= dy * f;
            shift[b].x += dx * f;
            shift[b].y += dy * f;
        }
        for (p, s) in pos.iter_mut().zip(&mut shift) {
            // Gravity: separate components drift back instead of off the screen.
            s.x += (centre.x - p.x) * 0.02 * k / 10.0;
            s.y += (centre.y - p.y) * 0.02 * k / 10.0;
            let len = (s.x * s.x + s.y * s.y).sqrt();
            if len > 0.0 {
                let step = len.min(temperature);
                p.x += s.x / len * step;
                p.y += s.y / len * step;
            }
            p.x = p.x.clamp(margin, bounds.width - margin);
            p.y = p.y.clamp(margin, bounds.height - margin);
        }
        temperature = (temperature - cooling).max(0.5);
    }
    nodes.iter().cloned().zip(pos).collect()
}

/// The vector from `b` to `a`, never zero (coinciding nodes are split by index).
fn apart(a: Point, b: Point, ia: usize, ib: usize) -> (f64, f64) {
    let (dx, dy) = (a.x - b.x, a.y - b.y);
    if dx * dx + dy * dy < 1e-6 {
        let sign = if ia < ib { 1.0 } else { -1.0 };
        (0.01 * sign, 0.01)
    } else {
        (dx, dy)
    }
}

/// FNV-1a: a stable hash for start positions (std's hasher is randomly keyed).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        width: 800.0,
        height: 600.0,
    };

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node{i:03}")).collect()
    }

    fn dist(a: Point, b: Point) -> f64 {
        ((a.x - b.x).powi(2) + (a.y - b.y).powi(2)).sqrt()
    }

    #[test]
    fn linked_nodes_end_closer_than_unlinked_ones() {
        // Two rings of 10 joined by nothing: a node's ring mates are nearer than the others.
        let nodes = ids(20);
        let mut links = Vec::new();
        for ring in [0, 10] {
            for i in 0..10 {
                links.push((ring + i, ring + (i + 1) % 10));
            }
        }
        let placed = place(&nodes, &links, &BTreeMap::new(), BOUNDS);
        let p: Vec<Point> = nodes.iter().map(|id| placed[id]).collect();
        let (mut linked, mut others) = (Vec::new(), Vec::new());
        for a in 0..20 {
            for b in (a + 1)..20 {
                if links.contains(&(a, b)) || links.contains(&(b, a)) {
                    linked.push(dist(p[a], p[b]));
                } else if a / 10 != b / 10 {
                    others.push(dist(p[a], p[b]));
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            mean(&linked) * 2.0 < mean(&others),
            "{} vs {}",
            mean(&linked),
            mean(&others)
        );
    }

    #[test]
    fn two_hundred_nodes_stay_inside_and_apart() {
        let nodes = ids(200);
        // A sparse mesh: each node linked to the next and to one further away.
        let links: Vec<(usize, usize)> = (0..200)
            .flat_map(|i| [(i, (i + 1) % 200), (i, (i * 7 + 3) % 200)])
            .collect();
        let placed = place(&nodes, &links, &BTreeMap::new(), BOUNDS);
        assert_eq!(placed.len(), 200);
        let points: Vec<Point> = placed.values().copied().collect();
        for p in &points {
            assert!(p.x.is_finite() && p.y.is_finite());
            assert!((0.0..=BOUNDS.width).contains(&p.x) && (0.0..=BOUNDS.height).contains(&p.y));
        }
        let mut close = 0;
        for a in 0..points.len() {
            for b in (a + 1)..points.len() {
                if dist(points[a], points[b]) < 2.0 {
                    close += 1;
                }
            }
        }
        assert!(
            close < 5,
            "{close} pairs of nodes drawn on top of each other"
        );
    }

    #[test]
    fn placement_is_deterministic_and_updates_keep_positions() {
        let nodes = ids(12);
        let links: Vec<(usize, usize)> = (0..11).map(|i| (i, i + 1)).collect();
        let first = place(&nodes, &links, &BTreeMap::new(), BOUNDS);
        assert_eq!(first, place(&nodes, &links, &BTreeMap::new(), BOUNDS));

        // One node joins, linked to node 0: the others barely move, and it lands near node 0.
        let mut more = nodes.clone();
        more.push("newcomer".to_owned());
        let mut more_links = links.clone();
        more_links.push((12, 0));
        let second = place(&more, &more_links, &first, BOUNDS);
        let moved: f64 = nodes
            .iter()
            .map(|id| dist(first[id], second[id]))
            .sum::<f64>()
            / 12.0;
        assert!(moved < 60.0, "existing nodes moved {moved} on average");
        assert!(dist(second["newcomer"], second["node000"]) < 250.0);
    }

    #[test]
    fn degenerate_graphs_are_placed() {
        assert!(place(&[], &[], &BTreeMap::new(), BOUNDS).is_empty());
        let one = place(&ids(1), &[(0, 0), (0, 5)], &BTreeMap::new(), BOUNDS);
        let p = one["node000"];
        assert!(p.x.is_finite() && p.y.is_finite());
        // A tiny drawing area still yields positions inside it.
        let tiny = Bounds {
            width: 10.0,
            height: 10.0,
        };
        for p in place(&ids(5), &[(0, 1)], &BTreeMap::new(), tiny).values() {
            assert!((0.0..=10.0).contains(&p.x) && (0.0..=10.0).contains(&p.y));
        }
    }
}
