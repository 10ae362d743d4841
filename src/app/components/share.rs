//! Share a page: the Web Share sheet on phones, copy-the-link elsewhere.

use leptos::prelude::*;

#[component]
pub fn ShareButtons(title: String, url: String) -> impl IntoView {
    let said = RwSignal::new("");
    let (t, u) = (title.clone(), url.clone());
    view! {
        <div class="share">
            <input class="share-url" readonly value=url.clone() aria-label="Link to this page" data-testid="share-url"/>
            <button type="button" class="button" on:click=move |_| {
                #[cfg(feature = "hydrate")]
                said.set(crate::app::web::browser::copy(&u));
                #[cfg(not(feature = "hydrate"))]
                let _ = &u;
            }>"Copy link"</button>
            <button type="button" class="button" on:click=move |_| {
                #[cfg(feature = "hydrate")]
                said.set(crate::app::web::browser::share(&t, &url));
                #[cfg(not(feature = "hydrate"))]
                let _ = (&t, &url);
            }>"Share…"</button>
            <span class="muted" role="status">{move || said.get()}</span>
        </div>
    }
}
