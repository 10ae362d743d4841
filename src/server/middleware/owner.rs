//! The owner cookie: a random token in an HttpOnly, SameSite=Lax cookie marks "my" songs
//! and playlists without accounts. A middleware gives every browser one and puts its hash
//! in the request's extensions for handlers and server functions.

use axum::extract::Request;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::server::ids::{is_token, new_token, token_hash};

pub const COOKIE_NAME: &str = "snapsong_owner";

/// The hash of the caller's owner token.
#[derive(Clone, Debug)]
pub struct Owner {
    pub hash: String,
    /// Set when this request is the first one from this browser.
    pub fresh: bool,
}

pub fn token_from(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == COOKIE_NAME && is_token(v))
        .map(|(_, v)| v.to_string())
}

pub async fn middleware(mut req: Request, next: Next) -> Response {
    let (token, fresh) = match token_from(req.headers()) {
        Some(t) => (t, false),
        None => (new_token(), true),
    };
    req.extensions_mut().insert(Owner {
        hash: token_hash(&token),
        fresh,
    });
    let secure = req
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|v| v == "https");
    let mut res = next.run(req).await;
    if fresh {
        // Ten years: the token is the only key to a person's library.
        let cookie = format!(
            "{COOKIE_NAME}={token}; Path=/; Max-Age=315360000; HttpOnly; SameSite=Lax{}",
            if secure { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(SET_COOKIE, v);
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_are_read() {
        let mut h = HeaderMap::new();
        let t = "a".repeat(64);
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE_NAME}={t}; y=2")).expect("header"),
        );
        assert_eq!(token_from(&h), Some(t));
        h.insert(
            COOKIE,
            HeaderValue::from_static("snapsong_owner=' OR 1=1 --"),
        );
        assert_eq!(token_from(&h), None);
    }
}
