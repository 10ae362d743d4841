//! `/`: pick or drop a photo (or use the camera), see it, choose the options, send it with
//! an upload progress bar, then go to the song's page.

use leptos::prelude::*;
use leptos_meta::{Meta, Title};

use crate::api::types::{
    SongOptions, ACCEPTED_TYPES, DEFAULT_DURATION_S, DEFAULT_MAX_UPLOAD_BYTES, MAX_DURATION_S,
    MAX_INSTRUMENTS, MAX_LONG_TEXT_CHARS, MAX_TEXT_CHARS, MIN_DURATION_S,
};
use crate::prompt::vocabulary::{GENRES, INSTRUMENTS, MOODS};

/// Where the song starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Photo,
    /// A line of words, no photo.
    Words,
    /// A long text (a script, a post) to make background music for.
    Text,
}

/// Refuse what the server would refuse, before sending a byte.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn check_file(kind: &str, size: f64) -> Result<(), String> {
    if !ACCEPTED_TYPES.contains(&kind) {
        return Err(format!(
            "{} isn’t a photo Snapsong can read: use JPEG, PNG, WebP or GIF",
            if kind.is_empty() { "That file" } else { kind }
        ));
    }
    if size > DEFAULT_MAX_UPLOAD_BYTES as f64 {
        return Err(format!(
            "That photo is {:.1} MB; the limit is {} MB",
            size / 1_048_576.0,
            DEFAULT_MAX_UPLOAD_BYTES / 1_048_576
        ));
    }
    Ok(())
}

fn label(id: &str) -> String {
    let mut c = id.replace(['_', '-'], " ");
    if let Some(f) = c.get(0..1) {
        let up = f.to_uppercase();
        c.replace_range(0..1, &up);
    }
    c
}

