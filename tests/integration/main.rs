//! Every integration test in one binary: each separate test file would link candle, leptos,
//! sqlx and tokenizers again, which costs minutes and gigabytes on a small CI machine.

#![cfg(feature = "ssr")]

mod support;

mod abuse_limits;
mod batching;
mod blip_parity;
mod cli;
mod clip_parity;
mod crash_safety;
mod extend_song;
mod hostile_input;
mod live_audio;
mod long_songs;
mod musicgen_errors;
mod musicgen_parity;
mod openapi;
mod photo_intake;
mod procs;
mod queue_leases;
mod scale_out;
mod web_api;
mod words;
