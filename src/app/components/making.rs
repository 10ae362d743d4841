//! The "making it" view: live stages and progress pushed from the server (an event
//! stream), queue position, ETA, and a retry when it failed.

use leptos::prelude::*;

use crate::api::songs::RetrySong;
use crate::api::types::{Progress, SongView, Stage, Status};
use crate::app::components::live_listen::LiveListen;

#[component]
pub fn Making(
    song: SongView,
    /// Called when the song becomes ready.
    on_ready: Callback<()>,
) -> impl IntoView {
    let progress = RwSignal::new(song.progress.clone());
    // Bumped to reconnect (after a retry the server's stream has closed).
    let generation = RwSignal::new(0u32);
    #[cfg(feature = "hydrate")]
    {
        let url = format!("/api/songs/{}/events", song.id);
        let source = StoredValue::new_local(None::<web_sys::EventSource>);
        Effect::new(move |_| {
            generation.track();
            if let Some(old) = source.get_value() {
                old.close();
            }
            let s = crate::app::web::browser::follow(&url, move |data| {
                if let Ok(p) = serde_json::from_str::<Progress>(&data) {
                    let ready = p.status == Status::Ready;
                    progress.set(p);
                    if ready {
                        on_ready.run(());
                    }
                }
            });
            source.set_value(s);
        });
        on_cleanup(move || {
            if let Some(s) = source.get_value() {
                s.close();
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = on_ready;

    let retry = ServerAction::<RetrySong>::new();
    let slug = song.slug.clone();
    Effect::new(move |_| {
        if let Some(Ok(())) = retry.value().get() {
            progress.update(|p| {
                p.status = Status::Queued;
                p.stage = Stage::Queued;
                p.error = None;
                p.progress = 0.0;
            });
            generation.update(|g| *g += 1);
        }
    });
    // Songs from words skip the photo stages.
    let stages: Vec<Stage> = Stage::WORK
        .into_iter()
        .filter(|s| song.has_photo || *s >= Stage::Composing)
        .collect();
    let is_owner = song.is_owner;
    let live = Signal::derive(move || progress.with(|p| p.live.clone()));
    let song_id = song.id.clone();
    view! {
        <section class="card making" data-testid="making" aria-live="polite"
            data-status=move || progress.with(|p| p.status.as_str())
            data-stage=move || progress.with(|p| p.stage.as_str())
            data-progress=move || progress.with(|p| format!("{:.3}", p.progress))>
            {move || {
                let p: Progress = progress.get();
                match p.status {
                    Status::Failed => view! {
                        <h2>"That didn’t work"</h2>
                        <p class="error">{p.error.clone().unwrap_or_else(|| "The song could not be made.".into())}</p>
                        {is_owner.then(|| {
                            let slug = slug.clone();
                            view! {
                                <button class="button primary" data-testid="retry"
                                    on:click=move |_| { retry.dispatch(RetrySong { slug: slug.clone() }); }>"Try again"</button>
                            }
                        })}
                        {move || retry.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error">{e.to_string()}</p> })}
                    }.into_any(),
                    _ => view! {
                        <h2>{p.stage.label()}</h2>
                        <progress max="1" value=p.progress class="big-progress"></progress>
                        <p class="muted">
                            {format!("{:.0}%", p.progress * 100.0)}
                            {(p.stage == Stage::Generating && p.total > 0).then(|| format!(" · step {} of {}", p.step, p.total))}
                            {p.eta_s.filter(|_| p.stage == Stage::Generating).map(|s| format!(" · about {} s left", s.ceil() as u64))}
                        </p>
                        {p.queue_position.filter(|n| *n > 0 && p.status == Status::Queued).map(|n| view! {
                            <p class="muted">{if n == 1 { "1 song ahead of yours".to_string() } else { format!("{n} songs ahead of yours") }}</p>
                        })}
                    }.into_any(),
                }
            }}
            <Show when=move || progress.with(|p| p.status == Status::Running)>
                <LiveListen song_id=song_id.clone() live=live/>
            </Show>
            <ol class="stages">
                {stages.into_iter().map(|s| view! {
                    <li class:done=move || progress.with(|p| p.stage > s || p.status == Status::Ready)
                        class:now=move || progress.with(|p| p.stage == s && p.status == Status::Running)>
                        {s.label()}
                    </li>
                }).collect_view()}
            </ol>
        </section>
    }
}
