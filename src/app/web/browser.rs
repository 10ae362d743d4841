//! Browser plumbing the pages share (hydrate build): files from inputs and drops, object
//! URLs, the upload XHR with progress, live events, sharing. The server build renders the
//! same views but never runs their event handlers, so it only needs the types to exist.

#[cfg(feature = "hydrate")]
pub use imp::*;

#[cfg(not(feature = "hydrate"))]
pub use server_shim::*;

#[cfg(not(feature = "hydrate"))]
mod server_shim {
    /// A file the person picked (browser only).
    pub struct PickedFile;
    pub fn input_file(_: &leptos::ev::Event) -> Option<PickedFile> {
        None
    }
    pub fn dropped_file(_: &leptos::ev::DragEvent) -> Option<PickedFile> {
        None
    }
}

#[cfg(feature = "hydrate")]
mod imp {
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use web_sys::{EventSource, File, FormData, MessageEvent, XmlHttpRequest};

    pub struct PickedFile {
        pub file: File,
    }

    pub fn input_file(ev: &leptos::ev::Event) -> Option<PickedFile> {
        let input: web_sys::HtmlInputElement = ev.target()?.dyn_into().ok()?;
        let file = input.files()?.get(0)?;
        Some(PickedFile { file })
    }

    pub fn dropped_file(ev: &leptos::ev::DragEvent) -> Option<PickedFile> {
        let file = ev.data_transfer()?.files()?.get(0)?;
        Some(PickedFile { file })
    }

    pub fn object_url(file: &File) -> Option<String> {
        web_sys::Url::create_object_url_with_blob(file).ok()
    }

    pub fn revoke_url(url: &str) {
        let _ = web_sys::Url::revoke_object_url(url);
    }

    /// POST /api/songs as multipart with upload progress; `done` gets the new slug or the
    /// server's words for a refusal.
    pub fn upload_song(
        file: Option<File>,
        options_json: String,
        progress: impl Fn(f64) + 'static,
        done: impl FnOnce(Result<String, String>) + 'static,
    ) {
        let fail = |m: &str| Err(m.to_string());
        let Ok(xhr) = XmlHttpRequest::new() else {
            return done(fail("this browser cannot upload"));
        };
        let Ok(form) = FormData::new() else {
            return done(fail("this browser cannot upload"));
        };
        if let Some(f) = &file {
            let _ = form.append_with_blob_and_filename("image", f, &f.name());
        }
        let _ = form.append_with_str("options", &options_json);
        if xhr.open("POST", "/api/songs").is_err() {
            return done(fail("cannot reach the server"));
        }
        let on_progress =
            Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
                if e.length_computable() && e.total() > 0.0 {
                    progress(e.loaded() / e.total());
                }
            });
        if let Ok(up) = xhr.upload() {
            up.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
        }
        on_progress.forget();
        let done = std::cell::Cell::new(Some(done));
        let x = xhr.clone();
        let on_end = Closure::<dyn FnMut()>::new(move || {
            let Some(done) = done.take() else { return };
            let status = x.status().unwrap_or(0);
            let body = x.response_text().ok().flatten().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if status == 202 {
                match json["slug"].as_str() {
                    Some(slug) => done(Ok(slug.to_string())),
                    None => done(Err("the server gave an unexpected answer".into())),
                }
            } else if status == 0 {
                done(Err(
                    "the upload was interrupted: check the connection and try again".into(),
                ))
            } else {
                let msg = json["error"]
                    .as_str()
                    .unwrap_or("the server refused the upload");
                done(Err(msg.to_string()))
            }
        });
        xhr.set_onloadend(Some(on_end.as_ref().unchecked_ref()));
        on_end.forget();
        if xhr.send_with_opt_form_data(Some(&form)).is_err() {
            // onloadend still fires and reports it.
        }
    }

    /// Follow a server-sent event stream; each message's data goes to `on_message`.
    /// Close the returned source when done.
    pub fn follow(url: &str, on_message: impl Fn(String) + 'static) -> Option<EventSource> {
        let source = EventSource::new(url).ok()?;
        let cb = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            if let Some(s) = e.data().as_string() {
                on_message(s);
            }
        });
        source.set_onmessage(Some(cb.as_ref().unchecked_ref()));
        cb.forget();
        Some(source)
    }

    /// The Web Share sheet where there is one; otherwise copy the link. Returns what
    /// happened, for a short confirmation.
    pub fn share(title: &str, url: &str) -> &'static str {
        let Some(w) = web_sys::window() else {
            return "";
        };
        let nav = w.navigator();
        let can_share = js_sys::Reflect::has(&nav, &JsValue::from_str("share")).unwrap_or(false);
        if can_share {
            let data = web_sys::ShareData::new();
            data.set_title(title);
            data.set_url(url);
            let _ = nav.share_with_data(&data);
            return "";
        }
        copy(url)
    }

    pub fn copy(text: &str) -> &'static str {
        let Some(w) = web_sys::window() else {
            return "";
        };
        let _ = w.navigator().clipboard().write_text(text);
        "Link copied"
    }

    /// A phone-sized or touch screen: the player fetches the MP3 there (a quarter of the
    /// WAV's bytes).
    pub fn small_screen() -> bool {
        web_sys::window()
            .and_then(|w| {
                w.match_media("(max-width: 700px), (pointer: coarse)")
                    .ok()
                    .flatten()
            })
            .is_some_and(|m| m.matches())
    }

    pub fn prefers_reduced_motion() -> bool {
        web_sys::window()
            .and_then(|w| {
                w.match_media("(prefers-reduced-motion: reduce)")
                    .ok()
                    .flatten()
            })
            .is_some_and(|m| m.matches())
    }
}
