-- The first statement of every append transaction. The row lock is held until commit, so
-- appenders in every process take their positions one transaction at a time, in commit order.
SELECT last_position FROM global_position FOR UPDATE
