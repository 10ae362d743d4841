-- The client (a hash of its network address) that asked for each song, so the queue can be
-- bounded per client. Older songs have none and count for no one.
ALTER TABLE songs ADD COLUMN client_hash TEXT;
CREATE INDEX songs_by_client ON songs (client_hash, status);
