//! The Leptos UI, rendered on the server (ssr) and hydrated in the browser (hydrate).
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Title};

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Snapsong"/>
        <main>
            <h1>"Snapsong"</h1>
            <p>"Turn a photo into a song."</p>
        </main>
    }
}
