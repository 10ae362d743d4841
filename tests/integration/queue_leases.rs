//! The job queue's leases, on the real database (SQLite, or Postgres in the matrix's
//! second leg): workers never hold one song at once, a lapsed lease passes the song on,
//! a worker that lost its lease can change nothing, a song taken too often fails, and
//! workers racing for songs each get a different one.

use std::time::Duration;

use snapsong::api::types::SongOptions;
use snapsong::server::db::{Admitted, Db, Lease, NewSong, QueueBounds};
use snapsong::server::ids::new_id;

use crate::support::Backend;

const ROOM: QueueBounds = QueueBounds {
    total: 100,
    per_client: 100,
};

async fn add(db: &Db) -> String {
    let id = new_id();
    let slug = id[..12].to_string();
    let song = NewSong {
        id: &id,
        slug: &slug,
        owner_hash: "owner",
        client_hash: "client",
        options: &SongOptions::default(),
        seed: 1,
        has_photo: false,
        title: "a song",
        noise: true,
    };
    assert_eq!(
        db.insert_song_within(&song, ROOM).await.expect("insert"),
        Admitted::Yes
    );
    // Distinct creation times keep "the oldest first" exact.
    tokio::time::sleep(Duration::from_millis(3)).await;
    id
}

fn lease(worker: &str, ms: i64) -> Lease {
    Lease {
        worker: worker.into(),
        ms,
    }
}

async fn status(db: &Db, id: &str) -> (String, i64, Option<String>) {
    db.fetch_one(
        sqlx::query_as("SELECT status, attempts, worker FROM songs WHERE id = $1").bind(id),
    )
    .await
    .expect("row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_pass_songs_on_and_shut_out_workers_that_lost_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = Backend::new(dir.path()).await;
    let db = Db::connect(&backend.database_url).await.expect("db");
    let (a, b) = (lease("a", 300), lease("b", 300));
    let (first, second) = (add(&db).await, add(&db).await);

    // Oldest first, one song per claim, none twice.
    let got = db.claim_next(&a, 3).await.expect("claim").expect("a song");
    assert_eq!(got.id, first);
    assert_eq!(
        db.claim_next(&b, 3).await.expect("claim").map(|r| r.id),
        Some(second.clone())
    );
    assert!(db.claim_next(&a, 3).await.expect("claim").is_none());
    assert!(db.renew_lease(&first, &a).await.expect("renew"));
    assert!(
        !db.renew_lease(&first, &b).await.expect("renew"),
        "b does not hold it"
    );

    // A lapses: B takes the song; A can neither renew nor settle it any more.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(db.renew_lease(&second, &b).await.expect("renew"));
    let again = db
        .claim_next(&b, 3)
        .await
        .expect("claim")
        .expect("the lapsed song");
    assert_eq!((again.id.as_str(), again.attempts), (first.as_str(), 2));
    assert!(!db.renew_lease(&first, &a).await.expect("renew"));
    assert!(!db.finish(&first, "a").await.expect("finish"));
    assert!(!db.fail(&first, "a", "late").await.expect("fail"));
    assert_eq!(
        status(&db, &first).await,
        ("running".into(), 2, Some("b".into()))
    );
    assert!(db.finish(&first, "b").await.expect("finish"));
    assert_eq!(status(&db, &first).await, ("ready".into(), 2, None));

    // A worker that starts again under its name takes back what it held at once.
    assert_eq!(db.release_all("b").await.expect("release"), 1);
    assert_eq!(status(&db, &second).await.0, "queued");

    // Taken three times (once by B, which started again) by workers that died: the
    // next look fails it.
    for n in 2..=3 {
        let row = db
            .claim_next(&lease(&format!("w{n}"), 50), 3)
            .await
            .expect("claim");
        assert_eq!(row.map(|r| r.attempts), Some(n));
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    assert!(db.claim_next(&a, 3).await.expect("claim").is_none());
    let (state, attempts, worker) = status(&db, &second).await;
    assert_eq!((state.as_str(), attempts, worker), ("failed", 3, None));
    // Its owner may retry it: back in the queue.
    assert!(db.requeue(&second).await.expect("requeue"));
    assert_eq!(
        db.claim_next(&a, 3).await.expect("claim").map(|r| r.id),
        Some(second)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_racing_for_songs_each_get_a_different_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = Backend::new(dir.path()).await;
    let db = Db::connect(&backend.database_url).await.expect("db");
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(add(&db).await);
    }
    let claims = (0..16).map(|n| {
        let db = db.clone();
        tokio::spawn(async move { db.claim_next(&lease(&format!("w{n}"), 30_000), 3).await })
    });
    let mut got: Vec<String> = Vec::new();
    for claim in claims {
        if let Some(row) = claim.await.expect("task").expect("claim") {
            got.push(row.id);
        }
    }
    got.sort();
    ids.sort();
    assert_eq!(
        got, ids,
        "12 songs, 16 workers: each song taken exactly once"
    );
}
