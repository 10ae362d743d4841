//! One file per page.

mod library;
mod not_found;
mod playlist;
mod song;
mod upload;

pub use library::LibraryPage;
pub use not_found::NotFound;
pub use playlist::PlaylistPage;
pub use song::SongPage;
pub use upload::UploadPage;
