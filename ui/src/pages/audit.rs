//! Audit: the mesh's hash-chained, signed audit log as a table, exported as CSV or JSON
//! (the formats `x0t audit verify --file` checks offline), and verified by the anchor.

use leptos::prelude::*;
use x0t_types::api::{AuditExport, AuditVerification};

use super::{error_box, fetch, status_of};
use crate::app::ctx;
use crate::format;
use crate::http::{self, ApiError};

/// Rows drawn at most (newest first); the export has them all.
const MAX_ROWS: usize = 500;

/// The audit page.
#[component]
pub(crate) fn Audit() -> impl IntoView {
    let ctx = ctx();
    let reload = RwSignal::new(0u64);
    let log = fetch::<AuditExport>(
        move || ctx.mesh_path("/audit-logs/export?format=json"),
        reload,
    );
    let text = RwSignal::new(String::new());
    let verification = RwSignal::new(None::<Result<AuditVerification, ApiError>>);
    let failed = RwSignal::new(None::<ApiError>);
    let export = move |format: &'static str| {
        leptos::task::spawn_local(async move {
            let path = ctx.mesh_path(&format!("/audit-logs/export?format={format}"));
            let mesh = ctx.mesh.get_untracked();
            let result = match http::get_text(&path).await {
                Ok(body) => {
                    let mime = if format == "csv" {
                        "text/csv"
                    } else {
                        "application/json"
                    };
                    http::download(&format!("audit-{mesh}.{format}"), mime, &body)
                }
                Err(e) => Err(e),
            };
            failed.set(result.err());
        });
    };
    let verify = move |_| {
        verification.set(None);
        leptos::task::spawn_local(async move {
            verification.set(Some(http::get(&ctx.mesh_path("/audit-logs/verify")).await));
        });
    };
    view! {
        <div class="heading">
            <h1>"Audit log"</h1>
            <div class="actions">
                <button id="audit-verify" on:click=verify>"Verify chain"</button>
                <button id="audit-csv" on:click=move |_| export("csv")>"Export CSV"</button>
                <button id="audit-json" on:click=move |_| export("json")>"Export JSON"</button>
                <button on:click=move |_| reload.update(|r| *r += 1)>"Refresh"</button>
            </div>
        </div>
        {move || failed.get().map(|e| error_box(&e))}
        {move || verification.get().map(|v| match v {
            Ok(v) if v.ok => view! { <p class="ok" id="audit-verdict">{format!("Chain verified: {} entries, every signature and hash link good. Head {}", v.entries, &v.head_hash[..v.head_hash.len().min(16)])}</p> }.into_any(),
            Ok(v) => view! { <p class="error" id="audit-verdict">{format!("Chain BROKEN at entry {}: {}", v.first_bad.as_ref().map_or(0, |b| b.index), v.first_bad.map(|b| b.reason).unwrap_or_default())}</p> }.into_any(),
            Err(e) => error_box(&e).into_any(),
        })}
        <div class="filters">
            <input type="search" placeholder="Filter by actor, action, subject…" on:input=move |ev| text.set(event_target_value(&ev).to_lowercase()) />
        </div>
        {status_of(log, "the audit log")}
        {move || log.get().ready().map(|export| {
            let needle = text.get();
            let shown: Vec<_> = export.entries.iter().rev()
                .filter(|e| needle.is_empty() || format!("{} {} {} {}", e.actor, e.action, e.subject, e.details).to_lowercase().contains(&needle))
                .take(MAX_ROWS)
                .map(|e| view! {
                    <tr class="audit-row">
                        <td>{e.seq}</td>
                        <td>{format::utc(e.at_ms)}</td>
                        <td><code>{e.actor.clone()}</code></td>
                        <td><strong>{e.action.clone()}</strong></td>
                        <td><code>{e.subject.chars().take(24).collect::<String>()}</code></td>
                        <td>{e.details.clone()}</td>
                        <td><code title=e.hash.clone()>{e.hash.chars().take(10).collect::<String>()}</code></td>
                    </tr>
                })
                .collect();
            view! {
                <p class="muted">{format!("{} entries, head {}", export.head_len, export.head_hash.chars().take(16).collect::<String>())}</p>
                <div class="scroll"><table class="audit">
                    <thead><tr><th>"#"</th><th>"When"</th><th>"Who"</th><th>"Action"</th><th>"Subject"</th><th>"Details"</th><th>"Hash"</th></tr></thead>
                    <tbody>{shown}</tbody>
                </table></div>
            }
        })}
    }
}
