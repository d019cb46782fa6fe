INSERT INTO streams (name, last_version) VALUES (?1, ?2)
ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version
