//! The x0t browser console: a leptos client-side app, compiled to wasm32 by `scripts/build-ui`,
//! embedded in the `x0t` binary and served at `/` by every node (anchors answer its API calls
//! themselves; a member's agent forwards them to an anchor). It talks JSON over HTTP to the
//! origin it was loaded from, with the admin's API key in an `Authorization` header.
//!
//! Built natively, the crate is only its pure parts (layout, event-stream parsing, filters,
//! formatting), which the workspace's tests cover; the app itself exists for wasm32 only.

pub mod filter;
pub mod format;
pub mod graph;
pub mod layout;
pub mod sse;

// `#[component]` gives each component's generated props struct `pub` visibility.
#[cfg(target_arch = "wasm32")]
#[allow(unreachable_pub)]
mod app;
#[cfg(target_arch = "wasm32")]
mod http;
#[cfg(target_arch = "wasm32")]
#[allow(unreachable_pub)]
mod pages;

/// Entry point, called by the page's module script once the wasm is instantiated.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    leptos::mount::mount_to_body(app::App);
}
