//! The player: cover art with a live visualizer, a waveform to click or drag, play/pause,
//! −5/+5 s, time, loop, volume, download, keyboard shortcuts and lock-screen controls.
//! Rendered on the server as a still player; the browser build brings it to life.

use leptos::prelude::*;

use crate::api::types::SongView;
use crate::app::web::player_state::PlayerState;

/// Seconds as m:ss.
pub fn clock(t: f64) -> String {
    let t = t.max(0.0) as u64;
    format!("{}:{:02}", t / 60, t % 60)
}

/// What the buttons do. In the browser they drive the audio engine; the server build
/// renders the same markup and never runs them.
#[derive(Clone, Copy)]
struct Controls {
    #[cfg(feature = "hydrate")]
    engine: StoredValue<
        Option<std::rc::Rc<std::cell::RefCell<crate::app::web::audio::Engine>>>,
        LocalStorage,
    >,
}

impl Controls {
    #[cfg(feature = "hydrate")]
    fn with(&self, f: impl FnOnce(&mut crate::app::web::audio::Engine)) {
        if let Some(e) = self.engine.get_value() {
            f(&mut e.borrow_mut());
        }
    }
    fn toggle(&self) {
        #[cfg(feature = "hydrate")]
        self.with(|e| e.toggle());
    }
    fn skip(&self, _by: f64) {
        #[cfg(feature = "hydrate")]
        self.with(|e| e.skip(_by));
    }
    fn seek_fraction(&self, _f: f64) {
        #[cfg(feature = "hydrate")]
        self.with(|e| {
            let d = e.duration();
            e.seek(_f * d)
        });
    }
    fn set_loop(&self, _on: bool) {
        #[cfg(feature = "hydrate")]
        self.with(|e| e.looping = _on);
    }
    fn set_volume(&self, _v: f64) {
        #[cfg(feature = "hydrate")]
        self.with(|e| e.set_volume(_v));
    }
}

/// Where on the waveform a pointer is, 0–1.
fn pointer_fraction(_ev: &leptos::ev::PointerEvent) -> Option<f64> {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let el: web_sys::Element = _ev.current_target()?.dyn_into().ok()?;
        let r = el.get_bounding_client_rect();
        if r.width() <= 0.0 {
            return None;
        }
        Some(((_ev.client_x() as f64 - r.left()) / r.width()).clamp(0.0, 1.0))
    }
    #[cfg(not(feature = "hydrate"))]
    None
}

