//! The player's life in the browser: make the engine, fetch and decode the song, draw
//! the waveform once and the visualizer every frame, follow the keyboard and the lock
//! screen, and tidy up when the player leaves the page.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::app::web::audio::{self, Engine};
use crate::app::web::browser::prefers_reduced_motion;
use crate::app::web::player_state::PlayerState;

/// The requestAnimationFrame callback; it re-schedules itself through its own Rc.
type FrameCallback = Closure<dyn FnMut()>;

pub struct Start {
    pub controls_engine: StoredValue<Option<Rc<RefCell<Engine>>>, LocalStorage>,
    pub url: String,
    pub colours: Vec<String>,
    pub title: String,
    pub artwork: Option<String>,
    pub viz: NodeRef<leptos::html::Canvas>,
    pub wave: NodeRef<leptos::html::Canvas>,
    pub time: RwSignal<f64>,
    pub duration: RwSignal<f64>,
    pub state: RwSignal<PlayerState>,
    pub autoplay: bool,
    pub on_ended: Option<Callback<()>>,
    /// Where the song was heard while it was made: taken over at the same place.
    pub handoff: Option<crate::app::web::live_audio::LiveHandoff>,
}

pub fn start(s: Start) {
    let engine = match Engine::new() {
        Ok(e) => Rc::new(RefCell::new(e)),
        Err(_) => {
            s.state.set(PlayerState::Error);
            return;
        }
    };
    s.controls_engine.set_value(Some(engine.clone()));
    let alive = Rc::new(Cell::new(true));
    let peaks: Rc<RefCell<Vec<f32>>> = Rc::default();

    // Fetch + decode, then draw the waveform and maybe start.
    {
        let (engine, peaks, url) = (engine.clone(), peaks.clone(), s.url.clone());
        let (state, duration, autoplay, handoff) = (s.state, s.duration, s.autoplay, s.handoff);
        let (wave, colours) = (s.wave, s.colours.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let ctx = engine.borrow().context();
            match audio::load(&ctx, &url).await {
                Ok(buffer) => {
                    *peaks.borrow_mut() = audio::peaks(&buffer, 240);
                    duration.set(buffer.duration());
                    engine.borrow_mut().set_buffer(buffer);
                    if let Some(c) = wave.get_untracked() {
                        audio::draw_waveform(&c, &peaks.borrow(), 0.0, &colours);
                    }
                    state.set(PlayerState::Paused);
                    let live = handoff.and_then(|h| h.0.try_update_value(|v| v.take()).flatten());
                    if let Some(live) = live {
                        let at = live.borrow().position();
                        live.borrow_mut().close();
                        let mut e = engine.borrow_mut();
                        e.seek(at);
                        e.play();
                    } else if autoplay {
                        engine.borrow_mut().play();
                    }
                }
                Err(_) => state.set(PlayerState::Error),
            }
        });
    }

    // The frame loop.
    let reduced = prefers_reduced_motion();
    let frame: Rc<RefCell<Option<FrameCallback>>> = Rc::default();
    // The id of the frame requested last, cancelled when the player goes away.
    let pending = Rc::new(Cell::new(0));
    {
        let pending2 = pending.clone();
        let (engine, peaks, alive, frame2) =
            (engine.clone(), peaks.clone(), alive.clone(), frame.clone());
        let (viz, wave, colours) = (s.viz, s.wave, s.colours.clone());
        let (time, state, on_ended) = (s.time, s.state, s.on_ended);
        let mut freqs = Vec::new();
        let mut frames = 0u32;
        *frame.borrow_mut() = Some(Closure::new(move || {
            if !alive.get() {
                return;
            }
            let (ended, playing, pos, dur) = {
                let mut e = engine.borrow_mut();
                let ended = e.tick();
                (ended, e.playing(), e.position(), e.duration())
            };
            if (time.get_untracked() - pos).abs() > 0.03 {
                time.set(pos);
            }
            if engine.borrow().loaded() {
                let want = if playing {
                    PlayerState::Playing
                } else {
                    PlayerState::Paused
                };
                if state.get_untracked() != want {
                    state.set(want);
                }
            }
            frames = frames.wrapping_add(1);
            // Reduced motion: a calm redraw a few times a second instead of every frame.
            if !reduced || frames.is_multiple_of(15) {
                if let Some(c) = viz.get_untracked() {
                    engine.borrow().frequencies(&mut freqs);
                    audio::draw_visualizer(&c, &freqs, &colours);
                }
            }
            if let Some(c) = wave.get_untracked() {
                let played = if dur > 0.0 { pos / dur } else { 0.0 };
                audio::draw_waveform(&c, &peaks.borrow(), played, &colours);
            }
            if ended {
                if let Some(cb) = on_ended {
                    cb.run(());
                }
            }
            // on_ended may have removed this player (a playlist moving on): then stop.
            if alive.get() {
                if let (Some(w), Some(f)) = (web_sys::window(), frame2.borrow().as_ref()) {
                    if let Ok(id) = w.request_animation_frame(f.as_ref().unchecked_ref()) {
                        pending2.set(id);
                    }
                }
            }
        }));
        if let (Some(w), Some(f)) = (web_sys::window(), frame.borrow().as_ref()) {
            if let Ok(id) = w.request_animation_frame(f.as_ref().unchecked_ref()) {
                pending.set(id);
            }
        }
    }

    // Keyboard: space plays/pauses, arrows skip 5 s (not while typing).
    let keys = {
        let engine = engine.clone();
        window_event_listener(leptos::ev::keydown, move |ev| {
            let typing = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .is_some_and(|el| {
                    matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                });
            if typing || ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
                return;
            }
            match ev.key().as_str() {
                " " | "Spacebar" => {
                    ev.prevent_default();
                    engine.borrow_mut().toggle();
                }
                "ArrowLeft" => engine.borrow_mut().skip(-5.0),
                "ArrowRight" => engine.borrow_mut().skip(5.0),
                _ => {}
            }
        })
    };

    media_session(&engine, &s.title, s.artwork.as_deref());

    // The cleanup runs on the browser's one thread; SendWrapper satisfies the Send bound.
    let tidy = send_wrapper::SendWrapper::new(move || {
        alive.set(false);
        if let Some(w) = web_sys::window() {
            let _ = w.cancel_animation_frame(pending.get());
        }
        engine.borrow_mut().pause();
        let _ = engine.borrow().context().close();
        // The cleanup can run inside the frame callback itself (a playlist moving on when
        // a song ends): drop the callback only after it has returned.
        wasm_bindgen_futures::spawn_local(async move {
            frame.borrow_mut().take();
        });
    });
    on_cleanup(move || {
        keys.remove();
        (tidy.take())();
    });
}

