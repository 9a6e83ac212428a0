//! The console's pages, one module per domain, registered in [`PAGES`], and what they share:
//! loading data with a visible state.

pub(crate) mod acl;
pub(crate) mod audit;
pub(crate) mod node;
pub(crate) mod nodes;
pub(crate) mod overview;
pub(crate) mod pending;
pub(crate) mod topology;

use leptos::prelude::*;
use leptos::tachys::view::any_view::AnyView;
use serde::de::DeserializeOwned;

use crate::http::{self, ApiError};

/// One page of the console: where it lives, its tab in the navigation, and how it renders.
pub(crate) struct Page {
    /// Its route (`/` for the overview, `/nodes`, …).
    pub(crate) route: &'static str,
    /// Its tab's label (every page has one today; a page reached only by links would not).
    pub(crate) label: &'static str,
    /// Renders it for the rest of the route after its first segment (`None`: no such page).
    pub(crate) render: fn(&[&str]) -> Option<AnyView>,
}

/// Every page of the console, in navigation order: the registration list of this layer (a
/// new domain adds its module above and one entry here).
pub(crate) const PAGES: &[Page] = &[
    Page {
        route: "/",
        label: "Overview",
        render: |rest| {
            rest.is_empty()
                .then(|| view! { <overview::Overview/> }.into_any())
        },
    },
    Page {
        route: "/nodes",
        label: "Nodes",
        render: |rest| match rest {
            [] => Some(view! { <nodes::Nodes/> }.into_any()),
            [id] => {
                let id = (*id).to_owned();
                Some(view! { <node::NodeDetail id=id/> }.into_any())
            }
            _ => None,
        },
    },
    Page {
        route: "/pending",
        label: "Pending",
        render: |rest| {
            rest.is_empty()
                .then(|| view! { <pending::Pending/> }.into_any())
        },
    },
    Page {
        route: "/topology",
        label: "Topology",
        render: |rest| {
            rest.is_empty()
                .then(|| view! { <topology::TopologyPage/> }.into_any())
        },
    },
    Page {
        route: "/acl",
        label: "ACL",
        render: |rest| rest.is_empty().then(|| view! { <acl::Acl/> }.into_any()),
    },
    Page {
        route: "/audit",
        label: "Audit",
        render: |rest| {
            rest.is_empty()
                .then(|| view! { <audit::Audit/> }.into_any())
        },
    },
];

/// The page a route shows (`#/nodes/<id>` → the node's page), if any.
pub(crate) fn render(route: &str) -> Option<AnyView> {
    let parts: Vec<&str> = route.trim_matches('/').split('/').collect();
    let (first, rest) = parts.split_first()?;
    // `#/overview` is the overview too, and `#/` splits into one empty segment.
    let first = if *first == "overview" { "" } else { *first };
    let rest = if rest == [""] { &[][..] } else { rest };
    PAGES
        .iter()
        .find(|page| page.route.trim_start_matches('/') == first)
        .and_then(|page| (page.render)(rest))
}

/// Data a page shows, as it arrives.
#[derive(Clone, Debug)]
pub(crate) enum Load<T> {
    /// Asked for, no answer yet.
    Loading,
    /// Here.
    Ready(T),
    /// The call failed.
    Failed(ApiError),
}

impl<T> Load<T> {
    /// The data, if here.
    pub(crate) fn ready(&self) -> Option<&T> {
        match self {
            Self::Ready(t) => Some(t),
            _ => None,
        }
    }
}

/// A signal filled from `GET path()` now and each time `reload` is bumped. A reload keeps
/// showing the previous data until the new answer is in (no flicker on live updates), and
/// an answer that arrives after a newer one is dropped.
pub(crate) fn fetch<T>(
    path: impl Fn() -> String + 'static,
    reload: RwSignal<u64>,
) -> RwSignal<Load<T>>
where
    T: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let state = RwSignal::new(Load::Loading);
    let asked = StoredValue::new(0u64);
    Effect::new(move |_| {
        reload.track();
        let path = path();
        let generation = asked.get_value() + 1;
        asked.set_value(generation);
        leptos::task::spawn_local(async move {
            let answer = http::get::<T>(&path).await;
            // The page may be gone, or a newer request under way: then this answer is stale.
            if asked.try_get_value() != Some(generation) {
                return;
            }
            match answer {
                Ok(data) => state.set(Load::Ready(data)),
                Err(e) => state.set(Load::Failed(e)),
            }
        });
    });
    state
}

/// The loading line or the error box of a [`Load`], or nothing when ready.
pub(crate) fn status_of<T: Clone + Send + Sync + 'static>(
    state: RwSignal<Load<T>>,
    what: &'static str,
) -> impl IntoView {
    move || match state.get() {
        Load::Loading => {
            Some(view! { <p class="loading">{format!("Loading {what}…")}</p> }.into_any())
        }
        Load::Failed(e) => Some(error_box(&e).into_any()),
        Load::Ready(_) => None,
    }
}

/// An error as the console shows it.
pub(crate) fn error_box(e: &ApiError) -> impl IntoView + use<> {
    let code = e.code.clone();
    view! { <p class="error" role="alert">{e.to_string()}<span class="code">{code}</span></p> }
}

/// A node state as a coloured badge.
pub(crate) fn state_badge(state: x0t_types::NodeState) -> impl IntoView {
    view! { <span class=format!("badge {}", state.name())>{state.name().replace('_', " ")}</span> }
}
