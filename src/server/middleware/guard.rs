//! What every response and every state-changing request passes through: security headers
//! (a per-response CSP nonce that lets Leptos' hydration script and the wasm run, and
//! nothing injected), and the refusal of cross-site POSTs.

use axum::extract::Request;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, HOST, ORIGIN, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use leptos::nonce::Nonce;

use crate::server::error::AppError;
use crate::server::state::AppState;

/// The policy for one response. Scripts: our own files, plus the inline hydration script
/// carrying this response's nonce; 'wasm-unsafe-eval' lets the browser compile the wasm.
/// Styles allow inline attributes (palette colours are set per song). Blob and data URLs
/// are the upload preview. No framing, no plugins, no foreign form targets.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; media-src 'self' blob:; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Give the request a fresh nonce (the shell reads it, see `provide_request_nonce`) and
/// put the security headers on whatever comes back.
pub async fn security_headers(mut req: Request, next: Next) -> Response {
    let nonce = Nonce::new();
    let csp = content_security_policy(&nonce);
    req.extensions_mut().insert(nonce);
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(CONTENT_SECURITY_POLICY, v);
    }
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("geolocation=(), microphone=(), interest-cohort=()"),
    );
    res
}

/// During SSR: hand the request's nonce to Leptos, which puts it on the scripts it writes.
pub fn provide_request_nonce() {
    use leptos::prelude::{provide_context, use_context};
    if let Some(parts) = use_context::<axum::http::request::Parts>() {
        if let Some(n) = parts.extensions.get::<Nonce>() {
            provide_context(n.clone());
        }
    }
}

/// Is this state-changing request from another site? Browsers say so in Sec-Fetch-Site,
/// older ones in Origin. A request with neither comes from a script or tool, not from a
/// page a person was lured to, and is let through (it carries no one's cookie by accident).
/// `public_url` (configured) is accepted as an origin too: behind a proxy the Host header
/// may be the proxy's upstream name.
pub fn is_cross_site(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return false;
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin = origin.to_str().ok();
    if origin.is_some() && origin == public_url.map(|u| u.trim_end_matches('/')) {
        return false;
    }
    match (origin, host) {
        (Some(o), Some(host)) => {
            let authority = o
                .strip_prefix("https://")
                .or_else(|| o.strip_prefix("http://"));
            authority != Some(host)
        }
        // "null" (sandboxed frames, file: pages), unreadable values, or no Host header.
        _ => true,
    }
}

/// Refuse POSTs (and other unsafe methods) that another site's page made the browser send.
pub async fn refuse_cross_site(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && is_cross_site(req.headers(), state.config.public_url.as_deref()) {
        return AppError::forbidden("requests from other sites are refused").into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_is_told_apart_from_same_origin_and_tools() {
        assert!(!is_cross_site(&headers(&[]), None), "curl and scripts");
        assert!(!is_cross_site(
            &headers(&[("sec-fetch-site", "same-origin")]),
            None
        ));
        assert!(is_cross_site(
            &headers(&[("sec-fetch-site", "cross-site")]),
            None
        ));
        assert!(is_cross_site(
            &headers(&[("sec-fetch-site", "same-site")]),
            None
        ));
        let same = [
            ("host", "songs.example:3000"),
            ("origin", "http://songs.example:3000"),
        ];
        assert!(!is_cross_site(&headers(&same), None));
        let evil = [
            ("host", "songs.example"),
            ("origin", "https://evil.example"),
        ];
        assert!(is_cross_site(&headers(&evil), None));
        assert!(is_cross_site(
            &headers(&[("host", "a"), ("origin", "null")]),
            None
        ));
        // A look-alike prefix is not the same host.
        let prefix = [
            ("host", "songs.example"),
            ("origin", "https://songs.example.evil"),
        ];
        assert!(is_cross_site(&headers(&prefix), None));
        let proxied = [
            ("host", "backend:3000"),
            ("origin", "https://songs.example"),
        ];
        assert!(is_cross_site(&headers(&proxied), None));
        assert!(!is_cross_site(
            &headers(&proxied),
            Some("https://songs.example/")
        ));
    }

    #[test]
    fn the_policy_names_the_nonce_and_forbids_framing() {
        let p = content_security_policy("abc");
        assert!(p.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval'"));
        assert!(p.contains("frame-ancestors 'none'"));
        assert!(!p.contains(" 'unsafe-eval'"));
        assert!(!p.contains("script-src 'self' 'unsafe-inline'"));
    }
}