#[component]
pub fn UploadPage() -> impl IntoView {
    let mode = RwSignal::new(Mode::Photo);
    let long_text = RwSignal::new(String::new());
    let preview = RwSignal::new(None::<String>);
    let file_name = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let sending = RwSignal::new(None::<f64>);
    let dragging = RwSignal::new(false);
    let genre = RwSignal::new(String::new());
    let mood = RwSignal::new(String::new());
    let auto_bpm = RwSignal::new(true);
    let bpm = RwSignal::new(100u32);
    let instruments = RwSignal::new(Vec::<String>::new());
    let duration = RwSignal::new(DEFAULT_DURATION_S as u32);
    // This server's longest song (`--max-duration`); the product's longest until known.
    let server_max = Resource::new(|| (), |_| crate::api::songs::max_duration());
    let longest = move || {
        server_max
            .get()
            .and_then(|r| r.ok())
            .map_or(MAX_DURATION_S, |m| m.min(MAX_DURATION_S)) as u32
    };
    Effect::new(move |_| {
        let max = longest();
        if duration.get_untracked() > max {
            duration.set(max);
        }
    });
    let text = RwSignal::new(String::new());
    #[cfg(feature = "hydrate")]
    let picked = StoredValue::new_local(None::<web_sys::File>);

    let take_file = move |_file: Option<crate::app::web::browser::PickedFile>| {
        #[cfg(feature = "hydrate")]
        if let Some(f) = _file {
            match check_file(&f.file.type_(), f.file.size()) {
                Ok(()) => {
                    error.set(None);
                    file_name.set(f.file.name());
                    if let Some(old) = preview.get_untracked() {
                        crate::app::web::browser::revoke_url(&old);
                    }
                    preview.set(crate::app::web::browser::object_url(&f.file));
                    picked.set_value(Some(f.file));
                    mode.set(Mode::Photo);
                }
                Err(e) => error.set(Some(e)),
            }
        }
    };
    let clear = move |_| {
        preview.set(None);
        file_name.set(String::new());
        #[cfg(feature = "hydrate")]
        picked.set_value(None);
    };
    let options = move || SongOptions {
        genre: Some(genre.get()).filter(|g| !g.is_empty()),
        mood: Some(mood.get()).filter(|m| !m.is_empty()),
        bpm: (!auto_bpm.get()).then(|| bpm.get()),
        instruments: instruments.get(),
        duration: Some(duration.get() as f32),
        text: match mode.get() {
            Mode::Text => Some(long_text.get()),
            _ => Some(text.get()),
        }
        .filter(|t| !t.trim().is_empty()),
        long_text: mode.get() == Mode::Text,
        seed: None,
        prompt: None,
        extends: None,
    };
    // The new song's page, navigated to in the app (no page reload).
    #[cfg(feature = "hydrate")]
    let navigate = leptos_router::hooks::use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if sending.get_untracked().is_some() {
            return;
        }
        let opts = options();
        let has_photo = preview.get_untracked().is_some() && mode.get_untracked() == Mode::Photo;
        if !has_photo && opts.genre.is_none() && opts.mood.is_none() && opts.text.is_none() {
            error.set(Some(match mode.get_untracked() {
                Mode::Photo => "Pick a photo first (or switch to words only).".into(),
                Mode::Words => {
                    "In words-only mode, pick a genre or a mood, or write a line.".into()
                }
                Mode::Text => "Paste the text to make music for.".into(),
            }));
            return;
        }
        error.set(None);
        sending.set(Some(0.0));
        #[cfg(feature = "hydrate")]
        {
            let navigate = navigate.clone();
            let file = if has_photo { picked.get_value() } else { None };
            let json = serde_json::to_string(&opts).unwrap_or_default();
            crate::app::web::browser::upload_song(
                file,
                json,
                move |fraction| sending.set(Some(fraction)),
                move |result| match result {
                    Ok(slug) => navigate(&format!("/s/{slug}"), Default::default()),
                    Err(e) => {
                        sending.set(None);
                        error.set(Some(e));
                    }
                },
            );
        }
    };
    let toggle_instrument = move |id: &'static str| {
        instruments.update(|list| {
            if let Some(i) = list.iter().position(|x| x == id) {
                list.remove(i);
            } else if list.len() < MAX_INSTRUMENTS {
                list.push(id.to_string());
            }
        })
    };

    let auto_label = move || match mode.get() {
        Mode::Photo => "Auto (from your words or the photo)",
        Mode::Words | Mode::Text => "Auto (from your words)",
    };

    view! {
        <Title text=""/>
        <Meta name="description" content="Turn a photo into an original song, made on this host."/>
        <section class="hero">
            <h1>"Turn a photo into a song"</h1>
            <p class="muted">"Drop a photo, pick a feel if you like, and Snapsong writes a short original track for it."</p>
        </section>
        <form class="card upload" on:submit=submit novalidate>
            <div class="mode-switch" role="group" aria-label="Source">
                <button type="button" class:active=move || mode.get() == Mode::Photo on:click=move |_| mode.set(Mode::Photo)>"From a photo"</button>
                <button type="button" class:active=move || mode.get() == Mode::Words on:click=move |_| mode.set(Mode::Words)>"Words only"</button>
                <button type="button" class:active=move || mode.get() == Mode::Text on:click=move |_| mode.set(Mode::Text)>"From a text"</button>
            </div>
            <Show when=move || mode.get() == Mode::Text>
                <label class="long-text">"Your text"
                    <span class="muted">" — a video script, a post, a story. Snapsong picks the sentences that carry its mood and topic, and writes music for them."</span>
                    <textarea name="long_text" rows="8" maxlength=MAX_LONG_TEXT_CHARS
                        placeholder="Paste up to 5,000 characters"
                        prop:value=move || long_text.get() on:input=move |ev| long_text.set(event_target_value(&ev))></textarea>
                    <span class="muted counter">{move || format!("{} / {MAX_LONG_TEXT_CHARS}", long_text.get().chars().count())}</span>
                </label>
            </Show>
            <Show when=move || mode.get() == Mode::Photo>
                <div
                    class="dropzone"
                    class:dragging=move || dragging.get()
                    on:dragover=move |ev: leptos::ev::DragEvent| { ev.prevent_default(); dragging.set(true); }
                    on:dragleave=move |_| dragging.set(false)
                    on:drop=move |ev: leptos::ev::DragEvent| {
                        ev.prevent_default();
                        dragging.set(false);
                        take_file(crate::app::web::browser::dropped_file(&ev));
                    }
                >
                    {move || match preview.get() {
                        Some(src) => view! {
                            <figure class="preview">
                                <img src=src alt="The photo you picked" data-testid="preview"/>
                                <figcaption>
                                    <span class="muted">{file_name.get()}</span>
                                    <button type="button" class="link" on:click=clear>"Pick another"</button>
                                </figcaption>
                            </figure>
                        }.into_any(),
                        None => view! {
                            <div class="drop-hint">
                                <p><strong>"Drop a photo here"</strong></p>
                                <p class="muted">"JPEG, PNG, WebP or GIF, up to 20 MB"</p>
                                <div class="pick-buttons">
                                    <label class="button primary">
                                        "Choose a photo"
                                        <input type="file" name="image" accept=ACCEPTED_TYPES.join(",") class="visually-hidden" data-testid="file-input"
                                            on:change=move |ev| take_file(crate::app::web::browser::input_file(&ev))/>
                                    </label>
                                    <label class="button camera">
                                        "Use the camera"
                                        <input type="file" accept="image/*" capture="environment" class="visually-hidden"
                                            on:change=move |ev| take_file(crate::app::web::browser::input_file(&ev))/>
                                    </label>
                                </div>
                            </div>
                        }.into_any(),
                    }}
                </div>
            </Show>
            <fieldset class="controls">
                <legend>"Make it your own " <span class="muted">"(all optional)"</span></legend>
                <label>"Genre"
                    <select name="genre" on:change=move |ev| genre.set(event_target_value(&ev)) prop:value=move || genre.get()>
                        <option value="">{auto_label}</option>
                        {GENRES.iter().map(|g| view! { <option value=g.id>{label(g.id)}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Mood"
                    <select name="mood" on:change=move |ev| mood.set(event_target_value(&ev)) prop:value=move || mood.get()>
                        <option value="">{auto_label}</option>
                        {MOODS.iter().map(|m| view! { <option value=m.id>{label(m.id)}</option> }).collect_view()}
                    </select>
                </label>
                <div class="tempo">
                    <label class="inline">
                        <input type="checkbox" prop:checked=move || auto_bpm.get() on:change=move |ev| auto_bpm.set(event_target_checked(&ev))/>
                        "Automatic tempo"
                    </label>
                    <label class:disabled=move || auto_bpm.get()>
                        {move || format!("Tempo: {} BPM", bpm.get())}
                        <input type="range" min="40" max="220" step="1" name="bpm" prop:disabled=move || auto_bpm.get()
                            prop:value=move || bpm.get().to_string()
                            on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse() { bpm.set(v) } }/>
                    </label>
                </div>
                <label>{move || format!("Length: {} s", duration.get())}
                    <input type="range" name="duration" min=MIN_DURATION_S as u32 max=longest step="1"
                        prop:value=move || duration.get().to_string()
                        on:input=move |ev| { if let Ok(v) = event_target_value(&ev).parse() { duration.set(v) } }/>
                </label>
                <div class="instruments">
                    <span class="field-label">{move || format!("Instruments ({}/{MAX_INSTRUMENTS})", instruments.get().len())}</span>
                    <div class="chips">
                        {INSTRUMENTS.iter().map(|i| {
                            let id = i.id;
                            view! {
                                <button type="button" class="chip"
                                    aria-pressed=move || instruments.get().iter().any(|x| x == id).to_string()
                                    on:click=move |_| toggle_instrument(id)>{label(id)}</button>
                            }
                        }).collect_view()}
                    </div>
                </div>
                <Show when=move || mode.get() != Mode::Text>
                    <label>"In your words"
                        <input type="text" name="text" maxlength=MAX_TEXT_CHARS placeholder="e.g. slow and dreamy, lonely saxophone, no drums"
                            prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))/>
                    </label>
                </Show>
            </fieldset>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {move || match sending.get() {
                Some(f) => view! {
                    <div class="upload-progress" role="status">
                        <progress max="1" value=f></progress>
                        <span>{if f < 1.0 { format!("Sending… {:.0}%", f * 100.0) } else { "Starting…".to_string() }}</span>
                    </div>
                }.into_any(),
                None => view! { <button type="submit" class="button primary big" data-testid="make">"Make my song"</button> }.into_any(),
            }}
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_check_refuses_what_the_server_would() {
        assert!(check_file("image/jpeg", 1e6).is_ok());
        assert!(check_file("image/heic", 1e6).is_err());
        assert!(check_file("", 10.0).is_err());
        let too_big = check_file("image/png", 25.0 * 1_048_576.0).unwrap_err();
        assert!(too_big.contains("25.0 MB"), "{too_big}");
    }
}
