//! ACL: the mesh's policy document, edited in place. Validate runs the document's policy
//! tests on the anchor without saving; Save is compare-and-set on the version that was
//! loaded, and a document that fails to parse or whose tests fail is refused with the line
//! shown in the editor's gutter. Explain answers "may A reach B on port P, and why".

use leptos::prelude::*;
use x0t_types::api::{
    AclDecision, AclValidation, AclVersionView, AclView, ExplainAcl, SetAcl, ValidateAcl,
};

use super::{error_box, fetch, status_of};
use crate::app::ctx;
use crate::http::{self, ApiError};

/// The ACL page.
#[component]
pub(crate) fn Acl() -> impl IntoView {
    let ctx = ctx();
    let reload = RwSignal::new(0u64);
    let acl = fetch::<AclView>(move || ctx.mesh_path("/acl"), reload);
    let history = fetch::<Vec<AclVersionView>>(move || ctx.mesh_path("/acl/history"), reload);
    let draft = RwSignal::new(String::new());
    let loaded_version = RwSignal::new(0u64);
    let problem = RwSignal::new(None::<ApiError>);
    let outcome = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(a) = acl.get().ready() {
            draft.set(a.document.clone());
            loaded_version.set(a.version);
        }
    });
    let submit = move |save: bool| {
        busy.set(true);
        problem.set(None);
        outcome.set(None);
        leptos::task::spawn_local(async move {
            let document = draft.get_untracked();
            if save {
                let body = SetAcl {
                    document,
                    expected_version: Some(loaded_version.get_untracked()),
                };
                match http::send::<_, AclView>("PUT", &ctx.mesh_path("/acl"), &body).await {
                    Ok(saved) => {
                        outcome.set(Some(format!(
                            "Saved as version {} ({} rules, {} tests passed).",
                            saved.version, saved.rules, saved.tests
                        )));
                        reload.update(|r| *r += 1);
                    }
                    Err(e) => problem.set(Some(e)),
                }
            } else {
                match http::send::<_, AclValidation>(
                    "POST",
                    &ctx.mesh_path("/acl/validate"),
                    &ValidateAcl { document },
                )
                .await
                {
                    Ok(v) => outcome.set(Some(format!(
                        "Valid: {} rules, {} policy tests pass. Nothing was saved.",
                        v.rules, v.tests
                    ))),
                    Err(e) => problem.set(Some(e)),
                }
            }
            busy.set(false);
        });
    };
    let gutter = move || {
        let bad = problem.get().and_then(|p| p.line);
        let lines = draft.with(|d| d.lines().count().max(1));
        (1..=lines)
            .map(|n| {
                let class = if Some(n as u32) == bad { "bad" } else { "" };
                view! { <span class=class>{n}</span> }
            })
            .collect_view()
    };
    let textarea = NodeRef::<leptos::html::Textarea>::new();
    let gutter_ref = NodeRef::<leptos::html::Div>::new();
    let sync_scroll = move |_| {
        if let (Some(t), Some(g)) = (textarea.get(), gutter_ref.get()) {
            g.set_scroll_top(t.scroll_top());
        }
    };
    view! {
        <div class="heading">
            <h1>"Access policy"</h1>
            {move || acl.get().ready().map(|a| view! {
                <span class="muted" id="acl-version">{format!("version {} · {} rules · {} tests · {}", a.version, a.rules, a.tests, a.updated_by.clone().unwrap_or_else(|| "default: deny everything".into()))}</span>
            })}
        </div>
        {status_of(acl, "the policy")}
        <div class="editor">
            <div class="gutter" node_ref=gutter_ref aria-hidden="true">{gutter}</div>
            <textarea id="acl-document" node_ref=textarea spellcheck="false" rows="24"
                prop:value=move || draft.get()
                on:scroll=sync_scroll
                on:input=move |ev| { draft.set(event_target_value(&ev)); problem.set(None); outcome.set(None); } />
        </div>
        <div class="actions">
            <button id="acl-validate" disabled=move || busy.get() on:click=move |_| submit(false)>"Validate"</button>
            <button id="acl-save" class="primary" disabled=move || busy.get() || !ctx.admin() on:click=move |_| submit(true)>"Save"</button>
            <button disabled=move || busy.get() on:click=move |_| reload.update(|r| *r += 1)>"Discard changes"</button>
        </div>
        {move || problem.get().map(|e| view! { <div id="acl-error">{error_box(&e)}</div> })}
        {move || outcome.get().map(|o| view! { <p class="ok" id="acl-outcome">{o}</p> })}
        <Explain draft=draft/>
        <section class="card">
            <h2>"History"</h2>
            {status_of(history, "the history")}
            {move || history.get().ready().map(|list| {
                let rows = list.iter().rev().map(|v| view! {
                    <tr><td>{v.version}</td><td>{v.updated_at.clone()}</td><td>{v.updated_by.clone()}</td><td>{v.rules}</td><td>{v.tests}</td><td><code>{v.digest.chars().take(12).collect::<String>()}</code></td></tr>
                }).collect_view();
                view! { <div class="scroll"><table><thead><tr><th>"Version"</th><th>"Set"</th><th>"By"</th><th>"Rules"</th><th>"Tests"</th><th>"Digest"</th></tr></thead><tbody>{rows}</tbody></table></div> }
            })}
        </section>
    }
}

