"""What the agent knows of a Bitrix installation that is not a check: how to read the portal's
settings files (PHP literals, never PHP itself) and where bitrix-env keeps things."""
