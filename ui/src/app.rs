//! The shell: sign-in, navigation by URL fragment (`#/nodes`, `#/nodes/<id>`…, so any node
//! can serve the console from `/` without knowing its routes), the mesh in view, and the page.

use leptos::prelude::*;
use serde::Deserialize;

use crate::http;
use crate::pages;

/// What the pages share.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    /// The signed-in key's role (`admin`/`viewer`), none when signed out.
    pub(crate) role: RwSignal<Option<String>>,
    /// The mesh in view.
    pub(crate) mesh: RwSignal<String>,
    /// The route (the URL fragment without `#`).
    pub(crate) route: RwSignal<String>,
    /// A note for the whole console (e.g. why the session ended).
    pub(crate) notice: RwSignal<Option<String>>,
}

impl Ctx {
    /// Whether the signed-in key may change things.
    pub(crate) fn admin(&self) -> bool {
        self.role.get().as_deref() == Some("admin")
    }

    /// `/api/v1/meshes/<mesh>` + `rest`.
    pub(crate) fn mesh_path(&self, rest: &str) -> String {
        format!(
            "/api/v1/meshes/{}{rest}",
            http::enc(&self.mesh.get_untracked())
        )
    }
}

thread_local! {
    /// The console's one context, for code running outside a component (answers to calls).
    static CONSOLE: std::cell::Cell<Option<Ctx>> = const { std::cell::Cell::new(None) };
}

/// The context of the page.
pub(crate) fn ctx() -> Ctx {
    use_context::<Ctx>()
        .or_else(|| CONSOLE.with(std::cell::Cell::get))
        .expect("the console's context exists once App runs")
}

/// Goes to `route` (e.g. `/nodes`).
pub(crate) fn go(route: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().set_hash(route);
    }
}

/// Ends the session (the key was refused).
pub(crate) fn signed_out(why: &str) {
    http::store_key(None);
    if let Some(ctx) = CONSOLE.with(std::cell::Cell::get)
        && ctx.role.get_untracked().is_some()
    {
        ctx.notice.set(Some(format!("Signed out: {why}")));
        ctx.role.set(None);
    }
}

fn current_route() -> String {
    let hash = web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default();
    let route = hash.trim_start_matches('#');
    if route.is_empty() {
        "/".to_owned()
    } else {
        route.to_owned()
    }
}

#[derive(Clone, Debug, Deserialize)]
struct SessionView {
    role: String,
}

#[derive(Clone, Debug, Deserialize)]
struct MeshName {
    name: String,
}

/// The whole console.
#[component]
pub(crate) fn App() -> impl IntoView {
    let ctx = Ctx {
        role: RwSignal::new(None),
        mesh: RwSignal::new("default".to_owned()),
        route: RwSignal::new(current_route()),
        notice: RwSignal::new(None),
    };
    provide_context(ctx);
    CONSOLE.with(|c| c.set(Some(ctx)));
    // Only a change between signed in and out swaps the page (not every role update).
    let signed_in = Memo::new(move |_| ctx.role.get().is_some());
    let checking = RwSignal::new(http::stored_key().is_some());
    let _ = window_event_listener(leptos::ev::hashchange, move |_| {
        ctx.route.set(current_route());
    });
    // A key from an earlier load of this tab: check it is still good.
    if checking.get_untracked() {
        leptos::task::spawn_local(async move {
            match http::get::<SessionView>("/api/v1/session").await {
                Ok(session) => ctx.role.set(Some(session.role)),
                Err(e) if e.status == 401 => {}
                Err(e) => ctx.notice.set(Some(e.to_string())),
            }
            checking.set(false);
        });
    }
    view! {
        {move || {
            if checking.get() {
                view! { <p class="loading center">"Checking your session…"</p> }.into_any()
            } else if !signed_in.get() {
                view! { <SignIn/> }.into_any()
            } else {
                view! { <Shell/> }.into_any()
            }
        }}
    }
}

#[component]
fn SignIn() -> impl IntoView {
    let ctx = ctx();
    let key = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = key.get_untracked().trim().to_owned();
        if text.is_empty() {
            error.set(Some("Paste an API key (x0tadm_…)".into()));
            return;
        }
        busy.set(true);
        error.set(None);
        http::store_key(Some(&text));
        leptos::task::spawn_local(async move {
            match http::get::<SessionView>("/api/v1/session").await {
                Ok(session) => {
                    ctx.notice.set(None);
                    ctx.role.set(Some(session.role));
                }
                Err(e) => {
                    http::store_key(None);
                    error.set(Some(if e.status == 401 {
                        "This key was not accepted by the cluster.".into()
                    } else {
                        e.to_string()
                    }));
                }
            }
            busy.set(false);
        });
    };
    view! {
        <main class="signin">
            <form class="card" on:submit=submit>
                <h1><span class="logo">"x0t"</span>" mesh console"</h1>
                {move || ctx.notice.get().map(|n| view! { <p class="notice">{n}</p> })}
                <label for="api-key">"API key"</label>
                <input id="api-key" type="password" autocomplete="off" placeholder="x0tadm_…"
                    prop:value=move || key.get()
                    on:input=move |ev| key.set(event_target_value(&ev)) />
                <p class="hint">"An admin key (" <code>"x0t api-keys create"</code>
                    ", or " <code>"admin.key"</code> " in an anchor's data directory) may approve and change; a viewer key only reads. The key stays in this tab."</p>
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <button id="sign-in" type="submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Signing in…" } else { "Sign in" }}
                </button>
            </form>
        </main>
    }
}

#[component]
fn Shell() -> impl IntoView {
    let ctx = ctx();
    let meshes = RwSignal::new(Vec::<String>::new());
    leptos::task::spawn_local(async move {
        if let Ok(list) = http::get::<Vec<MeshName>>("/api/v1/meshes").await {
            meshes.set(list.into_iter().map(|m| m.name).collect());
        }
    });
    let link = move |route: &'static str, label: &'static str| {
        let active = move || {
            let current = ctx.route.get();
            let first = current.split('/').nth(1).unwrap_or("");
            route.trim_start_matches('/') == first
        };
        view! { <a href=format!("#{route}") class:active=active>{label}</a> }
    };
    let sign_out = move |_| {
        http::store_key(None);
        ctx.notice.set(Some("Signed out.".into()));
        ctx.role.set(None);
    };
    view! {
        <header class="top">
            <a class="logo" href="#/">"x0t"</a>
            <nav>
                {pages::PAGES.iter().map(|page| link(page.route, page.label)).collect_view()}
            </nav>
            <div class="who">
                <select aria-label="mesh" on:change=move |ev| ctx.mesh.set(event_target_value(&ev))>
                    {move || {
                        let mut names = meshes.get();
                        if names.is_empty() { names.push(ctx.mesh.get_untracked()); }
                        names.into_iter().map(|name| {
                            let selected = name == ctx.mesh.get_untracked();
                            view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
                        }).collect_view()
                    }}
                </select>
                <span class="role">{move || ctx.role.get().unwrap_or_default()}</span>
                <button class="link" on:click=sign_out>"Sign out"</button>
            </div>
        </header>
        <main class="page">
            {move || {
                let route = ctx.route.get();
                // Re-render the page when the mesh changes.
                let _ = ctx.mesh.get();
                pages::render(&route).unwrap_or_else(|| {
                    view! { <p class="error">"No such page. "<a href="#/">"Overview"</a></p> }.into_any()
                })
            }}
        </main>
    }
}
