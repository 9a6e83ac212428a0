//! Pending approvals: nodes waiting for an admin, with Approve and Reject.

use leptos::prelude::*;
use x0t_types::NodeState;
use x0t_types::api::{ApproveNode, NodeView, Reason};

use super::{error_box, fetch, status_of};
use crate::app::ctx;
use crate::format;
use crate::http::{self, ApiError};

/// The pending approvals page.
#[component]
pub(crate) fn Pending() -> impl IntoView {
    let ctx = ctx();
    let reload = RwSignal::new(0u64);
    let nodes = fetch::<Vec<NodeView>>(
        move || ctx.mesh_path("/nodes?state=pending_approval"),
        reload,
    );
    let done = RwSignal::new(None::<String>);
    let failed = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(None::<String>);
    let act = move |node: NodeView, approve: bool, reason: String| {
        busy.set(Some(node.node_id.clone()));
        failed.set(None);
        leptos::task::spawn_local(async move {
            let base = ctx.mesh_path(&format!("/nodes/{}", http::enc(&node.node_id)));
            let answer: Result<NodeView, ApiError> = if approve {
                http::send("POST", &format!("{base}/approve"), &ApproveNode::default()).await
            } else {
                http::send("POST", &format!("{base}/reject"), &Reason { reason }).await
            };
            match answer {
                Ok(n) => done.set(Some(match n.state {
                    NodeState::Approved => format!(
                        "Approved {} ({})",
                        n.hostname,
                        n.overlay_ip.unwrap_or_default()
                    ),
                    _ => format!("Rejected {}", n.hostname),
                })),
                Err(e) => failed.set(Some(e)),
            }
            busy.set(None);
            reload.update(|r| *r += 1);
        });
    };
    view! {
        <div class="heading">
            <h1>"Pending approvals"</h1>
            <button on:click=move |_| reload.update(|r| *r += 1)>"Refresh"</button>
        </div>
        {move || done.get().map(|d| view! { <p class="ok" role="status" id="done">{d}</p> })}
        {move || failed.get().map(|e| error_box(&e))}
        {status_of(nodes, "pending nodes")}
        {move || nodes.get().ready().map(|list| {
            if list.is_empty() {
                return view! { <p class="empty">"No node is waiting for approval."</p> }.into_any();
            }
            let now = http::now_ms();
            let admin = ctx.admin();
            list.iter().map(|n| {
                let reason = RwSignal::new(String::new());
                let (a, r) = (n.clone(), n.clone());
                let id = n.node_id.clone();
                let working = move || busy.get().as_deref() == Some(id.as_str());
                let working2 = working.clone();
                let tags = if n.requested_tags.is_empty() { "none".to_owned() } else { n.requested_tags.join(", ") };
                view! {
                    <div class="card pending-node" data-id=n.node_id.clone()>
                        <h2><a href=format!("#/nodes/{}", n.node_id)>{n.hostname.clone()}</a>" "<code>{n.short_id.clone()}</code></h2>
                        <dl>
                            <dt>"Device class"</dt><dd>{n.device_class.name()}</dd>
                            <dt>"Tags asked for"</dt><dd>{tags}</dd>
                            <dt>"Registered"</dt><dd>{format!("{} ({})", format::relative(now, n.registered_at_ms), format::utc(n.registered_at_ms))}</dd>
                            <dt>"Peer id"</dt><dd><code class="wrap">{n.peer_id.clone()}</code></dd>
                        </dl>
                        <div class="actions">
                            <button class="primary approve" disabled=move || !admin || working()
                                title=if admin { "" } else { "needs an admin key" }
                                on:click=move |_| act(a.clone(), true, String::new())>"Approve"</button>
                            <input class="reason" placeholder="Reason (for the audit log)"
                                on:input=move |ev| reason.set(event_target_value(&ev)) />
                            <button class="danger reject" disabled=move || !admin || working2()
                                on:click=move |_| act(r.clone(), false, reason.get_untracked())>"Reject"</button>
                        </div>
                    </div>
                }
            }).collect_view().into_any()
        })}
    }
}
