//! `/p/{slug}`: a playlist. Everyone can play it (play all advances by itself); its owner
//! can rename it, reorder and remove songs.

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_params_map;

use super::not_found::NotFound;
use crate::api::playlists::{get_playlist, RemoveFromPlaylist, RenamePlaylist, ReorderPlaylist};
use crate::api::types::{PlaylistView, Status};
use crate::app::components::player::Player;
use crate::app::components::share::ShareButtons;
use crate::app::components::song_card::SongCard;

#[component]
pub fn PlaylistPage() -> impl IntoView {
    let params = use_params_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    let list = Resource::new(slug, get_playlist);
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match list.await {
                    Ok(Some(p)) => view! { <PlaylistBody list=p refetch=Callback::new(move |_| list.refetch())/> }.into_any(),
                    Ok(None) => view! { <NotFound/> }.into_any(),
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn PlaylistBody(list: PlaylistView, refetch: Callback<()>) -> impl IntoView {
    let rename = ServerAction::<RenamePlaylist>::new();
    let reorder = ServerAction::<ReorderPlaylist>::new();
    let remove = ServerAction::<RemoveFromPlaylist>::new();
    // Any finished edit reloads the list from the server.
    Effect::new(move |_| {
        let done = (
            rename.version().get(),
            reorder.version().get(),
            remove.version().get(),
        );
        if done != (0, 0, 0) {
            refetch.run(());
        }
    });
    let title = RwSignal::new(list.title.clone());
    let playable: Vec<_> = list
        .songs
        .iter()
        .filter(|s| s.progress.status == Status::Ready)
        .cloned()
        .collect();
    let current = RwSignal::new(None::<usize>);
    let n = playable.len();
    let order: Vec<String> = list.songs.iter().map(|s| s.slug.clone()).collect();
    let slug = list.slug.clone();
    let is_owner = list.is_owner;
    let error = move || {
        [
            rename.value().get(),
            reorder.value().get(),
            remove.value().get(),
        ]
        .into_iter()
        .flatten()
        .find_map(|r| r.err())
        .map(|e| view! { <p class="error" data-testid="edit-error">{e.to_string()}</p> })
    };
    let share_url = format!("{}/p/{}", list.base_url, list.slug);
    view! {
        <Title text=list.title.clone()/>
        <Meta property="og:title" content=list.title.clone()/>
        <Meta property="og:description" content=format!("A Snapsong playlist: {} songs", list.songs.len())/>
        <Meta property="og:type" content="music.playlist"/>
        <section class="playlist" data-testid="playlist" data-owner=is_owner.to_string()>
            {if is_owner {
                let slug = slug.clone();
                view! {
                    <form class="rename" on:submit=move |ev| { ev.prevent_default(); rename.dispatch(RenamePlaylist { slug: slug.clone(), title: title.get_untracked() }); }>
                        <input type="text" class="title-input" maxlength="80" aria-label="Playlist name" data-testid="playlist-title"
                            prop:value=move || title.get() on:input=move |ev| title.set(event_target_value(&ev))/>
                        <button type="submit" class="button" data-testid="rename">"Rename"</button>
                    </form>
                }.into_any()
            } else {
                view! { <h1 data-testid="playlist-title">{list.title.clone()}</h1> }.into_any()
            }}
            {error}
            <div class="play-all">
                <button type="button" class="button primary" data-testid="play-all" prop:disabled=n == 0
                    on:click=move |_| current.set(Some(0))>"Play all"</button>
                <span class="muted">{format!("{} songs", list.songs.len())}</span>
            </div>
            {move || current.get().and_then(|i| playable.get(i).cloned().map(|song| {
                let next = Callback::new(move |_| current.set(if i + 1 < n { Some(i + 1) } else { None }));
                view! {
                    <div class="now-playing" data-testid="now-playing" data-index=i.to_string()>
                        <p class="muted">{format!("Now playing {} of {n}: {}", i + 1, song.title)}</p>
                        <Player song=song base_url=String::new() on_ended=next autoplay=true/>
                    </div>
                }
            }))}
            <ol class="playlist-songs">
                {list.songs.iter().enumerate().map(|(i, s)| {
                    let (order, slug, song) = (order.clone(), slug.clone(), s.slug.clone());
                    let moved = move |by: isize| {
                        let mut o = order.clone();
                        let j = i as isize + by;
                        if j >= 0 && (j as usize) < o.len() {
                            o.swap(i, j as usize);
                            Some(o)
                        } else {
                            None
                        }
                    };
                    let (up, down) = (moved(-1), moved(1));
                    let (slug_u, slug_d, slug_r) = (slug.clone(), slug.clone(), slug);
                    view! {
                        <li data-testid="playlist-song" data-slug=s.slug.clone()>
                            <SongCard song=s.clone()/>
                            {is_owner.then(|| view! {
                                <span class="edit-buttons">
                                    <button type="button" class="round small" aria-label="Move up" data-testid="move-up" prop:disabled=up.is_none()
                                        on:click=move |_| if let Some(o) = up.clone() { reorder.dispatch(ReorderPlaylist { slug: slug_u.clone(), songs: o }); }>"↑"</button>
                                    <button type="button" class="round small" aria-label="Move down" data-testid="move-down" prop:disabled=down.is_none()
                                        on:click=move |_| if let Some(o) = down.clone() { reorder.dispatch(ReorderPlaylist { slug: slug_d.clone(), songs: o }); }>"↓"</button>
                                    <button type="button" class="round small" aria-label="Remove" data-testid="remove"
                                        on:click=move |_| { remove.dispatch(RemoveFromPlaylist { slug: slug_r.clone(), song: song.clone() }); }>"✕"</button>
                                </span>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ol>
            <ShareButtons title=list.title.clone() url=share_url/>
        </section>
    }
}
