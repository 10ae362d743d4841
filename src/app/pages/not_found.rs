use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::components::A;

/// Sets the HTTP status of the server-rendered response (no-op in the browser).
pub fn set_status(code: u16) {
    #[cfg(feature = "ssr")]
    if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(status) = axum::http::StatusCode::from_u16(code) {
            res.set_status(status);
        }
    }
    #[cfg(not(feature = "ssr"))]
    let _ = code;
}

/// The page for a link that leads nowhere (answered with HTTP 404).
#[component]
pub fn NotFound() -> impl IntoView {
    set_status(404);
    view! {
        <Title text="Not found"/>
        <Meta name="robots" content="noindex"/>
        <section class="card empty">
            <h1>"Nothing here"</h1>
            <p>"This link doesn’t lead to a song or a playlist. It may have been mistyped."</p>
            <A href="/" attr:class="button primary">"Make a song"</A>
        </section>
    }
}
