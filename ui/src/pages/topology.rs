//! Topology: the mesh as a force-directed graph, nodes coloured by health and links by the
//! link states their ends sign, kept live from the anchor's event stream (link lost or back,
//! member connected or gone) plus a slow poll for what events do not cover. Positions are
//! kept between updates, so the picture only moves where the mesh changed.

use std::collections::BTreeMap;

use leptos::prelude::*;
use x0t_types::api::{EventKind, MeshEvent, NodeView, Topology};

use super::{fetch, status_of};
use crate::app::{ctx, go};
use crate::graph::{self, GraphLink, GraphNode};
use crate::http;
use crate::layout::{self, Bounds, Point};

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 640.0;
/// Above this many nodes, labels show on hover only.
const LABELS_UP_TO: usize = 60;
/// Events kept in the side list.
const RECENT_EVENTS: usize = 30;
/// The poll that catches what the event stream does not carry (a new member's first links).
const POLL_MS: i32 = 3_000;

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::LinkDown => "link lost",
        EventKind::LinkRecovered => "link back",
        EventKind::RouteChanged => "route",
        EventKind::PathSwitched => "path switched",
        EventKind::PeerVerified => "joined",
        EventKind::PeerDropped => "left",
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Drawing {
    nodes: Vec<(GraphNode, Point)>,
    links: Vec<(GraphLink, Point, Point)>,
}

