SELECT last_version FROM streams WHERE name = $1