#[component]
fn Explain(draft: RwSignal<String>) -> impl IntoView {
    let ctx = ctx();
    let src = RwSignal::new(String::new());
    let dst = RwSignal::new(String::new());
    let port = RwSignal::new("443".to_owned());
    let proto = RwSignal::new("tcp".to_owned());
    let use_draft = RwSignal::new(false);
    let answer = RwSignal::new(None::<Result<AclDecision, ApiError>>);
    let explain = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let body = ExplainAcl {
            src: src.get_untracked(),
            dst: dst.get_untracked(),
            port: port.get_untracked().trim().parse().unwrap_or(0),
            proto: Some(proto.get_untracked()),
            document: use_draft.get_untracked().then(|| draft.get_untracked()),
        };
        leptos::task::spawn_local(async move {
            answer.set(Some(
                http::send("POST", &ctx.mesh_path("/acl/explain"), &body).await,
            ));
        });
    };
    view! {
        <section class="card">
            <h2>"Explain a flow"</h2>
            <form class="explain" on:submit=explain>
                <input id="explain-src" placeholder="from: host, id or tag:robot" on:input=move |ev| src.set(event_target_value(&ev)) />
                <input id="explain-dst" placeholder="to: host, id or class:server" on:input=move |ev| dst.set(event_target_value(&ev)) />
                <input id="explain-port" class="port" prop:value=move || port.get() on:input=move |ev| port.set(event_target_value(&ev)) />
                <select on:change=move |ev| proto.set(event_target_value(&ev))>
                    <option value="tcp">"tcp"</option><option value="udp">"udp"</option><option value="icmp">"icmp"</option>
                </select>
                <label><input type="checkbox" on:change=move |ev| use_draft.set(event_target_checked(&ev)) />" under the draft"</label>
                <button type="submit">"Explain"</button>
            </form>
            {move || answer.get().map(|a| match a {
                Err(e) => error_box(&e).into_any(),
                Ok(d) => {
                    let verdict = if d.allowed { "ALLOW" } else { "DENY" };
                    let rows = d.considered.iter().map(|c| {
                        let mark = |b: bool| if b { "✓" } else { "·" };
                        view! { <tr><td>{c.rule.index}</td><td>{c.summary.clone()}</td><td>{mark(c.src_matched)}</td><td>{mark(c.dst_matched)}</td><td>{mark(c.port_matched)}</td></tr> }
                    }).collect_view();
                    view! {
                        <p id="explain-verdict" class=if d.allowed { "ok" } else { "error" }><strong>{verdict}</strong>" "{d.reason.clone()}</p>
                        <div class="scroll"><table><thead><tr><th>"#"</th><th>"Rule"</th><th>"From"</th><th>"To"</th><th>"Port"</th></tr></thead><tbody>{rows}</tbody></table></div>
                    }.into_any()
                }
            })}
        </section>
    }
}
