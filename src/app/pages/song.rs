//! `/s/{slug}`: the song's page. Server-rendered with share-card tags; shows the live
//! "making it" state until the song is ready, then the player, "how it was made", sharing
//! and playlists.

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::use_params_map;

use super::not_found::NotFound;
use crate::api::playlists::{get_library, AddToPlaylist, CreatePlaylist};
use crate::api::songs::{get_song, ExtendSong, RemakeSong, SongPage as Page};
use crate::api::types::{Status, MAX_DURATION_S};
use crate::app::components::making::Making;
use crate::app::components::player::Player;
use crate::app::components::share::ShareButtons;

#[component]
pub fn SongPage() -> impl IntoView {
    let params = use_params_map();
    let slug = move || params.read().get("slug").unwrap_or_default();
    // The making card's live audio, kept across the refetch when the song becomes ready,
    // for the player to take over.
    #[cfg(feature = "hydrate")]
    {
        let handoff = crate::app::web::live_audio::LiveHandoff(StoredValue::new_local(None));
        provide_context(handoff);
        on_cleanup(move || {
            if let Some(s) = handoff.0.get_value() {
                s.borrow_mut().close();
            }
        });
    }
    let page = Resource::new(slug, get_song);
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(Some(p)) => view! { <SongBody page=p refetch=Callback::new(move |_| page.refetch())/> }.into_any(),
                    Ok(None) => view! { <NotFound/> }.into_any(),
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn SongBody(page: Page, refetch: Callback<()>) -> impl IntoView {
    let song = page.song.clone();
    let base = page.base_url.clone();
    let url = format!("{base}{}", song.page_path());
    let description = song
        .prompt
        .clone()
        .or_else(|| song.caption.clone())
        .unwrap_or_else(|| "An original song made from a photo with Snapsong.".into());
    let ready = song.progress.status == Status::Ready;
    let image = song.share_image_path().map(|p| format!("{base}{p}"));
    let audio = ready.then(|| format!("{base}{}", song.mp3_path()));
    view! {
        <Title text=song.title.clone()/>
        <Meta name="description" content=description.clone()/>
        <Meta property="og:type" content="music.song"/>
        <Meta property="og:site_name" content="Snapsong"/>
        <Meta property="og:title" content=song.title.clone()/>
        <Meta property="og:description" content=description.clone()/>
        <Meta property="og:url" content=url.clone()/>
        {image.clone().map(|i| view! {
            <Meta property="og:image" content=i.clone()/>
            <Meta property="og:image:width" content="1200"/>
            <Meta property="og:image:height" content="630"/>
            <Meta name="twitter:image" content=i/>
        })}
        {audio.map(|a| view! {
            <Meta property="og:audio" content=a/>
            <Meta property="og:audio:type" content="audio/mpeg"/>
        })}
        <Meta name="twitter:card" content=if image.is_some() { "summary_large_image" } else { "summary" }/>
        <Meta name="twitter:title" content=song.title.clone()/>
        <Meta name="twitter:description" content=description/>

        <article class="song">
            <h1 data-testid="song-title">{song.title.clone()}</h1>
            {song.noise.then(|| view! {
                <p class="notice" role="note">"Demo mode: this server uses tiny random models, so the audio is noise."</p>
            })}
            {if ready {
                view! { <Player song=song.clone() base_url=base.clone()/> }.into_any()
            } else {
                view! { <Making song=song.clone() on_ready=refetch/> }.into_any()
            }}
            <ShareButtons title=song.title.clone() url=url/>
            <HowItWasMade page=page.clone()/>
            {ready.then(|| view! { <AddToPlaylist song_slug=song.slug.clone()/> })}
        </article>
    }
}

#[component]
fn HowItWasMade(page: Page) -> impl IntoView {
    let song = page.song;
    let remake = ServerAction::<RemakeSong>::new();
    let extend = ServerAction::<ExtendSong>::new();
    let edited = RwSignal::new(song.prompt.clone().unwrap_or_default());
    let editing = RwSignal::new(false);
    // An extension: at least 5 s more, up to the longest song.
    let had = song.duration_s.round() as u32;
    let longest = MAX_DURATION_S as u32;
    let extended_to = RwSignal::new((had * 2).clamp(had + 5, longest));
    let extensible = song.progress.status == Status::Ready && had + 5 <= longest;
    // The new song's page, navigated to in the app (no page reload).
    let navigate = leptos_router::hooks::use_navigate();
    Effect::new(move |_| {
        let made = remake.value().get().or_else(|| extend.value().get());
        if let Some(Ok(slug)) = made {
            navigate(&format!("/s/{slug}"), Default::default());
        }
    });
    let slug3 = song.slug.clone();
    let slug = song.slug.clone();
    let slug2 = song.slug.clone();
    let o = &song.options;
    let choices: Vec<(&str, String)> = [
        ("Genre", o.genre.clone()),
        ("Mood", o.mood.clone()),
        ("Tempo", o.bpm.map(|b| format!("{b} BPM"))),
        (
            "Instruments",
            (!o.instruments.is_empty()).then(|| o.instruments.join(", ")),
        ),
        (
            if o.long_text {
                "Your text"
            } else {
                "Your words"
            },
            o.text.as_deref().map(|t| shortened(t, WORDS_SHOWN)),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.unwrap_or_else(|| "auto".into())))
    .collect();
    view! {
        <details class="card how" open>
            <summary><h2>"How it was made"</h2></summary>
            <dl>
                {song.caption.clone().map(|c| view! { <dt>"The photo shows"</dt><dd data-testid="caption">{c}</dd> })}
                <dt>"Prompt"</dt>
                <dd data-testid="prompt">{song.prompt.clone().unwrap_or_else(|| "not composed yet".into())}</dd>
                <dt>"Your choices"</dt>
                <dd><ul class="choices">{choices.into_iter().map(|(k, v)| view! { <li><span class="muted">{k}": "</span>{v}</li> }).collect_view()}</ul></dd>
                <dt>"Seed"</dt><dd>{song.seed}</dd>
                {o.extends.clone().map(|s| view! {
                    <dt>"Continues"</dt>
                    <dd><a href=format!("/s/{s}") data-testid="extends">"the song it extends"</a></dd>
                })}
            </dl>
            {(!song.parts.is_empty()).then(|| view! {
                <table class="parts">
                    <thead><tr><th>"Part"</th><th>"Value"</th><th>"From"</th></tr></thead>
                    <tbody>
                        {song.parts.iter().map(|p| view! {
                            <tr data-source=p.source.clone()>
                                <td>{p.what.clone()}</td>
                                <td>{p.value.clone()}</td>
                                <td>{p.source.clone()}{p.because.clone().map(|b| view! { <span class="because">{b}</span> })}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            <div class="remake">
                <button type="button" class="button" data-testid="another"
                    prop:disabled=move || remake.pending().get()
                    on:click=move |_| { remake.dispatch(RemakeSong { slug: slug.clone(), prompt: None }); }>
                    "Make another like this"
                </button>
                <button type="button" class="button" on:click=move |_| editing.update(|e| *e = !*e)>"Edit the prompt"</button>
            </div>
            <Show when=move || editing.get()>
                <div class="edit-prompt">
                    <textarea rows="3" maxlength=crate::api::types::MAX_PROMPT_CHARS prop:value=move || edited.get()
                        on:input=move |ev| edited.set(event_target_value(&ev))></textarea>
                    <button type="button" class="button primary"
                        on:click={
                            let slug = slug2.clone();
                            move |_| { remake.dispatch(RemakeSong { slug: slug.clone(), prompt: Some(edited.get_untracked()) }); }
                        }>"Regenerate with this prompt"</button>
                </div>
            </Show>
            {extensible.then(|| view! {
                <div class="extend">
                    <label>{move || format!("Extend to {} s", extended_to.get())}
                        <input type="range" min=had + 5 max=longest step="1" data-testid="extend-length"
                            prop:value=move || extended_to.get().to_string()
                            on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse() { extended_to.set(v) } }/>
                    </label>
                    <button type="button" class="button" data-testid="extend"
                        prop:disabled=move || extend.pending().get()
                        on:click=move |_| { extend.dispatch(ExtendSong { slug: slug3.clone(), duration: extended_to.get_untracked() as f32 }); }>
                        "Extend this song"
                    </button>
                </div>
            })}
            {move || remake.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error">{e.to_string()}</p> })}
            {move || extend.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error">{e.to_string()}</p> })}
        </details>
    }
}

/// Add this song to one of my playlists, or to a new one.
#[component]
fn AddToPlaylist(song_slug: String) -> impl IntoView {
    let library = Resource::new(|| (), |_| get_library());
    let add = ServerAction::<AddToPlaylist>::new();
    let create = ServerAction::<CreatePlaylist>::new();
    let chosen = RwSignal::new(String::new());
    let new_title = RwSignal::new(String::new());
    let (s1, s2) = (song_slug.clone(), song_slug);
    view! {
        <section class="card add-to-playlist">
            <h2>"Add to a playlist"</h2>
            <Suspense fallback=|| ()>
                {move || { let s1 = s1.clone(); Suspend::new(async move {
                    let lists = library.await.map(|l| l.playlists).unwrap_or_default();
                    (!lists.is_empty()).then(|| {
                        view! {
                            <div class="row">
                                <select data-testid="playlist-select" on:change=move |ev| chosen.set(event_target_value(&ev))>
                                    <option value="">"Choose a playlist"</option>
                                    {lists.into_iter().map(|p| view! { <option value=p.slug.clone()>{p.title.clone()}</option> }).collect_view()}
                                </select>
                                <button type="button" class="button" data-testid="add-to-playlist"
                                    on:click=move |_| {
                                        let p = chosen.get_untracked();
                                        if !p.is_empty() { add.dispatch(AddToPlaylist { slug: p, song: s1.clone() }); }
                                    }>"Add"</button>
                            </div>
                        }
                    })
                })}}
            </Suspense>
            <div class="row">
                <input type="text" maxlength="80" placeholder="New playlist name" data-testid="new-playlist"
                    prop:value=move || new_title.get() on:input=move |ev| new_title.set(event_target_value(&ev))/>
                <button type="button" class="button" data-testid="create-playlist"
                    on:click=move |_| { create.dispatch(CreatePlaylist { title: new_title.get_untracked(), first_song: Some(s2.clone()) }); }>
                    "Create with this song"
                </button>
            </div>
            {move || add.value().get().map(|r| match r {
                Ok(()) => view! { <p class="ok" data-testid="added">"Added. "<a href=format!("/p/{}", chosen.get_untracked())>"Open the playlist"</a></p> }.into_any(),
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
            })}
            {move || create.value().get().map(|r| match r {
                Ok(slug) => view! { <p class="ok" data-testid="created">"Playlist created. "<a href=format!("/p/{slug}")>"Open it"</a></p> }.into_any(),
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
            })}
        </section>
    }
}

/// How much of a long text "your choices" shows.
const WORDS_SHOWN: usize = 240;

/// `text` cut to `max` characters at a word, with an ellipsis when cut.
fn shortened(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max).collect();
    if let Some(space) = cut.rfind(' ') {
        cut.truncate(space);
    }
    format!("{cut}…")
}
