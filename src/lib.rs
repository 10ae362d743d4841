#![recursion_limit = "256"]
//! Snapsong: photo → caption/mood → prompt → MusicGen → song.
//!
//! One crate, two builds: `ssr` (server, CLI, models) and `hydrate` (the browser bundle).
pub mod api;
pub mod app;
pub mod vocabulary;

#[cfg(feature = "ssr")]
pub mod server;

#[cfg(any(feature = "ssr", feature = "intake"))]
pub mod ml;

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