#[component]
pub fn Player(
    song: SongView,
    /// Absolute page origin, for the lock-screen artwork.
    base_url: String,
    /// Called when the song ends without looping (playlists advance on it).
    #[prop(optional)]
    on_ended: Option<Callback<()>>,
    /// Start as soon as the audio is ready (the next song of a playlist).
    #[prop(optional)]
    autoplay: bool,
) -> impl IntoView {
    let time = RwSignal::new(0.0f64);
    let duration = RwSignal::new(song.duration_s as f64);
    let state = RwSignal::new(PlayerState::Loading);
    let looping = RwSignal::new(false);
    let volume = RwSignal::new(0.9f64);
    let dragging = RwSignal::new(false);
    let viz = NodeRef::<leptos::html::Canvas>::new();
    let wave = NodeRef::<leptos::html::Canvas>::new();
    let controls = Controls {
        #[cfg(feature = "hydrate")]
        engine: StoredValue::new_local(None),
    };
    let colours = if song.palette.is_empty() {
        vec![crate::api::types::ACCENT.to_string()]
    } else {
        song.palette.clone()
    };
    let gradient = format!(
        "--c0:{};--c1:{}",
        colours[0],
        colours.get(1).unwrap_or(&colours[0])
    );
    let audio_url = song.audio_path();
    let mp3_url = song.mp3_path();
    let file_name = song.title.replace(['/', '\\', '"'], "-");

    #[cfg(feature = "hydrate")]
    {
        // Phones fetch the MP3: a quarter of the bytes, decoded the same way.
        let url = match crate::app::web::browser::small_screen() {
            true => mp3_url.clone(),
            false => audio_url.clone(),
        };
        let (colours, title) = (colours.clone(), song.title.clone());
        let handoff = use_context::<crate::app::web::live_audio::LiveHandoff>();
        let artwork = song.cover_path().map(|p| format!("{base_url}{p}"));
        Effect::new(move |_| {
            crate::app::web::player_runtime::start(crate::app::web::player_runtime::Start {
                controls_engine: controls.engine,
                url: url.clone(),
                handoff,
                colours: colours.clone(),
                title: title.clone(),
                artwork: artwork.clone(),
                viz,
                wave,
                time,
                duration,
                state,
                autoplay,
                on_ended,
            });
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (&base_url, on_ended, autoplay);

    view! {
        <div class="player" data-testid="player" style=gradient
            data-state=move || state.get().as_str()
            data-time=move || format!("{:.2}", time.get())
            data-duration=move || format!("{:.2}", duration.get())>
            <div class="cover-wrap">
                {match song.cover_path() {
                    Some(src) => view! { <img class="cover" src=src alt=format!("Cover: {}", song.title)/> }.into_any(),
                    None => view! { <div class="cover cover-words" aria-hidden="true"></div> }.into_any(),
                }}
                <canvas class="visualizer" node_ref=viz aria-hidden="true" data-testid="visualizer"></canvas>
            </div>
            <canvas class="waveform" node_ref=wave data-testid="waveform" role="slider"
                aria-label="Seek" aria-valuemin="0"
                aria-valuemax=move || format!("{:.0}", duration.get())
                aria-valuenow=move || format!("{:.0}", time.get())
                on:pointerdown=move |ev| {
                    dragging.set(true);
                    if let Some(f) = pointer_fraction(&ev) { controls.seek_fraction(f) }
                }
                on:pointermove=move |ev| if dragging.get_untracked() {
                    if let Some(f) = pointer_fraction(&ev) { controls.seek_fraction(f) }
                }
                on:pointerup=move |_| dragging.set(false)
                on:pointerleave=move |_| dragging.set(false)
            ></canvas>
            <div class="times">
                <span data-testid="time">{move || clock(time.get())}</span>
                <span class="muted">{move || clock(duration.get())}</span>
            </div>
            <div class="transport">
                <button type="button" class="round" aria-label="Back 5 seconds" data-testid="back5" on:click=move |_| controls.skip(-5.0)>"−5"</button>
                <button type="button" class="round play" data-testid="play"
                    aria-label=move || if state.get() == PlayerState::Playing { "Pause" } else { "Play" }
                    prop:disabled=move || state.get() == PlayerState::Loading || state.get() == PlayerState::Error
                    on:click=move |_| controls.toggle()>
                    {move || if state.get() == PlayerState::Playing { "❚❚" } else { "▶" }}
                </button>
                <button type="button" class="round" aria-label="Forward 5 seconds" data-testid="fwd5" on:click=move |_| controls.skip(5.0)>"+5"</button>
            </div>
            <div class="player-extras">
                <button type="button" class="chip" aria-pressed=move || looping.get().to_string()
                    on:click=move |_| { let on = !looping.get_untracked(); looping.set(on); controls.set_loop(on); }>"Loop"</button>
                <label class="volume">
                    <span class="muted">"Volume"</span>
                    <input type="range" min="0" max="1" step="0.01" prop:value=move || volume.get().to_string()
                        on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse::<f64>() { volume.set(v); controls.set_volume(v) } }/>
                </label>
                <a class="button" href=audio_url download=format!("{file_name}.wav") data-testid="download">"Download WAV"</a>
                <a class="button" href=mp3_url download=format!("{file_name}.mp3") data-testid="download-mp3">"Download MP3"</a>
            </div>
            {move || (state.get() == PlayerState::Error).then(|| view! { <p class="error">"The song could not be loaded. Reload the page to try again."</p> })}
            <p class="keys muted">"Space: play/pause · ←/→: 5 s"</p>
        </div>
    }
}
