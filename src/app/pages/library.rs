use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::api::playlists::get_library;
use crate::app::components::song_card::SongCard;

/// My songs and my playlists (the ones made with this browser's owner cookie).
#[component]
pub fn LibraryPage() -> impl IntoView {
    let library = Resource::new(|| (), |_| get_library());
    view! {
        <Title text="My library"/>
        <h1>"My library"</h1>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match library.await {
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    Ok(lib) => view! {
                        <section class="library-section">
                            <h2>"Playlists"</h2>
                            {if lib.playlists.is_empty() {
                                view! { <p class="muted">"No playlists yet: add a song to one from its page."</p> }.into_any()
                            } else {
                                view! {
                                    <ul class="playlist-list">
                                        {lib.playlists.into_iter().map(|p| view! {
                                            <li>
                                                <A href=format!("/p/{}", p.slug)>{p.title.clone()}</A>
                                                <span class="muted">{format!(" · {} songs", p.songs.len())}</span>
                                            </li>
                                        }).collect_view()}
                                    </ul>
                                }.into_any()
                            }}
                        </section>
                        <section class="library-section">
                            <h2>"Songs"</h2>
                            {if lib.songs.is_empty() {
                                view! {
                                    <p class="muted">"No songs yet. "<A href="/">"Make your first one"</A>"."</p>
                                }.into_any()
                            } else {
                                view! {
                                    <ul class="song-grid">
                                        {lib.songs.into_iter().map(|s| view! { <li><SongCard song=s/></li> }).collect_view()}
                                    </ul>
                                }.into_any()
                            }}
                        </section>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
