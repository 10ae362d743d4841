//! The Leptos UI, rendered on the server (ssr) and hydrated in the browser (hydrate):
//! the shell, the routes and the site chrome. Pages live in `pages/`, reusable pieces
//! (player, progress, share) in `components/`.

pub mod components;
pub mod pages;
pub mod web;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, SsrMode};

use pages::{LibraryPage, NotFound, PlaylistPage, SongPage, UploadPage};

/// The HTML document around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// "Song title · Snapsong". On the server it is HTML-escaped: leptos_meta 0.8 writes the
/// SSR `<title>` text as it is, so a song called `</title><script>…` would otherwise break
/// out of it. In the browser it becomes `document.title`, which is plain text.
fn page_title(t: String) -> String {
    let full = if t.is_empty() {
        "Snapsong".to_string()
    } else {
        format!("{t} · Snapsong")
    };
    #[cfg(feature = "ssr")]
    let full = escape_html(&full);
    full
}

#[cfg(feature = "ssr")]
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/snapsong.css"/>
        <Title formatter=page_title/>
        <Router>
            <header class="site-header">
                <A href="/" attr:class="brand">
                    <span class="brand-mark" aria-hidden="true">"♪"</span>
                    "Snapsong"
                </A>
                <nav>
                    <A href="/">"New song"</A>
                    <A href="/library">"My library"</A>
                </nav>
            </header>
            <main class="page">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=UploadPage/>
                    <Route path=path!("/s/:slug") view=SongPage ssr=SsrMode::Async/>
                    <Route path=path!("/p/:slug") view=PlaylistPage ssr=SsrMode::Async/>
                    <Route path=path!("/library") view=LibraryPage/>
                </Routes>
            </main>
            <footer class="site-footer">
                "Made on this host with BLIP, CLIP and MusicGen. MusicGen weights: CC-BY-NC 4.0."
            </footer>
        </Router>
    }
}
