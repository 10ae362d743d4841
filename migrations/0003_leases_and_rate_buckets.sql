-- Many workers on one queue: a running song is leased by one worker (`worker`) until
-- `lease_until_ms`; the worker renews the lease by heartbeat, and a song whose lease ran
-- out (a worker killed, a machine lost) is taken by another.
ALTER TABLE songs ADD COLUMN worker TEXT;
ALTER TABLE songs ADD COLUMN lease_until_ms BIGINT;
-- While a song is made: how much of its audio can be heard (api::live::Live, JSON), for
-- web nodes other than the worker's; the chunks themselves are in the media store.
ALTER TABLE songs ADD COLUMN live TEXT;

-- Song-start allowances, one token bucket per client, shared by every web node.
CREATE TABLE rate_buckets (
    client_hash TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    updated_ms BIGINT NOT NULL
);
