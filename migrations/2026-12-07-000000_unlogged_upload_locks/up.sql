-- Upload leases are not written to the WAL: taking, beating and releasing one no longer waits
-- for a WAL flush (a commit that changed only unlogged rows is not flushed), which was two of
-- the three WAL fsyncs of every PATCH.
--
-- Safe because a lease means nothing after a crash of the database: the table comes back
-- empty, every holder's fenced write then finds its row gone and fails as `LeaseLost` (a
-- retryable 503; the client resumes from HEAD), and the first request to come takes a new
-- lease. Nothing durable ever depends on a lease row, and no table references this one.
ALTER TABLE upload_locks SET UNLOGGED;
