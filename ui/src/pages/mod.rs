//! The console's pages, and what they share: loading data with a visible state.

pub(crate) mod acl;
pub(crate) mod audit;
pub(crate) mod node;
pub(crate) mod nodes;
pub(crate) mod overview;
pub(crate) mod pending;
pub(crate) mod topology;

use leptos::prelude::*;
use serde::de::DeserializeOwned;

use crate::http::{self, ApiError};

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
