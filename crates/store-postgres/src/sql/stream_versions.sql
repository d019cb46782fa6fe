SELECT name, last_version FROM streams WHERE name = ANY ($1::text[])
