-- Which of a batch's (stream, event id) pairs are already recorded, and where.
SELECT e.stream, e.event_id, e.version, e.position
FROM unnest($1::text[], $2::uuid[]) AS given (stream, event_id)
JOIN events e ON e.stream = given.stream AND e.event_id = given.event_id