/// The topology page.
#[component]
pub(crate) fn TopologyPage() -> impl IntoView {
    let ctx = ctx();
    let reload = RwSignal::new(0u64);
    let nodes = fetch::<Vec<NodeView>>(move || ctx.mesh_path("/nodes"), reload);
    let topology = fetch::<Topology>(move || ctx.mesh_path("/topology"), reload);
    let events = RwSignal::new(Vec::<MeshEvent>::new());
    let live = RwSignal::new(false);
    let alive = RwSignal::new(true);
    let placed = StoredValue::new(BTreeMap::<String, Point>::new());
    let zoom = RwSignal::new(1.0f64);
    let pan = RwSignal::new((0.0f64, 0.0f64));
    let drag = StoredValue::new(None::<(f64, f64, f64, f64)>);

    let controller = web_sys::AbortController::new().ok();
    let signal = controller.as_ref().map(|c| c.signal());
    let controller = StoredValue::new_local(controller);
    on_cleanup(move || {
        alive.set(false);
        controller.try_with_value(|c| c.as_ref().map(|c| c.abort()));
    });

    // The event stream: each event triggers a refresh; reconnects with the last id seen.
    let path = ctx.mesh_path("/events");
    leptos::task::spawn_local(async move {
        let Some(signal) = signal else { return };
        let mut after = String::from("0");
        while alive.try_get_untracked().unwrap_or(false) {
            let url = format!("{path}?after={after}");
            let result = http::follow(
                &url,
                &signal,
                || live.set(true),
                |event| {
                    if let Ok(e) = serde_json::from_str::<MeshEvent>(&event.data) {
                        events.update(|list| {
                            list.insert(0, e);
                            list.truncate(RECENT_EVENTS);
                        });
                    }
                    reload.update(|r| *r += 1);
                },
            )
            .await;
            live.set(false);
            if let Ok(parser) = result
                && let Some(id) = parser.last_id()
            {
                after = id.to_owned();
            }
            http::sleep(2_000).await;
        }
    });
    leptos::task::spawn_local(async move {
        while alive.try_get_untracked().unwrap_or(false) {
            http::sleep(POLL_MS).await;
            if alive.try_get_untracked().unwrap_or(false) {
                reload.update(|r| *r += 1);
            }
        }
    });

    let drawing = Memo::new(move |_| {
        let list = nodes.get();
        let topo = topology.get();
        let (Some(list), Some(topo)) = (list.ready(), topo.ready()) else {
            return None;
        };
        let (graph_nodes, links) = graph::build(list, topo);
        let ids: Vec<String> = graph_nodes.iter().map(|n| n.id.clone()).collect();
        let pairs: Vec<(usize, usize)> = links.iter().map(|l| (l.a, l.b)).collect();
        let previous = placed.get_value();
        let positions = layout::place(
            &ids,
            &pairs,
            &previous,
            Bounds {
                width: WIDTH,
                height: HEIGHT,
            },
        );
        placed.set_value(positions.clone());
        let at = |i: usize| {
            positions
                .get(&ids[i])
                .copied()
                .unwrap_or(Point { x: 0.0, y: 0.0 })
        };
        Some(Drawing {
            links: links
                .into_iter()
                .map(|l| {
                    let (a, b) = (at(l.a), at(l.b));
                    (l, a, b)
                })
                .collect(),
            nodes: graph_nodes
                .into_iter()
                .enumerate()
                .map(|(i, n)| (n, at(i)))
                .collect(),
        })
    });
    // The benchmark reads when the first graph was on screen.
    let marked = StoredValue::new(false);
    Effect::new(move |_| {
        if drawing.with(Option::is_some) && !marked.get_value() {
            marked.set_value(true);
            request_animation_frame(|| http::mark("x0t-topology-rendered"));
        }
    });
    let view_box = move || {
        let z = zoom.get();
        let (px, py) = pan.get();
        let (w, h) = (WIDTH / z, HEIGHT / z);
        format!(
            "{:.1} {:.1} {:.1} {:.1}",
            (WIDTH - w) / 2.0 - px,
            (HEIGHT - h) / 2.0 - py,
            w,
            h
        )
    };
    let on_wheel = move |ev: leptos::ev::WheelEvent| {
        ev.prevent_default();
        let factor = if ev.delta_y() < 0.0 { 1.2 } else { 1.0 / 1.2 };
        zoom.update(|z| *z = (*z * factor).clamp(0.5, 8.0));
    };
    let on_down = move |ev: leptos::ev::MouseEvent| {
        let (px, py) = pan.get_untracked();
        drag.set_value(Some((
            f64::from(ev.client_x()),
            f64::from(ev.client_y()),
            px,
            py,
        )));
    };
    let on_move = move |ev: leptos::ev::MouseEvent| {
        if let Some((x0, y0, px, py)) = drag.get_value() {
            let z = zoom.get_untracked();
            pan.set((
                px + (f64::from(ev.client_x()) - x0) / z,
                py + (f64::from(ev.client_y()) - y0) / z,
            ));
        }
    };
    let on_up = move |_| drag.set_value(None);

    view! {
        <div class="heading">
            <h1>"Topology"</h1>
            <span class=move || if live.get() { "live on" } else { "live" } id="live">
                {move || if live.get() { "● live" } else { "○ connecting…" }}
            </span>
            <div class="actions">
                <button on:click=move |_| zoom.update(|z| *z = (*z * 1.25).min(8.0))>"+"</button>
                <button on:click=move |_| zoom.update(|z| *z = (*z / 1.25).max(0.5))>"−"</button>
                <button on:click=move |_| { zoom.set(1.0); pan.set((0.0, 0.0)); }>"Reset"</button>
            </div>
        </div>
        {status_of(nodes, "nodes")}
        {status_of(topology, "the topology")}
        {move || drawing.get().map(|d| {
            let up = d.links.iter().filter(|(l, ..)| l.health == "up").count();
            let degraded = d.links.iter().filter(|(l, ..)| l.health == "degraded").count();
            let down = d.links.len() - up - degraded;
            view! {
                <p class="muted" id="topology-summary">{format!("{} nodes · {} links: {up} up, {degraded} degraded, {down} down or one-sided", d.nodes.len(), d.links.len())}</p>
            }
        })}
        <div class="topology-wrap">
            <svg class=move || if drawing.with(|d| d.as_ref().is_some_and(|d| d.nodes.len() > LABELS_UP_TO)) { "topology many" } else { "topology" }
                viewBox=view_box preserveAspectRatio="xMidYMid meet"
                on:wheel=on_wheel on:mousedown=on_down on:mousemove=on_move on:mouseup=on_up on:mouseleave=on_up>
                {move || drawing.get().map(|d| {
                    let links = d.links.iter().map(|(l, a, b)| {
                        let title = l.rtt_micros.map_or(l.health.clone(), |rtt| format!("{} · {:.2} ms", l.health, f64::from(rtt) / 1_000.0));
                        view! { <line class=format!("link {}", l.health) x1=a.x x2=b.x y1=a.y y2=b.y><title>{title}</title></line> }
                    }).collect_view();
                    let nodes = d.nodes.iter().map(|(n, p)| {
                        let id = n.id.clone();
                        view! {
                            <g class=format!("node {}", n.health.name()) data-id=n.id.clone() data-health=n.health.name()
                                transform=format!("translate({:.1},{:.1})", p.x, p.y)
                                on:click=move |_| go(&format!("/nodes/{id}"))>
                                <circle r="7"/>
                                <text x="10" y="4">{n.label.clone()}</text>
                                <title>{format!("{} ({})", n.label, n.health.name())}</title>
                            </g>
                        }
                    }).collect_view();
                    view! { <g class="links">{links}</g><g class="nodes">{nodes}</g> }
                })}
            </svg>
            <aside class="legend">
                <h2>"Legend"</h2>
                <ul>
                    <li><span class="dot connected"></span>"connected"</li>
                    <li><span class="dot isolated"></span>"isolated (links down)"</li>
                    <li><span class="dot offline"></span>"approved, not reporting"</li>
                    <li><span class="dot pending"></span>"pending approval"</li>
                    <li><span class="dot excluded"></span>"revoked"</li>
                    <li><span class="bar up"></span>"link up"</li>
                    <li><span class="bar degraded"></span>"degraded (loss)"</li>
                    <li><span class="bar down"></span>"down / one-sided"</li>
                </ul>
                <h2>"Live events"</h2>
                <ul class="events" id="events">
                    {move || events.get().into_iter().map(|e| view! {
                        <li title=crate::format::utc(e.at_ms)><span class="kind">{kind_name(e.kind)}</span>" "{e.detail}</li>
                    }).collect_view()}
                </ul>
            </aside>
        </div>
    }
}
