//! Random ids, share slugs and owner tokens. All from the OS-seeded CSPRNG; the server
//! keeps only a hash of an owner token.

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::api::types::{SLUG_ALPHABET, SLUG_LEN};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 128 random bits as 32 hex characters.
pub fn new_id() -> String {
    hex(&rand::rng().random::<[u8; 16]>())
}

/// 12 characters from a 56-letter alphabet: about 70 bits.
pub fn new_slug() -> String {
    let mut rng = rand::rng();
    (0..SLUG_LEN)
        .map(|_| SLUG_ALPHABET[rng.random_range(0..SLUG_ALPHABET.len())] as char)
        .collect()
}

/// An owner token for the cookie: 256 random bits.
pub fn new_token() -> String {
    hex(&rand::rng().random::<[u8; 32]>())
}

/// What the database stores in place of a token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Tokens we issued look like this; anything else in the cookie is ignored.
pub fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{is_id, is_slug};

    #[test]
    fn fresh_values_have_their_shapes_and_differ() {
        let (a, b) = (new_slug(), new_slug());
        assert!(is_slug(&a) && is_slug(&b) && a != b);
        assert!(is_id(&new_id()));
        let t = new_token();
        assert!(is_token(&t));
        assert_eq!(token_hash(&t).len(), 64);
        assert_ne!(token_hash(&t), t);
    }
}
