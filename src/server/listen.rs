//! One Postgres listener per process, for what other nodes do: a song added anywhere
//! wakes this process's idle worker at once, and a song's row changed by a worker
//! elsewhere tells this node's event streams to re-read it (`http::events`). Both also
//! poll, so a notification lost in a reconnect only delays a change; on SQLite there is
//! no listener and the polls are the whole story.

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::server::db::{QUEUE_CHANNEL, SONG_CHANNEL};
use crate::server::worker::Queue;

/// Wait this long before connecting again after the listener failed to connect.
const RETRY: Duration = Duration::from_secs(2);

/// Start the listener if the database is Postgres.
pub fn spawn(queue: &Queue) {
    let Some(url) = queue.db.postgres_url().map(str::to_string) else {
        return;
    };
    let queue = queue.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&url, &queue).await {
                tracing::warn!("database notifications: {e:#}; polling until they are back");
            }
            tokio::time::sleep(RETRY).await;
        }
    });
}

async fn listen(url: &str, queue: &Queue) -> anyhow::Result<()> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen_all([QUEUE_CHANNEL, SONG_CHANNEL]).await?;
    // Whatever happened while not listening: look now.
    queue.wake.notify_one();
    loop {
        // `recv` reconnects by itself after a lost connection (and what was sent
        // meanwhile is lost: the polls heal that).
        let n = listener.recv().await?;
        match n.channel() {
            QUEUE_CHANNEL => queue.wake.notify_one(),
            SONG_CHANNEL => queue.hub.row_changed(n.payload()),
            _ => {}
        }
    }
}
