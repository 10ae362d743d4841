//! "Listen while it is made", inside the making card: the audio of a song being made,
//! chunk by chunk (`web::live_audio`). It starts by itself at the first moment playback
//! will not catch up with generation at the rate measured so far (`Live::wait_s`), or
//! earlier on a tap (then it may have to wait for generation: "buffering"). When the song
//! is ready the player takes over at the same place (`LiveHandoff`).

use leptos::prelude::*;

use crate::api::live::Live;
use crate::app::components::player::clock;

/// A page that first hears of a song with more audio than this (seconds) joins at the
/// newest chunk; with less, it plays from the start.
pub const JOIN_AT_EDGE_AFTER_S: f32 = 5.0;

/// What the live audio is doing, for the label and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveState {
    /// No audio yet.
    Waiting,
    /// Audio there, not started: it starts by itself when it is safe.
    Ready,
    Playing,
    /// Started, and waiting for generation to catch up.
    Buffering,
    Paused,
}

impl LiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveState::Waiting => "waiting",
            LiveState::Ready => "ready",
            LiveState::Playing => "playing",
            LiveState::Buffering => "buffering",
            LiveState::Paused => "paused",
        }
    }
}

#[component]
pub fn LiveListen(song_id: String, live: Signal<Option<Live>>) -> impl IntoView {
    let state = RwSignal::new(LiveState::Waiting);
    let time = RwSignal::new(0.0f64);
    let stalls = RwSignal::new(0u32);
    let wait = RwSignal::new(None::<f32>);
    let toggle = Callback::new(move |_: ()| {});
    #[cfg(feature = "hydrate")]
    let toggle = hydrate::run(song_id.clone(), live, state, time, stalls, wait).unwrap_or(toggle);
    #[cfg(not(feature = "hydrate"))]
    let _ = (&song_id, live);

    view! {
        <div class="live" data-testid="live" data-state=move || state.get().as_str()
            data-time=move || format!("{:.3}", time.get()) data-stalls=move || stalls.get().to_string()>
            <button type="button" class="round play" data-testid="listen"
                prop:disabled=move || state.get() == LiveState::Waiting
                aria-label=move || if state.get() == LiveState::Playing { "Pause" } else { "Listen now" }
                on:click=move |_| toggle.run(())>
                {move || if matches!(state.get(), LiveState::Playing | LiveState::Buffering) { "❚❚" } else { "▶" }}
            </button>
            <span class="muted">{move || match state.get() {
                LiveState::Waiting => "The first seconds are on their way…".to_string(),
                LiveState::Ready => match wait.get() {
                    Some(w) if w.is_finite() && w > 0.5 => format!("Listen now, or it starts by itself in about {} s", w.ceil() as u64),
                    _ => "Listen now".to_string(),
                },
                LiveState::Playing => format!("Playing as it is made · {}", clock(time.get())),
                LiveState::Buffering => "Buffering: generation is catching up…".to_string(),
                LiveState::Paused => format!("Paused · {}", clock(time.get())),
            }}</span>
        </div>
    }
}

#[cfg(feature = "hydrate")]
mod hydrate {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    use leptos::prelude::*;

    use super::{LiveState, JOIN_AT_EDGE_AFTER_S};
    use crate::api::live::Live;
    use crate::app::web::live_audio::{catch_up, LiveHandoff, LiveStream};

    /// Follow `live`, fetch and play; returns what the button does.
    pub fn run(
        id: String,
        live: Signal<Option<Live>>,
        state: RwSignal<LiveState>,
        time: RwSignal<f64>,
        stalls: RwSignal<u32>,
        wait: RwSignal<Option<f32>>,
    ) -> Option<Callback<()>> {
        let stream = Rc::new(RefCell::new(LiveStream::new(&id).ok()?));
        let user_paused = Rc::new(Cell::new(false));
        let seen_first = Rc::new(Cell::new(false));
        let refresh = {
            let stream = stream.clone();
            move || {
                let s = stream.borrow();
                let now = if !s.started() {
                    if s.ahead() > 0.0 {
                        LiveState::Ready
                    } else {
                        LiveState::Waiting
                    }
                } else if s.suspended() {
                    LiveState::Paused
                } else if s.buffering() {
                    LiveState::Buffering
                } else {
                    LiveState::Playing
                };
                if state.get_untracked() != now {
                    state.set(now);
                }
                time.set(s.position());
                if stalls.get_untracked() != s.stalls {
                    stalls.set(s.stalls);
                }
            }
        };
        {
            let (stream, user_paused, refresh) =
                (stream.clone(), user_paused.clone(), refresh.clone());
            Effect::new(move |_| {
                let Some(l) = live.get() else {
                    return;
                };
                if !seen_first.replace(true) && l.ready_s > JOIN_AT_EDGE_AFTER_S {
                    // Opened well into the song (a reload, another device): join at the
                    // live edge, as a live stream does.
                    stream.borrow_mut().join_at(l.chunks - 1);
                }
                catch_up(&stream, l.chunks);
                let position = stream.borrow().position() as f32;
                wait.set(Some(l.wait_s(position)));
                let mut s = stream.borrow_mut();
                if !s.started()
                    && !user_paused.get()
                    && l.safe_to_start(position)
                    && s.ahead() > 0.0
                {
                    s.start();
                }
                drop(s);
                refresh();
            });
        }
        let ticker = {
            let refresh = refresh.clone();
            set_interval_with_handle(refresh, std::time::Duration::from_millis(100)).ok()
        };
        // The player takes the stream over when the song is ready (or closes it).
        let handoff = use_context::<LiveHandoff>();
        // Both run on the browser's one thread; SendWrapper satisfies the Send bounds.
        let tidy = send_wrapper::SendWrapper::new({
            let stream = stream.clone();
            move || {
                if let Some(t) = ticker {
                    t.clear();
                }
                match handoff {
                    Some(h) if stream.borrow().started() => h.0.set_value(Some(stream)),
                    _ => stream.borrow_mut().close(),
                }
            }
        });
        on_cleanup(move || (tidy.take())());
        let toggle = send_wrapper::SendWrapper::new(move || {
            let mut s = stream.borrow_mut();
            if !s.started() {
                user_paused.set(false);
                s.start();
            } else if s.suspended() {
                user_paused.set(false);
                s.resume();
            } else {
                user_paused.set(true);
                s.pause();
            }
            drop(s);
            refresh();
        });
        Some(Callback::new(move |_| toggle()))
    }
}