/// Lock-screen and headset controls, with the photo as artwork. The Media Session API is
/// still "unstable" in web-sys, so it is reached through plain JS reflection.
fn media_session(engine: &Rc<RefCell<Engine>>, title: &str, artwork: Option<&str>) {
    use js_sys::{Array, Function, Object, Reflect};
    let Some(w) = web_sys::window() else { return };
    let Ok(session) = Reflect::get(&w.navigator(), &"mediaSession".into()) else {
        return;
    };
    if session.is_undefined() {
        return;
    }
    let Ok(ctor) = Reflect::get(&w, &"MediaMetadata".into()) else {
        return;
    };
    let Ok(ctor) = ctor.dyn_into::<Function>() else {
        return;
    };
    let init = Object::new();
    let _ = Reflect::set(&init, &"title".into(), &title.into());
    let _ = Reflect::set(&init, &"artist".into(), &"Snapsong".into());
    if let Some(src) = artwork {
        let image = Object::new();
        let _ = Reflect::set(&image, &"src".into(), &src.into());
        let _ = Reflect::set(&image, &"sizes".into(), &"512x512".into());
        let _ = Reflect::set(&image, &"type".into(), &"image/jpeg".into());
        let _ = Reflect::set(&init, &"artwork".into(), &Array::of1(&image));
    }
    if let Ok(meta) = Reflect::construct(&ctor, &Array::of1(&init)) {
        let _ = Reflect::set(&session, &"metadata".into(), &meta);
    }
    let Ok(set) = Reflect::get(&session, &"setActionHandler".into()) else {
        return;
    };
    let Ok(set) = set.dyn_into::<Function>() else {
        return;
    };
    type Act = Box<dyn Fn(&mut Engine, Option<f64>)>;
    let actions: [(&str, Act); 5] = [
        ("play", Box::new(|e, _| e.play())),
        ("pause", Box::new(|e, _| e.pause())),
        ("seekbackward", Box::new(|e, _| e.skip(-5.0))),
        ("seekforward", Box::new(|e, _| e.skip(5.0))),
        (
            "seekto",
            Box::new(|e, t| {
                if let Some(t) = t {
                    e.seek(t)
                }
            }),
        ),
    ];
    for (name, f) in actions {
        let engine = engine.clone();
        let cb = Closure::<dyn FnMut(JsValue)>::new(move |details: JsValue| {
            let t = Reflect::get(&details, &"seekTime".into())
                .ok()
                .and_then(|v| v.as_f64());
            f(&mut engine.borrow_mut(), t);
        })
        .into_js_value();
        // Browsers throw for actions they do not know; the rest still work.
        let _ = set.call2(&session, &name.into(), &cb);
    }
}
