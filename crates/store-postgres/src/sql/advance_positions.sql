UPDATE global_position SET last_position = $1
