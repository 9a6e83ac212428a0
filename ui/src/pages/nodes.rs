//! Nodes: every node of the mesh in one list (approved, pending, rejected, revoked), filtered
//! in the browser by state, tag, device class and free text.

use leptos::prelude::*;
use x0t_types::api::NodeView;
use x0t_types::{DeviceClass, NodeState};

use super::{fetch, state_badge, status_of};
use crate::app::ctx;
use crate::filter::{NodeFilter, all_tags};
use crate::{format, http};

/// Rows drawn at most: beyond, the filters narrow the list (drawing 10,000 rows would
/// take the browser seconds).
const MAX_ROWS: usize = 1_000;

/// The node list page.
#[component]
pub(crate) fn Nodes() -> impl IntoView {
    let ctx = ctx();
    let reload = RwSignal::new(0u64);
    let nodes = fetch::<Vec<NodeView>>(move || ctx.mesh_path("/nodes"), reload);
    let filter = RwSignal::new(NodeFilter::default());
    let marked = StoredValue::new(false);
    // The benchmark reads when the first list was on screen.
    Effect::new(move |_| {
        if nodes.with(|n| n.ready().is_some()) && !marked.get_value() {
            marked.set_value(true);
            request_animation_frame(|| http::mark("x0t-nodes-rendered"));
        }
    });
    let set_state = move |ev| {
        let value = event_target_value(&ev);
        filter.update(|f| f.state = NodeState::ALL.into_iter().find(|s| s.name() == value));
    };
    let set_class = move |ev| {
        let value = event_target_value(&ev);
        filter.update(|f| {
            f.device_class = (0..=255u8)
                .filter_map(DeviceClass::from_code)
                .find(|c| c.name() == value)
        });
    };
    let set_tag = move |ev| {
        let value = event_target_value(&ev);
        filter.update(|f| f.tag = (!value.is_empty()).then_some(value));
    };
    view! {
        <div class="heading">
            <h1>"Nodes"</h1>
            <button on:click=move |_| reload.update(|r| *r += 1)>"Refresh"</button>
        </div>
        <div class="filters">
            <input id="search" type="search" placeholder="Search hostname, id, address, tag…"
                on:input=move |ev| { let t = event_target_value(&ev); filter.update(|f| f.text = t) } />
            <select id="filter-state" aria-label="state" on:change=set_state>
                <option value="">"Any state"</option>
                {NodeState::ALL.iter().map(|s| view! { <option value=s.name()>{s.name().replace('_', " ")}</option> }).collect_view()}
            </select>
            <select id="filter-tag" aria-label="tag" on:change=set_tag>
                <option value="">"Any tag"</option>
                {move || nodes.get().ready().map(|list| all_tags(list).into_iter().map(|t| view! { <option value=t.clone()>{t.clone()}</option> }).collect_view())}
            </select>
            <select id="filter-class" aria-label="device class" on:change=set_class>
                <option value="">"Any class"</option>
                {(0..=255u8).filter_map(DeviceClass::from_code).map(|c| view! { <option value=c.name()>{c.name()}</option> }).collect_view()}
            </select>
        </div>
        {status_of(nodes, "nodes")}
        {move || nodes.get().ready().map(|list| {
            let now = http::now_ms();
            let f = filter.get();
            let shown = f.apply(list);
            let count = if shown.len() > MAX_ROWS {
                format!("{} of {} nodes match; the first {MAX_ROWS} are shown (narrow the filter)", shown.len(), list.len())
            } else {
                format!("{} of {} nodes", shown.len(), list.len())
            };
            let rows = shown.into_iter().take(MAX_ROWS).map(|n| {
                let href = format!("#/nodes/{}", n.node_id);
                view! {
                    <tr class="node-row" data-id=n.node_id.clone() data-state=n.state.name()>
                        <td><a href=href.clone()>{if n.hostname.is_empty() { n.short_id.clone() } else { n.hostname.clone() }}</a></td>
                        <td><code>{n.short_id.clone()}</code></td>
                        <td>{state_badge(n.state)}</td>
                        <td>{n.device_class.name()}</td>
                        <td>{n.tags.iter().chain(if n.tags.is_empty() { n.requested_tags.iter() } else { [].iter() }).map(|t| view! { <span class="tag">{t.clone()}</span> }).collect_view()}</td>
                        <td>{n.overlay_ip.clone().unwrap_or_default()}</td>
                        <td title=format::utc(n.registered_at_ms)>{format::relative(now, n.registered_at_ms)}</td>
                    </tr>
                }
            }).collect_view();
            view! {
                <p class="muted" id="node-count">{count}</p>
                <div class="scroll"><table class="nodes">
                    <thead><tr><th>"Host"</th><th>"Id"</th><th>"State"</th><th>"Class"</th><th>"Tags"</th><th>"Overlay IP"</th><th>"Registered"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table></div>
            }
        })}
    }
}
