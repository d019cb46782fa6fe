SELECT o_outcome, o_event_id, o_version, o_position
FROM switchboard_append($1, $2, $3, $4, $5, $6, $7, $8, $9)
