//! What every request passes before a handler (outermost first, see `router`): security
//! headers and the CSP nonce, then the cross-site refusal (`guard`), the client's identity
//! for rate limits (`admission`, which also decides whether a new song may be queued, with
//! the token buckets and queue counts kept in the database, shared by every web node), and
//! the owner cookie (`owner`).
pub mod admission;
pub mod guard;
pub mod owner;
