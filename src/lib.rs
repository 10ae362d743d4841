#![recursion_limit = "256"]
//! Snapsong: photo → caption/mood → prompt → MusicGen → song.
//!
//! One crate, two builds: `ssr` (server, CLI, models) and `hydrate` (the browser bundle).
//!
//! The data path, folder by folder: `app` (pages in the browser) → `api` (shared types and
//! server functions) → `server` (HTTP, database, storage, the worker) → `photo` + `prompt`
//! (intake, palette, composer) and `ml` (the models) → `server::storage` → back to `app`'s
//! player. `cli` is the same pipeline from a terminal.
pub mod api;
pub mod app;
#[cfg(feature = "intake")]
pub mod photo;
pub mod prompt;

#[cfg(feature = "ssr")]
mod alloc;
#[cfg(feature = "ssr")]
pub mod cli;
#[cfg(feature = "ssr")]
pub mod ml;
#[cfg(feature = "ssr")]
pub mod server;

/// Browser entry point: hydrate the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // A marker for tests and styles: the page is interactive from here on.
    if let Some(body) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.body())
    {
        let _ = body.set_attribute("data-hydrated", "");
    }
}
