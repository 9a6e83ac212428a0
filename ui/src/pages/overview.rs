//! Overview: the anchors and their Raft state, the nodes by state, and the mesh's
//! self-healing figures as this node's anchor measured them.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde::Deserialize;
use x0t_types::api::{AnchorView, NodeView, Percentiles};

use super::{Load, fetch, state_badge, status_of};
use crate::app::ctx;
use crate::filter::counts_by_state;
use crate::format;

/// What `GET /api/v1/cluster` says (the fields the console shows).
#[derive(Clone, Debug, Deserialize)]
struct Cluster {
    id: u64,
    state: String,
    leader: Option<u64>,
    term: u64,
    voters: BTreeMap<String, serde_json::Value>,
    learners: BTreeMap<String, serde_json::Value>,
    last_log_index: Option<u64>,
    last_applied_index: Option<u64>,
}

/// What `GET /api/v1/meshes/{mesh}/slo` says on an anchor.
#[derive(Clone, Debug, Deserialize)]
struct MeshSlo {
    members_reporting: usize,
    links_up: usize,
    links_degraded: usize,
    links_down: usize,
    failures: usize,
    link_outage: Percentiles,
    onboarding: Percentiles,
    failover: Percentiles,
}

fn figure(p: &Percentiles) -> String {
    match (p.p50_ms, p.p99_ms, p.max_ms) {
        (Some(p50), Some(p99), Some(max)) => format!(
            "p50 {} · p99 {} · max {} ({} measured)",
            format::duration(p50),
            format::duration(p99),
            format::duration(max),
            p.count
        ),
        _ => "none measured yet".to_owned(),
    }
}

/// The overview page.
#[component]
pub(crate) fn Overview() -> impl IntoView {
    let ctx = ctx();
    let reload = RwSignal::new(0u64);
    let cluster = fetch::<Cluster>(|| "/api/v1/cluster".into(), reload);
    let anchors = fetch::<Vec<AnchorView>>(|| "/api/v1/cluster/anchors".into(), reload);
    let nodes = fetch::<Vec<NodeView>>(move || ctx.mesh_path("/nodes"), reload);
    let slo = fetch::<MeshSlo>(move || ctx.mesh_path("/slo"), reload);
    view! {
        <div class="heading">
            <h1>"Overview"</h1>
            <button on:click=move |_| reload.update(|r| *r += 1)>"Refresh"</button>
        </div>
        <section class="cards">
            <div class="card" id="raft">
                <h2>"Control plane"</h2>
                {status_of(cluster, "the cluster")}
                {move || cluster.get().ready().cloned().map(|c| view! {
                    <dl>
                        <dt>"Leader"</dt><dd id="leader">{c.leader.map_or("none (election)".to_owned(), |l| format!("anchor {l}"))}</dd>
                        <dt>"Term"</dt><dd id="term">{c.term}</dd>
                        <dt>"Voters / learners"</dt><dd>{format!("{} / {}", c.voters.len(), c.learners.len())}</dd>
                        <dt>"This node"</dt><dd>{format!("anchor {} ({})", c.id, c.state)}</dd>
                        <dt>"Log applied"</dt><dd>{format!("{} of {}", c.last_applied_index.unwrap_or(0), c.last_log_index.unwrap_or(0))}</dd>
                    </dl>
                })}
            </div>
            <div class="card" id="counts">
                <h2>"Nodes"</h2>
                {status_of(nodes, "nodes")}
                {move || nodes.get().ready().map(|list| {
                    let total = list.len();
                    let rows = counts_by_state(list).into_iter().map(|(state, n)| view! {
                        <li>{state_badge(state)}<strong class=format!("count-{}", state.name())>{n}</strong></li>
                    }).collect_view();
                    view! { <p class="big">{total}<span>" nodes"</span></p><ul class="counts">{rows}</ul> }
                })}
            </div>
            <div class="card" id="slo">
                <h2>"Self-healing"</h2>
                {move || match slo.get() {
                    Load::Loading => view! { <p class="loading">"Loading figures…"</p> }.into_any(),
                    Load::Failed(e) => view! { <p class="muted">{format!("No figures from this node: {e}")}</p> }.into_any(),
                    Load::Ready(s) => view! {
                        <dl>
                            <dt>"Members reporting"</dt><dd>{s.members_reporting}</dd>
                            <dt>"Links"</dt><dd>{format!("{} up · {} degraded · {} down", s.links_up, s.links_degraded, s.links_down)}</dd>
                            <dt>"Failover"</dt><dd>{figure(&s.failover)}</dd>
                            <dt>"Time to repair"</dt><dd>{figure(&s.link_outage)}</dd>
                            <dt>"Onboarding"</dt><dd>{figure(&s.onboarding)}</dd>
                            <dt>"Link failures"</dt><dd>{s.failures}</dd>
                        </dl>
                    }.into_any(),
                }}
            </div>
        </section>
        <section class="card">
            <h2>"Anchors"</h2>
            {status_of(anchors, "anchors")}
            {move || {
                let leader = cluster.get().ready().and_then(|c| c.leader);
                anchors.get().ready().map(|list| {
                    let rows = list.iter().map(|a| {
                        let role = if Some(a.raft_id) == leader { "leader" } else { "anchor" };
                        view! {
                            <tr>
                                <td>{a.raft_id}</td>
                                <td><code>{a.node_id.chars().take(16).collect::<String>()}</code></td>
                                <td><span class=format!("badge {role}")>{role}</span></td>
                                <td><a href=a.api_url.clone()>{a.api_url.clone()}</a></td>
                            </tr>
                        }
                    }).collect_view();
                    view! {
                        <div class="scroll"><table>
                            <thead><tr><th>"Raft id"</th><th>"Node"</th><th>"Role"</th><th>"API"</th></tr></thead>
                            <tbody>{rows}</tbody>
                        </table></div>
                    }
                })
            }}
        </section>
    }
}
