//! Node detail: identity, certificate, overlay address, post-quantum profile, and the
//! admin's actions on it (approve, reject, revoke, reissue its enrollment token).

use leptos::prelude::*;
use x0t_types::NodeState;
use x0t_types::api::{AclView, ApproveNode, CreateToken, NodeStatus, NodeView, Reason, TokenView};

use super::{error_box, fetch, state_badge, status_of};
use crate::app::ctx;
use crate::format;
use crate::http::{self, ApiError};

/// The node detail page.
#[component]
pub(crate) fn NodeDetail(id: String) -> impl IntoView {
    let ctx = ctx();
    let reload = RwSignal::new(0u64);
    let base = StoredValue::new(ctx.mesh_path(&format!("/nodes/{}", http::enc(&id))));
    let node = fetch::<NodeView>(move || base.get_value(), reload);
    let status = fetch::<NodeStatus>(move || format!("{}/status", base.get_value()), reload);
    let acl = fetch::<AclView>(move || ctx.mesh_path("/acl"), reload);
    let reason = RwSignal::new(String::new());
    let failed = RwSignal::new(None::<ApiError>);
    let token = RwSignal::new(None::<TokenView>);
    let busy = RwSignal::new(false);
    let act = move |action: &'static str| {
        busy.set(true);
        failed.set(None);
        leptos::task::spawn_local(async move {
            let path = format!("{}/{action}", base.get_value());
            let reason = Reason {
                reason: reason.get_untracked(),
            };
            let answer: Result<(), ApiError> = match action {
                "approve" => http::send::<_, NodeView>("POST", &path, &ApproveNode::default())
                    .await
                    .map(drop),
                "reissue-token" => {
                    http::send::<_, TokenView>("POST", &path, &CreateToken::default())
                        .await
                        .map(|t| token.set(Some(t)))
                }
                _ => http::send::<_, NodeView>("POST", &path, &reason)
                    .await
                    .map(drop),
            };
            if let Err(e) = answer {
                failed.set(Some(e));
            }
            busy.set(false);
            reload.update(|r| *r += 1);
        });
    };
    view! {
        <p><a href="#/nodes">"← Nodes"</a></p>
        {status_of(node, "the node")}
        {move || failed.get().map(|e| error_box(&e))}
        {move || node.get().ready().cloned().map(|n| {
            let now = http::now_ms();
            let admin = ctx.admin();
            let profile = acl.get().ready().and_then(|a| {
                a.pq_profiles.iter().find(|p| p.device_class == n.device_class).map(|p| format!("{:?}", p.pq_profile))
            }).unwrap_or_else(|| format!("{:?} (class default)", n.device_class.default_pq_profile()));
            let certificate = status.get().ready().and_then(|s| s.certificate.clone());
            let validity = n.certificate_not_after_ms.map(|end| format!("until {} ({})", format::utc(end), format::relative(now, end)));
            let state = n.state;
            view! {
                <div class="heading">
                    <h1>{if n.hostname.is_empty() { n.short_id.clone() } else { n.hostname.clone() }}" "{state_badge(state)}</h1>
                </div>
                <section class="cards">
                    <div class="card">
                        <h2>"Identity"</h2>
                        <dl>
                            <dt>"Node id"</dt><dd><code class="wrap" id="node-id">{n.node_id.clone()}</code></dd>
                            <dt>"Overlay IP"</dt><dd id="overlay-ip">{n.overlay_ip.clone().unwrap_or_else(|| "none yet".into())}</dd>
                            <dt>"Device class"</dt><dd>{n.device_class.name()}</dd>
                            <dt>"Post-quantum profile"</dt><dd id="pq-profile">{profile}</dd>
                            <dt>"Tags"</dt><dd>{n.tags.join(", ")}</dd>
                            <dt>"Asked for"</dt><dd>{n.requested_tags.join(", ")}</dd>
                            <dt>"Peer id"</dt><dd><code class="wrap">{n.peer_id.clone()}</code></dd>
                            <dt>"Registered"</dt><dd>{format::utc(n.registered_at_ms)}</dd>
                            <dt>"Last change"</dt><dd>{format::utc(n.updated_at_ms)}</dd>
                            {n.state_reason.clone().map(|r| view! { <dt>"Reason"</dt><dd>{r}</dd> })}
                            {n.replaces.clone().map(|r| view! { <dt>"Replaces"</dt><dd><a href=format!("#/nodes/{r}")><code>{r.clone()}</code></a></dd> })}
                        </dl>
                    </div>
                    <div class="card">
                        <h2>"Certificate"</h2>
                        <dl>
                            <dt>"Valid"</dt><dd>{validity.unwrap_or_else(|| "no certificate".into())}</dd>
                            <dt>"Signature"</dt><dd>"ML-DSA-65, by an anchor"</dd>
                        </dl>
                        {certificate.map(|c| view! { <textarea class="cert" readonly rows="5">{c}</textarea> })}
                    </div>
                </section>
                <section class="card actions-card">
                    <h2>"Actions"</h2>
                    {(!admin).then(|| view! { <p class="muted">"A viewer key cannot change nodes."</p> })}
                    <input class="reason" placeholder="Reason (audit log; shown to peers on revocation)"
                        on:input=move |ev| reason.set(event_target_value(&ev)) />
                    <div class="actions">
                        {(state == NodeState::PendingApproval).then(|| view! {
                            <button class="primary" disabled=move || !admin || busy.get() on:click=move |_| act("approve")>"Approve"</button>
                            <button class="danger" disabled=move || !admin || busy.get() on:click=move |_| act("reject")>"Reject"</button>
                        })}
                        {(state == NodeState::Approved).then(|| view! {
                            <button id="revoke" class="danger" disabled=move || !admin || busy.get() on:click=move |_| act("revoke")>"Revoke"</button>
                        })}
                        <button id="reissue" disabled=move || !admin || busy.get() on:click=move |_| act("reissue-token")
                            title="A single-use token with which this device (re-keyed) enrolls again">"Reissue token"</button>
                    </div>
                    {move || token.get().map(|t| view! {
                        <div class="ok">
                            <p>"New enrollment token (shown once; valid until "{format::utc(t.not_after_ms)}"):"</p>
                            <code class="wrap" id="token">{t.token.clone()}</code>
                        </div>
                    })}
                </section>
            }
        })}
    }
}
