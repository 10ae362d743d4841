//! The `snapsong` binary: everything is in `snapsong::cli`.

fn main() {
    if let Err(e) = snapsong::cli::run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
