//! Where weights come from: the Hugging Face hub cache or a local directory in the
//! transformers layout (`hub`), or tiny random sets made locally for tests and demos
//! (`tiny`, whose songs are noise).
pub mod hub;
pub mod tiny;
